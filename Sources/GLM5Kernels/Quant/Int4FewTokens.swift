// INT4 Linear for a few tokens at once (2 ≤ T ≤ fewTokensMax): the shape batched decode gives the
// dense layers and the experts (a step of B sessions puts ~B·k/E rows on each expert). Each
// weight row is decoded once per 4 tokens (2 for the last one or two), straight from the packed
// words into registers, and multiplied into 4 token chains: per 16 weights 5 decode µops and 8 FMAs, against one decode
// pass per token (5 + 2 per token, the weights streamed again each time) or the prefill path's
// decode-to-scratch and 6-token tiles (a third of them wasted at T = 4).
//
// Row invariance: every y[t, n] is the sequence of the one-token kernel (QuantLinear.swift):
// per group, acc = fma(x_even, lanes_lo, acc); acc = fma(x_odd, lanes_hi, acc) over its 16-column
// steps; total8 = fma(acc, splat(scale), total8); y = reduce8(total8) + the zero-point part
// (int4Correction of the row's −(8 + zp) · s and the token's group sums). Tokens past T repeat
// the last real one and are dropped.

import GLM5Core

extension Kernels {
  /// Largest token count that takes this path.
  static let fewTokensMax = 8
  /// Output rows per work item (fixed: results never depend on the split anyway).
  static let fewTokensRowsPerChunk = 16

  /// y [T, N] (ldy) for x prepared by prepareInt4 ([T, K], ld K) with group sums xs [T, blocks].
  static func int4FewTokens(_ plan: QuantKernels.Plan, _ y: UnsafeMutablePointer<Float>, ldy: Int, _ x: UnsafePointer<Float>,
                            _ xs: UnsafePointer<Float>, tokens T: Int, pool: ThreadPool) {
    let n = plan.rows, k = plan.cols, blocks = plan.blocks
    let chunks = (n + fewTokensRowsPerChunk - 1) / fewTokensRowsPerChunk
    pool.parallelFor(chunks) { ci in
      let r0 = ci * fewTokensRowsPerChunk, r1 = min(n, r0 + fewTokensRowsPerChunk)
      // The row's scales (times the lanes' factor) and its −(8 + zp) · s.
      withUnsafeTemporaryAllocation(of: Float.self, capacity: 2 * blocks) { buf in
        let sc = buf.baseAddress!, cs = sc + blocks
        for r in r0..<r1 {
          plan.rowScales(r, into: sc)
          plan.rowOffsets(r, into: cs)
          for g in 0..<blocks { cs[g] = (sc[g] * (1 / plan.int4Factor)) * cs[g] }
          var t0 = 0
          while t0 < T {
            @inline(__always) func tok(_ u: Int) -> Int { min(t0 + u, T - 1) }
            var tot: (SIMD8<Float>, SIMD8<Float>, SIMD8<Float>, SIMD8<Float>)
            if T - t0 <= 2 {
              // One or two tokens left: the 2-token tile (no wasted chains).
              let xt = (x + tok(0) * k, x + tok(1) * k)
              let two = plan.integerLanes
                ? int4Row2(QuantKernels.IntegerLanes.self, plan.row(r), xt, sc, blocks: blocks, group: plan.blockCols)
                : int4Row2(QuantKernels.SubnormalLanes.self, plan.row(r), xt, sc, blocks: blocks, group: plan.blockCols)
              tot = (two.0, two.1, two.1, two.1)
            } else {
              let xt = (x + tok(0) * k, x + tok(1) * k, x + tok(2) * k, x + tok(3) * k)
              tot = plan.integerLanes
                ? int4Row4(QuantKernels.IntegerLanes.self, plan.row(r), xt, sc, blocks: blocks, group: plan.blockCols)
                : int4Row4(QuantKernels.SubnormalLanes.self, plan.row(r), xt, sc, blocks: blocks, group: plan.blockCols)
            }
            for u in 0..<min(4, T - t0) {
              let t = t0 + u
              let total = u == 0 ? tot.0 : (u == 1 ? tot.1 : (u == 2 ? tot.2 : tot.3))
              y[t * ldy + r] = reduce8(total) + QuantKernels.int4Correction(cs, xs + t * blocks, groups: blocks)
            }
            t0 += 4
          }
        }
      }
    }
  }

  /// One packed row against 2 token rows: `int4Row4`'s sequence for each.
  @inline(__always)
  static func int4Row2<L: QuantKernels.Int4Lanes>(_: L.Type, _ p: UnsafeRawPointer, _ x: (UnsafePointer<Float>, UnsafePointer<Float>),
                                                  _ sc: UnsafePointer<Float>, blocks: Int, group g: Int) -> (SIMD8<Float>, SIMD8<Float>) {
    var t0 = SIMD8<Float>(), t1 = SIMD8<Float>()
    var c = 0
    for b in 0..<blocks {
      var a0 = SIMD8<Float>(), a1 = SIMD8<Float>()
      let end = c &+ g
      while c < end {
        let (lo, hi) = L.lanes(QuantKernels.int4Bytes(p + (c &>> 1)))
        a0.addProduct(loadX(x.0, c), lo); a0.addProduct(loadX(x.0, c &+ 8), hi)
        a1.addProduct(loadX(x.1, c), lo); a1.addProduct(loadX(x.1, c &+ 8), hi)
        c &+= 16
      }
      let s = SIMD8<Float>(repeating: sc[b])
      t0.addProduct(a0, s); t1.addProduct(a1, s)
    }
    return (t0, t1)
  }

  /// One packed row against 4 token rows: the 4 totals (before reduce8).
  @inline(__always)
  static func int4Row4<L: QuantKernels.Int4Lanes>(_: L.Type, _ p: UnsafeRawPointer,
                                                  _ x: (UnsafePointer<Float>, UnsafePointer<Float>, UnsafePointer<Float>, UnsafePointer<Float>),
                                                  _ sc: UnsafePointer<Float>, blocks: Int, group g: Int)
    -> (SIMD8<Float>, SIMD8<Float>, SIMD8<Float>, SIMD8<Float>) {
    var t0 = SIMD8<Float>(), t1 = SIMD8<Float>(), t2 = SIMD8<Float>(), t3 = SIMD8<Float>()
    var c = 0
    for b in 0..<blocks {
      var a0 = SIMD8<Float>(), a1 = SIMD8<Float>(), a2 = SIMD8<Float>(), a3 = SIMD8<Float>()
      let end = c &+ g
      while c < end {
        let (lo, hi) = L.lanes(QuantKernels.int4Bytes(p + (c &>> 1)))
        a0.addProduct(loadX(x.0, c), lo); a0.addProduct(loadX(x.0, c &+ 8), hi)
        a1.addProduct(loadX(x.1, c), lo); a1.addProduct(loadX(x.1, c &+ 8), hi)
        a2.addProduct(loadX(x.2, c), lo); a2.addProduct(loadX(x.2, c &+ 8), hi)
        a3.addProduct(loadX(x.3, c), lo); a3.addProduct(loadX(x.3, c &+ 8), hi)
        c &+= 16
      }
      let s = SIMD8<Float>(repeating: sc[b])
      t0.addProduct(a0, s); t1.addProduct(a1, s); t2.addProduct(a2, s); t3.addProduct(a3, s)
    }
    return (t0, t1, t2, t3)
  }
}
