// Multi-query attention scores over the latent cache (GLM5Kernels/CPU/MultiQuery.swift), AVX2 + FMA:
//   s[h, i] = v · scale, v = one fma chain over the R latent columns, then over the Dr rope
//             columns, in column order: v = fma(q̃_h[c], c_{j_i}[c], v), then fma(q^rope_h[t], k^rope_{j_i}[t], v)
// The shape of a matrix product Q [H, R + Dr] · Kᵀ with every (head, key) one chain: one SIMD lane
// per key, no horizontal sums. A block of 16 selected rows is transposed, 64 columns at a time,
// into kt[64][16] (8 × 8 register transposes); the queries come packed column-major
// (qt[c · ldq + h], glm5k_mq_pack), so a tile of heads broadcasts its values from one pointer.
// Tiles of 6 heads × 16 keys: per column 2 key vectors, 6 broadcasts, 12 FMAs into 12 registers.
// The chains of up to GLM5K_MQ_HEAD_GROUP heads live in acc[·][16] across the column chunks, so
// one transpose of a block serves them all. multiquery_avx512.c runs 16 heads × 16 keys per tile,
// the same bits.

#include <immintrin.h>
#include <string.h>

#include "internal.h"

void glm5k_mq_pack(float *qt, int64_t ldq, const float *qn, int64_t ldqn, const float *qr, int64_t ldqr, int64_t H, int64_t R,
                   int64_t Dr) {
  for (int64_t h = 0; h < H; h++) {
    for (int64_t c = 0; c < R; c++) qt[c * ldq + h] = qn[h * ldqn + c];
    for (int64_t c = 0; c < Dr; c++) qt[(R + c) * ldq + h] = qr[h * ldqr + c];
  }
}

/// NH heads' chains for 16 keys over cw columns: acc[u][0..16) += Σ_t q[t · ldq + u] · kt[t][·].
#define GLM5K_MQ_TILE_AVX2(NH)                                                                      \
  static inline void tile##NH(const float *kt, int64_t cw, const float *q, int64_t ldq, float *acc,  \
                              const char *const *pf, int64_t npf) {                                \
    __m256 a0[NH], a1[NH];                                                                          \
    for (int u = 0; u < NH; u++) {                                                                  \
      a0[u] = _mm256_load_ps(acc + u * 16);                                                         \
      a1[u] = _mm256_load_ps(acc + u * 16 + 8);                                                     \
    }                                                                                               \
    for (int64_t t = 0; t < cw; t++, q += ldq) {                                                    \
      if (t < npf) _mm_prefetch(pf[t], _MM_HINT_T0);                                                \
      const __m256 k0 = _mm256_load_ps(kt + t * 16), k1 = _mm256_load_ps(kt + t * 16 + 8);          \
      for (int u = 0; u < NH; u++) {                                                                \
        const __m256 b = _mm256_broadcast_ss(q + u);                                                \
        a0[u] = _mm256_fmadd_ps(b, k0, a0[u]);                                                      \
        a1[u] = _mm256_fmadd_ps(b, k1, a1[u]);                                                      \
      }                                                                                             \
    }                                                                                               \
    for (int u = 0; u < NH; u++) {                                                                  \
      _mm256_store_ps(acc + u * 16, a0[u]);                                                         \
      _mm256_store_ps(acc + u * 16 + 8, a1[u]);                                                     \
    }                                                                                               \
  }
GLM5K_MQ_TILE_AVX2(6)
GLM5K_MQ_TILE_AVX2(4)
GLM5K_MQ_TILE_AVX2(2)
GLM5K_MQ_TILE_AVX2(1)

void glm5k_mq_scores(float *s, int64_t lds, const float *qt, int64_t ldq, int64_t H, const float *latent, int64_t R,
                     const float *rope, int64_t Dr, const int32_t *keys, int64_t n, float scale) {
  if (H <= 0 || n <= 0) return;
  if (glm5k_isa() == GLM5K_ISA_AVX512) {
    glm5k_mq_scores_avx512(s, lds, qt, ldq, H, latent, R, rope, Dr, keys, n, scale);
    return;
  }
  enum { L = 16, CW = 64, G = GLM5K_MQ_HEAD_GROUP };
  float kt[CW * L] __attribute__((aligned(32)));
  float acc[G * L] __attribute__((aligned(32)));  // the group's chains across column chunks
  for (int64_t g0 = 0; g0 < H; g0 += G) {
    const int64_t gn = H - g0 < G ? H - g0 : G;
    for (int64_t i0 = 0; i0 < n; i0 += L) {
      const float *rl[L], *rr[L], *nl[L], *nr[L];
      const int nk = glm5k_mq_block_rows(keys, i0, n, L, latent, R, rope, Dr, rl, rr, nl, nr);
      memset(acc, 0, sizeof(float) * (size_t)(gn * L));
      for (int part = 0; part < 2; part++) {
        const int64_t W = part == 0 ? R : Dr;
        for (int64_t c0 = 0; c0 < W; c0 += CW) {
          const int64_t cw = W - c0 < CW ? W - c0 : CW;
          glm5k_transpose_rows(part == 0 ? rl : rr, L, c0, cw, kt);
          // The next block's lines of these columns, prefetched one per column step of the
          // first tile (a burst of them measured slower from DRAM: the misses queue up).
          const char *pf[L * (CW / 16)];
          int64_t npf = 0;
          if (i0 + L < n)
            for (int u = 0; u < L; u++)
              for (int64_t t = 0; t < cw; t += 16) pf[npf++] = (const char *)((part == 0 ? nl[u] : nr[u]) + c0 + t);
          const float *q = qt + (part == 0 ? c0 : R + c0) * ldq + g0;
          int64_t u0 = 0;
          for (; u0 + 6 <= gn; u0 += 6, npf = 0) tile6(kt, cw, q + u0, ldq, acc + u0 * L, pf, npf);
          for (; u0 + 4 <= gn; u0 += 4, npf = 0) tile4(kt, cw, q + u0, ldq, acc + u0 * L, pf, npf);
          for (; u0 + 2 <= gn; u0 += 2, npf = 0) tile2(kt, cw, q + u0, ldq, acc + u0 * L, pf, npf);
          for (; u0 < gn; u0++, npf = 0) tile1(kt, cw, q + u0, ldq, acc + u0 * L, pf, npf);
          for (int64_t k = cw; k < npf; k++) _mm_prefetch(pf[k], _MM_HINT_T0);  // lines past the tile's column steps
        }
      }
      for (int64_t u = 0; u < gn; u++)
        for (int k = 0; k < nk; k++) s[(g0 + u) * lds + i0 + k] = acc[u * L + k] * scale;
    }
  }
}

