#include "int4_avx512.h"

// MARK: - One-token transposed product (absorbed W_UK), y = xᵀ W over rows [r0, r1)
//
// glm5k_int4_axpy_rows's sequence: y[c] = fma(x[r − r0], W[r, c], y[c]) for r in order, W[r, c] =
// round(q · s). Groups a multiple of 32: blocks of 128 columns are held in 8 registers across
// all the rows, in the nibbles' order (per 32 columns: the even ones of both 16-column steps,
// then the odd ones), put back in column order at the end; per row and 32 columns vpmovzxbd,
// vpternlogd (low nibbles into 2^23's mantissa), vpsrld + vpord (high), 2 vsubps (q), 2 vmulps
// (· s: the dequantized values) and 2 FMAs; symmetric weights instead look the dequantized values
// up in the group's 16 values round((u − 8) · s) (one vmulps per row and group, then vpmovzxbd,
// 2 vpermps, vpsrld and 2 FMAs: the same values). Other groups (multiples of 16): per row, y in L1.
GLM5K_AVX512VL static void axpy_rows_g16(const glm5k_int4 *w, int64_t r0, int64_t r1, const float *x, float *y) {
  const int64_t G = w->group, groups = w->cols / G, rb = w->cols / 2;
  const __m512i words = _mm512_setr_epi32(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1);
  const __m512i shifts = _mm512_setr_epi32(0, 4, 8, 12, 16, 20, 24, 28, 0, 4, 8, 12, 16, 20, 24, 28);
  const __m512i mask = _mm512_set1_epi32(0xF), magic = _mm512_set1_epi32(0x4B000000);
  float sc[GLM5K_CHUNK];
  int32_t zz[GLM5K_CHUNK];
  for (int64_t r = r0; r < r1; r++) {
    const uint8_t *p = w->packed + r * rb;
    const __m512 a = _mm512_set1_ps(x[r - r0]);
    for (int64_t gc = 0; gc < groups; gc += GLM5K_CHUNK) {
      const int64_t gn = groups - gc < GLM5K_CHUNK ? groups - gc : GLM5K_CHUNK;
      scales16(w, r, gc, gn, sc, zz);
      for (int64_t g = 0; g < gn; g++) {
        const __m512 sv = _mm512_set1_ps(sc[g]);
        const __m512 zv = _mm512_set1_ps(8388608.0f + (w->zeros ? (float)zz[g] : 8.0f));
        const int64_t c0 = (gc + g) * G;
        for (int64_t c = c0; c < c0 + G; c += 16) {
          const __m512i d = _mm512_permutexvar_epi32(words, _mm512_castsi128_si512(_mm_loadl_epi64((const __m128i *)(p + c / 2))));
          const __m512 u = _mm512_castsi512_ps(_mm512_ternarylogic_epi32(_mm512_srlv_epi32(d, shifts), mask, magic, 0xEA));
          const __m512 wv = _mm512_mul_ps(_mm512_sub_ps(u, zv), sv);
          _mm512_storeu_ps(y + c, _mm512_fmadd_ps(a, wv, _mm512_loadu_ps(y + c)));
        }
      }
    }
  }
}

