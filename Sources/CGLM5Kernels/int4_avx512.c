// INT4 one-token tiles with AVX-512F, selected at run time (isa.c): the bits of int4.c's rows4.
// A 512-bit vector holds the 8-lane chains of two rows side by side (the element sequence is
// 8 lanes wide, glm5_kernels.h), x broadcast to both halves: per 16 columns of 2 rows vmovq +
// vmovhps + vpmovzxbd, vpternlogd, vpsrld + vpord, 2 vsubps and 2 FMAs (9 µops for 32 weights;
// AVX2 takes 9 for 16).

#include <immintrin.h>
#include <string.h>

#include "internal.h"

#define GLM5K_AVX512 __attribute__((target("avx512f")))
// The 8-row tile also uses the 128-bit forms of registers 16-31 (AVX-512VL): without them its
// eight 16-byte row loads spill. isa.c selects AVX-512 only on CPUs with F, VL, BW and DQ.
#define GLM5K_AVX512VL __attribute__((target("avx512f,avx512vl,avx512bw,avx512dq")))

/// 8 bytes of row a then 8 of row b (16 columns each) → their q lanes: even columns, odd columns.
/// A nibble u placed in the mantissa of 2^23 ((d & 0xF) | 0x4B000000 in one vpternlogd; the high
/// nibble shifted down, then or-ed) is the float 2^23 + u; minus the float 2^23 + (8 + zp) (`z`
/// here) that is q exactly, the value vcvtdq2ps(u − 8 − zp) gives, with one µop fewer and none
/// on the conversion port. HIGH(d) places the high nibbles (form 0: shifted down; form 1: in
/// place, 16u, against x's odd half scaled by 1/16 and `zh` = 2^23 + 16(8 + zp)).
#define GLM5K_Q2(pa, pb, zl, zh, lo, hi)                                                              \
  do {                                                                                                \
    __m128i b_ = _mm_castpd_si128(_mm_loadh_pd(_mm_castsi128_pd(_mm_loadl_epi64((const __m128i *)(pa))), \
                                               (const double *)(pb)));                                \
    __m512i d_ = _mm512_cvtepu8_epi32(b_);                                                            \
    lo = _mm512_sub_ps(_mm512_castsi512_ps(_mm512_ternarylogic_epi32(d_, mask, magic, 0xEA)), (zl));  \
    hi = _mm512_sub_ps(_mm512_castsi512_ps(HIGH(d_)), (zh));                                          \
  } while (0)

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

