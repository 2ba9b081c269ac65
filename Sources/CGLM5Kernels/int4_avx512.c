// INT4 one-token tiles with AVX-512F, selected at run time (isa.c): the bits of int4.c's rows4.
// A 512-bit vector holds the 8-lane chains of two rows side by side (the element sequence is
// 8 lanes wide, glm5_kernels.h), x broadcast to both halves: per 16 columns of 2 rows vmovq +
// vmovhps + vpmovzxbd, vpternlogd, vpsrld + vpord, 2 vsubps and 2 FMAs (9 µops for 32 weights;
// AVX2 takes 9 for 16).

#include <immintrin.h>

#include "internal.h"

#define GLM5K_AVX512 __attribute__((target("avx512f")))

/// 8 bytes of row a then 8 of row b (16 columns each) → their q lanes: even columns, odd columns.
/// A nibble u placed in the mantissa of 2^23 ((d & 0xF) | 0x4B000000 in one vpternlogd; the high
/// nibble shifted down, then or-ed) is the float 2^23 + u; minus the float 2^23 + (8 + zp) (`z`
/// here) that is q exactly, the value vcvtdq2ps(u − 8 − zp) gives, with one µop fewer and none
/// on the conversion port.
#define GLM5K_Q2(pa, pb, z, lo, hi)                                                                   \
  do {                                                                                                \
    __m128i b_ = _mm_castpd_si128(_mm_loadh_pd(_mm_castsi128_pd(_mm_loadl_epi64((const __m128i *)(pa))), \
                                               (const double *)(pb)));                                \
    __m512i d_ = _mm512_cvtepu8_epi32(b_);                                                            \
    lo = _mm512_sub_ps(_mm512_castsi512_ps(_mm512_ternarylogic_epi32(d_, mask, magic, 0xEA)), (z));   \
    hi = _mm512_sub_ps(_mm512_castsi512_ps(_mm512_or_si512(_mm512_srli_epi32(d_, 4), magic)), (z));   \
  } while (0)

GLM5K_AVX512 static inline __m512 pair_ps(float a, float b) {
  return _mm512_mask_mov_ps(_mm512_set1_ps(a), 0xFF00, _mm512_set1_ps(b));
}

GLM5K_AVX512 static inline __m512 both_halves(const float *p) {
  return _mm512_castpd_ps(_mm512_broadcast_f64x4(_mm256_castps_pd(_mm256_loadu_ps(p))));
}

GLM5K_AVX512 static inline void halves(__m512 v, float *lo, float *hi) {
  *lo = glm5k_reduce8(_mm512_castps512_ps256(v));
  *hi = glm5k_reduce8(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1)));
}

GLM5K_AVX512 void glm5k_int4_rows4_avx512(const glm5k_int4 *w, const int64_t r[4], const float *xp, float out[4]) {
  const int64_t G = w->group, groups = w->cols / G, rb = w->cols / 2;
  const uint8_t *p0 = w->packed + r[0] * rb, *p1 = w->packed + r[1] * rb;
  const uint8_t *p2 = w->packed + r[2] * rb, *p3 = w->packed + r[3] * rb;
  const __m512i mask = _mm512_set1_epi32(0xF), magic = _mm512_set1_epi32(0x4B000000);
  float sc[4][GLM5K_CHUNK];
  int32_t zz[4][GLM5K_CHUNK];
  __m512 t01 = _mm512_setzero_ps(), t23 = t01;
  for (int64_t gc = 0; gc < groups; gc += GLM5K_CHUNK) {
    const int64_t gn = groups - gc < GLM5K_CHUNK ? groups - gc : GLM5K_CHUNK;
    for (int j = 0; j < 4; j++) glm5k_int4_scales_range(w, r[j], gc, gn, sc[j], w->zeros ? zz[j] : 0);
    for (int64_t g = 0; g < gn; g++) {
      // 2^23 + (8 + zp) as floats, per pair of rows.
      __m512 z01, z23;
      if (w->zeros) {
        z01 = pair_ps(8388608.0f + (float)zz[0][g], 8388608.0f + (float)zz[1][g]);
        z23 = pair_ps(8388608.0f + (float)zz[2][g], 8388608.0f + (float)zz[3][g]);
      } else {
        z01 = z23 = _mm512_set1_ps(8388616.0f);
      }
      __m512 a01 = _mm512_setzero_ps(), a23 = a01;
      const int64_t c0 = (gc + g) * G;
      for (int64_t c = c0; c < c0 + G; c += 16) {
        GLM5K_PREFETCH_ROW(p0, c / 2); GLM5K_PREFETCH_ROW(p1, c / 2);
        GLM5K_PREFETCH_ROW(p2, c / 2); GLM5K_PREFETCH_ROW(p3, c / 2);
        const __m512 xe = both_halves(xp + c), xo = both_halves(xp + c + 8);
        __m512 lo, hi;
        GLM5K_Q2(p0 + c / 2, p1 + c / 2, z01, lo, hi);
        a01 = _mm512_fmadd_ps(xe, lo, a01); a01 = _mm512_fmadd_ps(xo, hi, a01);
        GLM5K_Q2(p2 + c / 2, p3 + c / 2, z23, lo, hi);
        a23 = _mm512_fmadd_ps(xe, lo, a23); a23 = _mm512_fmadd_ps(xo, hi, a23);
      }
      t01 = _mm512_fmadd_ps(a01, pair_ps(sc[0][g], sc[1][g]), t01);
      t23 = _mm512_fmadd_ps(a23, pair_ps(sc[2][g], sc[3][g]), t23);
    }
  }
  halves(t01, &out[0], &out[1]);
  halves(t23, &out[2], &out[3]);
}
