// INT4 prefill tiles with AVX-512F (3 to 48 tokens), selected at run time: the bits of the Swift
// prefill path (GLM5Kernels/Quant/QuantPrefill.swift) and of every other INT4 kernel, by the
// element sequence of glm5_kernels.h. A 512-bit vector holds the 8-lane chains of two rows side
// by side: the rows' q lanes are decoded once per K-block straight into a paired scratch ([row a
// step | row b step] per 8 columns, `decode_pair`), x is broadcast to both halves, and a 3-pair ×
// 4-token tile keeps its 12 group chains and 12 totals in registers (28 of 32): per 8 columns 3
// loads of weights, 4 broadcasts of x and 12 FMAs of 16 lanes (the 2-pair × 6-token tile took 8
// loads for its 12 FMAs, and 16 tokens, a batched step's usual count, filled 16 of its 18 token
// slots; this tile is 1.1× its GFLOP/s at 16 and 48 tokens on a Zen 5).

#include <immintrin.h>
#include <string.h>

#include "internal.h"

#define GLM5K_AVX512 __attribute__((target("avx512f")))

enum { PAIR_ROWS = 24, TILE_PAIRS = 3, TILE_TOKENS = 4, KBLOCK = 512 };

static int64_t kblock_groups(const glm5k_int4 *w) {
  const int64_t g = KBLOCK / w->group;
  return g > 0 ? g : 1;
}

int64_t glm5k_int4_prefill_scratch(const glm5k_int4 *w, int64_t tokens) {
  const int64_t groups = w->cols / w->group, kb = kblock_groups(w) * w->group;
  const int64_t tiles = ((PAIR_ROWS / 2 + TILE_PAIRS - 1) / TILE_PAIRS) * ((tokens + TILE_TOKENS - 1) / TILE_TOKENS);
  return PAIR_ROWS * kb                              // paired decoded rows
         + PAIR_ROWS * groups                        // the rows' scales
         + tiles * TILE_PAIRS * TILE_TOKENS * 16     // parked totals
         + 16;                 // alignment slack
}

GLM5K_AVX512 static inline __m512 pair_ps(float a, float b) {
  return _mm512_mask_mov_ps(_mm512_set1_ps(a), 0xFF00, _mm512_set1_ps(b));
}

GLM5K_AVX512 static inline __m512 both_halves(const float *p) {
  return _mm512_castpd_ps(_mm512_broadcast_f64x4(_mm256_castps_pd(_mm256_loadu_ps(p))));
}

/// Groups [g0, g1) of rows a and b as q lanes in the paired layout, straight from the packed
/// bytes: per 16 columns one vpmovzxbd of [a's 8 bytes | b's 8 bytes] gives [a even | b even]
/// (the first 8-column step of the pair) and [a odd | b odd] (the second).
GLM5K_AVX512 static void decode_pair(const glm5k_int4 *w, int64_t ra, int64_t rb, int64_t g0, int64_t g1, float *dst) {
  const int64_t G = w->group, groups = w->cols / G, rbytes = w->cols / 2;
  const uint8_t *pa = w->packed + ra * rbytes, *pb = w->packed + rb * rbytes;
  const __m512i mask = _mm512_set1_epi32(0xF);
  for (int64_t g = g0; g < g1; g++) {
    int32_t za = 8, zb = 8;
    if (w->zeros) {
      za = glm5k_int4_zero(w, w->row_offset + ra, g, groups);
      zb = glm5k_int4_zero(w, w->row_offset + rb, g, groups);
    }
    const __m512i z = _mm512_mask_mov_epi32(_mm512_set1_epi32(za), 0xFF00, _mm512_set1_epi32(zb));
    for (int64_t c = g * G; c < (g + 1) * G; c += 16) {
      const __m128i b = _mm_castpd_si128(_mm_loadh_pd(_mm_castsi128_pd(_mm_loadl_epi64((const __m128i *)(pa + c / 2))),
                                                      (const double *)(pb + c / 2)));
      const __m512i d = _mm512_cvtepu8_epi32(b);
      float *o = dst + 2 * (c - g0 * G);
      _mm512_storeu_ps(o, _mm512_cvtepi32_ps(_mm512_sub_epi32(_mm512_and_si512(d, mask), z)));
      _mm512_storeu_ps(o + 16, _mm512_cvtepi32_ps(_mm512_sub_epi32(_mm512_srli_epi32(d, 4), z)));
    }
  }
}

