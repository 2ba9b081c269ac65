// Hand-written x86 kernels behind the Swift ones (GLM5Kernels/Quant/QuantLinear.swift describes
// the formats and the element sequences these follow). Internal to the package: not part of the
// C ABI (include/glm5.h), not exported from libglm5.so.
//
// INT4 group quantization (compressed-tensors pack-quantized): row r of the packed weight is
// cols/2 bytes, column c in nibble c mod 2 of byte c/2 ... as 8 nibbles per little-endian word,
// so byte i of a 16-column step holds columns 2i (low nibble) and 2i + 1 (high nibble).
// q = u − 8 − zp ∈ [−15, 15] is the integer weight and s the group scale: W = q · s.
//
// Every element y[t, n] is one fixed sequence, whatever the kernel, tile or token count:
//   total8 = 0
//   per group g in order:  a8 = 0;
//     per 16-column step c of the group:  a8 = fma(x_even8, q_even8, a8); a8 = fma(x_odd8, q_odd8, a8)
//     total8 = fma(a8, splat(s_g), total8)
//   y = reduce8(total8) = ((t0 + t4) + (t2 + t6)) + ((t1 + t5) + (t3 + t7))
// with x permuted per 16 columns into [x_even8 | x_odd8] (`glm5k_int4_permute`). The lanes hold
// exact small integers, so every product is x · q rounded once inside its FMA: no cancellation,
// at least as accurate as a float32 dot product with the dequantized weights.
#ifndef GLM5_KERNELS_H
#define GLM5_KERNELS_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

enum { GLM5K_SCALE_F32 = 0, GLM5K_SCALE_BF16 = 1, GLM5K_SCALE_F16 = 2 };

/// Instruction sets the kernels choose between at run time (isa.c). Every ISA gives the same bits.
enum { GLM5K_ISA_AVX2 = 0, GLM5K_ISA_AVX512 = 1 };

/// The ISA in use: GLM5_ISA=avx2|avx512 from the environment if the CPU has it, else the widest
/// the CPU has (AVX-512F), else AVX2.
int32_t glm5k_isa(void);

/// Overrides the choice (tests); returns the ISA now in use (AVX-512 only where the CPU has it).
/// A negative value restores the default.
int32_t glm5k_set_isa(int32_t isa);

/// An INT4 weight (or a slice of its rows) as the kernels read it.
typedef struct {
  const uint8_t *packed;   // row r (of the slice) at packed + r * (cols / 2)
  const void *scales;      // [total rows, groups] of scale_dtype
  const void *zeros;       // [ceil(total rows / 8), groups] u32, 8 rows' nibbles per word, any alignment
                           // (safetensors offsets are not aligned); or NULL (zp = 0)
  int64_t row_offset;      // the slice's first row in the scale and zero-point tables
  int64_t cols, group;     // cols a multiple of group, group a multiple of 16
  int32_t scale_dtype;     // GLM5K_SCALE_*
} glm5k_int4;

/// One token, rows [r0, r1): y[r] for each. xp is glm5k_int4_permute's x in `form`: 0 as permute
/// leaves it, 1 as glm5k_int4_decode_prepare made it. AVX-512: 8-row tiles (group a multiple of
/// 32), 4-row tiles for the rest, q by table lookup for symmetric weights; AVX2: 4-row tiles.
/// Same bits in every form, tile and ISA.
void glm5k_int4_decode(const glm5k_int4 *w, int64_t r0, int64_t r1, const float *xp, int32_t form, float *y);

/// Readies a permuted one-token x for glm5k_int4_decode, in place: returns the form to pass.
/// With AVX-512 in use, zero points and a group that is a multiple of 32, the odd half of every 16
/// columns is scaled by 1/16 when that is exact for every value (form 1: the 8-row tile then
/// places the high nibbles with one instruction fewer, each product still x · q rounded once);
/// else x is left as it is (form 0; symmetric weights' table tiles read it so).
int32_t glm5k_int4_decode_prepare(const glm5k_int4 *w, float *xp);

/// x [tokens, cols] (ldx) → xp [tokens, cols]: per 16 columns the 8 even ones, then the 8 odd ones.
void glm5k_int4_permute(const float *x, int64_t ldx, int64_t tokens, int64_t cols, float *xp);

/// y[t · ldy + r] for rows [r0, r1) of w and tokens [0, tokens), 1 ≤ tokens, xp permuted
/// ([tokens, cols]). One token: glm5k_int4_decode (form 0); more: AVX-512 tiles of 4 rows × 4
/// tokens (1-3 for the last block), AVX2 per row tiles of 4 and 2 tokens.
void glm5k_int4_linear(const glm5k_int4 *w, int64_t r0, int64_t r1, const float *xp, int64_t tokens,
                       float *y, int64_t ldy);

/// Groups [g0, g1) of row r as float q in the permuted column order, unscaled, into out
/// (column c of the row at out[c − g0 · group]): the prefill tiles' scratch.
void glm5k_int4_lanes(const glm5k_int4 *w, int64_t r, int64_t g0, int64_t g1, float *out);

/// Row r dequantized in column order, out[c] = round(q · s) (one rounding), into out [cols].
void glm5k_int4_dequantize_row(const glm5k_int4 *w, int64_t r, float *out);