/// NH heads × 16 columns of the weighted sum over keys [b0, b1): o[u][c..c+16) = fma(p[u][i], row_i, ·)
/// in key order, the chains carried in o across key blocks.
#define GLM5K_MQ_SUM_TILE_AVX2(NH)                                                                   \
  static inline void sum_tile##NH(float *o, int64_t ldo, const float *p, int64_t ldp, const float *latent, int64_t ldl,   \
                                  const int32_t *keys, int64_t b0, int64_t b1, int64_t c, int prefetch, int64_t n) {       \
    __m256 y0[NH], y1[NH];                                                                          \
    for (int u = 0; u < NH; u++) {                                                                  \
      y0[u] = _mm256_loadu_ps(o + u * ldo + c);                                                     \
      y1[u] = _mm256_loadu_ps(o + u * ldo + c + 8);                                                 \
    }                                                                                               \
    for (int64_t i = b0; i < b1; i++) {                                                             \
      const float *row = latent + (int64_t)keys[i] * ldl + c;                                       \
      if (prefetch && i + 32 < n) _mm_prefetch((const char *)(latent + (int64_t)keys[i + 32] * ldl + c), _MM_HINT_T0); \
      const __m256 v0 = _mm256_loadu_ps(row), v1 = _mm256_loadu_ps(row + 8);                        \
      for (int u = 0; u < NH; u++) {                                                                \
        const __m256 w = _mm256_broadcast_ss(p + u * ldp + i);                                      \
        y0[u] = _mm256_fmadd_ps(w, v0, y0[u]);                                                      \
        y1[u] = _mm256_fmadd_ps(w, v1, y1[u]);                                                      \
      }                                                                                             \
    }                                                                                               \
    for (int u = 0; u < NH; u++) {                                                                  \
      _mm256_storeu_ps(o + u * ldo + c, y0[u]);                                                     \
      _mm256_storeu_ps(o + u * ldo + c + 8, y1[u]);                                                 \
    }                                                                                               \
  }
GLM5K_MQ_SUM_TILE_AVX2(4)
GLM5K_MQ_SUM_TILE_AVX2(2)
GLM5K_MQ_SUM_TILE_AVX2(1)

// Tiles of 4 heads × 16 columns (8 chains; each row vector loaded once for 4 heads): 6 heads
// measured 1.3-1.4x slower here (the 6 probability pointers and 12 chains spill).
void glm5k_mq_sum(float *o, int64_t ldo, const float *p, int64_t ldp, int64_t H, const float *latent, int64_t R, int64_t ldl,
                  const int32_t *keys, int64_t n) {
  if (H <= 0) return;
  if (glm5k_isa() == GLM5K_ISA_AVX512) {
    glm5k_mq_sum_avx512(o, ldo, p, ldp, H, latent, R, ldl, keys, n);
    return;
  }
  enum { KEY_BLOCK = 32 };
  for (int64_t h = 0; h < H; h++) memset(o + h * ldo, 0, sizeof(float) * (size_t)R);
  const int64_t r16 = R & ~15;
  // Key blocks outermost: a block's rows come from memory once per call, then from L1/L2 for
  // every head tile and column strip.
  for (int64_t b0 = 0; b0 < n; b0 += KEY_BLOCK) {
    const int64_t b1 = b0 + KEY_BLOCK < n ? b0 + KEY_BLOCK : n;
    int64_t h0 = 0;
#define GLM5K_SUM_TILES(NH)                                                                            \
    for (; h0 + NH <= H; h0 += NH)                                                                     \
      for (int64_t c = 0; c < r16; c += 16)                                                            \
        sum_tile##NH(o + h0 * ldo, ldo, p + h0 * ldp, ldp, latent, ldl, keys, b0, b1, c, h0 == 0, n);
    GLM5K_SUM_TILES(4)
    GLM5K_SUM_TILES(2)
    GLM5K_SUM_TILES(1)
#undef GLM5K_SUM_TILES
    // Columns past the last 16: the same chains, one at a time.
    for (int64_t c = r16; c < R; c++)
      for (int64_t h = 0; h < H; h++) {
        float y = o[h * ldo + c];
        for (int64_t i = b0; i < b1; i++) y = __builtin_fmaf(p[h * ldp + i], latent[(int64_t)keys[i] * ldl + c], y);
        o[h * ldo + c] = y;
      }
  }
}