#define GLM5K_ROWS4_BODY                                                                            \
  const int64_t G = w->group, groups = w->cols / G, rb = w->cols / 2;                               \
  const uint8_t *p0 = w->packed + r[0] * rb, *p1 = w->packed + r[1] * rb;                           \
  const uint8_t *p2 = w->packed + r[2] * rb, *p3 = w->packed + r[3] * rb;                           \
  const __m512i mask = _mm512_set1_epi32(0xF), magic = _mm512_set1_epi32(0x4B000000);              \
  const __m512i mask_hi = _mm512_set1_epi32(0xF0);                                                  \
  (void)mask_hi;                                                                                    \
  /* The next tile's 4 rows (contiguous), half a line per 16-column step, and its scales. */        \
  const char *pf = next >= 0 ? (const char *)(w->packed + next * rb) : 0;                           \
  const int64_t pf_bytes = next >= 0 ? 4 * rb : 0;                                                  \
  int64_t pf_at = 0;                                                                                \
  if (next >= 0) glm5k_int4_prefetch_scales(w, next, 4);                                            \
  float sc[4][GLM5K_CHUNK];                                                                         \
  int32_t zz[4][GLM5K_CHUNK];                                                                       \
  __m512 t01 = _mm512_setzero_ps(), t23 = t01;                                                      \
  for (int64_t gc = 0; gc < groups; gc += GLM5K_CHUNK) {                                            \
    const int64_t gn = groups - gc < GLM5K_CHUNK ? groups - gc : GLM5K_CHUNK;                       \
    for (int j = 0; j < 4; j++) scales16(w, r[j], gc, gn, sc[j], zz[j]); \
    for (int64_t g = 0; g < gn; g++) {                                                              \
      __m512 zl01, zl23, zh01, zh23;                                                                \
      if (w->zeros) {                                                                               \
        zl01 = pair_ps(8388608.0f + (float)zz[0][g], 8388608.0f + (float)zz[1][g]);                 \
        zl23 = pair_ps(8388608.0f + (float)zz[2][g], 8388608.0f + (float)zz[3][g]);                 \
        zh01 = pair_ps(8388608.0f + HIGH_FACTOR * (float)zz[0][g], 8388608.0f + HIGH_FACTOR * (float)zz[1][g]); \
        zh23 = pair_ps(8388608.0f + HIGH_FACTOR * (float)zz[2][g], 8388608.0f + HIGH_FACTOR * (float)zz[3][g]); \
      } else {                                                                                      \
        zl01 = zl23 = _mm512_set1_ps(8388616.0f);                                                   \
        zh01 = zh23 = _mm512_set1_ps(8388608.0f + HIGH_FACTOR * 8.0f);                             \
      }                                                                                             \
      __m512 a01 = _mm512_setzero_ps(), a23 = a01;                                                  \
      const int64_t c0 = (gc + g) * G;                                                              \
      for (int64_t c = c0; c < c0 + G; c += 16) {                                                   \
        GLM5K_PREFETCH_ROW(p0, c / 2); GLM5K_PREFETCH_ROW(p1, c / 2);                               \
        GLM5K_PREFETCH_ROW(p2, c / 2); GLM5K_PREFETCH_ROW(p3, c / 2);                               \
        if ((c & 16) == 0 && pf_at < pf_bytes) {                                                    \
          _mm_prefetch(pf + pf_at, _MM_HINT_T0);                                                    \
          pf_at += 64;                                                                              \
        }                                                                                           \
        const __m512 xe = both_halves(xp + c), xo = both_halves(xp + c + 8);                        \
        __m512 lo, hi;                                                                              \
        GLM5K_Q2(p0 + c / 2, p1 + c / 2, zl01, zh01, lo, hi);                                        \
        a01 = _mm512_fmadd_ps(xe, lo, a01); a01 = _mm512_fmadd_ps(xo, hi, a01);                     \
        GLM5K_Q2(p2 + c / 2, p3 + c / 2, zl23, zh23, lo, hi);                                        \
        a23 = _mm512_fmadd_ps(xe, lo, a23); a23 = _mm512_fmadd_ps(xo, hi, a23);                     \
      }                                                                                             \
      t01 = _mm512_fmadd_ps(a01, pair_ps(sc[0][g], sc[1][g]), t01);                                 \
      t23 = _mm512_fmadd_ps(a23, pair_ps(sc[2][g], sc[3][g]), t23);                                 \
    }                                                                                               \
  }                                                                                                 \
  halves(t01, &out[0], &out[1]);                                                                    \
  halves(t23, &out[2], &out[3]);

// MARK: - 8-row tile (one token, rows r .. r + 7, group a multiple of 32)
//
// Per 32 columns: one 16-byte load per row, the rows paired by vpunpck{l,h}qdq (row a's 8 bytes
// then row b's: the pair's two 16-column steps), and per pair and step vpmovzxbd, vpternlogd
// (low nibbles into 2^23's mantissa), the high nibbles either by vpsrld + vpord (form 0) or, in
// form 1 (glm5k_int4_decode_prepare scaled the odd half of x by 1/16), by one vpternlogd that
// keeps them in place (the float 2^23 + 16u: minus 2^23 + 16(8 + zp) it is 16q exactly), 2 vsubps
// and 2 FMAs. In form 1 each product (x/16)·(16q) is the exact x·q rounded once in its FMA, so
// both forms give rows4's bits. The next tile's rows and scales are prefetched while this one
// runs (the hardware prefetchers alone left the 4-row tile at ~55% of the 8-row one from DRAM).

#define GLM5K_PAIR_STEP(ba, bb, UNPACK, xe, xo, zl, zh, acc)                                           \
  do {                                                                                              \
    const __m512i d_ = _mm512_cvtepu8_epi32(UNPACK(ba, bb));                                        \
    const __m512 lo_ = _mm512_sub_ps(_mm512_castsi512_ps(_mm512_ternarylogic_epi32(d_, mask, magic, 0xEA)), zl); \
    const __m512 hi_ = _mm512_sub_ps(_mm512_castsi512_ps(HIGH(d_)), zh);                           \
    acc = _mm512_fmadd_ps(xe, lo_, acc);                                                            \
    acc = _mm512_fmadd_ps(xo, hi_, acc);                                                            \
  } while (0)

