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
//           blocks of 8 (16) selected rows transposed 64 columns at a time, every head's chains
//           side by side, no horizontal sums.
//   sum:    o = 0; o = fma(p[h, i], c_{j_i}, o) per column in key order: bitwise Kernels.axpy's
//           sequence. Tiles of 4 heads × 16 columns (8 chains, each row vector loaded once for 4
//           heads).
// Shapes: q̃ [H, R] (row stride ldqn), q^rope [H, Dr] (ldqr), latent rows of R floats, rope-key
// rows of Dr floats, keys [n] row indices, s and p [H, n] (row stride lds), o [H, R] (ldo).
// The sum runs key blocks outermost, so a block's rows are read from memory once per call and
// then from L1/L2 by every head tile (AVX-512: multiquery_avx512.c, the same bits). MLA calls
// them per (query, block of mlaHeadsPerItem heads).

import CGLM5Kernels

extension Kernels {
  public static func multiQueryScores(_ s: UnsafeMutablePointer<Float>, lds: Int,
                                      qn: UnsafePointer<Float>, ldqn: Int, qr: UnsafePointer<Float>, ldqr: Int, heads H: Int,
                                      latent: UnsafePointer<Float>, rank R: Int, rope: UnsafePointer<Float>, ropeDims Dr: Int,
                                      keys: UnsafePointer<Int32>, count n: Int, scale: Float) {
    glm5k_mq_scores(s, Int64(lds), qn, Int64(ldqn), qr, Int64(ldqr), Int64(H), latent, Int64(R), rope, Int64(Dr),
                    keys, Int64(n), scale)
  }

  /// `rank` columns of rows `ldl` floats apart (a column range of the latent: latent + c0).
  public static func multiQuerySum(_ o: UnsafeMutablePointer<Float>, ldo: Int, _ p: UnsafePointer<Float>, ldp: Int, heads H: Int,
                                   latent: UnsafePointer<Float>, rank R: Int, ldl: Int, keys: UnsafePointer<Int32>, count n: Int) {
    if H <= 0 { return }
    if InstructionSet.current == .avx512 {
      glm5k_mq_sum_avx512(o, Int64(ldo), p, Int64(ldp), Int64(H), latent, Int64(R), Int64(ldl), keys, Int64(n))
      return
    }
    for h in 0..<H { (o + h * ldo).update(repeating: 0, count: R) }
    let r16 = R & ~15
    // Key blocks outermost (rows stay in L1/L2 for every head tile and column block); o is
    // carried across blocks in memory, which keeps each column's fma chain in key order.
    var b0 = 0
    while b0 < n {
      let b1 = min(n, b0 + multiQueryKeyBlock)
      var h0 = 0
      while h0 < H {
        let heads = min(4, H - h0)
        @inline(__always) func hh(_ u: Int) -> Int { min(h0 + u, H - 1) }
        let pa = (p + hh(0) * ldp, p + hh(1) * ldp, p + hh(2) * ldp, p + hh(3) * ldp)
        // Heads past H repeat the last one: their chains are computed and dropped (not stored).
        let oa = (o + hh(0) * ldo, o + hh(1) * ldo, o + hh(2) * ldo, o + hh(3) * ldo)
        var c = 0
        while c < r16 {
          var y00 = loadX(oa.0, c), y01 = loadX(oa.0, c &+ 8), y10 = loadX(oa.1, c), y11 = loadX(oa.1, c &+ 8)
          var y20 = loadX(oa.2, c), y21 = loadX(oa.2, c &+ 8), y30 = loadX(oa.3, c), y31 = loadX(oa.3, c &+ 8)
          for i in b0..<b1 {
            let row = latent + Int(keys[i]) * ldl
            let v0 = loadX(row, c), v1 = loadX(row, c &+ 8)
            var w = SIMD8<Float>(repeating: pa.0[i]); y00.addProduct(w, v0); y01.addProduct(w, v1)
            w = SIMD8<Float>(repeating: pa.1[i]); y10.addProduct(w, v0); y11.addProduct(w, v1)
            w = SIMD8<Float>(repeating: pa.2[i]); y20.addProduct(w, v0); y21.addProduct(w, v1)
            w = SIMD8<Float>(repeating: pa.3[i]); y30.addProduct(w, v0); y31.addProduct(w, v1)
          }
          for u in 0..<heads {
            let (e0, e1) = u == 0 ? (y00, y01) : (u == 1 ? (y10, y11) : (u == 2 ? (y20, y21) : (y30, y31)))
            store8(o + (h0 + u) * ldo + c, e0)
            store8(o + (h0 + u) * ldo + c + 8, e1)
          }
          c &+= 16
        }
        // Columns past the last 16: per head, Kernels.axpy's own sequence.
        if c < R {
          for u in 0..<heads {
            let pu = u == 0 ? pa.0 : (u == 1 ? pa.1 : (u == 2 ? pa.2 : pa.3))
            for i in b0..<b1 { axpy(o + (h0 + u) * ldo + c, pu[i], latent + Int(keys[i]) * ldl + c, R - c) }
          }
        }
        h0 += 4
      }
      b0 = b1
    }
  }

  /// Keys per block of the multi-query kernels (32 rows of 576 floats: 72 KiB, L2-resident).
  static let multiQueryKeyBlock = 32
}
