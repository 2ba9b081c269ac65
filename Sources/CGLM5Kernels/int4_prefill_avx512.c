// INT4 prefill tiles with AVX-512F (3 to 48 tokens), selected at run time: the bits of the Swift
// prefill path (GLM5Kernels/Quant/QuantPrefill.swift) and of every other INT4 kernel, by the
// element sequence of glm5_kernels.h. A 512-bit vector holds the 8-lane chains of two rows side
// by side: the rows' q lanes are decoded once per K-block straight into a paired scratch ([row a
// step | row b step] per 8 columns, `decode_pair`), x is broadcast to both halves, and a 2-pair × 6-token tile keeps
// its 12 group chains and 12 totals in registers (29 of 32): per 8 columns 2 loads of weights,
// 6 broadcasts of x and 12 FMAs of 16 lanes.

#include <immintrin.h>
#include <string.h>

#include "internal.h"

#define GLM5K_AVX512 __attribute__((target("avx512f")))

enum { PAIR_ROWS = 16, TILE_TOKENS = 6, KBLOCK = 512 };

static int64_t kblock_groups(const glm5k_int4 *w) {
  const int64_t g = KBLOCK / w->group;
  return g > 0 ? g : 1;
}

int64_t glm5k_int4_prefill_scratch(const glm5k_int4 *w, int64_t tokens) {
  const int64_t groups = w->cols / w->group, kb = kblock_groups(w) * w->group;
  const int64_t tiles = ((PAIR_ROWS / 2 + 1) / 2) * ((tokens + TILE_TOKENS - 1) / TILE_TOKENS);
  return PAIR_ROWS * kb      // paired decoded rows
         + PAIR_ROWS * groups  // the rows' scales
         + tiles * 12 * 16     // parked totals
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
                                            float *y, int64_t ldy, float *scratch) {
  const int64_t G = w->group, K = w->cols, groups = K / G;
  const int64_t rows = r1 - r0;
  if (rows <= 0 || rows > PAIR_ROWS || T <= 0) return;
  const int64_t pairs = (rows + 1) / 2, pTiles = (pairs + 1) / 2;
  const int64_t kbg = kblock_groups(w), kb = kbg * G;
  const int64_t tTiles = (T + TILE_TOKENS - 1) / TILE_TOKENS;
  float *wbuf = (float *)(((uintptr_t)scratch + 63) & ~(uintptr_t)63);  // [pairs][2 · kb]
  float *sc = wbuf + PAIR_ROWS * kb;                                     // [rows][groups]
  float *state = sc + PAIR_ROWS * groups;                                // [pTiles][tTiles][12][16]
  for (int64_t i = 0; i < rows; i++) glm5k_int4_scales_range(w, r0 + i, 0, groups, sc + i * groups, 0);
  memset(state, 0, sizeof(float) * (size_t)(pTiles * tTiles * 12 * 16));
  // Row of pair p, half h (rows past r1 repeat the last real row; their results are dropped).
#define ROW(p, h) (2 * (p) + (h) < rows ? 2 * (p) + (h) : rows - 1)
  for (int64_t g0 = 0; g0 < groups; g0 += kbg) {
    const int64_t g1 = g0 + kbg < groups ? g0 + kbg : groups, cols = (g1 - g0) * G;
    for (int64_t p = 0; p < pairs; p++) decode_pair(w, r0 + ROW(p, 0), r0 + ROW(p, 1), g0, g1, wbuf + p * 2 * kb);
    for (int64_t pt = 0; pt < pTiles; pt++) {
      const int64_t pa = 2 * pt, pb = 2 * pt + 1 < pairs ? 2 * pt + 1 : pairs - 1;
      const float *wa = wbuf + pa * 2 * kb, *wb = wbuf + pb * 2 * kb;
      const float *sa0 = sc + ROW(pa, 0) * groups, *sa1 = sc + ROW(pa, 1) * groups;
      const float *sb0 = sc + ROW(pb, 0) * groups, *sb1 = sc + ROW(pb, 1) * groups;
      for (int64_t tt = 0; tt < tTiles; tt++) {
        const float *x[TILE_TOKENS];
        for (int u = 0; u < TILE_TOKENS; u++) {
          const int64_t t = TILE_TOKENS * tt + u;
          x[u] = xp + (t < T ? t : T - 1) * K;
        }
        float *st = state + (pt * tTiles + tt) * 12 * 16;
        __m512 ta0 = _mm512_loadu_ps(st), ta1 = _mm512_loadu_ps(st + 16), ta2 = _mm512_loadu_ps(st + 32);
        __m512 ta3 = _mm512_loadu_ps(st + 48), ta4 = _mm512_loadu_ps(st + 64), ta5 = _mm512_loadu_ps(st + 80);
        __m512 tb0 = _mm512_loadu_ps(st + 96), tb1 = _mm512_loadu_ps(st + 112), tb2 = _mm512_loadu_ps(st + 128);
        __m512 tb3 = _mm512_loadu_ps(st + 144), tb4 = _mm512_loadu_ps(st + 160), tb5 = _mm512_loadu_ps(st + 176);
        for (int64_t g = g0; g < g1; g++) {
          __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0;
          __m512 b0 = a0, b1 = a0, b2 = a0, b3 = a0, b4 = a0, b5 = a0;
          for (int64_t c = g * G; c < (g + 1) * G; c += 8) {
            const int64_t lc = 2 * (c - g0 * G);
            const __m512 va = _mm512_loadu_ps(wa + lc), vb = _mm512_loadu_ps(wb + lc);
            __m512 xv;
            xv = both_halves(x[0] + c); a0 = _mm512_fmadd_ps(xv, va, a0); b0 = _mm512_fmadd_ps(xv, vb, b0);
            xv = both_halves(x[1] + c); a1 = _mm512_fmadd_ps(xv, va, a1); b1 = _mm512_fmadd_ps(xv, vb, b1);
            xv = both_halves(x[2] + c); a2 = _mm512_fmadd_ps(xv, va, a2); b2 = _mm512_fmadd_ps(xv, vb, b2);
            xv = both_halves(x[3] + c); a3 = _mm512_fmadd_ps(xv, va, a3); b3 = _mm512_fmadd_ps(xv, vb, b3);
            xv = both_halves(x[4] + c); a4 = _mm512_fmadd_ps(xv, va, a4); b4 = _mm512_fmadd_ps(xv, vb, b4);
            xv = both_halves(x[5] + c); a5 = _mm512_fmadd_ps(xv, va, a5); b5 = _mm512_fmadd_ps(xv, vb, b5);
          }
          const __m512 sa = pair_ps(sa0[g], sa1[g]), sb = pair_ps(sb0[g], sb1[g]);
          ta0 = _mm512_fmadd_ps(a0, sa, ta0); ta1 = _mm512_fmadd_ps(a1, sa, ta1); ta2 = _mm512_fmadd_ps(a2, sa, ta2);
          ta3 = _mm512_fmadd_ps(a3, sa, ta3); ta4 = _mm512_fmadd_ps(a4, sa, ta4); ta5 = _mm512_fmadd_ps(a5, sa, ta5);
          tb0 = _mm512_fmadd_ps(b0, sb, tb0); tb1 = _mm512_fmadd_ps(b1, sb, tb1); tb2 = _mm512_fmadd_ps(b2, sb, tb2);
          tb3 = _mm512_fmadd_ps(b3, sb, tb3); tb4 = _mm512_fmadd_ps(b4, sb, tb4); tb5 = _mm512_fmadd_ps(b5, sb, tb5);
        }
        _mm512_storeu_ps(st, ta0); _mm512_storeu_ps(st + 16, ta1); _mm512_storeu_ps(st + 32, ta2);
        _mm512_storeu_ps(st + 48, ta3); _mm512_storeu_ps(st + 64, ta4); _mm512_storeu_ps(st + 80, ta5);
        _mm512_storeu_ps(st + 96, tb0); _mm512_storeu_ps(st + 112, tb1); _mm512_storeu_ps(st + 128, tb2);
        _mm512_storeu_ps(st + 144, tb3); _mm512_storeu_ps(st + 160, tb4); _mm512_storeu_ps(st + 176, tb5);
      }
    }
  }
  // Totals → y: pair p's lanes 0-7 are row 2p, lanes 8-15 row 2p + 1.
  for (int64_t pt = 0; pt < pTiles; pt++) {
    for (int j = 0; j < 2; j++) {
      const int64_t p = 2 * pt + j;
      if (p >= pairs) break;
      for (int64_t t = 0; t < T; t++) {
        const float *v = state + ((pt * tTiles + t / TILE_TOKENS) * 12 + 6 * j + t % TILE_TOKENS) * 16;
        y[t * ldy + r0 + 2 * p] = glm5k_reduce8(_mm256_loadu_ps(v));
        if (2 * p + 1 < rows) y[t * ldy + r0 + 2 * p + 1] = glm5k_reduce8(_mm256_loadu_ps(v + 8));
      }
    }
  }
#undef ROW
}
