// Quantized prefill tiles: a chunk's rows decoded once per token block into float scratch, then
// 2 rows x 6 tokens register tiles (QuantLinear.swift has the element sequences).

import CGLM5Kernels
import GLM5Core
#if canImport(Glibc)
import Glibc
#endif

extension Kernels {
  // MARK: - Prefill: rows decoded once per token block into float scratch, 2 × 6 register tiles

  /// One worker's scratch of the prefill path for T tokens (T ≤ quantTokenBlock), carved in
  /// order: INT4 the C tiles' floats; FP8 the row scales of a chunk, parked accumulators, the
  /// chunk's decoded rows over one K-block.
  struct PrefillScratch {
    let floats: UnsafeMutablePointer<Float>
    let state: UnsafeMutablePointer<SIMD8<Float>>
    let wbuf: UnsafeMutablePointer<Float>

    init(_ plan: QuantKernels.Plan, tokens T: Int, _ cv: inout Carver) {
      if plan.kind == .int4 {
        let count = withUnsafePointer(to: plan.int4) {
          plan.avx512 ? glm5k_int4_prefill_scratch($0, Int64(T)) : glm5k_int4_prefill_scratch_avx2($0, Int64(T))
        }
        floats = cv.floats(Int(count))
        state = cv.take(0, SIMD8<Float>.self)
        wbuf = cv.floats(0)
      } else {
        let rows = quantRowsPerChunk
        floats = cv.floats(rows * plan.blocks)
        state = cv.take((rows / 2) * ((T + 5) / 6) * 12, SIMD8<Float>.self)
        wbuf = cv.floats(rows * max(1, quantKBlock / plan.blockCols) * plan.blockCols + 16)
      }
    }

    /// Bytes of one worker's scratch, a multiple of 64.
    static func bytes(_ plan: QuantKernels.Plan, tokens T: Int) -> Int {
      var cv = Carver.measuring()
      _ = PrefillScratch(plan, tokens: T, &cv)
      return (cv.used + 63) & ~63
    }
  }

  /// Workers of the prefill path (each takes one PrefillScratch).
  static func prefillWorkers(_ plan: QuantKernels.Plan, pool: ThreadPool) -> Int {
    let rowsPer = plan.kind == .int4 ? int4PrefillRows(avx512: plan.avx512) : quantRowsPerChunk
    return min(pool.threads, (plan.rows + rowsPer - 1) / rowsPer)
  }

  /// Tokens [0, T) (T ≤ quantTokenBlock), x already in the lanes' column order. `scratch` holds
  /// prefillWorkers regions of PrefillScratch.bytes each.
  static func quantPrefill(_ plan: QuantKernels.Plan, _ y: UnsafeMutablePointer<Float>, ldy: Int, _ x: UnsafePointer<Float>,
                           ldx: Int, tokens T: Int, scratch: UnsafeMutableRawPointer, pool: ThreadPool) {
    let int4 = plan.kind == .int4
    let perWorker = PrefillScratch.bytes(plan, tokens: T)
    func region(_ wk: Int) -> PrefillScratch {
      var cv = Carver(base: scratch + wk * perWorker, limit: perWorker)
      return PrefillScratch(plan, tokens: T, &cv)
    }
    if int4 {
      int4PrefillC(plan, y, ldy: ldy, x, tokens: T, avx512: plan.avx512, scratch: { region($0).floats }, pool: pool)
      return
    }
    let n = plan.rows, blocks = plan.blocks, bc = plan.blockCols
    let chunkRows = quantRowsPerChunk
    let chunks = (n + chunkRows - 1) / chunkRows
    let tTiles = (T + 5) / 6
    let kbBlocks = max(1, quantKBlock / bc)
    let scratchCols = kbBlocks * bc
    let workers = prefillWorkers(plan, pool: pool)
    pool.parallelFor(workers) { wk in
      let r = region(wk)
      let sc = r.floats, state = r.state, wbuf = r.wbuf
      var ci = wk
      while ci < chunks {
        let r0 = ci * chunkRows, r1 = min(n, r0 + chunkRows)
        let rows = r1 - r0
        let rt1 = (rows + 1) / 2
        for i in 0..<rows { plan.rowScales(r0 + i, into: sc + i * blocks) }
        state.initialize(repeating: SIMD8<Float>(), count: rt1 * tTiles * 12)
        var b0 = 0
        while b0 < blocks {
          let b1 = min(blocks, b0 + kbBlocks)
          let cBase = b0 * bc
          // The chunk's rows over this K-block, decoded once, then every token tile × row tile.
          for i in 0..<rows { plan.decodeBlocks(r0 + i, b0, b1, into: wbuf + i * scratchCols) }
          for tt in 0..<tTiles {
            let t = 6 * tt
            // Tokens past T repeat the last real one; their results are dropped.
            @inline(__always) func xp(_ u: Int) -> UnsafePointer<Float> { x + min(t + u, T - 1) * ldx }
            let x0 = xp(0), x1 = xp(1), x2 = xp(2), x3 = xp(3), x4 = xp(4), x5 = xp(5)
            for rt in 0..<rt1 {
              // Rows past r1 repeat the last real row; their results are dropped.
              let ia = 2 * rt, ib = min(2 * rt + 1, rows - 1)
              quantTile2x6(plan, wbuf + ia * scratchCols - cBase, wbuf + ib * scratchCols - cBase, x0, x1, x2, x3, x4, x5,
                           b0, b1, sc + ia * blocks, sc + ib * blocks, state + 12 * (rt * tTiles + tt))
            }
          }
          b0 = b1
        }
        for rt in 0..<rt1 {
          for j in 0..<min(2, r1 - r0 - 2 * rt) {
            let i = 2 * rt + j
            for t in 0..<T {
              let total = reduce8(state[12 * (rt * tTiles + t / 6) + 6 * j + t % 6])
              // INT4 elements end at reduce8 (glm5_kernels.h); FP8 adds its scalar tails.
              y[t * ldy + r0 + i] = int4 ? total : total + plan.tail(x + t * ldx, row: r0 + i)
            }
          }
        }
        ci += workers
      }
    }
  }