GLM5K_AVX512 void glm5k_int4_prefill_avx512(const glm5k_int4 *w, int64_t r0, int64_t r1, const float *xp, int64_t T,
                                            float *y, int64_t ldy, float *scratch, int64_t next) {
  const int64_t G = w->group, K = w->cols, groups = K / G;
  const int64_t rows = r1 - r0;
  if (rows <= 0 || rows > PAIR_ROWS || T <= 0) return;
  const int64_t pairs = (rows + 1) / 2, pTiles = (pairs + TILE_PAIRS - 1) / TILE_PAIRS;
  const int64_t kbg = kblock_groups(w), kb = kbg * G;
  const int64_t tTiles = (T + TILE_TOKENS - 1) / TILE_TOKENS;
  enum { CHAINS = TILE_PAIRS * TILE_TOKENS };
  float *wbuf = (float *)(((uintptr_t)scratch + 63) & ~(uintptr_t)63);  // [pairs][2 · kb]
  float *sc = wbuf + PAIR_ROWS * kb;                                     // [rows][groups]
  float *state = sc + PAIR_ROWS * groups;                                // [pTiles][tTiles][CHAINS][16]
  for (int64_t i = 0; i < rows; i++) glm5k_int4_scales_range(w, r0 + i, 0, groups, sc + i * groups, 0);
  memset(state, 0, sizeof(float) * (size_t)(pTiles * tTiles * CHAINS * 16));
  // Row of pair p, half h (rows past r1 repeat the last real row; their results are dropped).
#define ROW(p, h) (2 * (p) + (h) < rows ? 2 * (p) + (h) : rows - 1)
  for (int64_t g0 = 0; g0 < groups; g0 += kbg) {
    const int64_t g1 = g0 + kbg < groups ? g0 + kbg : groups;
    for (int64_t p = 0; p < pairs; p++) decode_pair(w, r0 + ROW(p, 0), r0 + ROW(p, 1), g0, g1, wbuf + p * 2 * kb);
    glm5k_int4_prefetch_next_block(w, r0, rows, g1, kbg, next);
    for (int64_t pt = 0; pt < pTiles; pt++) {
      // The tile's pairs (past the last, the last again), their lanes and scales.
      const float *wp[TILE_PAIRS], *s0[TILE_PAIRS], *s1[TILE_PAIRS];
      for (int j = 0; j < TILE_PAIRS; j++) {
        const int64_t pp = TILE_PAIRS * pt + j < pairs ? TILE_PAIRS * pt + j : pairs - 1;
        wp[j] = wbuf + pp * 2 * kb;
        s0[j] = sc + ROW(pp, 0) * groups;
        s1[j] = sc + ROW(pp, 1) * groups;
      }
      for (int64_t tt = 0; tt < tTiles; tt++) {
        const float *x[TILE_TOKENS];
        for (int u = 0; u < TILE_TOKENS; u++) {
          const int64_t t = TILE_TOKENS * tt + u;
          x[u] = xp + (t < T ? t : T - 1) * K;
        }
        // Constant trip counts: the compiler unrolls these loops and keeps tot and a in registers.
        float *st = state + (pt * tTiles + tt) * CHAINS * 16;
        __m512 tot[TILE_PAIRS][TILE_TOKENS];
        for (int j = 0; j < TILE_PAIRS; j++)
          for (int u = 0; u < TILE_TOKENS; u++) tot[j][u] = _mm512_loadu_ps(st + (j * TILE_TOKENS + u) * 16);
        for (int64_t g = g0; g < g1; g++) {
          __m512 a[TILE_PAIRS][TILE_TOKENS];
          for (int j = 0; j < TILE_PAIRS; j++)
            for (int u = 0; u < TILE_TOKENS; u++) a[j][u] = _mm512_setzero_ps();
          for (int64_t c = g * G; c < (g + 1) * G; c += 8) {
            const int64_t lc = 2 * (c - g0 * G);
            __m512 wv[TILE_PAIRS];
            for (int j = 0; j < TILE_PAIRS; j++) wv[j] = _mm512_loadu_ps(wp[j] + lc);
            for (int u = 0; u < TILE_TOKENS; u++) {
              const __m512 xv = both_halves(x[u] + c);
              for (int j = 0; j < TILE_PAIRS; j++) a[j][u] = _mm512_fmadd_ps(xv, wv[j], a[j][u]);
            }
          }
          for (int j = 0; j < TILE_PAIRS; j++) {
            const __m512 sv = pair_ps(s0[j][g], s1[j][g]);
            for (int u = 0; u < TILE_TOKENS; u++) tot[j][u] = _mm512_fmadd_ps(a[j][u], sv, tot[j][u]);
          }
        }
        for (int j = 0; j < TILE_PAIRS; j++)
          for (int u = 0; u < TILE_TOKENS; u++) _mm512_storeu_ps(st + (j * TILE_TOKENS + u) * 16, tot[j][u]);
      }
    }
  }
  // Totals → y: pair p's lanes 0-7 are row 2p, lanes 8-15 row 2p + 1.
  for (int64_t p = 0; p < pairs; p++) {
    const int64_t pt = p / TILE_PAIRS, j = p % TILE_PAIRS;
    for (int64_t t = 0; t < T; t++) {
      const float *v = state + ((pt * tTiles + t / TILE_TOKENS) * CHAINS + j * TILE_TOKENS + t % TILE_TOKENS) * 16;
      y[t * ldy + r0 + 2 * p] = glm5k_reduce8(_mm256_loadu_ps(v));
      if (2 * p + 1 < rows) y[t * ldy + r0 + 2 * p + 1] = glm5k_reduce8(_mm256_loadu_ps(v + 8));
    }
  }
#undef ROW
}
