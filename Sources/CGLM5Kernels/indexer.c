// DSA lightning-indexer scores (GLM5Model/Attention/DSAIndexer.swift), AVX2 + FMA:
//   d(h, j)  = q_h · k_j as one fma chain in column order: v = 0; v = fma(q_h[t], k_j[t], v), t < dim
//   score(j) = Σ_h in head order: v = d(h, j) · scale; if v > 0: s = fma(w_h, v, s)
// (Reference.indexScores writes it plainly.) One SIMD lane per key: a block of 8 keys is
// transposed once into kt[dim][8] (8 × 8 register transposes), then every head runs its 8 keys'
// chains side by side, one key-vector load and one broadcast per fma, with no horizontal sums,
// and the fold over the heads runs on the same lanes without branches (a score's sign is a coin
// flip: `s = v > 0 ? fma(w, v, s) : s` gives the bits of the branch, also for NaN v and for a
// non-finite w when v ≤ 0). Head dim 128 takes 16 keys × 6 heads per tile (scores128 below).
// indexer_avx512.c runs 16 keys per block, the same bits.

#include <immintrin.h>

#include "internal.h"

// Head dim 128 (GLM-5's and DeepSeek-V3.2's indexers), AVX2: blocks of 16 keys (kt[128][16], two
// vectors per column), tiles of NH ≤ 6 heads × 16 keys (12 chains), each head's query value an
// immediate offset from one pointer (the dim is a constant); the fold over the tile's heads in
// head order on the same lanes. The general kernel below runs 8 heads × 8 keys.
static inline __attribute__((always_inline)) void tile128(const float *kt, const float *q, const float *w, int NH, __m256 vscale,
                                                          __m256 *s0, __m256 *s1) {
  const __m256 zero = _mm256_setzero_ps();
  __m256 a0[6], a1[6];
  for (int u = 0; u < NH; u++) a0[u] = a1[u] = zero;
  for (int64_t t = 0; t < 128; t++) {
    const __m256 k0 = _mm256_load_ps(kt + t * 16), k1 = _mm256_load_ps(kt + t * 16 + 8);
    for (int u = 0; u < NH; u++) {
      const __m256 b = _mm256_broadcast_ss(q + u * 128 + t);
      a0[u] = _mm256_fmadd_ps(b, k0, a0[u]);
      a1[u] = _mm256_fmadd_ps(b, k1, a1[u]);
    }
  }
  for (int u = 0; u < NH; u++) {
    const __m256 wv = _mm256_set1_ps(w[u]);
    const __m256 v0 = _mm256_mul_ps(a0[u], vscale), v1 = _mm256_mul_ps(a1[u], vscale);
    *s0 = _mm256_blendv_ps(*s0, _mm256_fmadd_ps(wv, v0, *s0), _mm256_cmp_ps(v0, zero, _CMP_GT_OQ));
    *s1 = _mm256_blendv_ps(*s1, _mm256_fmadd_ps(wv, v1, *s1), _mm256_cmp_ps(v1, zero, _CMP_GT_OQ));
  }
}

static void scores128(const float *q, const float *w, int64_t heads, const float *keys, int64_t j0, int64_t j1, float scale,
                      float *scores) {
  float kt[128 * 16] __attribute__((aligned(32)));
  const __m256 vscale = _mm256_set1_ps(scale);
  for (int64_t b0 = j0; b0 < j1; b0 += 16) {
    const int nk = j1 - b0 < 16 ? (int)(j1 - b0) : 16;
    const float *r[16];
    for (int u = 0; u < 16; u++) r[u] = keys + (b0 + (u < nk ? u : nk - 1)) * 128;  // past nk: the last, dropped
    glm5k_transpose_rows(r, 16, 0, 128, kt);
    __m256 s0 = _mm256_setzero_ps(), s1 = s0;
    int64_t h0 = 0;
    for (; h0 + 6 <= heads; h0 += 6) tile128(kt, q + h0 * 128, w + h0, 6, vscale, &s0, &s1);
    for (; h0 + 2 <= heads; h0 += 2) tile128(kt, q + h0 * 128, w + h0, 2, vscale, &s0, &s1);
    for (; h0 < heads; h0++) tile128(kt, q + h0 * 128, w + h0, 1, vscale, &s0, &s1);
    float out[16];
    _mm256_storeu_ps(out, s0);
    _mm256_storeu_ps(out + 8, s1);
    for (int u = 0; u < nk; u++) scores[b0 + u] = out[u];
  }
}

void glm5k_index_scores(const float *q, const float *w, int64_t heads, int64_t dim, const float *keys, int64_t j0,
                        int64_t j1, float scale, float *scores) {
  if (heads <= 0 || j1 <= j0) {
    for (int64_t j = j0; j < j1; j++) scores[j] = 0;
    return;
  }
  if (glm5k_isa() == GLM5K_ISA_AVX512 && dim <= GLM5K_INDEX_MAX_DIM) {
    glm5k_index_scores_avx512(q, w, heads, dim, keys, j0, j1, scale, scores);
    return;
  }
  if (dim > GLM5K_INDEX_MAX_DIM) {
    // No indexer has such heads (GLM-5 and DeepSeek-V3.2: 128); the sequence, one key at a time.
    for (int64_t j = j0; j < j1; j++) {
      float s = 0;
      for (int64_t h = 0; h < heads; h++) {
        float d = 0;
        for (int64_t t = 0; t < dim; t++) d = __builtin_fmaf(q[h * dim + t], keys[j * dim + t], d);
        const float v = d * scale;
        if (v > 0) s = __builtin_fmaf(w[h], v, s);
      }
      scores[j] = s;
    }
    return;
  }
  if (dim == 128) {
    scores128(q, w, heads, keys, j0, j1, scale, scores);
    return;
  }
  float kt[GLM5K_INDEX_MAX_DIM * 8] __attribute__((aligned(32)));
  const __m256 vscale = _mm256_set1_ps(scale), zero = _mm256_setzero_ps();
  for (int64_t b0 = j0; b0 < j1; b0 += 8) {
    const int nk = j1 - b0 < 8 ? (int)(j1 - b0) : 8;
    const float *r[8];
    for (int u = 0; u < 8; u++) r[u] = keys + (b0 + (u < nk ? u : nk - 1)) * dim;  // past nk: the last, dropped
    glm5k_transpose_rows(r, 8, 0, dim, kt);
    __m256 s = zero;
    for (int64_t h0 = 0; h0 < heads; h0 += 8) {
      const int nh = heads - h0 < 8 ? (int)(heads - h0) : 8;
      const float *qh[8];
      for (int u = 0; u < 8; u++) qh[u] = q + (h0 + (u < nh ? u : nh - 1)) * dim;
      __m256 a[8];
      for (int u = 0; u < 8; u++) a[u] = zero;
      for (int64_t t = 0; t < dim; t++) {
        const __m256 k = _mm256_load_ps(kt + t * 8);
        for (int u = 0; u < 8; u++) a[u] = _mm256_fmadd_ps(_mm256_broadcast_ss(qh[u] + t), k, a[u]);
      }
      for (int u = 0; u < nh; u++) {
        const __m256 v = _mm256_mul_ps(a[u], vscale);
        const __m256 f = _mm256_fmadd_ps(_mm256_set1_ps(w[h0 + u]), v, s);
        s = _mm256_blendv_ps(s, f, _mm256_cmp_ps(v, zero, _CMP_GT_OQ));
      }
    }
    float out[8];
    _mm256_storeu_ps(out, s);
    for (int u = 0; u < nk; u++) scores[b0 + u] = out[u];
  }
}
