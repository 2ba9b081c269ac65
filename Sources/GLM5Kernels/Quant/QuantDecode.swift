// Quantized decode tiles: one token, 8 rows `spread` apart (FP8; INT4 groups >= 64) or two 4-row
// tiles (INT4 g32), each row one FMA chain (QuantLinear.swift has the element sequences).

import GLM5Core
#if canImport(Glibc)
import Glibc
#endif

extension Kernels {
  // MARK: - Decode: one token, 8 rows `spread` apart per tile (as Linear.swift's decodeChunk)

  /// `xs`: INT4 group sums of x (`prepareInt4`).
  static func quantDecode(_ plan: QuantKernels.Plan, _ y: UnsafeMutablePointer<Float>, _ x: UnsafePointer<Float>,
                          _ xs: UnsafePointer<Float>?, pool: ThreadPool) {
    let n = plan.rows
    // Rows of at most 4 cache lines: adjacent rows (one sequential stream) measured 20% faster
    // than spaced ones (1024 × 256 INT4 and FP8, from DRAM); longer rows as the float kernel.
    let spread = plan.rowBytes <= 256 ? 1 : decodeSpread(rowBytes: plan.rowBytes, rows: n)
    let chunkRows = 8 * spread
    let chunks = (n + chunkRows - 1) / chunkRows
    let blocks = plan.blocks
    let zp = plan.zeroPoints != nil
    pool.parallelFor(chunks) { ci in
      let r0 = ci * chunkRows, r1 = min(n, r0 + chunkRows)
      // INT4 zero points: the tile's per-group −(8 + zp); the totals, zero-point parts and scratch.
      withUnsafeTemporaryAllocation(of: Float.self, capacity: zp ? 8 * blocks : 1) { buf in
        withUnsafeTemporaryAllocation(of: SIMD8<Float>.self, capacity: 26) { tot in
          let offs: UnsafeMutablePointer<Float>? = zp ? buf.baseAddress! : nil
          let totals = tot.baseAddress!
          let zpart = UnsafeMutableRawPointer(totals + 8).assumingMemoryBound(to: Float.self)
          var g = r0
          while g < r1 {
            for phase in 0..<spread {
              let r = g + phase
              if r >= r1 { break }
              // Rows past r1 repeat the last real row; their results are dropped.
              @inline(__always) func rr(_ j: Int) -> Int { min(r + spread * j, r1 - 1) }
              let m = (r1 - r + spread - 1) / spread  // real rows in this tile
              switch plan.kind {
              case .fp8:
                fp8Tile8(plan, rr(0), rr(1), rr(2), rr(3), rr(4), rr(5), rr(6), rr(7), x, totals)
              case .int4:
                let rows = (rr(0), rr(1), rr(2), rr(3), rr(4), rr(5), rr(6), rr(7))
                let o: UnsafeMutablePointer<Float>? = offs
                if let offs { for j in 0..<8 { plan.rowOffsets(rr(j), into: offs + j * blocks) } }
                @inline(__always) func tiles<L: QuantKernels.Int4Lanes>(_ l: L.Type) {
                  if plan.blockCols >= int4Tile8Group {
                    int4Tile8(l, plan, rows, x, xs!, o, totals, zpart, totals + 10)
                  } else {
                    int4Tile4(l, plan, (rows.0, rows.1, rows.2, rows.3), x, xs!, o, totals, zpart, totals + 10)
                    int4Tile4(l, plan, (rows.4, rows.5, rows.6, rows.7), x, xs!, o.map { $0 + 4 * blocks }, totals + 4, zpart + 4,
                              totals + 10)
                  }
                }
                if plan.integerLanes { tiles(QuantKernels.IntegerLanes.self) } else { tiles(QuantKernels.SubnormalLanes.self) }
              }
              for j in 0..<min(m, 8) {
                y[rr(j)] = reduce8(totals[j]) + (plan.kind == .int4 ? zpart[j] : plan.tail(x, row: rr(j)))
              }
            }
            g += chunkRows
          }
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

  /// INT4, one token (x prepared, xs its group sums), 8 rows (−(8 + zp) of row j at j·blocks, or
  /// −8 for all): per group 8 FMA chains over its 16-column steps (even then odd lanes), then
  /// totals[j] = fma(chain j, splat(scale), totals[j]) (totals parked in L1); the zero-point parts
  /// into zpart[j] (`int4Correction`). The group scales are widened 8 groups at a time inside the
  /// loop (their loads overlap the work), which also advances the zero-point chains (in L1).
  /// Each row's step is written load → FMA(even) → FMA(odd): decoding both halves first made
  /// LLVM rotate the chains through the FMA's 213 form and spill them (30% slower).
  /// `tmp`: 16 vectors of scratch.
  @inline(__always)
  static func int4Tile8<L: QuantKernels.Int4Lanes>(_: L.Type, _ plan: QuantKernels.Plan, _ r: (Int, Int, Int, Int, Int, Int, Int, Int),
                        _ x: UnsafePointer<Float>, _ xs: UnsafePointer<Float>, _ offs: UnsafePointer<Float>?,
                        _ totals: UnsafeMutablePointer<SIMD8<Float>>, _ zpart: UnsafeMutablePointer<Float>,
                        _ tmp: UnsafeMutablePointer<SIMD8<Float>>) {
    let p0 = plan.row(r.0), p1 = plan.row(r.1), p2 = plan.row(r.2), p3 = plan.row(r.3)
    let p4 = plan.row(r.4), p5 = plan.row(r.5), p6 = plan.row(r.6), p7 = plan.row(r.7)
    let blocks = plan.blocks, g = plan.blockCols
    let s = plan.int4Scales!, dt = plan.scaleDType
    @inline(__always) func si(_ j: Int) -> Int {
      switch j {
      case 0: return plan.int4ScaleIndex(r.0)
      case 1: return plan.int4ScaleIndex(r.1)
      case 2: return plan.int4ScaleIndex(r.2)
      case 3: return plan.int4ScaleIndex(r.3)
      case 4: return plan.int4ScaleIndex(r.4)
      case 5: return plan.int4ScaleIndex(r.5)
      case 6: return plan.int4ScaleIndex(r.6)
      default: return plan.int4ScaleIndex(r.7)
      }
    }
    let scl = tmp, zc = tmp + 8  // scales times int4Factor [8 × 8]; zero-point chains [8]
    let sp = UnsafeMutableRawPointer(scl).assumingMemoryBound(to: Float.self)
    let f = SIMD8<Float>(repeating: plan.int4Factor)
    let m8 = SIMD8<Float>(repeating: QuantKernels.int4Offset(0))
    for j in 0..<8 { totals[j] = SIMD8<Float>(); zc[j] = SIMD8<Float>() }
    let full = blocks & ~7
    var c = 0
    for b in 0..<blocks {
      let k = b & 7
      if k == 0 {
        if b < full {
          let xv = loadX(xs, b)
          for j in 0..<8 {
            let v = QuantKernels.scales8(s, dt, si(j) &+ b)
            scl[j] = v * f
            zc[j].addProduct(v * (offs.map { loadX($0, j &* blocks &+ b) } ?? m8), xv)
          }
        } else {
          let fs = plan.int4Factor
          for j in 0..<8 {
            for i in 0..<(blocks - b) { sp[8 * j + i] = QuantKernels.scale(s, dt, si(j) + b + i) * fs }
          }
        }
      }
      var a0 = SIMD8<Float>(), a1 = SIMD8<Float>(), a2 = SIMD8<Float>(), a3 = SIMD8<Float>()
      var a4 = SIMD8<Float>(), a5 = SIMD8<Float>(), a6 = SIMD8<Float>(), a7 = SIMD8<Float>()
      let end = c &+ g
      while c < end {
        let xa = loadX(x, c), xb = loadX(x, c &+ 8)
        let h = c &>> 1
        @inline(__always) func step(_ p: UnsafeRawPointer, _ a: inout SIMD8<Float>) {
          let (lo, hi) = L.lanes(QuantKernels.int4Bytes(p + h))
          a.addProduct(xa, lo)
          a.addProduct(xb, hi)
        }
        step(p0, &a0); step(p1, &a1); step(p2, &a2); step(p3, &a3)
        step(p4, &a4); step(p5, &a5); step(p6, &a6); step(p7, &a7)
        c &+= 16
      }
      totals[0].addProduct(a0, SIMD8<Float>(repeating: sp[k])); totals[1].addProduct(a1, SIMD8<Float>(repeating: sp[8 &+ k]))
      totals[2].addProduct(a2, SIMD8<Float>(repeating: sp[16 &+ k])); totals[3].addProduct(a3, SIMD8<Float>(repeating: sp[24 &+ k]))
      totals[4].addProduct(a4, SIMD8<Float>(repeating: sp[32 &+ k])); totals[5].addProduct(a5, SIMD8<Float>(repeating: sp[40 &+ k]))
      totals[6].addProduct(a6, SIMD8<Float>(repeating: sp[48 &+ k])); totals[7].addProduct(a7, SIMD8<Float>(repeating: sp[56 &+ k]))
    }
    // The zero-point parts: reduce8 of the chains, then the last groups one by one.
    for j in 0..<8 {
      var rr = reduce8(zc[j])
      for b in full..<blocks {
        let o = offs.map { $0[j * blocks + b] } ?? QuantKernels.int4Offset(0)
        rr = rr.addingProduct(QuantKernels.scale(s, dt, si(j) + b) * o, xs[b])
      }
      zpart[j] = rr
    }
  }

  /// `int4Tile8` for 4 rows with the totals in registers (better for small groups, where the
  /// per-group fold of parked totals would cost as much as the group's steps).
  @inline(__always)
  static func int4Tile4<L: QuantKernels.Int4Lanes>(_: L.Type, _ plan: QuantKernels.Plan, _ r: (Int, Int, Int, Int),
                        _ x: UnsafePointer<Float>, _ xs: UnsafePointer<Float>, _ offs: UnsafePointer<Float>?,
                        _ totals: UnsafeMutablePointer<SIMD8<Float>>, _ zpart: UnsafeMutablePointer<Float>,
                        _ tmp: UnsafeMutablePointer<SIMD8<Float>>) {
    let p0 = plan.row(r.0), p1 = plan.row(r.1), p2 = plan.row(r.2), p3 = plan.row(r.3)
    let blocks = plan.blocks, g = plan.blockCols
    let s = plan.int4Scales!, dt = plan.scaleDType
    @inline(__always) func si(_ j: Int) -> Int {
      switch j {
      case 0: return plan.int4ScaleIndex(r.0)
      case 1: return plan.int4ScaleIndex(r.1)
      case 2: return plan.int4ScaleIndex(r.2)
      default: return plan.int4ScaleIndex(r.3)
      }
    }
    let scl = tmp, zc = tmp + 4  // scales times int4Factor [4 × 8]; zero-point chains [4]
    let sp = UnsafeMutableRawPointer(scl).assumingMemoryBound(to: Float.self)
    let f = SIMD8<Float>(repeating: plan.int4Factor)
    let m8 = SIMD8<Float>(repeating: QuantKernels.int4Offset(0))
    for j in 0..<4 { zc[j] = SIMD8<Float>() }
    var t0 = SIMD8<Float>(), t1 = SIMD8<Float>(), t2 = SIMD8<Float>(), t3 = SIMD8<Float>()
    let full = blocks & ~7
    var c = 0
    for b in 0..<blocks {
      let k = b & 7
      if k == 0 {
        if b < full {
          let xv = loadX(xs, b)
          for j in 0..<4 {
            let v = QuantKernels.scales8(s, dt, si(j) &+ b)
            scl[j] = v * f
            zc[j].addProduct(v * (offs.map { loadX($0, j &* blocks &+ b) } ?? m8), xv)
          }
        } else {
          let fs = plan.int4Factor
          for j in 0..<4 {
            for i in 0..<(blocks - b) { sp[8 * j + i] = QuantKernels.scale(s, dt, si(j) + b + i) * fs }
          }
        }
      }
      var a0 = SIMD8<Float>(), a1 = SIMD8<Float>(), a2 = SIMD8<Float>(), a3 = SIMD8<Float>()
      let end = c &+ g
      while c < end {
        let xa = loadX(x, c), xb = loadX(x, c &+ 8)
        let h = c &>> 1
        @inline(__always) func step(_ p: UnsafeRawPointer, _ a: inout SIMD8<Float>) {
          let (lo, hi) = L.lanes(QuantKernels.int4Bytes(p + h))
          a.addProduct(xa, lo)
          a.addProduct(xb, hi)
        }
        step(p0, &a0); step(p1, &a1); step(p2, &a2); step(p3, &a3)
        c &+= 16
      }
      t0.addProduct(a0, SIMD8<Float>(repeating: sp[k])); t1.addProduct(a1, SIMD8<Float>(repeating: sp[8 &+ k]))
      t2.addProduct(a2, SIMD8<Float>(repeating: sp[16 &+ k])); t3.addProduct(a3, SIMD8<Float>(repeating: sp[24 &+ k]))
    }
    totals[0] = t0; totals[1] = t1; totals[2] = t2; totals[3] = t3
    for j in 0..<4 {
      var rr = reduce8(zc[j])
      for b in full..<blocks {
        let o = offs.map { $0[j * blocks + b] } ?? QuantKernels.int4Offset(0)
        rr = rr.addingProduct(QuantKernels.scale(s, dt, si(j) + b) * o, xs[b])
      }
      zpart[j] = rr
    }
  }

}
