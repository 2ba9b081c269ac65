// INT4 prefill tiles with AVX2 + FMA (3 to 48 tokens): the bits of every other INT4 kernel, by
// the element sequence of glm5_kernels.h. A work item's rows (at most 16) are decoded once per
// K-block into q lanes in the permuted column order (glm5k_int4_lanes), then 2-row × 6-token
// tiles run 12 fresh group chains in registers (per 8 columns 2 weight loads, 6 loads of x and 12
// FMAs) and fold them into 12 totals parked in memory at each group's end. int4_prefill_avx512.c
// is the AVX-512 form (32 registers keep its totals in registers).

#include <immintrin.h>
#include <string.h>

#include "internal.h"

enum { ROWS = 16, TILE_TOKENS = 6, KBLOCK = 512 };

static int64_t kblock_groups(const glm5k_int4 *w) {
  const int64_t g = KBLOCK / w->group;
  return g > 0 ? g : 1;
}

int64_t glm5k_int4_prefill_scratch_avx2(const glm5k_int4 *w, int64_t tokens) {
  const int64_t groups = w->cols / w->group, kb = kblock_groups(w) * w->group;
  const int64_t tiles = (ROWS / 2) * ((tokens + TILE_TOKENS - 1) / TILE_TOKENS);
  return ROWS * kb         // decoded rows
         + ROWS * groups   // the rows' scales
         + tiles * 12 * 8  // parked totals
         + 8;              // alignment slack
}

void glm5k_int4_prefill_avx2(const glm5k_int4 *w, int64_t r0, int64_t r1, const float *xp, int64_t T, float *y,
                             int64_t ldy, float *scratch, int64_t next) {
  const int64_t G = w->group, K = w->cols, groups = K / G;
  const int64_t rows = r1 - r0;
  if (rows <= 0 || rows > ROWS || T <= 0) return;
  const int64_t rTiles = (rows + 1) / 2;
  const int64_t kbg = kblock_groups(w), kb = kbg * G;
  const int64_t tTiles = (T + TILE_TOKENS - 1) / TILE_TOKENS;
  float *wbuf = (float *)(((uintptr_t)scratch + 31) & ~(uintptr_t)31);  // [rows][kb]
  float *sc = wbuf + ROWS * kb;                                          // [rows][groups]
  float *state = sc + ROWS * groups;                                     // [rTiles][tTiles][12][8]
  for (int64_t i = 0; i < rows; i++) glm5k_int4_scales_range(w, r0 + i, 0, groups, sc + i * groups, 0);
  memset(state, 0, sizeof(float) * (size_t)(rTiles * tTiles * 12 * 8));
  for (int64_t g0 = 0; g0 < groups; g0 += kbg) {
    const int64_t g1 = g0 + kbg < groups ? g0 + kbg : groups;
    for (int64_t i = 0; i < rows; i++) glm5k_int4_lanes(w, r0 + i, g0, g1, wbuf + i * kb);
    glm5k_int4_prefetch_next_block(w, r0, rows, g1, kbg, next);
    // Token tiles outermost: a tile's x over the K-block (6 × 512 floats, 12 KiB) stays in L1
    // while every row tile passes (from L2 each time with row tiles outermost: 2.6x slower).
    for (int64_t tt = 0; tt < tTiles; tt++) {
      const float *x[TILE_TOKENS];
      for (int u = 0; u < TILE_TOKENS; u++) {
        const int64_t t = TILE_TOKENS * tt + u;
        x[u] = xp + (t < T ? t : T - 1) * K;  // tokens past T repeat the last (dropped)
      }
      for (int64_t rt = 0; rt < rTiles; rt++) {
        // Rows past r1 repeat the last real row; their results are dropped.
        const int64_t ia = 2 * rt, ib = 2 * rt + 1 < rows ? 2 * rt + 1 : rows - 1;
        const float *wa = wbuf + ia * kb, *wb = wbuf + ib * kb;  // column c at c − g0 · G
        const float *sa = sc + ia * groups, *sb = sc + ib * groups;
        float *st = state + (rt * tTiles + tt) * 12 * 8;
        // The 12 totals across the K-block's groups (they spill to the stack: one store each per
        // group, where updating st in place made GCC store both).
        __m256 tot[12];
        for (int u = 0; u < 12; u++) tot[u] = _mm256_load_ps(st + 8 * u);
        for (int64_t g = g0; g < g1; g++) {
          __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0;
          __m256 b0 = a0, b1 = a0, b2 = a0, b3 = a0, b4 = a0, b5 = a0;
          for (int64_t c = g * G; c < (g + 1) * G; c += 8) {
            const int64_t lc = c - g0 * G;
            const __m256 va = _mm256_load_ps(wa + lc), vb = _mm256_load_ps(wb + lc);
            // Each x vector loaded once into a register for both rows (GCC would fold a load into
            // each FMA: 14 loads per 12 FMAs instead of 8, and the loads were the limit).
#define GLM5K_X(u, a, b)                                                              \
  do {                                                                                \
    __m256 xv = _mm256_loadu_ps(x[u] + c);                                            \
    __asm__("" : "+x"(xv));                                                           \
    a = _mm256_fmadd_ps(xv, va, a);                                                   \
    b = _mm256_fmadd_ps(xv, vb, b);                                                   \
  } while (0)
            GLM5K_X(0, a0, b0); GLM5K_X(1, a1, b1); GLM5K_X(2, a2, b2);
            GLM5K_X(3, a3, b3); GLM5K_X(4, a4, b4); GLM5K_X(5, a5, b5);
#undef GLM5K_X
          }
          const __m256 s0 = _mm256_set1_ps(sa[g]), s1 = _mm256_set1_ps(sb[g]);
          const __m256 a[6] = {a0, a1, a2, a3, a4, a5}, b[6] = {b0, b1, b2, b3, b4, b5};
          for (int u = 0; u < 6; u++) {
            tot[u] = _mm256_fmadd_ps(a[u], s0, tot[u]);
            tot[6 + u] = _mm256_fmadd_ps(b[u], s1, tot[6 + u]);
          }
        }
        for (int u = 0; u < 12; u++) _mm256_store_ps(st + 8 * u, tot[u]);
      }
    }
  }
  // Totals → y: tile rt's totals 0-5 are row 2rt, 6-11 row 2rt + 1, one per token of the tile.
  for (int64_t rt = 0; rt < rTiles; rt++) {
    for (int j = 0; j < 2 && 2 * rt + j < rows; j++) {
      for (int64_t t = 0; t < T; t++) {
        const float *v = state + ((rt * tTiles + t / TILE_TOKENS) * 12 + 6 * j + t % TILE_TOKENS) * 8;
        y[t * ldy + r0 + 2 * rt + j] = glm5k_reduce8(_mm256_load_ps(v));
      }
    }
  }
}
