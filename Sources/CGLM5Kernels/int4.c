// INT4 group-quantized Linear kernels, AVX2 + FMA (x86-64-v3, the baseline every build targets).
// The element sequence is in glm5_kernels.h; each kernel below runs it for some tile of rows and
// tokens, so every tile gives every element the same bits.
//
// Per 16 weights of one row: vpmovzxbd (8 bytes → 8 lanes), vpand / vpsrld (low and high
// nibbles: even and odd columns), 2 vpsubd (− (8 + zp)), 2 vcvtdq2ps, then 2 FMAs per token.
// x stays in L1 (a row of x is at most a few KiB) and each weight byte is read once per call.

#include <immintrin.h>
#include <string.h>

#include "glm5_kernels.h"
#include "internal.h"

static inline float bf16_to_f32(uint16_t h) {
  uint32_t u = (uint32_t)h << 16;
  float f;
  memcpy(&f, &u, 4);
  return f;
}

static inline float scale_at(const glm5k_int4 *w, int64_t i) {
  switch (w->scale_dtype) {
  case GLM5K_SCALE_F32: {
    float f;
    memcpy(&f, (const char *)w->scales + 4 * i, 4);
    return f;
  }
  case GLM5K_SCALE_BF16: {
    uint16_t h;
    memcpy(&h, (const char *)w->scales + 2 * i, 2);
    return bf16_to_f32(h);
  }
  default: {
    uint16_t h;
    memcpy(&h, (const char *)w->scales + 2 * i, 2);
    return _cvtsh_ss(h);
  }
  }
}

void glm5k_int4_scales_range(const glm5k_int4 *w, int64_t r, int64_t g0, int64_t n, float *out, int32_t *zp) {
  const int64_t groups = w->cols / w->group;
  const int64_t row = w->row_offset + r;
  const int64_t base = row * groups + g0;
  int64_t i = 0;
  if (w->scale_dtype == GLM5K_SCALE_BF16) {
    const uint16_t *s = (const uint16_t *)w->scales + base;
    for (; i + 8 <= n; i += 8) {
      __m256i h = _mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)(s + i)));
      _mm256_storeu_ps(out + i, _mm256_castsi256_ps(_mm256_slli_epi32(h, 16)));
    }
  } else if (w->scale_dtype == GLM5K_SCALE_F16) {
    const uint16_t *s = (const uint16_t *)w->scales + base;
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(out + i, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(s + i))));
  }
  for (; i < n; i++) out[i] = scale_at(w, base + i);
  if (zp) {
    if (w->zeros) {
      for (i = 0; i < n; i++) zp[i] = glm5k_int4_zero(w, row, g0 + i, groups);
    } else {
      for (i = 0; i < n; i++) zp[i] = 8;
    }
  }
}

void glm5k_int4_row_scales(const glm5k_int4 *w, int64_t r, float *out, int32_t *zp) {
  glm5k_int4_scales_range(w, r, 0, w->cols / w->group, out, zp);
}

void glm5k_int4_prefetch_scales(const glm5k_int4 *w, int64_t r, int64_t n) {
  const int64_t groups = w->cols / w->group;
  const int64_t size = w->scale_dtype == GLM5K_SCALE_F32 ? 4 : 2;
  const char *s = (const char *)w->scales + (w->row_offset + r) * groups * size;
  for (int64_t o = 0; o < n * groups * size; o += 64) _mm_prefetch(s + o, _MM_HINT_T0);
  if (w->zeros) {
    const int64_t row = w->row_offset + r;
    const char *z = (const char *)w->zeros + 4 * ((row / 8) * groups);
    const int64_t words = ((row + n - 1) / 8 - row / 8 + 1) * groups;
    for (int64_t o = 0; o < words * 4; o += 64) _mm_prefetch(z + o, _MM_HINT_T0);
  }
}

#define reduce8 glm5k_reduce8

/// The 16 weights at p (8 bytes) as q lanes: even columns, odd columns.
#define GLM5K_Q(p, z, lo, hi)                                                               \
  do {                                                                                      \
    __m256i d_ = _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)(p)));               \
    lo = _mm256_cvtepi32_ps(_mm256_sub_epi32(_mm256_and_si256(d_, mask), (z)));             \
    hi = _mm256_cvtepi32_ps(_mm256_sub_epi32(_mm256_srli_epi32(d_, 4), (z)));               \
  } while (0)

