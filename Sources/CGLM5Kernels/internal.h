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

/// The transposed products' prefetch: the packed bytes of columns [c0, c1) of slice row r, at most
/// 256 bytes (the first column block's pass brings a row in a few rows ahead; the later blocks
/// read it from L1/L2).
static inline void glm5k_int4_prefetch_row_span(const glm5k_int4 *w, int64_t r, int64_t c0, int64_t c1) {
  const char *ahead = (const char *)(w->packed + r * (w->cols / 2) + c0 / 2);
  const int64_t span = (c1 - c0) / 2 < 256 ? (c1 - c0) / 2 : 256;
  for (int64_t o = 0; o < span; o += 64) _mm_prefetch(ahead + o, _MM_HINT_T0);
}

/// Prefetches the scales (and zero points) of slice rows [r, r + n).
void glm5k_int4_prefetch_scales(const glm5k_int4 *w, int64_t r, int64_t n);

/// The prefill tiles' prefetch, issued once a K-block's rows are decoded (the block's tiles then
/// run long enough to hide DRAM latency; without it the decode's row loads stalled for a fifth of
/// the kernel's time in a batched-decode profile): rows [r0, r0 + rows)'s bytes of the next
/// K-block (groups from g1, kbg of them), or past the last block, the first K-block and the
/// scales of the item starting at row `next` (if next ≥ 0; `rows` of them, all in the slice: the
/// caller passes -1 otherwise).
static inline void glm5k_int4_prefetch_next_block(const glm5k_int4 *w, int64_t r0, int64_t rows, int64_t g1, int64_t kbg,
                                                  int64_t next) {
  const int64_t G = w->group, groups = w->cols / G;
  int64_t first = r0, g = g1;
  if (g1 >= groups) {
    if (next < 0) return;
    first = next;
    g = 0;
    glm5k_int4_prefetch_scales(w, next, rows);
  }
  const int64_t ge = g + kbg < groups ? g + kbg : groups;
  const char *base = (const char *)w->packed;
  const int64_t rb = w->cols / 2;
  for (int64_t i = 0; i < rows; i++) {
    const char *p = base + (first + i) * rb + g * G / 2;
    for (int64_t o = 0; o < (ge - g) * G / 2; o += 64) _mm_prefetch(p + o, _MM_HINT_T0);
  }
}

/// One-token tiles with AVX-512 (int4_decode_avx512.c), rows4's bits: 4 rows r[0..3] (repeats allowed)
/// or the 8 rows r .. r + 7; `next` (or -1): the first row of the next tile, prefetched. The
/// odd16 forms read x with the odd half of every 16 columns scaled by 1/16
/// (glm5k_int4_scale_odd16_avx512).
void glm5k_int4_rows4_avx512(const glm5k_int4 *w, const int64_t r[4], const float *xp, int64_t next, float out[4]);
void glm5k_int4_rows4_odd16_avx512(const glm5k_int4 *w, const int64_t r[4], const float *xp, int64_t next, float out[4]);
void glm5k_int4_rows8_avx512(const glm5k_int4 *w, int64_t r, const float *xp, int64_t next, float out[8]);
void glm5k_int4_rows8_odd16_avx512(const glm5k_int4 *w, int64_t r, const float *xp, int64_t next, float out[8]);
/// Symmetric weights only (zeros NULL), form 0: q by table lookup.
void glm5k_int4_rows4_table_avx512(const glm5k_int4 *w, const int64_t r[4], const float *xp, int64_t next, float out[4]);
void glm5k_int4_rows8_table_avx512(const glm5k_int4 *w, int64_t r, const float *xp, int64_t next, float out[8]);

/// 2-8 tokens with AVX-512 (int4_fewtokens_avx512.c): rows r[0..3] × token rows x[0..3] (repeats allowed), out[token · 4 + row].
/// The same for 3, 2 or 1 token rows (the last block of a call's tokens).
void glm5k_int4_rows4_tokens4_avx512(const glm5k_int4 *w, const int64_t r[4], const float *const x[4], float out[16]);
void glm5k_int4_rows4_tokens3_avx512(const glm5k_int4 *w, const int64_t r[4], const float *const x[3], float out[12]);
void glm5k_int4_rows4_tokens2_avx512(const glm5k_int4 *w, const int64_t r[4], const float *const x[2], float out[8]);
void glm5k_int4_rows4_tokens1_avx512(const glm5k_int4 *w, const int64_t r[4], const float *const x[1], float out[4]);

/// The widest indexer head the blocked kernels take (their transposed key block is on the stack);
/// wider heads run the same sequence one key at a time.
#define GLM5K_INDEX_MAX_DIM 256

