// Multi-query attention over the latent cache (GLM5Kernels/CPU/MultiQuery.swift has the
// sequences; multiquery.c the AVX2 scores), AVX-512F, selected at run time; the same bits.
//   scores: one lane per key, as multiquery.c, with 16 keys per block: a block's selected rows
//           are transposed 64 columns at a time into kt[64][16] (two 8 × 8 register transposes
//           per 8 columns), then tiles of 16 heads run their chains in 16 registers, each fma
//           taking its query value from the packed queries (one pointer) by an embedded
//           broadcast. The next block's rows are prefetched, one line per column step of a
//           chunk's first tile.
//   sum:    o[h, c] = fma(p[h, i], row_i[c], o[h, c]) in key order, 16 columns per vector; tiles
//           of 4 heads × 64 columns, each row vector loaded once for 4 heads, key blocks of 32
//           outermost, so a block's rows come from memory once per call.

#include <immintrin.h>
#include <string.h>

#include "internal.h"

#define GLM5K_AVX512 __attribute__((target("avx512f")))
#define GLM5K_AVX512VL __attribute__((target("avx512f,avx512vl,avx512bw,avx512dq")))

enum { KEY_BLOCK = 32 };

/// NH heads' chains for 16 keys over cw columns: acc[u][·] += Σ_t q[t · ldq + u] · kt[t][·], each
/// query value taken by the FMA's embedded broadcast.
#define GLM5K_MQ_TILE_AVX512(NH)                                                                    \
  GLM5K_AVX512VL static inline void tile##NH(const float *kt, int64_t cw, const float *q, int64_t ldq, float *acc,    \
                                             const char *const *pf, int64_t npf) {                 \
    __m512 a[NH];                                                                                   \
    for (int u = 0; u < NH; u++) a[u] = _mm512_load_ps(acc + u * 16);                               \
    for (int64_t t = 0; t < cw; t++, q += ldq) {                                                    \
      if (t < npf) _mm_prefetch(pf[t], _MM_HINT_T0);                                                \
      const __m512 k = _mm512_load_ps(kt + t * 16);                                                 \
      for (int u = 0; u < NH; u++) a[u] = _mm512_fmadd_ps(_mm512_set1_ps(q[u]), k, a[u]);           \
    }                                                                                               \
    for (int u = 0; u < NH; u++) _mm512_store_ps(acc + u * 16, a[u]);                               \
  }
GLM5K_MQ_TILE_AVX512(16)
GLM5K_MQ_TILE_AVX512(8)
GLM5K_MQ_TILE_AVX512(4)
GLM5K_MQ_TILE_AVX512(2)
GLM5K_MQ_TILE_AVX512(1)

GLM5K_AVX512VL void glm5k_mq_scores_avx512(float *s, int64_t lds, const float *qt, int64_t ldq, int64_t H, const float *latent,
                                           int64_t R, const float *rope, int64_t Dr, const int32_t *keys, int64_t n, float scale) {
  if (H <= 0 || n <= 0) return;
  enum { L = 16, CW = 64, G = GLM5K_MQ_HEAD_GROUP };
  float kt[CW * L] __attribute__((aligned(64)));
  float acc[G * L] __attribute__((aligned(64)));  // the group's chains across column chunks
  const __m512 vscale = _mm512_set1_ps(scale);
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
          for (; u0 + 16 <= gn; u0 += 16, npf = 0) tile16(kt, cw, q + u0, ldq, acc + u0 * L, pf, npf);
          for (; u0 + 8 <= gn; u0 += 8, npf = 0) tile8(kt, cw, q + u0, ldq, acc + u0 * L, pf, npf);
          for (; u0 + 4 <= gn; u0 += 4, npf = 0) tile4(kt, cw, q + u0, ldq, acc + u0 * L, pf, npf);
          for (; u0 + 2 <= gn; u0 += 2, npf = 0) tile2(kt, cw, q + u0, ldq, acc + u0 * L, pf, npf);
          for (; u0 < gn; u0++, npf = 0) tile1(kt, cw, q + u0, ldq, acc + u0 * L, pf, npf);
          for (int64_t k = cw; k < npf; k++) _mm_prefetch(pf[k], _MM_HINT_T0);  // lines past the tile's column steps
        }
      }
      const __mmask16 m = (__mmask16)((1u << nk) - 1);
      for (int64_t u = 0; u < gn; u++)
        _mm512_mask_storeu_ps(s + (g0 + u) * lds + i0, m, _mm512_mul_ps(_mm512_load_ps(acc + u * L), vscale));
    }
  }
}