/// One token, 4 rows (slice rows r[0..3]; repeats allowed): the 4 results into out. `next` (or
/// -1): the first of 4 contiguous rows the next tile reads, prefetched while this one runs.
static void rows4(const glm5k_int4 *w, const int64_t r[4], const float *xp, int64_t next, float out[4]) {
  const int64_t G = w->group, groups = w->cols / G, rb = w->cols / 2;
  const uint8_t *p0 = w->packed + r[0] * rb, *p1 = w->packed + r[1] * rb;
  const uint8_t *p2 = w->packed + r[2] * rb, *p3 = w->packed + r[3] * rb;
  const __m256i mask = _mm256_set1_epi32(0xF);
  // The next tile's rows, half a line per 16-column step (4 rows × 8 bytes), and its scales.
  const char *pf = next >= 0 ? (const char *)(w->packed + next * rb) : NULL;
  const int64_t pf_bytes = next >= 0 ? 4 * rb : 0;
  int64_t pf_at = 0;
  if (next >= 0) glm5k_int4_prefetch_scales(w, next, 4);
  float sc[4][GLM5K_CHUNK];
  int32_t zz[4][GLM5K_CHUNK];
  __m256 t0 = _mm256_setzero_ps(), t1 = t0, t2 = t0, t3 = t0;
  for (int64_t gc = 0; gc < groups; gc += GLM5K_CHUNK) {
    const int64_t gn = groups - gc < GLM5K_CHUNK ? groups - gc : GLM5K_CHUNK;
    for (int j = 0; j < 4; j++) glm5k_int4_scales_range(w, r[j], gc, gn, sc[j], w->zeros ? zz[j] : NULL);
    for (int64_t g = 0; g < gn; g++) {
      __m256i z0, z1, z2, z3;
      if (w->zeros) {
        z0 = _mm256_set1_epi32(zz[0][g]); z1 = _mm256_set1_epi32(zz[1][g]);
        z2 = _mm256_set1_epi32(zz[2][g]); z3 = _mm256_set1_epi32(zz[3][g]);
      } else {
        z0 = z1 = z2 = z3 = _mm256_set1_epi32(8);
      }
      __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
      const int64_t c0 = (gc + g) * G;
      for (int64_t c = c0; c < c0 + G; c += 16) {
        if ((c & 16) == 0 && pf_at < pf_bytes) {
          _mm_prefetch(pf + pf_at, _MM_HINT_T0);
          pf_at += 64;
        }
        const __m256 xe = _mm256_loadu_ps(xp + c), xo = _mm256_loadu_ps(xp + c + 8);
        __m256 lo, hi;
        GLM5K_Q(p0 + c / 2, z0, lo, hi); a0 = _mm256_fmadd_ps(xe, lo, a0); a0 = _mm256_fmadd_ps(xo, hi, a0);
        GLM5K_Q(p1 + c / 2, z1, lo, hi); a1 = _mm256_fmadd_ps(xe, lo, a1); a1 = _mm256_fmadd_ps(xo, hi, a1);
        GLM5K_Q(p2 + c / 2, z2, lo, hi); a2 = _mm256_fmadd_ps(xe, lo, a2); a2 = _mm256_fmadd_ps(xo, hi, a2);
        GLM5K_Q(p3 + c / 2, z3, lo, hi); a3 = _mm256_fmadd_ps(xe, lo, a3); a3 = _mm256_fmadd_ps(xo, hi, a3);
      }
      t0 = _mm256_fmadd_ps(a0, _mm256_set1_ps(sc[0][g]), t0);
      t1 = _mm256_fmadd_ps(a1, _mm256_set1_ps(sc[1][g]), t1);
      t2 = _mm256_fmadd_ps(a2, _mm256_set1_ps(sc[2][g]), t2);
      t3 = _mm256_fmadd_ps(a3, _mm256_set1_ps(sc[3][g]), t3);
    }
  }
  out[0] = reduce8(t0); out[1] = reduce8(t1); out[2] = reduce8(t2); out[3] = reduce8(t3);
}

