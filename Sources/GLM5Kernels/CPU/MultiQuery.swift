// Multi-query attention over a shared latent cache (absorbed MLA): every head of a query reads
// the same selected rows, so each row is loaded once per block of heads, not once per head.
//
//   scores  s[h, i] = (q̃_h · c_{j_i} + q_h^rope · k^rope_{j_i}) · scale     h < H, i < n
//   sum     o[h, :] = Σ_i p[h, i] · c_{j_i}                               (after the softmax)
//
// Fixed sequences (row-invariant: a result depends only on its inputs):
//   scores: v = 0; v = fma(q̃[c], c_j[c], v) over the R latent columns, then fma(q^rope[t],
//           k^rope_j[t], v) over the Dr rope columns, one chain in column order; s = v · scale.
//           In C (CGLM5Kernels/multiquery.c, AVX2; multiquery_avx512.c), one SIMD lane per key:
//           blocks of 16 selected rows transposed 64 columns at a time, tiles of 6 (AVX-512: 16)
//           heads' chains side by side, no horizontal sums; the queries packed column-major
//           (packMultiQuery) so that a tile reads them from one pointer.
//   sum:    o = 0; o = fma(p[h, i], c_{j_i}, o) per column in key order: bitwise Kernels.axpy's
//           sequence. In C: tiles of 4 heads × 16 columns (AVX2, 8 chains, each row vector
//           loaded once for 4 heads) or 4 heads × 64 columns (AVX-512).
// Shapes: q̃ [H, R] (row stride ldqn), q^rope [H, Dr] (ldqr), packed q [R + Dr, ldq], latent rows of R floats, rope-key
// rows of Dr floats, keys [n] row indices, s and p [H, n] (row stride lds), o [H, R] (ldo).
// The sum runs key blocks outermost, so a block's rows are read from memory once per call and
// then from L1/L2 by every head tile (AVX-512: multiquery_avx512.c, the same bits). MLA calls
// them per (query, block of mlaHeadsPerItem heads).

import CGLM5Kernels

extension Kernels {
  /// The queries of `heads` heads packed column-major for multiQueryScores: qt[c · ldq + h] = q̃[h, c]
  /// for c < rank, q^rope[h, c − rank] for rank ≤ c < rank + ropeDims.   qt [rank + ropeDims, ldq ≥ heads]
  public static func packMultiQuery(_ qt: UnsafeMutablePointer<Float>, ldq: Int, qn: UnsafePointer<Float>, ldqn: Int,
                                    qr: UnsafePointer<Float>, ldqr: Int, heads H: Int, rank R: Int, ropeDims Dr: Int) {
    glm5k_mq_pack(qt, Int64(ldq), qn, Int64(ldqn), qr, Int64(ldqr), Int64(H), Int64(R), Int64(Dr))
  }

  /// Scores of `heads` heads whose packed queries start at q (packMultiQuery's layout, ldq apart
  /// per column: a block of heads of a packed row is q + h0 with the row's ldq).
  public static func multiQueryScores(_ s: UnsafeMutablePointer<Float>, lds: Int, q: UnsafePointer<Float>, ldq: Int, heads H: Int,
                                      latent: UnsafePointer<Float>, rank R: Int, rope: UnsafePointer<Float>, ropeDims Dr: Int,
                                      keys: UnsafePointer<Int32>, count n: Int, scale: Float) {
    glm5k_mq_scores(s, Int64(lds), q, Int64(ldq), Int64(H), latent, Int64(R), rope, Int64(Dr), keys, Int64(n), scale)
  }

  /// `rank` columns of rows `ldl` floats apart (a column range of the latent: latent + c0).
  public static func multiQuerySum(_ o: UnsafeMutablePointer<Float>, ldo: Int, _ p: UnsafePointer<Float>, ldp: Int, heads H: Int,
                                   latent: UnsafePointer<Float>, rank R: Int, ldl: Int, keys: UnsafePointer<Int32>, count n: Int) {
    glm5k_mq_sum(o, Int64(ldo), p, Int64(ldp), Int64(H), latent, Int64(R), Int64(ldl), keys, Int64(n))
  }
}
