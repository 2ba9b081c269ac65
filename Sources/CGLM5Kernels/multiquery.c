// Multi-query attention scores over the latent cache (GLM5Kernels/CPU/MultiQuery.swift), AVX2 + FMA:
//   s[h, i] = v · scale, v = one fma chain over the R latent columns, then over the Dr rope
//             columns, in column order: v = fma(q̃_h[c], c_{j_i}[c], v), then fma(q^rope_h[t], k^rope_{j_i}[t], v)
// One SIMD lane per key: a block of 8 selected rows is transposed, 64 columns at a time, into
// kt[64][8] (8 × 8 register transposes), and then every head runs the block's 8 chains side by
// side: one key-vector load and one broadcast per fma, no horizontal sums. The chains of up to
// GLM5K_MQ_HEAD_GROUP heads live in acc[·][8] across the column chunks, so one transpose of a
// block serves them all. multiquery_avx512.c runs 16 keys per block, the same bits.

#include <immintrin.h>
#include <string.h>

#include "internal.h"

void glm5k_mq_scores(float *s, int64_t lds, const float *qn, int64_t ldqn, const float *qr, int64_t ldqr, int64_t H,
                     const float *latent, int64_t R, const float *rope, int64_t Dr, const int32_t *keys, int64_t n, float scale) {
  if (H <= 0 || n <= 0) return;
  if (glm5k_isa() == GLM5K_ISA_AVX512) {
    glm5k_mq_scores_avx512(s, lds, qn, ldqn, qr, ldqr, H, latent, R, rope, Dr, keys, n, scale);
    return;
  }
  enum { L = 8, CW = 64, G = GLM5K_MQ_HEAD_GROUP };
  float kt[CW * L] __attribute__((aligned(32)));
  float acc[G * L] __attribute__((aligned(32)));  // the group's chains across column chunks
  for (int64_t g0 = 0; g0 < H; g0 += G) {
    const int64_t gn = H - g0 < G ? H - g0 : G;
    for (int64_t i0 = 0; i0 < n; i0 += L) {
      const int nk = n - i0 < L ? (int)(n - i0) : L;
      const float *rl[L], *rr[L];
      for (int u = 0; u < L; u++) {
        const int64_t j = keys[i0 + (u < nk ? u : nk - 1)];
        rl[u] = latent + j * R;
        rr[u] = rope + j * Dr;
      }
      memset(acc, 0, sizeof(float) * (size_t)(((gn + 7) & ~7) * L));
      for (int part = 0; part < 2; part++) {
        const int64_t W = part == 0 ? R : Dr, ldq = part == 0 ? ldqn : ldqr;
        const float *qbase = (part == 0 ? qn : qr) + g0 * ldq;
        for (int64_t c0 = 0; c0 < W; c0 += CW) {
          const int64_t cw = W - c0 < CW ? W - c0 : CW;
          glm5k_transpose_rows(part == 0 ? rl : rr, L, c0, cw, kt);
          // Tiles of 8 heads (the last tile's heads past gn repeat its last: computed, dropped).
          for (int64_t u0 = 0; u0 < gn; u0 += 8) {
            const float *q[8];
            for (int u = 0; u < 8; u++) q[u] = qbase + (u0 + u < gn ? u0 + u : gn - 1) * ldq + c0;
            __m256 a[8];
            for (int u = 0; u < 8; u++) a[u] = _mm256_load_ps(acc + (u0 + u) * L);
            for (int64_t t = 0; t < cw; t++) {
              const __m256 k = _mm256_load_ps(kt + t * L);
              for (int u = 0; u < 8; u++) a[u] = _mm256_fmadd_ps(_mm256_broadcast_ss(q[u] + t), k, a[u]);
            }
            for (int u = 0; u < 8; u++) _mm256_store_ps(acc + (u0 + u) * L, a[u]);
          }
        }
      }
      for (int64_t u = 0; u < gn; u++)
        for (int k = 0; k < nk; k++) s[(g0 + u) * lds + i0 + k] = acc[u * L + k] * scale;
    }
  }
}