/// One row against NT ≤ 4 token rows x[0..NT) (NT a constant at each call below, so the token
/// loops unroll): the NT results into out.
static inline __attribute__((always_inline)) void tokens_n(const glm5k_int4 *w, int64_t r, const float *const *x, float *out,
                                                           const int NT) {
  const int64_t G = w->group, groups = w->cols / G;
  const uint8_t *p = w->packed + r * (w->cols / 2);
  const __m256i mask = _mm256_set1_epi32(0xF);
  float sc[GLM5K_CHUNK];
  int32_t zz[GLM5K_CHUNK];
  __m256 t[4];
  for (int u = 0; u < NT; u++) t[u] = _mm256_setzero_ps();
  for (int64_t gc = 0; gc < groups; gc += GLM5K_CHUNK) {
    const int64_t gn = groups - gc < GLM5K_CHUNK ? groups - gc : GLM5K_CHUNK;
    glm5k_int4_scales_range(w, r, gc, gn, sc, zz);
    for (int64_t g = 0; g < gn; g++) {
      const __m256i z = _mm256_set1_epi32(zz[g]);
      __m256 a[4];
      for (int u = 0; u < NT; u++) a[u] = _mm256_setzero_ps();
      const int64_t c0 = (gc + g) * G;
      for (int64_t c = c0; c < c0 + G; c += 16) {
        __m256 lo, hi;
        GLM5K_PREFETCH_ROW(p, c / 2);
        GLM5K_Q(p + c / 2, z, lo, hi);
        for (int u = 0; u < NT; u++) {
          a[u] = _mm256_fmadd_ps(_mm256_loadu_ps(x[u] + c), lo, a[u]);
          a[u] = _mm256_fmadd_ps(_mm256_loadu_ps(x[u] + c + 8), hi, a[u]);
        }
      }
      const __m256 sv = _mm256_set1_ps(sc[g]);
      for (int u = 0; u < NT; u++) t[u] = _mm256_fmadd_ps(a[u], sv, t[u]);
    }
  }
  for (int u = 0; u < NT; u++) out[u] = reduce8(t[u]);
}
static void tokens4(const glm5k_int4 *w, int64_t r, const float *const *x, float *out) { tokens_n(w, r, x, out, 4); }
static void tokens3(const glm5k_int4 *w, int64_t r, const float *const *x, float *out) { tokens_n(w, r, x, out, 3); }
static void tokens2(const glm5k_int4 *w, int64_t r, const float *const *x, float *out) { tokens_n(w, r, x, out, 2); }
static void tokens1(const glm5k_int4 *w, int64_t r, const float *const *x, float *out) { tokens_n(w, r, x, out, 1); }

int32_t glm5k_int4_decode_prepare(const glm5k_int4 *w, float *xp) {
  // Symmetric weights take the table tiles, which read x as permute leaves it.
  if (glm5k_isa() != GLM5K_ISA_AVX512 || w->group % 32 != 0 || !w->zeros) return 0;
  return glm5k_int4_scale_odd16_avx512(xp, w->cols);
}

/// Rows r .. min(r + 4, r1) − 1 in one 4-row tile (rows past r1 repeat the last real row; their
/// results are dropped); the next 4 rows are prefetched when they are all real.
static void tile4(const glm5k_int4 *w, int64_t r, int64_t r1, const float *xp, int32_t form, int wide, float *y) {
  int64_t rr[4];
  for (int j = 0; j < 4; j++) rr[j] = r + j < r1 ? r + j : r1 - 1;
  const int64_t next = r + 8 <= r1 ? r + 4 : -1;
  float out[4];
  if (form == 1) {
    glm5k_int4_rows4_odd16_avx512(w, rr, xp, next, out);
  } else if (wide && !w->zeros) {
    glm5k_int4_rows4_table_avx512(w, rr, xp, next, out);
  } else if (wide) {
    glm5k_int4_rows4_avx512(w, rr, xp, next, out);
  } else {
    rows4(w, rr, xp, next, out);
  }
  for (int j = 0; j < 4 && r + j < r1; j++) y[r + j] = out[j];
}