#define GLM5K_ROWS8_BODY                                                                            \
  const int64_t G = w->group, groups = w->cols / G, rb = w->cols / 2;                               \
  const uint8_t *p = w->packed + r * rb;                                                            \
  const __m512i mask = _mm512_set1_epi32(0xF), magic = _mm512_set1_epi32(0x4B000000);              \
  const __m512i mask_hi = _mm512_set1_epi32(0xF0);                                                  \
  (void)mask_hi;                                                                                    \
  /* The next tile: its 8 rows' bytes (contiguous) spread over this tile's 32-column steps, and */  \
  /* its scales now. */                                                                             \
  const char *pf = next >= 0 ? (const char *)(w->packed + next * rb) : 0;                           \
  const int64_t pf_bytes = next >= 0 ? 8 * rb : 0, steps = w->cols / 32;                           \
  const int64_t pf_per_step = steps > 0 ? (pf_bytes / 64 + steps - 1) / steps : 0;                 \
  int64_t pf_at = 0;                                                                                \
  if (next >= 0) glm5k_int4_prefetch_scales(w, next, 8);                                            \
  float sc[8][GLM5K_CHUNK];                                                                         \
  int32_t zz[8][GLM5K_CHUNK];                                                                       \
  __m512 t0 = _mm512_setzero_ps(), t1 = t0, t2 = t0, t3 = t0;                                      \
  for (int64_t gc = 0; gc < groups; gc += GLM5K_CHUNK) {                                            \
    const int64_t gn = groups - gc < GLM5K_CHUNK ? groups - gc : GLM5K_CHUNK;                       \
    for (int j = 0; j < 8; j++) scales16(w, r + j, gc, gn, sc[j], zz[j]); \
    for (int64_t g = 0; g < gn; g++) {                                                              \
      /* 2^23 + (8 + zp) per pair of rows (low nibbles), 2^23 + LOW_HI_FACTOR·(8 + zp) (high). */   \
      __m512 zl0, zl1, zl2, zl3, zh0, zh1, zh2, zh3;                                                \
      if (w->zeros) {                                                                               \
        zl0 = pair_ps(8388608.0f + (float)zz[0][g], 8388608.0f + (float)zz[1][g]);                  \
        zl1 = pair_ps(8388608.0f + (float)zz[2][g], 8388608.0f + (float)zz[3][g]);                  \
        zl2 = pair_ps(8388608.0f + (float)zz[4][g], 8388608.0f + (float)zz[5][g]);                  \
        zl3 = pair_ps(8388608.0f + (float)zz[6][g], 8388608.0f + (float)zz[7][g]);                  \
        zh0 = pair_ps(8388608.0f + HIGH_FACTOR * (float)zz[0][g], 8388608.0f + HIGH_FACTOR * (float)zz[1][g]); \
        zh1 = pair_ps(8388608.0f + HIGH_FACTOR * (float)zz[2][g], 8388608.0f + HIGH_FACTOR * (float)zz[3][g]); \
        zh2 = pair_ps(8388608.0f + HIGH_FACTOR * (float)zz[4][g], 8388608.0f + HIGH_FACTOR * (float)zz[5][g]); \
        zh3 = pair_ps(8388608.0f + HIGH_FACTOR * (float)zz[6][g], 8388608.0f + HIGH_FACTOR * (float)zz[7][g]); \
      } else {                                                                                      \
        zl0 = zl1 = zl2 = zl3 = _mm512_set1_ps(8388616.0f);                                         \
        zh0 = zh1 = zh2 = zh3 = _mm512_set1_ps(8388608.0f + HIGH_FACTOR * 8.0f);                   \
      }                                                                                             \
      __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;                                  \
      const int64_t c0 = (gc + g) * G;                                                              \
      for (int64_t c = c0; c < c0 + G; c += 32) {                                                   \
        for (int64_t k = 0; k < pf_per_step && pf_at < pf_bytes; k++, pf_at += 64) _mm_prefetch(pf + pf_at, _MM_HINT_T0); \
        const uint8_t *q = p + c / 2;                                                               \
        const __m128i b0 = _mm_loadu_si128((const __m128i *)q), b1 = _mm_loadu_si128((const __m128i *)(q + rb)); \
        const __m128i b2 = _mm_loadu_si128((const __m128i *)(q + 2 * rb)), b3 = _mm_loadu_si128((const __m128i *)(q + 3 * rb)); \
        const __m128i b4 = _mm_loadu_si128((const __m128i *)(q + 4 * rb)), b5 = _mm_loadu_si128((const __m128i *)(q + 5 * rb)); \
        const __m128i b6 = _mm_loadu_si128((const __m128i *)(q + 6 * rb)), b7 = _mm_loadu_si128((const __m128i *)(q + 7 * rb)); \
        __m512 xe = both_halves(xp + c), xo = both_halves(xp + c + 8);                              \
        GLM5K_PAIR_STEP(b0, b1, _mm_unpacklo_epi64, xe, xo, zl0, zh0, a0);                          \
        GLM5K_PAIR_STEP(b2, b3, _mm_unpacklo_epi64, xe, xo, zl1, zh1, a1);                          \
        GLM5K_PAIR_STEP(b4, b5, _mm_unpacklo_epi64, xe, xo, zl2, zh2, a2);                          \
        GLM5K_PAIR_STEP(b6, b7, _mm_unpacklo_epi64, xe, xo, zl3, zh3, a3);                          \
        xe = both_halves(xp + c + 16); xo = both_halves(xp + c + 24);                               \
        GLM5K_PAIR_STEP(b0, b1, _mm_unpackhi_epi64, xe, xo, zl0, zh0, a0);                          \
        GLM5K_PAIR_STEP(b2, b3, _mm_unpackhi_epi64, xe, xo, zl1, zh1, a1);                          \
        GLM5K_PAIR_STEP(b4, b5, _mm_unpackhi_epi64, xe, xo, zl2, zh2, a2);                          \
        GLM5K_PAIR_STEP(b6, b7, _mm_unpackhi_epi64, xe, xo, zl3, zh3, a3);                          \
      }                                                                                             \
      t0 = _mm512_fmadd_ps(a0, pair_ps(sc[0][g], sc[1][g]), t0);                                   \
      t1 = _mm512_fmadd_ps(a1, pair_ps(sc[2][g], sc[3][g]), t1);                                   \
      t2 = _mm512_fmadd_ps(a2, pair_ps(sc[4][g], sc[5][g]), t2);                                   \
      t3 = _mm512_fmadd_ps(a3, pair_ps(sc[6][g], sc[7][g]), t3);                                   \
    }                                                                                               \
  }                                                                                                 \
  halves(t0, &out[0], &out[1]); halves(t1, &out[2], &out[3]);                                       \
  halves(t2, &out[4], &out[5]); halves(t3, &out[6], &out[7]);

