// INT4 one-token tiles with AVX-512, selected at run time (isa.c): the bits of int4.c's rows4.
// A 512-bit vector holds the 8-lane chains of two rows side by side (the element sequence is
// 8 lanes wide, glm5_kernels.h), x broadcast to both halves. The 4-row tile: per 16 columns of 2
// rows vmovq + vmovhps + vpmovzxbd, vpternlogd, vpsrld + vpord, 2 vsubps and 2 FMAs (9 µops for
// 32 weights; AVX2 takes 9 for 16). The 8-row tile below takes 8.

#include "int4_avx512.h"

#define GLM5K_ROWS4_BODY                                                                            \
  const int64_t G = w->group, groups = w->cols / G, rb = w->cols / 2;                               \
  const uint8_t *p0 = w->packed + r[0] * rb, *p1 = w->packed + r[1] * rb;                           \
  const uint8_t *p2 = w->packed + r[2] * rb, *p3 = w->packed + r[3] * rb;                           \
  const __m512i mask = _mm512_set1_epi32(0xF), magic = _mm512_set1_epi32(0x4B000000);              \
  const __m512i mask_hi = _mm512_set1_epi32(0xF0);                                                  \
  const __m512 table = GLM5K_Q_TABLE_VALUES;                                                        \
  (void)mask_hi; (void)table;                                                                       \
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
    const __m512 lo_ = QLO(d_, zl), hi_ = QHI(d_, zh);                                              \
    acc = _mm512_fmadd_ps(xe, lo_, acc);                                                            \
    acc = _mm512_fmadd_ps(xo, hi_, acc);                                                            \
  } while (0)

#define GLM5K_ROWS8_BODY                                                                            \
  const int64_t G = w->group, groups = w->cols / G, rb = w->cols / 2;                               \
  const uint8_t *p = w->packed + r * rb;                                                            \
  const __m512i mask = _mm512_set1_epi32(0xF), magic = _mm512_set1_epi32(0x4B000000);              \
  const __m512i mask_hi = _mm512_set1_epi32(0xF0);                                                  \
  const __m512 table = GLM5K_Q_TABLE_VALUES;                                                        \
  (void)mask_hi; (void)table;                                                                       \
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

// The 8- and 4-row tiles of one form (QLO, QHI and HIGH_FACTOR as defined where it is expanded).
#define GLM5K_TILES(name8, name4)                                                                                     \
  GLM5K_AVX512VL void name8(const glm5k_int4 *w, int64_t r, const float *xp, int64_t next, float out[8]) {              \
    GLM5K_ROWS8_BODY                                                                                                  \
  }                                                                                                                   \
  GLM5K_AVX512VL void name4(const glm5k_int4 *w, const int64_t r[4], const float *xp, int64_t next, float out[4]) {     \
    GLM5K_ROWS4_BODY                                                                                                  \
  }

// Form 0: x as glm5k_int4_permute leaves it.
#define QLO GLM5K_Q_MAGIC_LO
#define QHI GLM5K_Q_MAGIC_HI
#define HIGH_FACTOR 1.0f
GLM5K_TILES(glm5k_int4_rows8_avx512, glm5k_int4_rows4_avx512)
#undef QHI
#undef HIGH_FACTOR

// Form 1: the odd half of every 16 columns of x scaled by 1/16 (exactly).
#define QHI GLM5K_Q_MAGIC_HI16
#define HIGH_FACTOR 16.0f
GLM5K_TILES(glm5k_int4_rows8_odd16_avx512, glm5k_int4_rows4_odd16_avx512)
#undef QLO
#undef QHI
#undef HIGH_FACTOR

// Symmetric weights (no zero points), form 0: q by table lookup (the zero-point vectors unused).
#define QLO GLM5K_Q_TABLE_LO
#define QHI GLM5K_Q_TABLE_HI
#define HIGH_FACTOR 1.0f
GLM5K_TILES(glm5k_int4_rows8_table_avx512, glm5k_int4_rows4_table_avx512)
#undef QLO
#undef QHI
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
