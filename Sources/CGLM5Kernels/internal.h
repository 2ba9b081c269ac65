// Helpers shared by the kernel files (not part of the module's header).
#ifndef GLM5_KERNELS_INTERNAL_H
#define GLM5_KERNELS_INTERNAL_H

#include <immintrin.h>
#include <stdint.h>
#include <string.h>

#include "glm5_kernels.h"

// Groups whose scales (and zero points) are widened into a stack buffer at a time.
#define GLM5K_CHUNK 128

/// Bytes ahead of the current position at which the one-token and few-token tiles prefetch each
/// weight row (once per 64-byte line): the hardware prefetchers alone left the 4-row tiles at
/// ~50% of the read bandwidth with 2 threads; 1 KiB ahead measured 1.4-1.8x faster (1024 x 2048
/// INT4 g32 from DRAM, 512-2048 within noise of each other).
#define GLM5K_PREFETCH 1024

/// Prefetch row p's bytes `GLM5K_PREFETCH` past byte offset `at` if `at` starts a 64-byte line.
#define GLM5K_PREFETCH_ROW(p, at)                                                        \
  do {                                                                                   \
    if (((at) & 63) == 0) _mm_prefetch((const char *)(p) + (at) + GLM5K_PREFETCH, _MM_HINT_T0); \
  } while (0)

/// Scales of groups [g0, g0 + n) of slice row r into out, and 8 + zp into zp (if not NULL).
void glm5k_int4_scales_range(const glm5k_int4 *w, int64_t r, int64_t g0, int64_t n, float *out, int32_t *zp);

/// 8 + zp of (total row `row`, group g): the zero-point nibble itself (zp = nibble − 8). The table
/// may sit at any address (glm5k_int4.zeros), so its words are read with memcpy from bytes.
static inline int32_t glm5k_int4_zero(const glm5k_int4 *w, int64_t row, int64_t g, int64_t groups) {
  uint32_t word;
  memcpy(&word, (const char *)w->zeros + 4 * ((row / 8) * groups + g), 4);
  return (int32_t)((word >> (4 * (row % 8))) & 0xF);
}

/// reduce8 as the Swift kernels define it: ((v0 + v4) + (v2 + v6)) + ((v1 + v5) + (v3 + v7)).
static inline float glm5k_reduce8(__m256 v) {
  __m128 h = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));  // h_i = v_i + v_{i+4}
  __m128 s = _mm_add_ps(h, _mm_movehl_ps(h, h));                                 // h0 + h2, h1 + h3
  return _mm_cvtss_f32(_mm_add_ss(s, _mm_shuffle_ps(s, s, 1)));
}

/// Prefetches the scales (and zero points) of slice rows [r, r + n).
void glm5k_int4_prefetch_scales(const glm5k_int4 *w, int64_t r, int64_t n);

/// One-token tiles with AVX-512 (int4_decode_avx512.c), rows4's bits: 4 rows r[0..3] (repeats allowed)
/// or the 8 rows r .. r + 7; `next` (or -1): the first row of the next tile, prefetched. The
/// odd16 forms read x with the odd half of every 16 columns scaled by 1/16
/// (glm5k_int4_scale_odd16_avx512).
void glm5k_int4_rows4_avx512(const glm5k_int4 *w, const int64_t r[4], const float *xp, int64_t next, float out[4]);
void glm5k_int4_rows4_odd16_avx512(const glm5k_int4 *w, const int64_t r[4], const float *xp, int64_t next, float out[4]);
void glm5k_int4_rows8_avx512(const glm5k_int4 *w, int64_t r, const float *xp, int64_t next, float out[8]);
void glm5k_int4_rows8_odd16_avx512(const glm5k_int4 *w, int64_t r, const float *xp, int64_t next, float out[8]);

/// 2-8 tokens with AVX-512 (int4_fewtokens_avx512.c): rows r[0..3] × token rows x[0..3] (repeats allowed), out[token · 4 + row].
void glm5k_int4_rows4_tokens4_avx512(const glm5k_int4 *w, const int64_t r[4], const float *const x[4], float out[16]);

/// Keys per block of the indexer kernels' fold.
#define GLM5K_INDEX_KEYS 8

/// The indexer's fold over the heads for a block of GLM5K_INDEX_KEYS keys, side by side and
/// without branches: score[u] = Σ_h in order fma(w[h], v, ·) over the heads whose v = d[u][h] ·
/// scale is > 0 (`s = v > 0 ? fma(w, v, s) : s` gives the bits of the branch, also for NaN v and a
/// non-finite w when v ≤ 0). d [GLM5K_INDEX_KEYS, ld] (rows past nk are zeroed here); scores[0..nk).
static inline void glm5k_index_fold(float *d, int64_t ld, int64_t heads, const float *w, float scale, int nk, float *scores) {
  for (int u = nk; u < GLM5K_INDEX_KEYS; u++)
    for (int64_t h = 0; h < heads; h++) d[u * ld + h] = 0;  // lanes past the last key: computed, dropped
  float s[GLM5K_INDEX_KEYS];
  for (int u = 0; u < GLM5K_INDEX_KEYS; u++) s[u] = 0;
  for (int64_t h = 0; h < heads; h++) {
    const float wh = w[h];
    for (int u = 0; u < GLM5K_INDEX_KEYS; u++) {
      const float v = d[u * ld + h] * scale;
      const float f = __builtin_fmaf(wh, v, s[u]);
      s[u] = v > 0 ? f : s[u];
    }
  }
  for (int u = 0; u < nk; u++) scores[u] = s[u];
}

/// glm5k_index_scores with AVX-512 (indexer_avx512.c), dim a multiple of 32: the same bits.
void glm5k_index_scores_avx512(const float *q, const float *w, int64_t heads, int64_t dim, const float *keys, int64_t j0,
                               int64_t j1, float scale, float *scores);

/// glm5k_int4_axpy_rows with AVX-512 (int4_transposed_avx512.c; group a multiple of 16): the same bits.
void glm5k_int4_axpy_rows_avx512(const glm5k_int4 *w, int64_t r0, int64_t r1, const float *x, float *y);

/// Scales the odd half of every 16 columns of xp [cols] by 1/16 in place and returns 1 if that is
/// exact for every value (v · 1/16 · 16 == v: no subnormal result, no NaN); else leaves xp as it
/// is and returns 0.
int32_t glm5k_int4_scale_odd16_avx512(float *xp, int64_t cols);

#endif