GLM5K_AVX512 void glm5k_mq_sum_avx512(float *o, int64_t ldo, const float *p, int64_t ldp, int64_t H, const float *latent,
                                      int64_t R, int64_t ldl, const int32_t *keys, int64_t n) {
  if (H <= 0) return;
  for (int64_t h = 0; h < H; h++) memset(o + h * ldo, 0, sizeof(float) * (size_t)R);
  const int64_t r64 = R & ~63, r16 = R & ~15;
  for (int64_t b0 = 0; b0 < n; b0 += KEY_BLOCK) {
    const int64_t b1 = b0 + KEY_BLOCK < n ? b0 + KEY_BLOCK : n;
    for (int64_t h0 = 0; h0 < H; h0 += 4) {
      const int64_t nh = H - h0 < 4 ? H - h0 : 4;
      const int64_t hh[4] = {h0, h0 + 1 < H ? h0 + 1 : H - 1, h0 + 2 < H ? h0 + 2 : H - 1, h0 + 3 < H ? h0 + 3 : H - 1};
      for (int64_t c = 0; c < r64; c += 64) {
        __m512 y[4][4];
        for (int u = 0; u < 4; u++)
          for (int k = 0; k < 4; k++) y[u][k] = _mm512_loadu_ps(o + hh[u] * ldo + c + 16 * k);
        for (int64_t i = b0; i < b1; i++) {
          const float *row = latent + (int64_t)keys[i] * ldl + c;
          if (h0 == 0 && i + KEY_BLOCK < n) {
            // The next key block's row, this tile's 64 columns.
            const char *nr = (const char *)(latent + (int64_t)keys[i + KEY_BLOCK] * ldl + c);
            _mm_prefetch(nr, _MM_HINT_T0); _mm_prefetch(nr + 64, _MM_HINT_T0);
            _mm_prefetch(nr + 128, _MM_HINT_T0); _mm_prefetch(nr + 192, _MM_HINT_T0);
          }
          const __m512 v0 = _mm512_loadu_ps(row), v1 = _mm512_loadu_ps(row + 16);
          const __m512 v2 = _mm512_loadu_ps(row + 32), v3 = _mm512_loadu_ps(row + 48);
          for (int u = 0; u < 4; u++) {
            const __m512 w = _mm512_set1_ps(p[hh[u] * ldp + i]);
            y[u][0] = _mm512_fmadd_ps(w, v0, y[u][0]); y[u][1] = _mm512_fmadd_ps(w, v1, y[u][1]);
            y[u][2] = _mm512_fmadd_ps(w, v2, y[u][2]); y[u][3] = _mm512_fmadd_ps(w, v3, y[u][3]);
          }
        }
        for (int u = 0; u < nh; u++)
          for (int k = 0; k < 4; k++) _mm512_storeu_ps(o + (h0 + u) * ldo + c + 16 * k, y[u][k]);
      }
      for (int64_t c = r64; c < r16; c += 16) {
        for (int u = 0; u < nh; u++) {
          __m512 y = _mm512_loadu_ps(o + (h0 + u) * ldo + c);
          for (int64_t i = b0; i < b1; i++)
            y = _mm512_fmadd_ps(_mm512_set1_ps(p[(h0 + u) * ldp + i]), _mm512_loadu_ps(latent + (int64_t)keys[i] * ldl + c), y);
          _mm512_storeu_ps(o + (h0 + u) * ldo + c, y);
        }
      }
      for (int64_t c = r16; c < R; c++) {
        for (int u = 0; u < nh; u++) {
          float y = o[(h0 + u) * ldo + c];
          for (int64_t i = b0; i < b1; i++) y = __builtin_fmaf(p[(h0 + u) * ldp + i], latent[(int64_t)keys[i] * ldl + c], y);
          o[(h0 + u) * ldo + c] = y;
        }
      }
    }
  }
}
