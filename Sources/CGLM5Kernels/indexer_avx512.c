// DSA lightning-indexer scores with AVX-512 (indexer.c has the sequence and the AVX2 kernel),
// for head dims that are a multiple of 32; the same bits.
//
// Kernels.dot's four 8-lane chains a0..a3 over 32-column blocks are two 512-bit vectors per
// (head, key), [a0 | a1] and [a2 | a3], so a 32-column block is two FMAs with contiguous loads.
// Tiles of 2 keys × 4 heads (16 accumulators; each key vector loaded once for 4 heads, each
// query vector once for 2 keys). The ends, (a0 + a1) + (a2 + a3) and reduce8, run for 8
// (head, key) pairs at once: h = v_i + v_{i+4} by vperm2f128 pairs, (h0 + h2, h1 + h3) and
// their sum by vshufps, the additions in reduce8's order.

#include <immintrin.h>

#include "internal.h"

#define GLM5K_AVX512VL __attribute__((target("avx512f,avx512vl,avx512bw,avx512dq")))

/// (a0 + a1) + (a2 + a3) of one (head, key): A = [a0 | a1], B = [a2 | a3].
GLM5K_AVX512VL static inline __m256 pair_sum(__m512 A, __m512 B) {
  const __m256 s01 = _mm256_add_ps(_mm512_castps512_ps256(A), _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(A), 1)));
  const __m256 s23 = _mm256_add_ps(_mm512_castps512_ps256(B), _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(B), 1)));
  return _mm256_add_ps(s01, s23);
}

/// reduce8 of t[0..7] at once: out = [r0, r2, r4, r6 | r1, r3, r5, r7] (glm5k_reduce8's order:
/// ((v0 + v4) + (v2 + v6)) + ((v1 + v5) + (v3 + v7)) for each).
GLM5K_AVX512VL static inline __m256 reduce8x8(const __m256 t[8]) {
  __m256 h[4];
  for (int p = 0; p < 4; p++) {
    const __m256 x = _mm256_permute2f128_ps(t[2 * p], t[2 * p + 1], 0x20);  // [a0..a3 | b0..b3]
    const __m256 y = _mm256_permute2f128_ps(t[2 * p], t[2 * p + 1], 0x31);  // [a4..a7 | b4..b7]
    h[p] = _mm256_add_ps(x, y);                                             // h_i = v_i + v_{i+4}
  }
  // [h0, h1, h0', h1' | …] + [h2, h3, h2', h3' | …]: (h0 + h2), (h1 + h3) per pair.
  const __m256 e = _mm256_add_ps(_mm256_shuffle_ps(h[0], h[1], _MM_SHUFFLE(1, 0, 1, 0)), _mm256_shuffle_ps(h[0], h[1], _MM_SHUFFLE(3, 2, 3, 2)));
  const __m256 f = _mm256_add_ps(_mm256_shuffle_ps(h[2], h[3], _MM_SHUFFLE(1, 0, 1, 0)), _mm256_shuffle_ps(h[2], h[3], _MM_SHUFFLE(3, 2, 3, 2)));
  // e = [t0: s0, s1, t2: s0, s1 | t1: s0, s1, t3: s0, s1], f likewise for t4..t7; s0 + s1 each.
  return _mm256_add_ps(_mm256_shuffle_ps(e, f, _MM_SHUFFLE(2, 0, 2, 0)), _mm256_shuffle_ps(e, f, _MM_SHUFFLE(3, 1, 3, 1)));
}

/// Dots of keys k0, k1 against heads q[h · dim], h < 4 (rows past nh repeat the last one), into
/// d0[h], d1[h] for h < nh. dim a multiple of 32.
GLM5K_AVX512VL static inline void dots_2x4(const float *k0, const float *k1, const float *q, int64_t dim, int nh, float *d0,
                                           float *d1) {
  const float *qh[4];
  for (int h = 0; h < 4; h++) qh[h] = q + (h < nh ? h : nh - 1) * dim;
  __m512 A[2][4], B[2][4];
  for (int h = 0; h < 4; h++) A[0][h] = A[1][h] = B[0][h] = B[1][h] = _mm512_setzero_ps();
  for (int64_t i = 0; i < dim; i += 32) {
    const __m512 ka0 = _mm512_loadu_ps(k0 + i), kb0 = _mm512_loadu_ps(k0 + i + 16);
    const __m512 ka1 = _mm512_loadu_ps(k1 + i), kb1 = _mm512_loadu_ps(k1 + i + 16);
    for (int h = 0; h < 4; h++) {
      const __m512 qa = _mm512_loadu_ps(qh[h] + i), qb = _mm512_loadu_ps(qh[h] + i + 16);
      A[0][h] = _mm512_fmadd_ps(qa, ka0, A[0][h]); B[0][h] = _mm512_fmadd_ps(qb, kb0, B[0][h]);
      A[1][h] = _mm512_fmadd_ps(qa, ka1, A[1][h]); B[1][h] = _mm512_fmadd_ps(qb, kb1, B[1][h]);
    }
  }
  __m256 t[8];
  for (int h = 0; h < 4; h++) {
    t[2 * h] = pair_sum(A[0][h], B[0][h]);      // key 0, head h
    t[2 * h + 1] = pair_sum(A[1][h], B[1][h]);  // key 1, head h
  }
  // r = [t0, t2, t4, t6 | t1, t3, t5, t7] = [key 0: heads 0-3 | key 1: heads 0-3].
  float r[8];
  _mm256_storeu_ps(r, reduce8x8(t));
  for (int h = 0; h < nh; h++) {
    d0[h] = r[h];
    d1[h] = r[4 + h];
  }
}

GLM5K_AVX512VL void glm5k_index_scores_avx512(const float *q, const float *w, int64_t heads, int64_t dim, const float *keys,
                                              int64_t j0, int64_t j1, float scale, float *scores) {
  enum { KB = GLM5K_INDEX_KEYS };
  float d[KB][heads > 0 ? heads + 4 : 4];
  for (int64_t b0 = j0; b0 < j1; b0 += KB) {
    const int nk = j1 - b0 < KB ? (int)(j1 - b0) : KB;
    for (int u = 0; u < nk; u += 2) {
      const float *k0 = keys + (b0 + u) * dim, *k1 = keys + (b0 + (u + 1 < nk ? u + 1 : u)) * dim;
      if (b0 + KB + u + 1 < j1) {
        // The same two keys of the next block (the hardware prefetchers alone left this at a
        // fifth of the kernel's in-cache speed on a key cache in DRAM).
        const char *n0 = (const char *)(keys + (b0 + KB + u) * dim);
        for (int64_t o = 0; o < 2 * dim * 4; o += 64) _mm_prefetch(n0 + o, _MM_HINT_T0);
      }
      for (int64_t h = 0; h < heads; h += 4) {
        const int nh = heads - h < 4 ? (int)(heads - h) : 4;
        float *d1 = u + 1 < nk ? &d[u + 1][h] : &d[u][h];  // a lone last key: computed twice, the same
        dots_2x4(k0, k1, q + h * dim, dim, nh, &d[u][h], d1);
      }
    }
    glm5k_index_fold(&d[0][0], heads + 4, heads, w, scale, nk, scores + b0);
  }
}