/// Transposes the 8 × 8 block v[row][col] in registers: v[c][r] afterwards.
static inline void glm5k_transpose8(__m256 v[8]) {
  __m256 t[8], u[8];
  for (int i = 0; i < 4; i++) {
    t[2 * i] = _mm256_unpacklo_ps(v[2 * i], v[2 * i + 1]);
    t[2 * i + 1] = _mm256_unpackhi_ps(v[2 * i], v[2 * i + 1]);
  }
  for (int i = 0; i < 2; i++) {
    u[4 * i] = _mm256_shuffle_ps(t[4 * i], t[4 * i + 2], _MM_SHUFFLE(1, 0, 1, 0));
    u[4 * i + 1] = _mm256_shuffle_ps(t[4 * i], t[4 * i + 2], _MM_SHUFFLE(3, 2, 3, 2));
    u[4 * i + 2] = _mm256_shuffle_ps(t[4 * i + 1], t[4 * i + 3], _MM_SHUFFLE(1, 0, 1, 0));
    u[4 * i + 3] = _mm256_shuffle_ps(t[4 * i + 1], t[4 * i + 3], _MM_SHUFFLE(3, 2, 3, 2));
  }
  for (int i = 0; i < 4; i++) {
    v[i] = _mm256_permute2f128_ps(u[i], u[4 + i], 0x20);
    v[4 + i] = _mm256_permute2f128_ps(u[i], u[4 + i], 0x31);
  }
}

/// glm5k_index_scores with AVX-512 (indexer_avx512.c), 0 < heads, dim ≤ GLM5K_INDEX_MAX_DIM: the same bits.
void glm5k_index_scores_avx512(const float *q, const float *w, int64_t heads, int64_t dim, const float *keys, int64_t j0,
                               int64_t j1, float scale, float *scores);

/// Heads whose score chains the multi-query kernels keep across column chunks (one transpose of a
/// block of rows serves them all; GLM-5 has 64 heads, DeepSeek-V3.2 128).
#define GLM5K_MQ_HEAD_GROUP 128

/// kt[t][0..L) = r[0..L)[c0 + t] for t < cw, L = 8 or 16 lanes (one per row; 8 × 8 register
/// transposes): the key blocks of the multi-query and indexer scores kernels.
static inline void glm5k_transpose_rows(const float *const *r, int L, int64_t c0, int64_t cw, float *kt) {
  int64_t t = 0;
  for (; t + 8 <= cw; t += 8) {
    for (int part = 0; part < L; part += 8) {
      __m256 v[8];
      for (int u = 0; u < 8; u++) v[u] = _mm256_loadu_ps(r[part + u] + c0 + t);
      glm5k_transpose8(v);
      for (int u = 0; u < 8; u++) _mm256_storeu_ps(kt + (t + u) * L + part, v[u]);
    }
  }
  for (; t < cw; t++)
    for (int u = 0; u < L; u++) kt[t * L + u] = r[u][c0 + t];
}

/// The rows of the multi-query scores' key block [i0, i0 + L) of keys [0, n) (keys past n repeat
/// the block's last: computed, dropped) into rl/rr (latent, rope), and the next block's rows into
/// nl/nr (this block's last when there is none), for prefetching. Returns the block's real keys.
static inline int glm5k_mq_block_rows(const int32_t *keys, int64_t i0, int64_t n, int L, const float *latent, int64_t R,
                                      const float *rope, int64_t Dr, const float **rl, const float **rr, const float **nl,
                                      const float **nr) {
  const int nk = n - i0 < L ? (int)(n - i0) : L;
  for (int u = 0; u < L; u++) {
    const int64_t j = keys[i0 + (u < nk ? u : nk - 1)];
    const int64_t jn = i0 + L + u < n ? keys[i0 + L + u] : j;
    rl[u] = latent + j * R;
    rr[u] = rope + j * Dr;
    nl[u] = latent + jn * R;
    nr[u] = rope + jn * Dr;
  }
  return nk;
}

/// glm5k_mq_sum with AVX-512F (multiquery_avx512.c; check glm5k_isa() first): the same bits.
void glm5k_mq_sum_avx512(float *o, int64_t ldo, const float *p, int64_t ldp, int64_t H, const float *latent, int64_t R,
                         int64_t ldl, const int32_t *keys, int64_t n);

/// glm5k_mq_scores with AVX-512 (multiquery_avx512.c): the same bits.
void glm5k_mq_scores_avx512(float *s, int64_t lds, const float *qt, int64_t ldq, int64_t H, const float *latent, int64_t R,
                            const float *rope, int64_t Dr, const int32_t *keys, int64_t n, float scale);

/// glm5k_int4_axpy_rows with AVX-512 (int4_transposed_avx512.c; group a multiple of 16): the same bits.
void glm5k_int4_axpy_rows_avx512(const glm5k_int4 *w, int64_t r0, int64_t r1, const float *x, float *y);
/// glm5k_int4_axpy_rows with AVX2 in blocks of 64 columns (int4_transposed_avx2.c; group a multiple of 16): the same bits.
void glm5k_int4_axpy_rows_avx2(const glm5k_int4 *w, int64_t r0, int64_t r1, const float *x, float *y);

/// Scales the odd half of every 16 columns of xp [cols] by 1/16 in place and returns 1 if that is
/// exact for every value (v · 1/16 · 16 == v: no subnormal result, no NaN); else leaves xp as it
/// is and returns 0.
int32_t glm5k_int4_scale_odd16_avx512(float *xp, int64_t cols);

/// exp.c's table of 2^(i/32) bits (minus i << 47), made on first use.
const uint64_t *glm5k_exp_table(void);
/// x[0..n) = expf(x − m), m = the largest non-NaN x, with AVX-512 (exp_avx512.c): exp.c's bits.
void glm5k_max_exp_avx512(float *x, int64_t n);
/// glm5k_exp with AVX-512 (exp_avx512.c): the same bits.
void glm5k_exp_avx512(const float *x, float *y, int64_t n);

#endif