// Form 0: x as glm5k_int4_permute leaves it.
#define HIGH(d) _mm512_or_si512(_mm512_srli_epi32(d, 4), magic)
#define HIGH_FACTOR 1.0f
GLM5K_AVX512VL void glm5k_int4_rows8_avx512(const glm5k_int4 *w, int64_t r, const float *xp, int64_t next, float out[8]) {
  GLM5K_ROWS8_BODY
}
GLM5K_AVX512VL void glm5k_int4_rows4_avx512(const glm5k_int4 *w, const int64_t r[4], const float *xp, int64_t next, float out[4]) {
  GLM5K_ROWS4_BODY
}
#undef HIGH
#undef HIGH_FACTOR

// Form 1: the odd half of every 16 columns of x scaled by 1/16 (exactly).
#define HIGH(d) _mm512_ternarylogic_epi32(d, mask_hi, magic, 0xEA)
#define HIGH_FACTOR 16.0f
GLM5K_AVX512VL void glm5k_int4_rows8_odd16_avx512(const glm5k_int4 *w, int64_t r, const float *xp, int64_t next, float out[8]) {
  GLM5K_ROWS8_BODY
}
GLM5K_AVX512VL void glm5k_int4_rows4_odd16_avx512(const glm5k_int4 *w, const int64_t r[4], const float *xp, int64_t next, float out[4]) {
  GLM5K_ROWS4_BODY
}
#undef HIGH
#undef HIGH_FACTOR

