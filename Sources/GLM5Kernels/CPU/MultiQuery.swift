// Multi-query attention over a shared latent cache (absorbed MLA): every head of a query reads
// the same selected rows, so each row is loaded once per block of heads, not once per head.
//
//   scores  s[h, i] = (q̃_h · c_{j_i} + q_h^rope · k^rope_{j_i}) · scale     h < H, i < n
//   sum     o[h, :] = Σ_i p[h, i] · c_{j_i}                               (after the softmax)
//
// Fixed sequences (row-invariant: a result depends only on its inputs):
//   scores: acc = 0 (8 lanes); acc = fma(q̃[8 lanes], c[8 lanes], acc) over the R/8 steps, then
//           over the Dr/8 rope steps; s = reduce8(acc), then fma over the R mod 8 and Dr mod 8
//           tail columns; times scale. Tiles of 4 heads × 2 keys (8 chains, each key vector loaded
//           once for 4 heads).
//   sum:    o = 0; o = fma(p[h, i], c_{j_i}, o) per column in key order: bitwise Kernels.axpy's
//           sequence. Tiles of 4 heads × 16 columns (8 chains, each row vector loaded once for 4
//           heads).
// Shapes: q̃ [H, R] (row stride ldqn), q^rope [H, Dr] (ldqr), latent rows of R floats, rope-key
// rows of Dr floats, keys [n] row indices, s and p [H, n] (row stride lds), o [H, R] (ldo).
// With AVX-512 both run in C (CGLM5Kernels/multiquery_avx512.c, the same bits). Both run key blocks outermost, so a block's rows are read from memory once per call and then
// from L1/L2 by every head tile. MLA calls them per (query, block of mlaHeadsPerItem heads).

import CGLM5Kernels

extension Kernels {
  public static func multiQueryScores(_ s: UnsafeMutablePointer<Float>, lds: Int,
                                      qn: UnsafePointer<Float>, ldqn: Int, qr: UnsafePointer<Float>, ldqr: Int, heads H: Int,
                                      latent: UnsafePointer<Float>, rank R: Int, rope: UnsafePointer<Float>, ropeDims Dr: Int,
                                      keys: UnsafePointer<Int32>, count n: Int, scale: Float) {
    if H <= 0 || n <= 0 { return }
    if InstructionSet.current == .avx512,
       glm5k_mq_scores_avx512(s, Int64(lds), qn, Int64(ldqn), qr, Int64(ldqr), Int64(H), latent, Int64(R), rope, Int64(Dr),
                              keys, Int64(n), scale) != 0 { return }
    let r8 = R & ~7, d8 = Dr & ~7
    // Key blocks outermost: a block's rows stay in L1/L2 while every head tile reads them.
    var b0 = 0
    while b0 < n {
    let b1 = min(n, b0 + multiQueryKeyBlock)
    var h0 = 0
    while h0 < H {
      // Heads past H repeat the last one; their results are dropped.
      @inline(__always) func hh(_ u: Int) -> Int { min(h0 + u, H - 1) }
      let qa = (qn + hh(0) * ldqn, qn + hh(1) * ldqn, qn + hh(2) * ldqn, qn + hh(3) * ldqn)
      let ra = (qr + hh(0) * ldqr, qr + hh(1) * ldqr, qr + hh(2) * ldqr, qr + hh(3) * ldqr)
      var i = b0
      while i < b1 {
        let j0 = Int(keys[i]), j1 = Int(keys[min(i + 1, b1 - 1)])
        let c0 = latent + j0 * R, c1 = latent + j1 * R
        let k0 = rope + j0 * Dr, k1 = rope + j1 * Dr
        var a00 = SIMD8<Float>(), a01 = SIMD8<Float>(), a10 = SIMD8<Float>(), a11 = SIMD8<Float>()
        var a20 = SIMD8<Float>(), a21 = SIMD8<Float>(), a30 = SIMD8<Float>(), a31 = SIMD8<Float>()
        var c = 0
        while c < r8 {
          let v0 = loadX(c0, c), v1 = loadX(c1, c)
          var q = loadX(qa.0, c); a00.addProduct(q, v0); a01.addProduct(q, v1)
          q = loadX(qa.1, c); a10.addProduct(q, v0); a11.addProduct(q, v1)
          q = loadX(qa.2, c); a20.addProduct(q, v0); a21.addProduct(q, v1)
          q = loadX(qa.3, c); a30.addProduct(q, v0); a31.addProduct(q, v1)
          c &+= 8
        }
        c = 0
        while c < d8 {
          let v0 = loadX(k0, c), v1 = loadX(k1, c)
          var q = loadX(ra.0, c); a00.addProduct(q, v0); a01.addProduct(q, v1)
          q = loadX(ra.1, c); a10.addProduct(q, v0); a11.addProduct(q, v1)
          q = loadX(ra.2, c); a20.addProduct(q, v0); a21.addProduct(q, v1)
          q = loadX(ra.3, c); a30.addProduct(q, v0); a31.addProduct(q, v1)
          c &+= 8
        }
        @inline(__always) func finish(_ acc: SIMD8<Float>, _ q: UnsafePointer<Float>, _ qrp: UnsafePointer<Float>,
                                      _ cj: UnsafePointer<Float>, _ kj: UnsafePointer<Float>) -> Float {
          var v = reduce8(acc)
          var t = r8
          while t < R { v = v.addingProduct(q[t], cj[t]); t += 1 }
          t = d8
          while t < Dr { v = v.addingProduct(qrp[t], kj[t]); t += 1 }
          return v * scale
        }
        let second = i + 1 < b1
        let heads = min(4, H - h0)
        for u in 0..<heads {
          let (e0, e1) = u == 0 ? (a00, a01) : (u == 1 ? (a10, a11) : (u == 2 ? (a20, a21) : (a30, a31)))
          let q = u == 0 ? qa.0 : (u == 1 ? qa.1 : (u == 2 ? qa.2 : qa.3))
          let qrp = u == 0 ? ra.0 : (u == 1 ? ra.1 : (u == 2 ? ra.2 : ra.3))
          s[(h0 + u) * lds + i] = finish(e0, q, qrp, c0, k0)
          if second { s[(h0 + u) * lds + i + 1] = finish(e1, q, qrp, c1, k1) }
        }
        i += 2
      }
      h0 += 4
    }
    b0 = b1
    }
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
