// Multi-query attention over the latent cache (GLM5Kernels/CPU/MultiQuery.swift has the
// sequences and the AVX2 kernels), AVX-512F, selected at run time; the same bits.
//   scores: a 512-bit vector holds the 8-lane chains of two heads side by side (the queries
//           paired once per call into a per-thread heap buffer, each key row broadcast to both
//           halves);
//           tiles of 2 keys × 16 heads, each key vector loaded once for 16 heads.
//   sum:    o[h, c] = fma(p[h, i], row_i[c], o[h, c]) in key order, 16 columns per vector; tiles
//           of 4 heads × 64 columns, each row vector loaded once for 4 heads.
// Both run key blocks of 32 outermost, so a block's rows come from memory once per call, and
// both prefetch the rows they read next.

#include <immintrin.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

#define GLM5K_AVX512 __attribute__((target("avx512f")))

enum { KEY_BLOCK = 32, MAX_HEADS = 16, MAX_WIDTH = 1024 };

// The paired queries' buffer, [MAX_HEADS / 2][2 * MAX_WIDTH] floats (64 KiB), one per thread that
// runs the kernel: allocated at its first call and freed when the thread ends. Not a static
// __thread array: static TLS is reserved in every thread of the host process, and 64 KiB of it
// made pthread_create fail for a host's small-stack threads.
static pthread_key_t qp_key;
static pthread_once_t qp_once = PTHREAD_ONCE_INIT;
static int qp_key_ok = 0;
static void qp_make_key(void) { qp_key_ok = pthread_key_create(&qp_key, free) == 0; }

static float *qp_buffer(void) {
  pthread_once(&qp_once, qp_make_key);
  if (!qp_key_ok) return NULL;
  float *p = pthread_getspecific(qp_key);
  if (p) return p;
  p = aligned_alloc(64, sizeof(float) * (MAX_HEADS / 2) * 2 * MAX_WIDTH);
  if (p && pthread_setspecific(qp_key, p) != 0) {
    free(p);
    p = NULL;
  }
  return p;
}

GLM5K_AVX512 static inline __m512 both_halves(const float *p) {
  return _mm512_castpd_ps(_mm512_broadcast_f64x4(_mm256_castps_pd(_mm256_loadu_ps(p))));
}

GLM5K_AVX512 static inline float lo8(__m512 v) { return glm5k_reduce8(_mm512_castps512_ps256(v)); }
GLM5K_AVX512 static inline float hi8(__m512 v) {
  return glm5k_reduce8(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1)));
}


GLM5K_AVX512 int32_t glm5k_mq_scores_avx512(float *s, int64_t lds, const float *qn, int64_t ldqn, const float *qr, int64_t ldqr,
                                            int64_t H, const float *latent, int64_t R, const float *rope, int64_t Dr,
                                            const int32_t *keys, int64_t n, float scale) {
  if (H <= 0 || n <= 0) return 1;
  if (H > MAX_HEADS || R + Dr > MAX_WIDTH) return 0;
  const int64_t r8 = R & ~7, d8 = Dr & ~7, W = r8 + d8;
  const int64_t pairs = (H + 1) / 2;
  // Paired queries: pair p, step c (8 columns of [q̃ | q_rope]) = [head 2p | head 2p + 1].
  // Without the buffer (out of memory), 0: the caller runs the portable kernel (the same bits).
  float (*qp)[2 * MAX_WIDTH] = (float (*)[2 * MAX_WIDTH])qp_buffer();
  if (!qp) return 0;
  for (int64_t p = 0; p < pairs; p++) {
    const int64_t ha = 2 * p, hb = 2 * p + 1 < H ? 2 * p + 1 : H - 1;
    for (int64_t c = 0; c < r8; c += 8) {
      memcpy(&qp[p][2 * c], qn + ha * ldqn + c, 32);
      memcpy(&qp[p][2 * c + 8], qn + hb * ldqn + c, 32);
    }
    for (int64_t c = 0; c < d8; c += 8) {
      memcpy(&qp[p][2 * (r8 + c)], qr + ha * ldqr + c, 32);
      memcpy(&qp[p][2 * (r8 + c) + 8], qr + hb * ldqr + c, 32);
    }
  }
  for (int64_t b0 = 0; b0 < n; b0 += KEY_BLOCK) {
    const int64_t b1 = b0 + KEY_BLOCK < n ? b0 + KEY_BLOCK : n;
    for (int64_t i = b0; i < b1; i += 2) {
      const int64_t i1 = i + 1 < b1 ? i + 1 : b1 - 1;
      const float *c0 = latent + (int64_t)keys[i] * R, *c1 = latent + (int64_t)keys[i1] * R;
      const float *k0 = rope + (int64_t)keys[i] * Dr, *k1 = rope + (int64_t)keys[i1] * Dr;
      for (int64_t p0 = 0; p0 < pairs; p0 += 8) {
        const int64_t np = pairs - p0 < 8 ? pairs - p0 : 8;
        __m512 a[8], e[8];
        for (int u = 0; u < 8; u++) a[u] = e[u] = _mm512_setzero_ps();
        for (int64_t c = 0; c < W; c += 8) {
          if (p0 == 0 && (c & 15) == 0) {
            // The next pair's rows, one line of each per 16 columns (the hardware prefetchers
            // alone left the scores at ~65% of their L3-resident speed on a cache in DRAM).
            const int64_t ia = i + 2 < n ? i + 2 : n - 1, ib = i + 3 < n ? i + 3 : n - 1;
            const float *na = c < r8 ? latent + (int64_t)keys[ia] * R + c : rope + (int64_t)keys[ia] * Dr + (c - r8);
            const float *nb = c < r8 ? latent + (int64_t)keys[ib] * R + c : rope + (int64_t)keys[ib] * Dr + (c - r8);
            _mm_prefetch((const char *)na, _MM_HINT_T0);
            _mm_prefetch((const char *)nb, _MM_HINT_T0);
          }
          const __m512 v0 = c < r8 ? both_halves(c0 + c) : both_halves(k0 + (c - r8));
          const __m512 v1 = c < r8 ? both_halves(c1 + c) : both_halves(k1 + (c - r8));
          for (int u = 0; u < 8; u++) {
            if (u < np) {
              const __m512 q = _mm512_load_ps(&qp[p0 + u][2 * c]);
              a[u] = _mm512_fmadd_ps(q, v0, a[u]);
              e[u] = _mm512_fmadd_ps(q, v1, e[u]);
            }
          }
        }
        for (int u = 0; u < np; u++) {
          for (int half = 0; half < 2; half++) {
            const int64_t h = 2 * (p0 + u) + half;
            if (h >= H) break;
            const float *q = qn + h * ldqn, *qrp = qr + h * ldqr;
            for (int key = 0; key < 2; key++) {
              if (key == 1 && i + 1 >= b1) break;
              const __m512 acc = key == 0 ? a[u] : e[u];
              const float *cj = key == 0 ? c0 : c1, *kj = key == 0 ? k0 : k1;
              float v = half == 0 ? lo8(acc) : hi8(acc);
              for (int64_t t = r8; t < R; t++) v = __builtin_fmaf(q[t], cj[t], v);
              for (int64_t t = d8; t < Dr; t++) v = __builtin_fmaf(qrp[t], kj[t], v);
              s[h * lds + i + key] = v * scale;
            }
          }
        }
      }
    }
  }
  return 1;
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