// SYM (no zero points) a constant in each call below.
GLM5K_AVX512VL static inline __attribute__((always_inline)) void axpy_rows_g32(const glm5k_int4 *w, int64_t r0, int64_t r1,
                                                                               const float *x, float *y, const int SYM) {
  const int64_t G = w->group, groups = w->cols / G, cols = w->cols, rb = cols / 2;
  const __m512 table = GLM5K_Q_TABLE_VALUES;
  const __m512i mask = _mm512_set1_epi32(0xF), magic = _mm512_set1_epi32(0x4B000000);
  // Lane l of the even vector of a 32-column unit is column 2l (l < 8) or 16 + 2(l − 8); the odd
  // vector's are those plus 1.
  const __m512i even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
  const __m512i odd = _mm512_setr_epi32(1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31);
  // Back: column c of the unit from lane c/2 of even (c even) or odd (c odd), as one two-source permute.
  const __m512i back_lo = _mm512_setr_epi32(0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23);
  const __m512i back_hi = _mm512_setr_epi32(8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31);
  // Scales of a chunk of ROWS rows × GC groups at a time (4 KiB of stack).
  enum { ROWS = 16, GC = 32 };
  float sc[ROWS][GC];
  int32_t zz[ROWS][GC];
  for (int64_t gc = 0; gc < groups; gc += GC) {
    const int64_t gn = groups - gc < GC ? groups - gc : GC;
    for (int64_t rc = r0; rc < r1; rc += ROWS) {
      const int64_t rn = r1 - rc < ROWS ? r1 - rc : ROWS;
      for (int64_t i = 0; i < rn; i++) scales16(w, rc + i, gc, gn, sc[i], zz[i]);
      // Columns of this chunk of groups, in blocks of 4 units (128 columns).
      const int64_t cbeg = gc * G, cend = (gc + gn) * G;
      for (int64_t c0 = cbeg; c0 < cend; c0 += 128) {
        const int units = (int)((cend - c0 < 128 ? cend - c0 : 128) / 32);
        __m512 ae[4], ao[4];
        int64_t gi[4];  // each unit's group in the chunk (no division per row)
        for (int u = 0; u < 4; u++) {
          gi[u] = (c0 + 32 * u) / G - gc;
          if (u < units) {
            const __m512 v0 = _mm512_loadu_ps(y + c0 + 32 * u), v1 = _mm512_loadu_ps(y + c0 + 32 * u + 16);
            ae[u] = _mm512_permutex2var_ps(v0, even, v1);
            ao[u] = _mm512_permutex2var_ps(v0, odd, v1);
          } else {
            ae[u] = ao[u] = _mm512_setzero_ps();
          }
        }
        for (int64_t i = 0; i < rn; i++) {
          const int64_t r = rc + i;
          const uint8_t *p = w->packed + r * rb + c0 / 2;
          if (c0 == cbeg && r + 4 < r1) glm5k_int4_prefetch_row_span(w, r + 4, cbeg, cend);  // a row 4 ahead
          const __m512 a = _mm512_set1_ps(x[r - r0]);
          for (int u = 0; u < 4; u++) {
            if (u >= units) break;
            const int64_t g = gi[u];
            const __m512 sv = _mm512_set1_ps(sc[i][g]);
            const __m512i d = _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)(p + 16 * u)));
            if (SYM) {
              const __m512 values = _mm512_mul_ps(table, sv);  // round((u − 8) · s) for u = 0 .. 15
              ae[u] = _mm512_fmadd_ps(a, _mm512_permutexvar_ps(d, values), ae[u]);
              ao[u] = _mm512_fmadd_ps(a, _mm512_permutexvar_ps(_mm512_srli_epi32(d, 4), values), ao[u]);
            } else {
              const __m512 zv = _mm512_set1_ps(8388608.0f + (float)zz[i][g]);
              const __m512 lo = _mm512_sub_ps(_mm512_castsi512_ps(_mm512_ternarylogic_epi32(d, mask, magic, 0xEA)), zv);
              const __m512 hi = _mm512_sub_ps(_mm512_castsi512_ps(_mm512_or_si512(_mm512_srli_epi32(d, 4), magic)), zv);
              ae[u] = _mm512_fmadd_ps(a, _mm512_mul_ps(lo, sv), ae[u]);
              ao[u] = _mm512_fmadd_ps(a, _mm512_mul_ps(hi, sv), ao[u]);
            }
          }
        }
        for (int u = 0; u < units; u++) {
          _mm512_storeu_ps(y + c0 + 32 * u, _mm512_permutex2var_ps(ae[u], back_lo, ao[u]));
          _mm512_storeu_ps(y + c0 + 32 * u + 16, _mm512_permutex2var_ps(ae[u], back_hi, ao[u]));
        }
      }
    }
  }
}

GLM5K_AVX512VL void glm5k_int4_axpy_rows_avx512(const glm5k_int4 *w, int64_t r0, int64_t r1, const float *x, float *y) {
  if (w->group % 32 != 0) {
    axpy_rows_g16(w, r0, r1, x, y);
  } else if (w->zeros) {
    axpy_rows_g32(w, r0, r1, x, y, 0);
  } else {
    axpy_rows_g32(w, r0, r1, x, y, 1);
  }
}
