// expf over arrays, 4 lanes at a time (AVX2 + FMA; exp_avx512.c: 8), bitwise glibc's expf: the same algorithm
// (Arm's optimized-routines expf, which glibc 2.28+ ships, in the FMA-contracted form of its
// x86-64 FMA build) on every lane. Checked against libm's expf on all 2^32
// float bit patterns on the development machine (tools/bench/expf_exhaustive.c); the
// Swift tests check a sample on every run.
//
//   x·32/ln 2 = k + r, |r| ≤ 1/2, k an integer (rounded by adding 1.5·2^52);
//   exp(x) = 2^(k/32) · 2^(r/32) ≈ s · (C0 r³ + C1 r² + C2 r + 1), s from a 32-entry table of
//   2^(i/32) with k's high bits added to its exponent; all in double, rounded once to float.
// Outside the main range: -inf and x < -103.97 give +0, x > 88.72 gives +inf, NaN stays NaN.

#include <immintrin.h>
#include <math.h>
#include <string.h>

#include "internal.h"

static const double C0 = 0x1.c6af84b912394p-5 / 32 / 32 / 32, C1 = 0x1.ebfce50fac4f3p-3 / 32 / 32,
                    C2 = 0x1.62e42ff0c52d6p-1 / 32;
static const double INV_LN2_N = 0x1.71547652b82fep+0 * 32, SHIFT = 0x1.8p+52;

// tab[i] = bits(2^(i/32)) − (i << 47), so that tab[k mod 32] + (k << 47) is the bits of 2^(k/32).
// From the correctly rounded values (long double exp2l rounded to double; the exhaustive check
// confirms every entry), made once.
static uint64_t tab[32];
static int tab_ready;

static void make_tab(void) {
  if (__atomic_load_n(&tab_ready, __ATOMIC_ACQUIRE)) return;
  uint64_t t[32];
  for (int i = 0; i < 32; i++) {
    const double v = (double)exp2l((long double)i / 32);
    memcpy(&t[i], &v, 8);
    t[i] -= (uint64_t)i << 47;
  }
  memcpy(tab, t, sizeof t);  // every thread writes the same values
  __atomic_store_n(&tab_ready, 1, __ATOMIC_RELEASE);
}

/// expf of 4 floats.
static inline __m128 exp4(__m128 x) {
  const __m256d xd = _mm256_cvtps_pd(x);
  const __m256d kd0 = _mm256_fmadd_pd(_mm256_set1_pd(INV_LN2_N), xd, _mm256_set1_pd(SHIFT));
  const __m256i ki = _mm256_castpd_si256(kd0);
  const __m256d kd = _mm256_sub_pd(kd0, _mm256_set1_pd(SHIFT));
  const __m256d r = _mm256_fmadd_pd(_mm256_set1_pd(INV_LN2_N), xd, _mm256_sub_pd(_mm256_setzero_pd(), kd));
  const __m256i idx = _mm256_and_si256(ki, _mm256_set1_epi64x(31));
  const __m256i t = _mm256_add_epi64(_mm256_i64gather_epi64((const long long *)tab, idx, 8), _mm256_slli_epi64(ki, 47));
  const __m256d s = _mm256_castsi256_pd(t);
  const __m256d z = _mm256_fmadd_pd(_mm256_set1_pd(C0), r, _mm256_set1_pd(C1));
  const __m256d r2 = _mm256_mul_pd(r, r);
  __m256d y = _mm256_fmadd_pd(_mm256_set1_pd(C2), r, _mm256_set1_pd(1.0));
  y = _mm256_fmadd_pd(z, r2, y);
  __m128 out = _mm256_cvtpd_ps(_mm256_mul_pd(y, s));
  // Outside the main range (also -inf, +inf and NaN).
  const __m128 lo = _mm_cmplt_ps(x, _mm_set1_ps(-0x1.9fe368p6f)), hi = _mm_cmpgt_ps(x, _mm_set1_ps(0x1.62e42ep6f));
  out = _mm_blendv_ps(out, _mm_setzero_ps(), lo);
  out = _mm_blendv_ps(out, _mm_set1_ps(INFINITY), hi);
  return _mm_blendv_ps(out, _mm_add_ps(x, x), _mm_cmpunord_ps(x, x));
}

static inline __m256 exp8(__m256 x) {
  return _mm256_set_m128(exp4(_mm256_extractf128_ps(x, 1)), exp4(_mm256_castps256_ps128(x)));
}

