// Helpers shared by the INT4 AVX-512 kernel files (int4_decode_avx512.c, int4_fewtokens_avx512.c,
// int4_transposed_avx512.c); not part of the module's header.
#ifndef GLM5_KERNELS_INT4_AVX512_H
#define GLM5_KERNELS_INT4_AVX512_H

#include <immintrin.h>
#include <string.h>

#include "internal.h"

// AVX-512 as isa.c selects it: F, VL (the 128/256-bit forms on registers 16-31: without them the
// 8-row tile's eight 16-byte row loads spill), BW and DQ.
#define GLM5K_AVX512VL __attribute__((target("avx512f,avx512vl,avx512bw,avx512dq")))

/// 8 bytes of row a then 8 of row b (16 columns each) → their q lanes: even columns, odd columns.
/// The including file defines QLO(d, zl) and QHI(d, zh), the float q of the low and high nibbles
/// of d (vpmovzxbd's 16 bytes), as one of the forms below.
#define GLM5K_Q2(pa, pb, zl, zh, lo, hi)                                                              \
  do {                                                                                                \
    __m128i b_ = _mm_castpd_si128(_mm_loadh_pd(_mm_castsi128_pd(_mm_loadl_epi64((const __m128i *)(pa))), \
                                               (const double *)(pb)));                                \
    __m512i d_ = _mm512_cvtepu8_epi32(b_);                                                            \
    lo = QLO(d_, zl);                                                                                 \
    hi = QHI(d_, zh);                                                                                 \
  } while (0)

/// The forms of q. Magic: a nibble u placed in the mantissa of 2^23 ((d & 0xF) | 0x4B000000 in
/// one vpternlogd; the high nibble shifted down, then or-ed) is the float 2^23 + u; minus the
/// float 2^23 + (8 + zp) (`z`) that is q exactly, the value vcvtdq2ps(u − 8 − zp) gives, with one
/// µop fewer and none on the conversion port. Form 1 keeps the high nibbles in place (16u, in one
/// vpternlogd) against x's odd half scaled by 1/16 and `zh` = 2^23 + 16(8 + zp). Table (symmetric
/// weights, zp = 0): vpermps picks q = u − 8 from a register of the 16 values by the low 4 bits of
/// each lane, one µop per nibble and no subtraction (1.1× the 8-row tile's weights/s from L2 on a
/// Zen 5). Every form gives q exactly, so every form gives the same products.
#define GLM5K_Q_MAGIC_LO(d, z) _mm512_sub_ps(_mm512_castsi512_ps(_mm512_ternarylogic_epi32(d, mask, magic, 0xEA)), (z))
#define GLM5K_Q_MAGIC_HI(d, z) _mm512_sub_ps(_mm512_castsi512_ps(_mm512_or_si512(_mm512_srli_epi32(d, 4), magic)), (z))
#define GLM5K_Q_MAGIC_HI16(d, z) _mm512_sub_ps(_mm512_castsi512_ps(_mm512_ternarylogic_epi32(d, mask_hi, magic, 0xEA)), (z))
#define GLM5K_Q_TABLE_LO(d, z) _mm512_permutexvar_ps(d, table)
#define GLM5K_Q_TABLE_HI(d, z) _mm512_permutexvar_ps(_mm512_srli_epi32(d, 4), table)
/// q = u − 8 for u = 0 .. 15 (GLM5K_Q_TABLE_*).
#define GLM5K_Q_TABLE_VALUES _mm512_setr_ps(-8, -7, -6, -5, -4, -3, -2, -1, 0, 1, 2, 3, 4, 5, 6, 7)

GLM5K_AVX512VL static inline __m512 pair_ps(float a, float b) {
  return _mm512_mask_mov_ps(_mm512_set1_ps(a), 0xFF00, _mm512_set1_ps(b));
}

GLM5K_AVX512VL static inline __m512 both_halves(const float *p) {
  return _mm512_castpd_ps(_mm512_broadcast_f64x4(_mm256_castps_pd(_mm256_loadu_ps(p))));
}

/// Scales of groups [g0, g0 + n) of slice row r as floats into out (n ≤ GLM5K_CHUNK, written in
/// whole vectors of 16), and 8 + zp into zp when the weight has zero points: glm5k_int4_scales_range's
/// values, converted 16 at a time in registers (masked loads past n read nothing).
GLM5K_AVX512VL static inline void scales16(const glm5k_int4 *w, int64_t r, int64_t g0, int64_t n, float *out, int32_t *zp) {
  if (w->zeros) {
    glm5k_int4_scales_range(w, r, g0, n, out, zp);
    return;
  }
  const int64_t groups = w->cols / w->group, base = (w->row_offset + r) * groups + g0;
  for (int64_t i = 0; i < n; i += 16) {
    const __mmask16 m = n - i >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (n - i)) - 1);
    __m512 f;
    if (w->scale_dtype == GLM5K_SCALE_BF16) {
      const __m256i h = _mm256_maskz_loadu_epi16(m, (const uint16_t *)w->scales + base + i);
      f = _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
    } else if (w->scale_dtype == GLM5K_SCALE_F16) {
      f = _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, (const uint16_t *)w->scales + base + i));
    } else {
      f = _mm512_maskz_loadu_ps(m, (const float *)w->scales + base + i);
    }
    _mm512_storeu_ps(out + i, f);
  }
}

GLM5K_AVX512VL static inline void halves(__m512 v, float *lo, float *hi) {
  *lo = glm5k_reduce8(_mm512_castps512_ps256(v));
  *hi = glm5k_reduce8(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1)));
}

#endif