void glm5k_int4_decode(const glm5k_int4 *w, int64_t r0, int64_t r1, const float *xp, int32_t form, float *y) {
  if (r1 <= r0) return;
  // Form 1 exists only where the CPU has AVX-512 (glm5k_int4_decode_prepare).
  const int wide = form == 1 || glm5k_isa() == GLM5K_ISA_AVX512;
  int64_t r = r0;
  if (wide && w->group % 32 == 0) {
    for (; r + 8 <= r1; r += 8) {
      const int64_t next = r + 16 <= r1 ? r + 8 : -1;
      if (form == 1) {
        glm5k_int4_rows8_odd16_avx512(w, r, xp, next, y + r);
      } else if (!w->zeros) {
        glm5k_int4_rows8_table_avx512(w, r, xp, next, y + r);
      } else {
        glm5k_int4_rows8_avx512(w, r, xp, next, y + r);
      }
    }
  }
  for (; r < r1; r += 4) tile4(w, r, r1, xp, form, wide, y);
}

void glm5k_int4_linear(const glm5k_int4 *w, int64_t r0, int64_t r1, const float *xp, int64_t tokens, float *y,
                       int64_t ldy) {
  if (tokens <= 0 || r1 <= r0) return;
  if (tokens == 1) {
    glm5k_int4_decode(w, r0, r1, xp, 0, y);
    return;
  }
  const int64_t cols = w->cols;
  if (glm5k_isa() == GLM5K_ISA_AVX512) {
    // 4 rows × up to 4 tokens per tile (rows past the last repeat it; dropped).
    for (int64_t r = r0; r < r1; r += 4) {
      int64_t rr[4];
      for (int j = 0; j < 4; j++) rr[j] = r + j < r1 ? r + j : r1 - 1;
      for (int64_t t0 = 0; t0 < tokens; t0 += 4) {
        const int64_t nt = tokens - t0 < 4 ? tokens - t0 : 4;
        const float *x[4];
        for (int u = 0; u < 4; u++) x[u] = xp + (t0 + (u < nt ? u : nt - 1)) * cols;
        float out[16];
        switch (nt) {
        case 4: glm5k_int4_rows4_tokens4_avx512(w, rr, x, out); break;
        case 3: glm5k_int4_rows4_tokens3_avx512(w, rr, x, out); break;
        case 2: glm5k_int4_rows4_tokens2_avx512(w, rr, x, out); break;
        default: glm5k_int4_rows4_tokens1_avx512(w, rr, x, out); break;
        }
        for (int u = 0; u < nt; u++)
          for (int j = 0; j < 4 && r + j < r1; j++) y[(t0 + u) * ldy + r + j] = out[4 * u + j];
      }
    }
    return;
  }
  // Per row, blocks of 4 tokens; the last block takes the tile of its size.
  for (int64_t r = r0; r < r1; r++) {
    for (int64_t t0 = 0; t0 < tokens; t0 += 4) {
      const int64_t nt = tokens - t0 < 4 ? tokens - t0 : 4;
      const float *x[4];
      for (int u = 0; u < 4; u++) x[u] = xp + (t0 + (u < nt ? u : nt - 1)) * cols;
      float out[4];
      switch (nt) {
      case 4: tokens4(w, r, x, out); break;
      case 3: tokens3(w, r, x, out); break;
      case 2: tokens2(w, r, x, out); break;
      default: tokens1(w, r, x, out); break;
      }
      for (int u = 0; u < nt; u++) y[(t0 + u) * ldy + r] = out[u];
    }
  }
}

void glm5k_int4_permute(const float *x, int64_t ldx, int64_t tokens, int64_t cols, float *xp) {
  const __m256i ev = _mm256_setr_epi32(0, 2, 4, 6, 1, 3, 5, 7);
  for (int64_t t = 0; t < tokens; t++) {
    const float *src = x + t * ldx;
    float *dst = xp + t * cols;
    for (int64_t c = 0; c + 16 <= cols; c += 16) {
      // a = x0..x7 → (x0 x2 x4 x6 | x1 x3 x5 x7), b likewise; then the halves regrouped.
      const __m256 a = _mm256_permutevar8x32_ps(_mm256_loadu_ps(src + c), ev);
      const __m256 b = _mm256_permutevar8x32_ps(_mm256_loadu_ps(src + c + 8), ev);
      _mm256_storeu_ps(dst + c, _mm256_permute2f128_ps(a, b, 0x20));
      _mm256_storeu_ps(dst + c + 8, _mm256_permute2f128_ps(a, b, 0x31));
    }
  }
}

