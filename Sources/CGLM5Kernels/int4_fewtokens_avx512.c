#include "int4_avx512.h"

// MARK: - Few tokens (2-8): 4 rows × up to 4 tokens per tile
//
// rows4's layout (two rows' chains per vector) against 4 token rows of x: each pair's 16 columns
// are decoded once (GLM5K_Q2, form 0; by table lookup for symmetric weights) for 4 tokens' FMAs, where the AVX2 tile decodes one row for
// 4 tokens at half the width. 8 chains and 8 totals in registers; the one-token sequence for
// every element. The last block of a call's tokens takes the tile of its size (1-3 tokens), so no
// FMA is spent on a repeated token (batched decode gives most experts 1-3 rows).
#define QLO(d, z) (SYM ? GLM5K_Q_TABLE_LO(d, z) : GLM5K_Q_MAGIC_LO(d, z))
#define QHI(d, z) (SYM ? GLM5K_Q_TABLE_HI(d, z) : GLM5K_Q_MAGIC_HI(d, z))
// NT tokens and SYM (no zero points) constants in each wrapper below, so the loops over tokens
// unroll and the form of q is fixed.
GLM5K_AVX512VL static inline __attribute__((always_inline)) void rows4_tokens(const glm5k_int4 *w, const int64_t r[4],
                                                                              const float *const *x, float *out, const int NT,
                                                                              const int SYM) {
  const int64_t G = w->group, groups = w->cols / G, rb = w->cols / 2;
  const uint8_t *p0 = w->packed + r[0] * rb, *p1 = w->packed + r[1] * rb;
  const uint8_t *p2 = w->packed + r[2] * rb, *p3 = w->packed + r[3] * rb;
  const __m512i mask = _mm512_set1_epi32(0xF), magic = _mm512_set1_epi32(0x4B000000);
  const __m512 table = GLM5K_Q_TABLE_VALUES;
  float sc[4][GLM5K_CHUNK];
  int32_t zz[4][GLM5K_CHUNK];
  __m512 t[2][4];  // NT ≤ 4 used
  for (int u = 0; u < NT; u++) t[0][u] = t[1][u] = _mm512_setzero_ps();
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
      for (int u = 0; u < NT; u++) a[0][u] = a[1][u] = _mm512_setzero_ps();
      const int64_t c0 = (gc + g) * G;
      for (int64_t c = c0; c < c0 + G; c += 16) {
        GLM5K_PREFETCH_ROW(p0, c / 2); GLM5K_PREFETCH_ROW(p1, c / 2);
        GLM5K_PREFETCH_ROW(p2, c / 2); GLM5K_PREFETCH_ROW(p3, c / 2);
        __m512 lo01, hi01, lo23, hi23;
        GLM5K_Q2(p0 + c / 2, p1 + c / 2, z01, z01, lo01, hi01);
        GLM5K_Q2(p2 + c / 2, p3 + c / 2, z23, z23, lo23, hi23);
        for (int u = 0; u < NT; u++) {
          const __m512 xe = both_halves(x[u] + c), xo = both_halves(x[u] + c + 8);
          a[0][u] = _mm512_fmadd_ps(xe, lo01, a[0][u]); a[0][u] = _mm512_fmadd_ps(xo, hi01, a[0][u]);
          a[1][u] = _mm512_fmadd_ps(xe, lo23, a[1][u]); a[1][u] = _mm512_fmadd_ps(xo, hi23, a[1][u]);
        }
      }
      const __m512 s01 = pair_ps(sc[0][g], sc[1][g]), s23 = pair_ps(sc[2][g], sc[3][g]);
      for (int u = 0; u < NT; u++) {
        t[0][u] = _mm512_fmadd_ps(a[0][u], s01, t[0][u]);
        t[1][u] = _mm512_fmadd_ps(a[1][u], s23, t[1][u]);
      }
    }
  }
  // out[token · 4 + row]
  for (int u = 0; u < NT; u++) {
    halves(t[0][u], &out[4 * u + 0], &out[4 * u + 1]);
    halves(t[1][u], &out[4 * u + 2], &out[4 * u + 3]);
  }
}
GLM5K_AVX512VL void glm5k_int4_rows4_tokens4_avx512(const glm5k_int4 *w, const int64_t r[4], const float *const x[4], float out[16]) {
  if (w->zeros) {
    rows4_tokens(w, r, x, out, 4, 0);
  } else {
    rows4_tokens(w, r, x, out, 4, 1);
  }
}
GLM5K_AVX512VL void glm5k_int4_rows4_tokens3_avx512(const glm5k_int4 *w, const int64_t r[4], const float *const x[3], float out[12]) {
  if (w->zeros) {
    rows4_tokens(w, r, x, out, 3, 0);
  } else {
    rows4_tokens(w, r, x, out, 3, 1);
  }
}
GLM5K_AVX512VL void glm5k_int4_rows4_tokens2_avx512(const glm5k_int4 *w, const int64_t r[4], const float *const x[2], float out[8]) {
  if (w->zeros) {
    rows4_tokens(w, r, x, out, 2, 0);
  } else {
    rows4_tokens(w, r, x, out, 2, 1);
  }
}
GLM5K_AVX512VL void glm5k_int4_rows4_tokens1_avx512(const glm5k_int4 *w, const int64_t r[4], const float *const x[1], float out[4]) {
  if (w->zeros) {
    rows4_tokens(w, r, x, out, 1, 0);
  } else {
    rows4_tokens(w, r, x, out, 1, 1);
  }
}
#undef QLO
#undef QHI