GLM5K_AVX512VL int32_t glm5k_int4_scale_odd16_avx512(float *xp, int64_t cols) {
  const __m256 sixteenth = _mm256_set1_ps(0.0625f), sixteen = _mm256_set1_ps(16.0f);
  __mmask8 inexact = 0;
  for (int64_t c = 0; c + 16 <= cols; c += 16) {
    const __m256 v = _mm256_loadu_ps(xp + c + 8);
    inexact |= _mm256_cmp_ps_mask(_mm256_mul_ps(_mm256_mul_ps(v, sixteenth), sixteen), v, _CMP_NEQ_UQ);
  }
  if (inexact) return 0;
  for (int64_t c = 0; c + 16 <= cols; c += 16) _mm256_storeu_ps(xp + c + 8, _mm256_mul_ps(_mm256_loadu_ps(xp + c + 8), sixteenth));
  return 1;
}

// MARK: - One-token transposed product (absorbed W_UK), y = xᵀ W over rows [r0, r1)
//
// glm5k_int4_axpy_rows's sequence: y[c] = fma(x[r − r0], W[r, c], y[c]) for r in order, W[r, c] =
// round(q · s). Groups a multiple of 32: blocks of 128 columns are held in 8 registers across
// all the rows, in the nibbles' order (per 32 columns: the even ones of both 16-column steps,
// then the odd ones), put back in column order at the end; per row and 32 columns vpmovzxbd,
// vpternlogd (low nibbles into 2^23's mantissa), vpsrld + vpord (high), 2 vsubps (q), 2 vmulps
// (· s: the dequantized values) and 2 FMAs. Other groups (multiples of 16): per row, y in L1.
GLM5K_AVX512VL static void axpy_rows_g16(const glm5k_int4 *w, int64_t r0, int64_t r1, const float *x, float *y) {
  const int64_t G = w->group, groups = w->cols / G, rb = w->cols / 2;
  const __m512i words = _mm512_setr_epi32(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1);
  const __m512i shifts = _mm512_setr_epi32(0, 4, 8, 12, 16, 20, 24, 28, 0, 4, 8, 12, 16, 20, 24, 28);
  const __m512i mask = _mm512_set1_epi32(0xF), magic = _mm512_set1_epi32(0x4B000000);
  float sc[GLM5K_CHUNK];
  int32_t zz[GLM5K_CHUNK];
  for (int64_t r = r0; r < r1; r++) {
    const uint8_t *p = w->packed + r * rb;
    const __m512 a = _mm512_set1_ps(x[r - r0]);
    for (int64_t gc = 0; gc < groups; gc += GLM5K_CHUNK) {
      const int64_t gn = groups - gc < GLM5K_CHUNK ? groups - gc : GLM5K_CHUNK;
      scales16(w, r, gc, gn, sc, zz);
      for (int64_t g = 0; g < gn; g++) {
        const __m512 sv = _mm512_set1_ps(sc[g]);
        const __m512 zv = _mm512_set1_ps(8388608.0f + (w->zeros ? (float)zz[g] : 8.0f));
        const int64_t c0 = (gc + g) * G;
        for (int64_t c = c0; c < c0 + G; c += 16) {
          const __m512i d = _mm512_permutexvar_epi32(words, _mm512_castsi128_si512(_mm_loadl_epi64((const __m128i *)(p + c / 2))));
          const __m512 u = _mm512_castsi512_ps(_mm512_ternarylogic_epi32(_mm512_srlv_epi32(d, shifts), mask, magic, 0xEA));
          const __m512 wv = _mm512_mul_ps(_mm512_sub_ps(u, zv), sv);
          _mm512_storeu_ps(y + c, _mm512_fmadd_ps(a, wv, _mm512_loadu_ps(y + c)));
        }
      }
    }
  }
}