void glm5k_int4_lanes(const glm5k_int4 *w, int64_t r, int64_t g0, int64_t g1, float *out) {
  const int64_t G = w->group, groups = w->cols / G;
  const uint8_t *p = w->packed + r * (w->cols / 2);
  const __m256i mask = _mm256_set1_epi32(0xF);
  const int64_t row = w->row_offset + r;
  for (int64_t g = g0; g < g1; g++) {
    const __m256i z = _mm256_set1_epi32(w->zeros ? glm5k_int4_zero(w, row, g, groups) : 8);
    for (int64_t c = g * G; c < (g + 1) * G; c += 16) {
      __m256 lo, hi;
      GLM5K_Q(p + c / 2, z, lo, hi);
      _mm256_storeu_ps(out + (c - g0 * G), lo);
      _mm256_storeu_ps(out + (c - g0 * G) + 8, hi);
    }
  }
}

void glm5k_int4_dequantize_row(const glm5k_int4 *w, int64_t r, float *out) {
  const int64_t G = w->group, groups = w->cols / G;
  const uint8_t *p = w->packed + r * (w->cols / 2);
  const int64_t row = w->row_offset + r;
  // Nibble i of a little-endian 32-bit word (columns c .. c + 7 in order).
  const __m256i shifts = _mm256_setr_epi32(0, 4, 8, 12, 16, 20, 24, 28);
  const __m256i mask = _mm256_set1_epi32(0xF);
  for (int64_t g = 0; g < groups; g++) {
    const __m256i z = _mm256_set1_epi32(w->zeros ? glm5k_int4_zero(w, row, g, groups) : 8);
    const float s = scale_at(w, row * groups + g);
    const __m256 sv = _mm256_set1_ps(s);
    for (int64_t c = g * G; c < (g + 1) * G; c += 8) {
      uint32_t word;
      memcpy(&word, p + c / 2, 4);
      const __m256i u = _mm256_and_si256(_mm256_srlv_epi32(_mm256_set1_epi32((int32_t)word), shifts), mask);
      _mm256_storeu_ps(out + c, _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_sub_epi32(u, z)), sv));
    }
  }
}

void glm5k_int4_axpy_rows(const glm5k_int4 *w, int64_t r0, int64_t r1, const float *x, float *y) {
  if (glm5k_isa() == GLM5K_ISA_AVX512 && w->group % 16 == 0) {
    glm5k_int4_axpy_rows_avx512(w, r0, r1, x, y);
    return;
  }
  if (w->group % 16 == 0) {
    glm5k_int4_axpy_rows_avx2(w, r0, r1, x, y);
    return;
  }
  // Groups of 8: one row at a time, y in L1.
  const int64_t G = w->group, groups = w->cols / G;
  const __m256i shifts = _mm256_setr_epi32(0, 4, 8, 12, 16, 20, 24, 28);
  const __m256i mask = _mm256_set1_epi32(0xF);
  for (int64_t r = r0; r < r1; r++) {
    const uint8_t *p = w->packed + r * (w->cols / 2);
    const int64_t row = w->row_offset + r;
    const __m256 a = _mm256_set1_ps(x[r - r0]);
    for (int64_t g = 0; g < groups; g++) {
      const __m256i z = _mm256_set1_epi32(w->zeros ? glm5k_int4_zero(w, row, g, groups) : 8);
      const __m256 sv = _mm256_set1_ps(scale_at(w, row * groups + g));
      for (int64_t c = g * G; c < (g + 1) * G; c += 8) {
        uint32_t word;
        memcpy(&word, p + c / 2, 4);
        const __m256i u = _mm256_and_si256(_mm256_srlv_epi32(_mm256_set1_epi32((int32_t)word), shifts), mask);
        const __m256 wv = _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_sub_epi32(u, z)), sv);
        _mm256_storeu_ps(y + c, _mm256_fmadd_ps(a, wv, _mm256_loadu_ps(y + c)));
      }
    }
  }
}