/// y[c] = fma(x[r − r0], W[r, c], y[c]) for r = r0 ..< r1 in order, every c (W[r, c] = round(q · s) as
/// glm5k_int4_dequantize_row gives it): the one-token transposed product y = xᵀ W, group a multiple of 8
/// (blocks of columns held in registers across the rows when it is a multiple of 16: 64 columns
/// with AVX2, int4_transposed_avx2.c; 128 with AVX-512).
void glm5k_int4_axpy_rows(const glm5k_int4 *w, int64_t r0, int64_t r1, const float *x, float *y);

/// Row r's group scales as float into out [groups] and, if zp is not NULL, its 8 + zp per group.
void glm5k_int4_row_scales(const glm5k_int4 *w, int64_t r, float *out, int32_t *zp);

/// INT4 prefill for rows [r0, r1) (at most 24) and tokens [0, tokens) (at most 48), xp permuted:
/// y[t · ldy + r]. AVX-512F only (check glm5k_isa() first; int4_prefill_avx512.c: 3-pair × 4-token
/// tiles); scratch of at least glm5k_int4_prefill_scratch(w, tokens) floats. `next`: the first row
/// of the item this thread runs next, prefetched during the last K-block (its r1 − r0 rows must be
/// in the slice), or -1.
void glm5k_int4_prefill_avx512(const glm5k_int4 *w, int64_t r0, int64_t r1, const float *xp, int64_t tokens,
                               float *y, int64_t ldy, float *scratch, int64_t next);
int64_t glm5k_int4_prefill_scratch(const glm5k_int4 *w, int64_t tokens);
/// The same with AVX2 + FMA (int4_prefill_avx2.c: 2-row × 6-token tiles; rows at most 16), any CPU
/// the package runs on; scratch of at least glm5k_int4_prefill_scratch_avx2(w, tokens) floats.
void glm5k_int4_prefill_avx2(const glm5k_int4 *w, int64_t r0, int64_t r1, const float *xp, int64_t tokens, float *y,
                             int64_t ldy, float *scratch, int64_t next);
int64_t glm5k_int4_prefill_scratch_avx2(const glm5k_int4 *w, int64_t tokens);

/// Multi-query attention scores (multiquery.c; AVX-512 in multiquery_avx512.c, chosen inside):
/// the sequence and shapes of Kernels.multiQueryScores (GLM5Kernels/CPU/MultiQuery.swift), with
/// the queries packed column-major by glm5k_mq_pack: qt[c · ldq + h] (ldq ≥ H), c < R the latent
/// part q̃, c ≥ R the rope part.
void glm5k_mq_scores(float *s, int64_t lds, const float *qt, int64_t ldq, int64_t H, const float *latent, int64_t R,
                     const float *rope, int64_t Dr, const int32_t *keys, int64_t n, float scale);
/// qt[c · ldq + h] = qn[h · ldqn + c] (c < R), qr[h · ldqr + c − R] (R ≤ c < R + Dr), h < H.
void glm5k_mq_pack(float *qt, int64_t ldq, const float *qn, int64_t ldqn, const float *qr, int64_t ldqr, int64_t H, int64_t R,
                   int64_t Dr);
/// Multi-query weighted sum (multiquery.c, AVX2 tiles of 4 heads × 16 columns; AVX-512 in
/// multiquery_avx512.c, chosen inside): the sequence and shapes of Kernels.multiQuerySum.
void glm5k_mq_sum(float *o, int64_t ldo, const float *p, int64_t ldp, int64_t H, const float *latent, int64_t R, int64_t ldl,
                  const int32_t *keys, int64_t n);

/// Runs `iters` rounds of 12 independent FMA chains of the widest vectors in use (glm5k_isa());
/// returns the floating-point operations done (the bench divides by the time). sink: the result.
double glm5k_fma_probe(int64_t iters, float *sink);

/// DSA indexer scores of keys [j0, j1) for one query (indexer.c): scores[j] = Σ_h in order
/// fma(w[h], v, ·) over the heads whose v = d · scale is > 0, where d is q[h · dim] · keys[j · dim]
/// as one fma chain in column order (Reference.indexScores).   q [heads, dim], w [heads], keys [·, dim]
void glm5k_index_scores(const float *q, const float *w, int64_t heads, int64_t dim, const float *keys, int64_t j0,
                        int64_t j1, float scale, float *scores);

/// y[i] = expf(x[i]) bitwise libm's (glibc's) expf, 8 (AVX2, exp.c) or 16 (AVX-512, exp_avx512.c) at
/// a time. x and y may be equal.
void glm5k_exp(const float *x, float *y, int64_t n);
/// Kernels.softmax: m = max, x = expf(x − m), s = their float sum in index order, x · (1/s).
void glm5k_softmax(float *x, int64_t n);
/// glm5k_softmax on each of `rows` rows x + r · ld (every row's bits as glm5k_softmax's).
void glm5k_softmax_rows(float *x, int64_t ld, int64_t rows, int64_t n);
/// Kernels.swiglu: g[i] = (g[i] / (1 + expf(−g[i]))) · u[i].
void glm5k_swiglu(float *g, const float *u, int64_t n);

#ifdef __cplusplus
}
#endif
#endif