GLM5K_AVX512VL void glm5k_int4_axpy_rows_avx512(const glm5k_int4 *w, int64_t r0, int64_t r1, const float *x, float *y) {
  const int64_t G = w->group, groups = w->cols / G, cols = w->cols, rb = cols / 2;
  if (G % 32 != 0) {
    axpy_rows_g16(w, r0, r1, x, y);
    return;
  }
  const __m512i mask = _mm512_set1_epi32(0xF), magic = _mm512_set1_epi32(0x4B000000);
  // Lane l of the even vector of a 32-column unit is column 2l (l < 8) or 16 + 2(l − 8); the odd
  // vector's are those plus 1.
  const __m512i even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
  const __m512i odd = _mm512_setr_epi32(1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31);
  // Back: column c of the unit from lane c/2 of even (c even) or odd (c odd), as one two-source permute.
  const __m512i back_lo = _mm512_setr_epi32(0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23);
  const __m512i back_hi = _mm512_setr_epi32(8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31);
  // Scales of a chunk of ROWS rows × GC groups at a time (4 KiB of stack).
  enum { ROWS = 16, GC = 32 };
  float sc[ROWS][GC];
  int32_t zz[ROWS][GC];
  for (int64_t gc = 0; gc < groups; gc += GC) {
    const int64_t gn = groups - gc < GC ? groups - gc : GC;
    for (int64_t rc = r0; rc < r1; rc += ROWS) {
      const int64_t rn = r1 - rc < ROWS ? r1 - rc : ROWS;
      for (int64_t i = 0; i < rn; i++) scales16(w, rc + i, gc, gn, sc[i], zz[i]);
      // Columns of this chunk of groups, in blocks of 4 units (128 columns).
      const int64_t cbeg = gc * G, cend = (gc + gn) * G;
      for (int64_t c0 = cbeg; c0 < cend; c0 += 128) {
        const int units = (int)((cend - c0 < 128 ? cend - c0 : 128) / 32);
        __m512 ae[4], ao[4];
        for (int u = 0; u < 4; u++) {
          if (u < units) {
            const __m512 v0 = _mm512_loadu_ps(y + c0 + 32 * u), v1 = _mm512_loadu_ps(y + c0 + 32 * u + 16);
            ae[u] = _mm512_permutex2var_ps(v0, even, v1);
            ao[u] = _mm512_permutex2var_ps(v0, odd, v1);
          } else {
            ae[u] = ao[u] = _mm512_setzero_ps();
          }
        }
        for (int64_t i = 0; i < rn; i++) {
          const int64_t r = rc + i;
          const uint8_t *p = w->packed + r * rb + c0 / 2;
          if (c0 == cbeg && r + 4 < r1) {
            // The first block's pass brings in the whole of a row 4 ahead (the later blocks read
            // it from L1/L2): at most 4 lines of it per row here.
            const char *ahead = (const char *)(w->packed + (r + 4) * rb + cbeg / 2);
            const int64_t span = (cend - cbeg) / 2 < 256 ? (cend - cbeg) / 2 : 256;
            for (int64_t o = 0; o < span; o += 64) _mm_prefetch(ahead + o, _MM_HINT_T0);
          }
          const __m512 a = _mm512_set1_ps(x[r - r0]);
          for (int u = 0; u < 4; u++) {
            if (u >= units) break;
            const int64_t g = (c0 + 32 * u) / G - gc;
            const __m512 sv = _mm512_set1_ps(sc[i][g]);
            const __m512 zv = _mm512_set1_ps(8388608.0f + (w->zeros ? (float)zz[i][g] : 8.0f));
            const __m512i d = _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)(p + 16 * u)));
            const __m512 lo = _mm512_sub_ps(_mm512_castsi512_ps(_mm512_ternarylogic_epi32(d, mask, magic, 0xEA)), zv);
            const __m512 hi = _mm512_sub_ps(_mm512_castsi512_ps(_mm512_or_si512(_mm512_srli_epi32(d, 4), magic)), zv);
            ae[u] = _mm512_fmadd_ps(a, _mm512_mul_ps(lo, sv), ae[u]);
            ao[u] = _mm512_fmadd_ps(a, _mm512_mul_ps(hi, sv), ao[u]);
          }
        }
        for (int u = 0; u < units; u++) {
          _mm512_storeu_ps(y + c0 + 32 * u, _mm512_permutex2var_ps(ae[u], back_lo, ao[u]));
          _mm512_storeu_ps(y + c0 + 32 * u + 16, _mm512_permutex2var_ps(ae[u], back_hi, ao[u]));
        }
      }
    }
  }
}

