// MARK: - One-token transposed product (absorbed W_UK) with AVX2, y = xᵀ W over rows [r0, r1)
//
// glm5k_int4_axpy_rows's sequence: y[c] = fma(x[r − r0], W[r, c], y[c]) for r in order, W[r, c] =
// round(q · s). Blocks of 64 columns are held in 8 registers across all the rows, in the nibbles'
// order (per 16 columns the 8 even ones, then the 8 odd ones), and put back in column order at
// the end; per row and 16 columns vpmovzxbd, vpor 0x4B000000 and vpand (low nibbles: the float
// 2^23 + u), vpsrld + vpor (high), 2 vsubps (q exactly), 2 vmulps (· s) and 2 FMAs: 11 µops per
// 16 weights where the row-at-a-time form (int4.c) takes 16 and loads and stores y each row.
// int4_transposed_avx512.c is the same with 128 columns per block.

#include <immintrin.h>

#include "internal.h"

/// x [16] in column order → (even 8 | odd 8) of each 16 columns, and back.
static inline void to_nibble_order(const float *y, __m256 *e, __m256 *o) {
  const __m256i ev = _mm256_setr_epi32(0, 2, 4, 6, 1, 3, 5, 7);
  const __m256 a = _mm256_permutevar8x32_ps(_mm256_loadu_ps(y), ev);      // y0 y2 y4 y6 | y1 y3 y5 y7
  const __m256 b = _mm256_permutevar8x32_ps(_mm256_loadu_ps(y + 8), ev);  // y8 … y14 | y9 … y15
  *e = _mm256_permute2f128_ps(a, b, 0x20);
  *o = _mm256_permute2f128_ps(a, b, 0x31);
}
static inline void to_column_order(float *y, __m256 e, __m256 o) {
  const __m256i back = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
  const __m256 a = _mm256_permute2f128_ps(e, o, 0x20);  // e0..e3 | o0..o3 = y0 y2 y4 y6 | y1 y3 y5 y7
  const __m256 b = _mm256_permute2f128_ps(e, o, 0x31);
  _mm256_storeu_ps(y, _mm256_permutevar8x32_ps(a, back));
  _mm256_storeu_ps(y + 8, _mm256_permutevar8x32_ps(b, back));
}

void glm5k_int4_axpy_rows_avx2(const glm5k_int4 *w, int64_t r0, int64_t r1, const float *x, float *y) {
  const int64_t G = w->group, groups = w->cols / G, rb = w->cols / 2;
  const __m256i mask_lo = _mm256_set1_epi32(0x4B00000F), magic = _mm256_set1_epi32(0x4B000000);
  // Scales of a chunk of ROWS rows × GC groups at a time (4 KiB of stack).
  enum { ROWS = 16, GC = 32 };
  float sc[ROWS][GC];
  int32_t zz[ROWS][GC];
  for (int64_t gc = 0; gc < groups; gc += GC) {
    const int64_t gn = groups - gc < GC ? groups - gc : GC;
    for (int64_t rc = r0; rc < r1; rc += ROWS) {
      const int64_t rn = r1 - rc < ROWS ? r1 - rc : ROWS;
      for (int64_t i = 0; i < rn; i++) glm5k_int4_scales_range(w, rc + i, gc, gn, sc[i], w->zeros ? zz[i] : 0);
      const int64_t cbeg = gc * G, cend = (gc + gn) * G;
      for (int64_t c0 = cbeg; c0 < cend; c0 += 64) {
        const int steps = (int)((cend - c0 < 64 ? cend - c0 : 64) / 16);
        __m256 ae[4], ao[4];
        int64_t gi[4];  // each step's group in the chunk (no division per row)
        for (int u = 0; u < 4; u++) {
          gi[u] = (c0 + 16 * u) / G - gc;
          if (u < steps) {
            to_nibble_order(y + c0 + 16 * u, &ae[u], &ao[u]);
          } else {
            ae[u] = ao[u] = _mm256_setzero_ps();
          }
        }
        for (int64_t i = 0; i < rn; i++) {
          const int64_t r = rc + i;
          const uint8_t *p = w->packed + r * rb + c0 / 2;
          if (c0 == cbeg && r + 4 < r1) glm5k_int4_prefetch_row_span(w, r + 4, cbeg, cend);  // a row 4 ahead
          const __m256 a = _mm256_set1_ps(x[r - r0]);
          for (int u = 0; u < 4; u++) {
            if (u >= steps) break;
            const int64_t g = gi[u];
            const __m256 sv = _mm256_set1_ps(sc[i][g]);
            const __m256 zv = _mm256_set1_ps(8388608.0f + (w->zeros ? (float)zz[i][g] : 8.0f));
            const __m256i d = _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)(p + 8 * u)));
            __m256i m = _mm256_or_si256(d, magic);
            __asm__("" : "+x"(m));  // one vpor for the low nibbles (GCC would split it otherwise)
            const __m256 lo = _mm256_sub_ps(_mm256_castsi256_ps(_mm256_and_si256(m, mask_lo)), zv);
            const __m256 hi = _mm256_sub_ps(_mm256_castsi256_ps(_mm256_or_si256(_mm256_srli_epi32(d, 4), magic)), zv);
            ae[u] = _mm256_fmadd_ps(a, _mm256_mul_ps(lo, sv), ae[u]);
            ao[u] = _mm256_fmadd_ps(a, _mm256_mul_ps(hi, sv), ao[u]);
          }
        }
        for (int u = 0; u < steps; u++) to_column_order(y + c0 + 16 * u, ae[u], ao[u]);
      }
    }
  }
}