void glm5k_exp(const float *x, float *y, int64_t n) {
  make_tab();
  if (glm5k_isa() == GLM5K_ISA_AVX512) {
    glm5k_exp_avx512(x, y, n);
    return;
  }
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) _mm256_storeu_ps(y + i, exp8(_mm256_loadu_ps(x + i)));
  if (i < n) {
    float a[8] = {0}, b[8];
    memcpy(a, x + i, sizeof(float) * (size_t)(n - i));
    _mm256_storeu_ps(b, exp8(_mm256_loadu_ps(a)));
    memcpy(y + i, b, sizeof(float) * (size_t)(n - i));
  }
}

/// x[0..n) = expf(x − m), m the largest non-NaN x (-inf when there is none), as the scalar loop
/// m = x ≥ m ? x : m (lanes may pick a different zero's sign: exp(x − m) is the same for either).
static void max_exp(float *x, int64_t n) {
  __m256 mv = _mm256_set1_ps(-INFINITY);
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256 v = _mm256_loadu_ps(x + i);
    mv = _mm256_blendv_ps(mv, v, _mm256_cmp_ps(v, mv, _CMP_GE_OQ));
  }
  float lanes[8];
  _mm256_storeu_ps(lanes, mv);
  float m = -INFINITY;
  for (int u = 0; u < 8; u++) m = lanes[u] >= m ? lanes[u] : m;
  for (; i < n; i++) m = x[i] >= m ? x[i] : m;
  const __m256 mb = _mm256_set1_ps(m);
  for (i = 0; i + 8 <= n; i += 8) _mm256_storeu_ps(x + i, exp8(_mm256_sub_ps(_mm256_loadu_ps(x + i), mb)));
  if (i < n) {
    float a[8] = {0}, b[8];
    for (int64_t u = i; u < n; u++) a[u - i] = x[u] - m;
    _mm256_storeu_ps(b, exp8(_mm256_loadu_ps(a)));
    memcpy(x + i, b, sizeof(float) * (size_t)(n - i));
  }
}

const uint64_t *glm5k_exp_table(void) {
  make_tab();
  return tab;
}

void glm5k_softmax(float *x, int64_t n) { glm5k_softmax_rows(x, n, 1, n); }

void glm5k_softmax_rows(float *x, int64_t ld, int64_t rows, int64_t n) {
  if (n <= 0 || rows <= 0) return;
  make_tab();
  const int avx512 = glm5k_isa() == GLM5K_ISA_AVX512;
  for (int64_t r = 0; r < rows; r++) {
    if (avx512)
      glm5k_max_exp_avx512(x + r * ld, n);
    else
      max_exp(x + r * ld, n);
  }
  // Each row's sum is one float chain in index order; up to 8 rows' chains run side by side
  // (independent adds instead of one add's latency per element).
  enum { B = 8 };
  for (int64_t r0 = 0; r0 < rows; r0 += B) {
    const int64_t nr = rows - r0 < B ? rows - r0 : B;
    float s[B] = {0};
    const float *xr = x + r0 * ld;
    if (nr == B) {
      for (int64_t i = 0; i < n; i++)
        for (int u = 0; u < B; u++) s[u] += xr[u * ld + i];
    } else {
      for (int64_t i = 0; i < n; i++)
        for (int64_t u = 0; u < nr; u++) s[u] += xr[u * ld + i];
    }
    for (int64_t u = 0; u < nr; u++) {
      float *row = x + (r0 + u) * ld;
      const float inv = 1 / s[u];
      const __m256 iv = _mm256_set1_ps(inv);
      int64_t i = 0;
      for (; i + 8 <= n; i += 8) _mm256_storeu_ps(row + i, _mm256_mul_ps(_mm256_loadu_ps(row + i), iv));
      for (; i < n; i++) row[i] *= inv;
    }
  }
}

void glm5k_swiglu(float *g, const float *u, int64_t n) {
  make_tab();
  const __m256 one = _mm256_set1_ps(1), neg = _mm256_set1_ps(-0.0f);
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256 z = _mm256_loadu_ps(g + i);
    const __m256 e = exp8(_mm256_xor_ps(z, neg));
    _mm256_storeu_ps(g + i, _mm256_mul_ps(_mm256_div_ps(z, _mm256_add_ps(one, e)), _mm256_loadu_ps(u + i)));
  }
  for (; i < n; i++) {
    float a[8] = {0}, b[8];
    a[0] = -g[i];
    _mm256_storeu_ps(b, exp8(_mm256_loadu_ps(a)));
    g[i] = (g[i] / (1 + b[0])) * u[i];
  }
}
