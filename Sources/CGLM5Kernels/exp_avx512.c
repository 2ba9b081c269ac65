// expf with AVX-512F (selected at run time; exp.c has the algorithm and the AVX2 form): the same
// double-precision steps on 8 lanes per vector instead of 4, and the 32-entry table of 2^(i/32)
// taken by two two-source permutes and a blend on the index's bit 4 instead of a gather. Every
// lane's operations are exp.c's, so every bit is: expf bitwise libm's.

#include <immintrin.h>
#include <math.h>

#include "internal.h"

#define GLM5K_AVX512 __attribute__((target("avx512f,avx512vl,avx512dq")))

static const double C0 = 0x1.c6af84b912394p-5 / 32 / 32 / 32, C1 = 0x1.ebfce50fac4f3p-3 / 32 / 32,
                    C2 = 0x1.62e42ff0c52d6p-1 / 32;
static const double INV_LN2_N = 0x1.71547652b82fep+0 * 32, SHIFT = 0x1.8p+52;

/// expf of 8 floats (exp.c's exp4 on 8 lanes); t = the table as four vectors of 8 entries.
GLM5K_AVX512 static inline __m256 exp8(__m256 x, const __m512i t[4]) {
  const __m512d xd = _mm512_cvtps_pd(x);
  const __m512d kd0 = _mm512_fmadd_pd(_mm512_set1_pd(INV_LN2_N), xd, _mm512_set1_pd(SHIFT));
  const __m512i ki = _mm512_castpd_si512(kd0);
  const __m512d kd = _mm512_sub_pd(kd0, _mm512_set1_pd(SHIFT));
  const __m512d r = _mm512_fmadd_pd(_mm512_set1_pd(INV_LN2_N), xd, _mm512_sub_pd(_mm512_setzero_pd(), kd));
  // tab[k mod 32]: entries 0-15 and 16-31 by the low 4 bits, then bit 4 picks.
  const __m512i lo = _mm512_permutex2var_epi64(t[0], ki, t[1]), hi = _mm512_permutex2var_epi64(t[2], ki, t[3]);
  const __m512i e = _mm512_mask_blend_epi64(_mm512_test_epi64_mask(ki, _mm512_set1_epi64(16)), lo, hi);
  const __m512d s = _mm512_castsi512_pd(_mm512_add_epi64(e, _mm512_slli_epi64(ki, 47)));
  const __m512d z = _mm512_fmadd_pd(_mm512_set1_pd(C0), r, _mm512_set1_pd(C1));
  const __m512d r2 = _mm512_mul_pd(r, r);
  __m512d y = _mm512_fmadd_pd(_mm512_set1_pd(C2), r, _mm512_set1_pd(1.0));
  y = _mm512_fmadd_pd(z, r2, y);
  __m256 out = _mm512_cvtpd_ps(_mm512_mul_pd(y, s));
  // Outside the main range (also -inf, +inf and NaN), as exp.c.
  const __mmask8 under = _mm256_cmp_ps_mask(x, _mm256_set1_ps(-0x1.9fe368p6f), _CMP_LT_OS);
  const __mmask8 over = _mm256_cmp_ps_mask(x, _mm256_set1_ps(0x1.62e42ep6f), _CMP_GT_OS);
  const __mmask8 nan = _mm256_cmp_ps_mask(x, x, _CMP_UNORD_Q);
  out = _mm256_mask_mov_ps(out, under, _mm256_setzero_ps());
  out = _mm256_mask_mov_ps(out, over, _mm256_set1_ps(INFINITY));
  return _mm256_mask_mov_ps(out, nan, _mm256_add_ps(x, x));
}

GLM5K_AVX512 static inline __m512 exp16(__m512 x, const __m512i t[4]) {
  const __m256 a = exp8(_mm512_castps512_ps256(x), t);
  const __m256 b = exp8(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(x), 1)), t);
  return _mm512_insertf32x8(_mm512_castps256_ps512(a), b, 1);
}

GLM5K_AVX512 static inline void load_table(__m512i t[4]) {
  const uint64_t *tab = glm5k_exp_table();
  for (int u = 0; u < 4; u++) t[u] = _mm512_loadu_si512(tab + 8 * u);
}

GLM5K_AVX512 void glm5k_max_exp_avx512(float *x, int64_t n) {
  __m512i t[4];
  load_table(t);
  // m as exp.c's max_exp: the lanes' m = x ≥ m ? x : m, then the lanes in order, then the tail.
  __m512 mv = _mm512_set1_ps(-INFINITY);
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    const __m512 v = _mm512_loadu_ps(x + i);
    mv = _mm512_mask_mov_ps(mv, _mm512_cmp_ps_mask(v, mv, _CMP_GE_OQ), v);
  }
  float lanes[16];
  _mm512_storeu_ps(lanes, mv);
  float m = -INFINITY;
  for (int u = 0; u < 16; u++) m = lanes[u] >= m ? lanes[u] : m;
  for (; i < n; i++) m = x[i] >= m ? x[i] : m;
  const __m512 mb = _mm512_set1_ps(m);
  for (i = 0; i + 16 <= n; i += 16) _mm512_storeu_ps(x + i, exp16(_mm512_sub_ps(_mm512_loadu_ps(x + i), mb), t));
  if (i < n) {
    const __mmask16 k = (__mmask16)((1u << (n - i)) - 1);
    _mm512_mask_storeu_ps(x + i, k, exp16(_mm512_sub_ps(_mm512_maskz_loadu_ps(k, x + i), mb), t));
  }
}

GLM5K_AVX512 void glm5k_exp_avx512(const float *x, float *y, int64_t n) {
  __m512i t[4];
  load_table(t);
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) _mm512_storeu_ps(y + i, exp16(_mm512_loadu_ps(x + i), t));
  if (i < n) {
    const __mmask16 k = (__mmask16)((1u << (n - i)) - 1);
    _mm512_mask_storeu_ps(y + i, k, exp16(_mm512_maskz_loadu_ps(k, x + i), t));
  }
}
