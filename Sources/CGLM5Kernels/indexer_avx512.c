// DSA lightning-indexer scores with AVX-512 (indexer.c has the sequence and the AVX2 kernel); the
// same bits. A block of 16 keys is transposed once into kt[dim][16] (two 8 × 8 register
// transposes per 8 columns), then 16 heads at a time run their 16 keys' fma chains side by side,
// each fma taking its query value by an embedded broadcast; the fold over the heads runs on the
// same 16 lanes. The next block's key rows are prefetched while this one is scored.

#include <immintrin.h>

#include "internal.h"

#define GLM5K_AVX512VL __attribute__((target("avx512f,avx512vl,avx512bw,avx512dq")))

GLM5K_AVX512VL void glm5k_index_scores_avx512(const float *q, const float *w, int64_t heads, int64_t dim, const float *keys,
                                              int64_t j0, int64_t j1, float scale, float *scores) {
  float kt[GLM5K_INDEX_MAX_DIM * 16] __attribute__((aligned(64)));
  const __m512 vscale = _mm512_set1_ps(scale), zero = _mm512_setzero_ps();
  for (int64_t b0 = j0; b0 < j1; b0 += 16) {
    const int nk = j1 - b0 < 16 ? (int)(j1 - b0) : 16;
    const float *r[16];
    for (int u = 0; u < 16; u++) r[u] = keys + (b0 + (u < nk ? u : nk - 1)) * dim;  // past nk: the last, dropped
    glm5k_transpose_rows(r, 16, 0, dim, kt);
    if (b0 + 16 < j1) {
      // The next block's rows (the hardware prefetchers alone left the scoring of a key cache in
      // DRAM at a fifth of its in-cache speed).
      const int64_t nn = j1 - b0 - 16 < 16 ? j1 - b0 - 16 : 16;
      const char *n0 = (const char *)(keys + (b0 + 16) * dim);
      for (int64_t o = 0; o < nn * dim * 4; o += 64) _mm_prefetch(n0 + o, _MM_HINT_T0);
    }
    __m512 s = zero;
    for (int64_t h0 = 0; h0 < heads; h0 += 16) {
      const int nh = heads - h0 < 16 ? (int)(heads - h0) : 16;
      const float *qh[16];
      for (int u = 0; u < 16; u++) qh[u] = q + (h0 + (u < nh ? u : nh - 1)) * dim;
      __m512 a[16];
      for (int u = 0; u < 16; u++) a[u] = zero;
      for (int64_t t = 0; t < dim; t++) {
        const __m512 k = _mm512_load_ps(kt + t * 16);
        for (int u = 0; u < 16; u++) a[u] = _mm512_fmadd_ps(_mm512_set1_ps(qh[u][t]), k, a[u]);
      }
      for (int u = 0; u < nh; u++) {
        const __m512 v = _mm512_mul_ps(a[u], vscale);
        const __m512 f = _mm512_fmadd_ps(_mm512_set1_ps(w[h0 + u]), v, s);
        s = _mm512_mask_mov_ps(s, _mm512_cmp_ps_mask(v, zero, _CMP_GT_OQ), f);
      }
    }
    float out[16];
    _mm512_storeu_ps(out, s);
    for (int u = 0; u < nk; u++) scores[b0 + u] = out[u];
  }
}