// MARK: - Few tokens (2-8): 4 rows × 4 tokens per tile
//
// rows4's layout (two rows' chains per vector) against 4 token rows of x: each pair's 16 columns
// are decoded once (GLM5K_Q2, form 0) for 4 tokens' FMAs, where the AVX2 tile decodes one row for
// 4 tokens at half the width. 8 chains and 8 totals in registers; the one-token sequence for
// every element.
#define HIGH(d) _mm512_or_si512(_mm512_srli_epi32(d, 4), magic)
GLM5K_AVX512VL void glm5k_int4_rows4_tokens4_avx512(const glm5k_int4 *w, const int64_t r[4], const float *const x[4], float out[16]) {
  const int64_t G = w->group, groups = w->cols / G, rb = w->cols / 2;
  const uint8_t *p0 = w->packed + r[0] * rb, *p1 = w->packed + r[1] * rb;
  const uint8_t *p2 = w->packed + r[2] * rb, *p3 = w->packed + r[3] * rb;
  const __m512i mask = _mm512_set1_epi32(0xF), magic = _mm512_set1_epi32(0x4B000000);
  float sc[4][GLM5K_CHUNK];
  int32_t zz[4][GLM5K_CHUNK];
  __m512 t[2][4];
  for (int u = 0; u < 4; u++) t[0][u] = t[1][u] = _mm512_setzero_ps();
  for (int64_t gc = 0; gc < groups; gc += GLM5K_CHUNK) {
    const int64_t gn = groups - gc < GLM5K_CHUNK ? groups - gc : GLM5K_CHUNK;
    for (int j = 0; j < 4; j++) scales16(w, r[j], gc, gn, sc[j], zz[j]);
    for (int64_t g = 0; g < gn; g++) {
      __m512 z01, z23;
      if (w->zeros) {
        z01 = pair_ps(8388608.0f + (float)zz[0][g], 8388608.0f + (float)zz[1][g]);
        z23 = pair_ps(8388608.0f + (float)zz[2][g], 8388608.0f + (float)zz[3][g]);
      } else {
        z01 = z23 = _mm512_set1_ps(8388616.0f);
      }
      __m512 a[2][4];
      for (int u = 0; u < 4; u++) a[0][u] = a[1][u] = _mm512_setzero_ps();
      const int64_t c0 = (gc + g) * G;
      for (int64_t c = c0; c < c0 + G; c += 16) {
        GLM5K_PREFETCH_ROW(p0, c / 2); GLM5K_PREFETCH_ROW(p1, c / 2);
        GLM5K_PREFETCH_ROW(p2, c / 2); GLM5K_PREFETCH_ROW(p3, c / 2);
        __m512 lo01, hi01, lo23, hi23;
        GLM5K_Q2(p0 + c / 2, p1 + c / 2, z01, z01, lo01, hi01);
        GLM5K_Q2(p2 + c / 2, p3 + c / 2, z23, z23, lo23, hi23);
        for (int u = 0; u < 4; u++) {
          const __m512 xe = both_halves(x[u] + c), xo = both_halves(x[u] + c + 8);
          a[0][u] = _mm512_fmadd_ps(xe, lo01, a[0][u]); a[0][u] = _mm512_fmadd_ps(xo, hi01, a[0][u]);
          a[1][u] = _mm512_fmadd_ps(xe, lo23, a[1][u]); a[1][u] = _mm512_fmadd_ps(xo, hi23, a[1][u]);
        }
      }
      const __m512 s01 = pair_ps(sc[0][g], sc[1][g]), s23 = pair_ps(sc[2][g], sc[3][g]);
      for (int u = 0; u < 4; u++) {
        t[0][u] = _mm512_fmadd_ps(a[0][u], s01, t[0][u]);
        t[1][u] = _mm512_fmadd_ps(a[1][u], s23, t[1][u]);
      }
    }
  }
  // out[token · 4 + row]
  for (int u = 0; u < 4; u++) {
    halves(t[0][u], &out[4 * u + 0], &out[4 * u + 1]);
    halves(t[1][u], &out[4 * u + 2], &out[4 * u + 3]);
  }
}
#undef HIGH
