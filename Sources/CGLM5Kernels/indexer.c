// DSA lightning-indexer scores (GLM5Model/Attention/DSAIndexer.swift), AVX2 + FMA:
//   score(j) = Σ_h in order: d = dot(q_h, k_j) · scale; if d > 0: s = fma(w_h, d, s)
// with dot exactly Kernels.dot's sequence (GLM5Kernels/CPU/Vector.swift): four 8-lane FMA chains
// a0..a3 over 32-column blocks, the leftover 8-column steps into a0, a1, a2, then
// reduce8((a0 + a1) + (a2 + a3)) and a scalar fma tail. Tiles of 1 key × 3 heads: each key row is
// loaded once per 3 heads (once per 32 · 4 bytes from memory in all), the queries stay in L1;
// the fold over the heads runs 8 keys at a time (below).

#include <immintrin.h>

#include "internal.h"

/// The dot products of key k against heads q[h · ldq], h < nh (1 ≤ nh ≤ 3), into d[0..nh).
static inline void dots3(const float *k, const float *q, int64_t ldq, int nh, int64_t n, float *d) {
  const float *q0 = q, *q1 = q + (nh > 1 ? ldq : 0), *q2 = q + (nh > 2 ? 2 * ldq : 0);
  __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
  __m256 b0 = a0, b1 = a0, b2 = a0, b3 = a0;
  __m256 c0 = a0, c1 = a0, c2 = a0, c3 = a0;
  int64_t i = 0;
  for (; i + 32 <= n; i += 32) {
    const __m256 k0 = _mm256_loadu_ps(k + i), k1 = _mm256_loadu_ps(k + i + 8);
    const __m256 k2 = _mm256_loadu_ps(k + i + 16), k3 = _mm256_loadu_ps(k + i + 24);
    a0 = _mm256_fmadd_ps(_mm256_loadu_ps(q0 + i), k0, a0); a1 = _mm256_fmadd_ps(_mm256_loadu_ps(q0 + i + 8), k1, a1);
    a2 = _mm256_fmadd_ps(_mm256_loadu_ps(q0 + i + 16), k2, a2); a3 = _mm256_fmadd_ps(_mm256_loadu_ps(q0 + i + 24), k3, a3);
    b0 = _mm256_fmadd_ps(_mm256_loadu_ps(q1 + i), k0, b0); b1 = _mm256_fmadd_ps(_mm256_loadu_ps(q1 + i + 8), k1, b1);
    b2 = _mm256_fmadd_ps(_mm256_loadu_ps(q1 + i + 16), k2, b2); b3 = _mm256_fmadd_ps(_mm256_loadu_ps(q1 + i + 24), k3, b3);
    c0 = _mm256_fmadd_ps(_mm256_loadu_ps(q2 + i), k0, c0); c1 = _mm256_fmadd_ps(_mm256_loadu_ps(q2 + i + 8), k1, c1);
    c2 = _mm256_fmadd_ps(_mm256_loadu_ps(q2 + i + 16), k2, c2); c3 = _mm256_fmadd_ps(_mm256_loadu_ps(q2 + i + 24), k3, c3);
  }
  // Leftover 8-column steps into chains 0, 1, 2 (as Kernels.dot).
  if (i + 8 <= n) {
    const __m256 kv = _mm256_loadu_ps(k + i);
    a0 = _mm256_fmadd_ps(_mm256_loadu_ps(q0 + i), kv, a0); b0 = _mm256_fmadd_ps(_mm256_loadu_ps(q1 + i), kv, b0);
    c0 = _mm256_fmadd_ps(_mm256_loadu_ps(q2 + i), kv, c0);
    i += 8;
  }
  if (i + 8 <= n) {
    const __m256 kv = _mm256_loadu_ps(k + i);
    a1 = _mm256_fmadd_ps(_mm256_loadu_ps(q0 + i), kv, a1); b1 = _mm256_fmadd_ps(_mm256_loadu_ps(q1 + i), kv, b1);
    c1 = _mm256_fmadd_ps(_mm256_loadu_ps(q2 + i), kv, c1);
    i += 8;
  }
  if (i + 8 <= n) {
    const __m256 kv = _mm256_loadu_ps(k + i);
    a2 = _mm256_fmadd_ps(_mm256_loadu_ps(q0 + i), kv, a2); b2 = _mm256_fmadd_ps(_mm256_loadu_ps(q1 + i), kv, b2);
    c2 = _mm256_fmadd_ps(_mm256_loadu_ps(q2 + i), kv, c2);
    i += 8;
  }
  float s[3] = {
    glm5k_reduce8(_mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3))),
    glm5k_reduce8(_mm256_add_ps(_mm256_add_ps(b0, b1), _mm256_add_ps(b2, b3))),
    glm5k_reduce8(_mm256_add_ps(_mm256_add_ps(c0, c1), _mm256_add_ps(c2, c3))),
  };
  const float *qs[3] = {q0, q1, q2};
  for (int h = 0; h < nh; h++) {
    float v = s[h];
    for (int64_t t = i; t < n; t++) v = __builtin_fmaf(qs[h][t], k[t], v);
    d[h] = v;
  }
}

void glm5k_index_scores(const float *q, const float *w, int64_t heads, int64_t dim, const float *keys, int64_t j0,
                        int64_t j1, float scale, float *scores) {
  if (glm5k_isa() == GLM5K_ISA_AVX512 && dim % 32 == 0 && dim > 0) {
    glm5k_index_scores_avx512(q, w, heads, dim, keys, j0, j1, scale, scores);
    return;
  }
  // Per block of 8 keys: every dot product first, then the 8 keys' folds over the heads side by
  // side (one SIMD lane per key) and without branches: a score's sign is a coin flip, so
  // `if (v > 0)` mispredicted about every other head, and a single key's fold is a serial fma
  // chain. `s = v > 0 ? fma(w, v, s) : s` gives the bits of the branch (also for NaN v, and for
  // a non-finite w when v ≤ 0). Measured 2.4x faster at 8192 keys (one thread, from memory).
  enum { KB = GLM5K_INDEX_KEYS };
  float d[KB][heads > 0 ? heads + 2 : 3];
  for (int64_t b0 = j0; b0 < j1; b0 += KB) {
    const int nk = j1 - b0 < KB ? (int)(j1 - b0) : KB;
    for (int u = 0; u < nk; u++) {
      const float *k = keys + (b0 + u) * dim;
      for (int64_t h = 0; h < heads; h += 3) {
        const int nh = heads - h < 3 ? (int)(heads - h) : 3;
        dots3(k, q + h * dim, dim, nh, dim, &d[u][h]);
      }
    }
    glm5k_index_fold(&d[0][0], heads + 2, heads, w, scale, nk, scores + b0);
  }
}
