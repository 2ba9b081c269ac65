// Quantized decode tiles: one token. FP8: 8 rows `spread` apart, each row one FMA chain; INT4:
// the C kernel's 4- and 8-row tiles (QuantLinear.swift has the element sequences).

import CGLM5Kernels
import GLM5Core
#if canImport(Glibc)
import Glibc
#endif

extension Kernels {
  // MARK: - Decode: one token, 8 rows `spread` apart per tile (as Linear.swift's decodeChunk)

  /// One token; x prepared (`QuantKernels.prepare`); INT4: x in glm5k_int4_decode_prepare's `form`.
  static func quantDecode(_ plan: QuantKernels.Plan, _ y: UnsafeMutablePointer<Float>, _ x: UnsafePointer<Float>, form: Int32 = 0,
                          pool: ThreadPool) {
    let n = plan.rows
    if plan.kind == .int4 {
      // C tiles (glm5k_int4_decode) over one contiguous range of rows per worker (a multiple of
      // 8 rows), so each tile prefetches the next; the split does not change any row's bits.
      let perItem = min(int4DecodeRowsMax, max(int4DecodeRows, ((n + pool.threads - 1) / pool.threads + 7) / 8 * 8))
      let chunks = (n + perItem - 1) / perItem
      withUnsafePointer(to: plan.int4) { w in
        pool.parallelFor(chunks) { ci in
          let r0 = ci * perItem, r1 = min(n, r0 + perItem)
          glm5k_int4_decode(w, Int64(r0), Int64(r1), x, form, y)
        }
      }
      return
    }
    // Rows of at most 4 cache lines: adjacent rows (one sequential stream) measured 20% faster
    // than spaced ones (1024 × 256 FP8, from DRAM); longer rows as the float kernel.
    let spread = plan.rowBytes <= 256 ? 1 : decodeSpread(rowBytes: plan.rowBytes, rows: n)
    let chunkRows = 8 * spread
    let chunks = (n + chunkRows - 1) / chunkRows
    pool.parallelFor(chunks) { ci in
      let r0 = ci * chunkRows, r1 = min(n, r0 + chunkRows)
      withUnsafeTemporaryAllocation(of: SIMD8<Float>.self, capacity: 8) { tot in
        let totals = tot.baseAddress!
        var g = r0
        while g < r1 {
          for phase in 0..<spread {
            let r = g + phase
            if r >= r1 { break }
            // Rows past r1 repeat the last real row; their results are dropped.
            @inline(__always) func rr(_ j: Int) -> Int { min(r + spread * j, r1 - 1) }
            let m = (r1 - r + spread - 1) / spread  // real rows in this tile
            fp8Tile8(plan, rr(0), rr(1), rr(2), rr(3), rr(4), rr(5), rr(6), rr(7), x, totals)
            for j in 0..<min(m, 8) { y[rr(j)] = reduce8(totals[j]) + plan.tail(x, row: rr(j)) }
          }
          g += chunkRows
        }
      }
    }
  }

  /// FP8, one token, 8 rows: per block 8 FMA chains over its 8-column steps (x loaded once per
  /// step for the 8 rows), then totals[j] = fma(chain j, splat(scale), totals[j]).
  @inline(__always)
  static func fp8Tile8(_ plan: QuantKernels.Plan, _ r0: Int, _ r1: Int, _ r2: Int, _ r3: Int, _ r4: Int, _ r5: Int, _ r6: Int,
                       _ r7: Int, _ x: UnsafePointer<Float>, _ totals: UnsafeMutablePointer<SIMD8<Float>>) {
    let p0 = plan.row(r0), p1 = plan.row(r1), p2 = plan.row(r2), p3 = plan.row(r3)
    let p4 = plan.row(r4), p5 = plan.row(r5), p6 = plan.row(r6), p7 = plan.row(r7)
    let s0 = plan.fp8ScaleRow(r0), s1 = plan.fp8ScaleRow(r1), s2 = plan.fp8ScaleRow(r2), s3 = plan.fp8ScaleRow(r3)
    let s4 = plan.fp8ScaleRow(r4), s5 = plan.fp8ScaleRow(r5), s6 = plan.fp8ScaleRow(r6), s7 = plan.fp8ScaleRow(r7)
    let f = QuantKernels.fp8Factor
    let blocks = plan.blocks, bc = plan.blockCols
    for j in 0..<8 { totals[j] = SIMD8<Float>() }
    for b in 0..<blocks {
      var a0 = SIMD8<Float>(), a1 = SIMD8<Float>(), a2 = SIMD8<Float>(), a3 = SIMD8<Float>()
      var a4 = SIMD8<Float>(), a5 = SIMD8<Float>(), a6 = SIMD8<Float>(), a7 = SIMD8<Float>()
      var c = b &* bc
      let end = c &+ 8 &* plan.steps(b)
      while c < end {
        let xv = loadX(x, c)
        a0.addProduct(xv, QuantKernels.fp8x8(p0 + c))
        a1.addProduct(xv, QuantKernels.fp8x8(p1 + c))
        a2.addProduct(xv, QuantKernels.fp8x8(p2 + c))
        a3.addProduct(xv, QuantKernels.fp8x8(p3 + c))
        a4.addProduct(xv, QuantKernels.fp8x8(p4 + c))
        a5.addProduct(xv, QuantKernels.fp8x8(p5 + c))
        a6.addProduct(xv, QuantKernels.fp8x8(p6 + c))
        a7.addProduct(xv, QuantKernels.fp8x8(p7 + c))
        c &+= 8
      }
      totals[0].addProduct(a0, SIMD8<Float>(repeating: s0[b] * f))
      totals[1].addProduct(a1, SIMD8<Float>(repeating: s1[b] * f))
      totals[2].addProduct(a2, SIMD8<Float>(repeating: s2[b] * f))
      totals[3].addProduct(a3, SIMD8<Float>(repeating: s3[b] * f))
      totals[4].addProduct(a4, SIMD8<Float>(repeating: s4[b] * f))
      totals[5].addProduct(a5, SIMD8<Float>(repeating: s5[b] * f))
      totals[6].addProduct(a6, SIMD8<Float>(repeating: s6[b] * f))
      totals[7].addProduct(a7, SIMD8<Float>(repeating: s7[b] * f))
    }
  }
}