  /// INT4 in C: AVX-512F 3-pair × 4-token tiles over 24-row work items or AVX2 2-row × 6-token
  /// tiles over 16-row ones (int4_prefill_avx512.c, int4_prefill_avx2.c; the same bits as the tiles below), x
  /// in the lanes' order with ldx = cols; worker w's floats are scratch(w).
  static func int4PrefillC(_ plan: QuantKernels.Plan, _ y: UnsafeMutablePointer<Float>, ldy: Int, _ x: UnsafePointer<Float>,
                           tokens T: Int, avx512: Bool, scratch: (Int) -> UnsafeMutablePointer<Float>, pool: ThreadPool) {
    let n = plan.rows, rowsPer = int4PrefillRows(avx512: avx512)
    let chunks = (n + rowsPer - 1) / rowsPer
    let workers = prefillWorkers(plan, pool: pool)
    withUnsafePointer(to: plan.int4) { w in
      pool.parallelFor(workers) { wk in
        let scratch = scratch(wk)
        var ci = wk
        while ci < chunks {
          let r0 = ci * rowsPer, r1 = min(n, r0 + rowsPer)
          // This worker's next item, when it is a whole one (the kernel prefetches as many rows as
          // this item has, so none past the matrix).
          let nextRow = (ci + workers) * rowsPer
          let next = ci + workers < chunks && nextRow + (r1 - r0) <= n ? Int64(nextRow) : -1
          if avx512 {
            glm5k_int4_prefill_avx512(w, Int64(r0), Int64(r1), x, Int64(T), y, Int64(ldy), scratch, next)
          } else {
            glm5k_int4_prefill_avx2(w, Int64(r0), Int64(r1), x, Int64(T), y, Int64(ldy), scratch, next)
          }
          ci += workers
        }
      }
    }
  }

  /// Output rows per work item of the INT4 prefill tiles in C (the kernels' most).
  static func int4PrefillRows(avx512: Bool) -> Int { avx512 ? 24 : 16 }

  /// Blocks [b0, b1) of 2 decoded rows (w0, w1 indexed by column) × 6 tokens: per block 12 fresh
  /// FMA chains over the block's 8-column steps, then acc[6j + u] = fma(chain, splat(scale_j), acc[6j + u]).
  @inline(__always)
  static func quantTile2x6(_ plan: QuantKernels.Plan, _ w0: UnsafePointer<Float>, _ w1: UnsafePointer<Float>,
                           _ x0: UnsafePointer<Float>, _ x1: UnsafePointer<Float>, _ x2: UnsafePointer<Float>,
                           _ x3: UnsafePointer<Float>, _ x4: UnsafePointer<Float>, _ x5: UnsafePointer<Float>,
                           _ b0: Int, _ b1: Int, _ s0: UnsafePointer<Float>, _ s1: UnsafePointer<Float>,
                           _ acc: UnsafeMutablePointer<SIMD8<Float>>) {
    let bc = plan.blockCols
    for b in b0..<b1 {
      var a00 = SIMD8<Float>(), a01 = SIMD8<Float>(), a02 = SIMD8<Float>(), a03 = SIMD8<Float>(), a04 = SIMD8<Float>(), a05 = SIMD8<Float>()
      var a10 = SIMD8<Float>(), a11 = SIMD8<Float>(), a12 = SIMD8<Float>(), a13 = SIMD8<Float>(), a14 = SIMD8<Float>(), a15 = SIMD8<Float>()
      var i = b &* bc
      let end = i &+ 8 &* plan.steps(b)
      while i < end {
        let v0 = loadX(w0, i), v1 = loadX(w1, i)
        let u0 = loadX(x0, i)
        a00.addProduct(u0, v0); a10.addProduct(u0, v1)
        let u1 = loadX(x1, i)
        a01.addProduct(u1, v0); a11.addProduct(u1, v1)
        let u2 = loadX(x2, i)
        a02.addProduct(u2, v0); a12.addProduct(u2, v1)
        let u3 = loadX(x3, i)
        a03.addProduct(u3, v0); a13.addProduct(u3, v1)
        let u4 = loadX(x4, i)
        a04.addProduct(u4, v0); a14.addProduct(u4, v1)
        let u5 = loadX(x5, i)
        a05.addProduct(u5, v0); a15.addProduct(u5, v1)
        i &+= 8
      }
      let c0 = SIMD8<Float>(repeating: s0[b]), c1 = SIMD8<Float>(repeating: s1[b])
      acc[0].addProduct(a00, c0); acc[1].addProduct(a01, c0); acc[2].addProduct(a02, c0)
      acc[3].addProduct(a03, c0); acc[4].addProduct(a04, c0); acc[5].addProduct(a05, c0)
      acc[6].addProduct(a10, c1); acc[7].addProduct(a11, c1); acc[8].addProduct(a12, c1)
      acc[9].addProduct(a13, c1); acc[10].addProduct(a14, c1); acc[11].addProduct(a15, c1)
    }
  }

}
