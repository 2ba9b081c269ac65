// The fast Linear kernels: y = x · Wᵀ reading F32, BF16 or F16 weights in place and converting
// in registers.
//
// Row invariance (a design rule, not an accident): every output element y[t, n] is one dot
// product computed with the same sequence of operations whatever the number of tokens in the
// call, the thread count or the position of (t, n) in its tile. Decoding one token, prefilling
// many, and scoring a whole sequence therefore give bitwise-identical rows; batched decode of many
// sessions will inherit the same property.
//
// The sequence, for y[t, n] = Σ_k x[t, k] · W[n, k] with K8 = K rounded down to a multiple of 8:
//   acc = 0 (8 lanes);  for b in 0, 8, …, K8 - 8:  acc = fma(x[t, b..<b+8], W[n, b..<b+8], acc)
//   s   = ((acc[0] + acc[4]) + (acc[2] + acc[6])) + ((acc[1] + acc[5]) + (acc[3] + acc[7]))   (`reduce8`)
//   for k in K8..<K:  s = fma(x[t, k], W[n, k], s)
// Tiles only decide how many such accumulators live in registers at once (8 rows × 1 token for
// decode, 2 rows × 6 tokens for prefill), and K-blocking only parks them in memory between blocks
// (a store and a load are exact). Edge tiles recompute a real row or token in the unused slots
// and drop the copies, so every element still sees exactly the sequence above.
//
// Shapes: y [T, N] (row stride ldy), x [T, K] (row stride ldx), W [N, K] (row stride rowStride).
//
// Performance (x86-64-v3, 16 ymm registers; idle machine; KernelBench prints current figures):
//   decode  8 rows × 1 token, the rows `decodeSpread` apart (streams ≥ 64 KiB apart): 8 FMA
//           chains, x loaded once per 8 rows. From DRAM 21-27 GB/s on one core, 33-40 on two
//           (the DRAM limit), for row lengths from 2 KiB to 24 KiB.
//   prefill 2 rows × 6 tokens: 12 accumulators + 2 weight vectors + 1 token vector = 15 registers
//           (3 × 4 spilled and ran 30% slower); 60-78 GFLOP/s per core, ~150 on two: OpenBLAS
//           sgemm's level for F32, a little more for BF16/F16 (half the bytes per weight).
// One 8-lane accumulator per element (the previous kernel used 2 × 16 lanes) is what lets 12
// elements share the register file; 2 accumulators per element measured slower for decode.

import GLM5Core

public enum Kernels {
  /// Output rows per work item when T > 1: a multiple of every tile height (8, 4, 3, 2); one token
  /// alone uses 8 · decodeSpread rows. Never derived from the thread count (results do not depend
  /// on the split anyway; this keeps the work split stable).
  static let rowsPerChunk = 24
  /// K-block of the prefill path (a multiple of 8): bounds the working set of a chunk (24 weight
  /// rows and 6 token rows of this many columns) to L2 whatever K is. Measured neutral for K ≤ 6144.
  static let kBlock = 2048

  /// y[t, n] = Σ_k x[t, k] · W[n, k]
  public static func linear(_ y: UnsafeMutablePointer<Float>, ldy: Int, _ x: UnsafePointer<Float>, ldx: Int,
                            tokens: Int, _ w: WeightMatrix, pool: ThreadPool) {
    if w.rows == 0 || tokens <= 0 { return }
    switch w.dtype {
    case .f32: linearImpl(F32Loader.self, y, ldy, x, ldx, tokens, w, pool)
    case .bf16: linearImpl(BF16Loader.self, y, ldy, x, ldx, tokens, w, pool)
    case .f16: linearImpl(F16Loader.self, y, ldy, x, ldx, tokens, w, pool)
    default:
      for t in 0..<tokens { for r in 0..<w.rows { y[t * ldy + r] = .nan } }
    }
  }

  /// Σ_k x[k] · w[k] for one stored weight row: the element sequence of `linear` (header).
  public static func dot(_ x: UnsafePointer<Float>, _ w: UnsafeRawPointer, _ k: Int, _ dtype: DType) -> Float {
    switch dtype {
    case .f32: return dot1(F32Loader.self, x, w, k)
    case .bf16: return dot1(BF16Loader.self, x, w, k)
    case .f16: return dot1(F16Loader.self, x, w, k)
    default: return .nan
    }
  }

  // MARK: - Weight loaders (hand-inlined lane conversions: the stdlib SIMD conversion
  // initialisers stay out-of-line calls, toolchain.md §5)

  protocol WeightLoader {
    /// Bytes per element.
    static var size: Int { get }
    /// Elements i..<i+8 of row p as Float.
    static func load8(_ p: UnsafeRawPointer, _ i: Int) -> SIMD8<Float>
    /// Element i of row p as Float.
    static func load1(_ p: UnsafeRawPointer, _ i: Int) -> Float
  }

  enum F32Loader: WeightLoader {
    static var size: Int { 4 }
    @inline(__always) static func load8(_ p: UnsafeRawPointer, _ i: Int) -> SIMD8<Float> {
      p.loadUnaligned(fromByteOffset: 4 &* i, as: SIMD8<Float>.self)
    }
    @inline(__always) static func load1(_ p: UnsafeRawPointer, _ i: Int) -> Float {
      p.loadUnaligned(fromByteOffset: 4 &* i, as: Float.self)
    }
  }

  enum BF16Loader: WeightLoader {
    static var size: Int { 2 }
    @inline(__always) static func load8(_ p: UnsafeRawPointer, _ i: Int) -> SIMD8<Float> {
      let h = p.loadUnaligned(fromByteOffset: 2 &* i, as: SIMD8<UInt16>.self)
      let u = SIMD8<UInt32>(UInt32(h[0]), UInt32(h[1]), UInt32(h[2]), UInt32(h[3]),
                            UInt32(h[4]), UInt32(h[5]), UInt32(h[6]), UInt32(h[7])) &<< 16
      return unsafeBitCast(u, to: SIMD8<Float>.self)
    }
    @inline(__always) static func load1(_ p: UnsafeRawPointer, _ i: Int) -> Float {
      Float(bitPattern: UInt32(p.loadUnaligned(fromByteOffset: 2 &* i, as: UInt16.self)) << 16)
    }
  }

  enum F16Loader: WeightLoader {
    static var size: Int { 2 }
    @inline(__always) static func load8(_ p: UnsafeRawPointer, _ i: Int) -> SIMD8<Float> {
      let h = p.loadUnaligned(fromByteOffset: 2 &* i, as: SIMD8<Float16>.self)
      return SIMD8<Float>(Float(h[0]), Float(h[1]), Float(h[2]), Float(h[3]),
                          Float(h[4]), Float(h[5]), Float(h[6]), Float(h[7]))
    }
    @inline(__always) static func load1(_ p: UnsafeRawPointer, _ i: Int) -> Float {
      Float(p.loadUnaligned(fromByteOffset: 2 &* i, as: Float16.self))
    }
  }

  @inlinable @inline(__always)
  static func loadX(_ x: UnsafePointer<Float>, _ i: Int) -> SIMD8<Float> {
    UnsafeRawPointer(x + i).loadUnaligned(as: SIMD8<Float>.self)
  }

  /// The fixed 8 → 1 reduction of the header.
  @inlinable @inline(__always)
  static func reduce8(_ a: SIMD8<Float>) -> Float {
    let h = SIMD4<Float>(a[0], a[1], a[2], a[3]) + SIMD4<Float>(a[4], a[5], a[6], a[7])
    return (h[0] + h[2]) + (h[1] + h[3])
  }

  /// reduce8 then the scalar tail k8..<k: the end of every element's sequence.
  @inline(__always)
  static func finish<L: WeightLoader>(_: L.Type, _ acc: SIMD8<Float>, _ x: UnsafePointer<Float>, _ w: UnsafeRawPointer,
                                      _ k8: Int, _ k: Int) -> Float {
    var s = reduce8(acc)
    var i = k8
    while i < k {
      s = s.addingProduct(x[i], L.load1(w, i))
      i += 1
    }
    return s
  }

  /// One element alone (the 1 × 1 tile).
  @inline(__always)
  static func dot1<L: WeightLoader>(_: L.Type, _ x: UnsafePointer<Float>, _ w: UnsafeRawPointer, _ k: Int) -> Float {
    let k8 = k & ~7
    var a = SIMD8<Float>()
    var i = 0
    while i < k8 {
      a.addProduct(loadX(x, i), L.load8(w, i))
      i += 8
    }
    return finish(L.self, a, x, w, k8, k)
  }

  // MARK: - linear

  @inline(__always)
  static func linearImpl<L: WeightLoader>(_: L.Type, _ y: UnsafeMutablePointer<Float>, _ ldy: Int, _ x: UnsafePointer<Float>,
                                          _ ldx: Int, _ T: Int, _ w: WeightMatrix, _ pool: ThreadPool) {
    let n = w.rows
    // Tiny problems are not worth waking a second thread.
    let p = Double(n) * Double(w.cols) * Double(T) < 32768 ? ThreadPool.serial : pool
    if T == 1 {
      let spread = decodeSpread(rowBytes: w.rowStride * L.size, rows: n)
      let chunkRows = 8 * spread
      let chunks = (n + chunkRows - 1) / chunkRows
      p.parallelFor(chunks) { c in
        let r0 = c * chunkRows
        decodeChunk(L.self, y, x, w, r0, min(n, r0 + chunkRows), spread)
      }
      return
    }
    let chunks = (n + rowsPerChunk - 1) / rowsPerChunk
    // Tokens in tiles of 6; the remainder in one narrower tile (a remainder of 5 rides in a
    // 6-wide tile with a repeated token), a single token in the 8-row decode tile.
    let rem = T % 6
    let main = rem == 5 ? T : T - rem
    p.parallelFor(chunks) { c in
      let r0 = c * rowsPerChunk
      let r1 = min(n, r0 + rowsPerChunk)
      if main > 0 { prefillChunk(L.self, 2, 6, y, ldy, x, ldx, 0, main, w, r0, r1) }
      switch T - main {
      case 4: prefillChunk(L.self, 2, 4, y, ldy, x, ldx, main, T, w, r0, r1)
      case 3: prefillChunk(L.self, 3, 3, y, ldy, x, ldx, main, T, w, r0, r1)
      case 2: prefillChunk(L.self, 4, 2, y, ldy, x, ldx, main, T, w, r0, r1)
      case 1: decodeChunk(L.self, y + main * ldy, x + main * ldx, w, r0, r1, 1)
      default: break
      }
    }
  }

  /// Row spacing of the decode tile: its 8 rows are taken `spread` rows apart so that the 8
  /// weight streams are at least 64 KiB apart (measured on Zen 4 from DRAM, one thread, BF16:
  /// adjacent rows 10-17 GB/s for rows of 2-4 KiB, 17-20 for longer ones; 64 KiB apart 20-21 for
  /// every row length; the prefetcher handles far-apart streams better). Capped so that a matrix
  /// still splits into at least 8 chunks of 8·spread rows for the threads.
  static func decodeSpread(rowBytes: Int, rows: Int) -> Int {
    let s = (65536 + max(1, rowBytes) - 1) / max(1, rowBytes)
    return max(1, min(s, 32, rows / 64))
  }

  /// One token, rows r0..<r1 in tiles of 8 rows `spread` apart (rows g + p + spread·j, j < 8, for
  /// each group g of 8·spread rows and phase p < spread): 8 independent FMA chains hide the
  /// latency while the weights stream from memory, and x is loaded once per 8 rows.
  @inline(__always)
  static func decodeChunk<L: WeightLoader>(_: L.Type, _ y: UnsafeMutablePointer<Float>, _ x: UnsafePointer<Float>,
                                           _ w: WeightMatrix, _ r0: Int, _ r1: Int, _ spread: Int) {
    let k = w.cols
    let k8 = k & ~7
    let stride = w.rowStride * L.size
    var g = r0
    while g < r1 {
      for phase in 0..<spread {
        let r = g + phase
        if r >= r1 { break }
        // Rows past r1 repeat the last real row; their results are dropped.
        @inline(__always) func row(_ j: Int) -> UnsafeRawPointer { w.data + min(r + spread * j, r1 - 1) * stride }
        let p0 = row(0), p1 = row(1), p2 = row(2), p3 = row(3), p4 = row(4), p5 = row(5), p6 = row(6), p7 = row(7)
        var a0 = SIMD8<Float>(), a1 = SIMD8<Float>(), a2 = SIMD8<Float>(), a3 = SIMD8<Float>()
        var a4 = SIMD8<Float>(), a5 = SIMD8<Float>(), a6 = SIMD8<Float>(), a7 = SIMD8<Float>()
        var i = 0
        while i < k8 {
          let xv = loadX(x, i)
          a0.addProduct(xv, L.load8(p0, i))
          a1.addProduct(xv, L.load8(p1, i))
          a2.addProduct(xv, L.load8(p2, i))
          a3.addProduct(xv, L.load8(p3, i))
          a4.addProduct(xv, L.load8(p4, i))
          a5.addProduct(xv, L.load8(p5, i))
          a6.addProduct(xv, L.load8(p6, i))
          a7.addProduct(xv, L.load8(p7, i))
          i += 8
        }
        let m = (r1 - r + spread - 1) / spread  // real rows in this tile
        y[r] = finish(L.self, a0, x, p0, k8, k)
        if m > 1 { y[r + spread] = finish(L.self, a1, x, p1, k8, k) }
        if m > 2 { y[r + 2 * spread] = finish(L.self, a2, x, p2, k8, k) }
        if m > 3 { y[r + 3 * spread] = finish(L.self, a3, x, p3, k8, k) }
        if m > 4 { y[r + 4 * spread] = finish(L.self, a4, x, p4, k8, k) }
        if m > 5 { y[r + 5 * spread] = finish(L.self, a5, x, p5, k8, k) }
        if m > 6 { y[r + 6 * spread] = finish(L.self, a6, x, p6, k8, k) }
        if m > 7 { y[r + 7 * spread] = finish(L.self, a7, x, p7, k8, k) }
      }
      g += 8 * spread
    }
  }

  /// Tokens t0..<t1, rows r0..<r1 (at most rowsPerChunk) in RH-row × TW-token register tiles
  /// (a tile shape the switch below knows), over K-blocks, accumulators parked in `state` between
  /// blocks. Tokens past t1 and rows past r1 repeat the last real one; their results are dropped.
  @inline(__always)
  static func prefillChunk<L: WeightLoader>(_: L.Type, _ RH: Int, _ TW: Int, _ y: UnsafeMutablePointer<Float>, _ ldy: Int,
                                            _ x: UnsafePointer<Float>, _ ldx: Int, _ t0: Int, _ t1: Int,
                                            _ w: WeightMatrix, _ r0: Int, _ r1: Int) {
    let k = w.cols
    let k8 = k & ~7
    let stride = w.rowStride * L.size
    let rowTiles = (r1 - r0 + RH - 1) / RH
    let per = RH * TW
    withUnsafeTemporaryAllocation(of: SIMD8<Float>.self, capacity: per * rowTiles) { buf in
      let state = buf.baseAddress!
      var t = t0
      while t < t1 {
        @inline(__always) func xp(_ u: Int) -> UnsafePointer<Float> { x + min(t + u, t1 - 1) * ldx }
        state.initialize(repeating: SIMD8<Float>(), count: per * rowTiles)
        var kb = 0
        while kb < k8 {
          let ke = min(k8, kb + kBlock)
          for rt in 0..<rowTiles {
            let r = r0 + RH * rt
            @inline(__always) func wp(_ j: Int) -> UnsafeRawPointer { w.data + min(r + j, r1 - 1) * stride }
            let acc = state + per * rt
            switch (RH, TW) {
            case (2, 6): tile2x6(L.self, wp(0), wp(1), xp(0), xp(1), xp(2), xp(3), xp(4), xp(5), kb, ke, acc)
            case (2, 4): tile2x4(L.self, wp(0), wp(1), xp(0), xp(1), xp(2), xp(3), kb, ke, acc)
            case (3, 3): tile3x3(L.self, wp(0), wp(1), wp(2), xp(0), xp(1), xp(2), kb, ke, acc)
            default: tile4x2(L.self, wp(0), wp(1), wp(2), wp(3), xp(0), xp(1), kb, ke, acc)
            }
          }
          kb = ke
        }
        let tm = min(TW, t1 - t)
        for rt in 0..<rowTiles {
          let r = r0 + RH * rt
          for j in 0..<min(RH, r1 - r) {
            let wr = w.data + (r + j) * stride
            for u in 0..<tm {
              y[(t + u) * ldy + r + j] = finish(L.self, state[per * rt + TW * j + u], x + (t + u) * ldx, wr, k8, k)
            }
          }
        }
        t += TW
      }
    }
  }

  // Register tiles: acc[TW·j + u] = fma(x_u[i..<i+8], w_j[i..<i+8], acc[TW·j + u]) for i = kb, kb+8, …
  // < ke. With AVX2's 16 registers: RH·TW accumulators + RH weight vectors + 1 token vector ≤ 16
  // (3 × 4 spilled and ran 30% slower; 2 × 6 matches OpenBLAS sgemm on one core).

  @inline(__always)
  static func tile2x6<L: WeightLoader>(_: L.Type, _ w0: UnsafeRawPointer, _ w1: UnsafeRawPointer,
                              _ x0: UnsafePointer<Float>, _ x1: UnsafePointer<Float>, _ x2: UnsafePointer<Float>, _ x3: UnsafePointer<Float>, _ x4: UnsafePointer<Float>, _ x5: UnsafePointer<Float>,
                              _ kb: Int, _ ke: Int, _ acc: UnsafeMutablePointer<SIMD8<Float>>) {
    var a00 = acc[0], a01 = acc[1], a02 = acc[2], a03 = acc[3], a04 = acc[4], a05 = acc[5]
    var a10 = acc[6], a11 = acc[7], a12 = acc[8], a13 = acc[9], a14 = acc[10], a15 = acc[11]
    var i = kb
    while i < ke {
      let v0 = L.load8(w0, i), v1 = L.load8(w1, i)
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
      i += 8
    }
    acc[0] = a00; acc[1] = a01; acc[2] = a02; acc[3] = a03; acc[4] = a04; acc[5] = a05
    acc[6] = a10; acc[7] = a11; acc[8] = a12; acc[9] = a13; acc[10] = a14; acc[11] = a15
  }

  @inline(__always)
  static func tile2x4<L: WeightLoader>(_: L.Type, _ w0: UnsafeRawPointer, _ w1: UnsafeRawPointer,
                              _ x0: UnsafePointer<Float>, _ x1: UnsafePointer<Float>, _ x2: UnsafePointer<Float>, _ x3: UnsafePointer<Float>,
                              _ kb: Int, _ ke: Int, _ acc: UnsafeMutablePointer<SIMD8<Float>>) {
    var a00 = acc[0], a01 = acc[1], a02 = acc[2], a03 = acc[3]
    var a10 = acc[4], a11 = acc[5], a12 = acc[6], a13 = acc[7]
    var i = kb
    while i < ke {
      let v0 = L.load8(w0, i), v1 = L.load8(w1, i)
      let u0 = loadX(x0, i)
      a00.addProduct(u0, v0); a10.addProduct(u0, v1)
      let u1 = loadX(x1, i)
      a01.addProduct(u1, v0); a11.addProduct(u1, v1)
      let u2 = loadX(x2, i)
      a02.addProduct(u2, v0); a12.addProduct(u2, v1)
      let u3 = loadX(x3, i)
      a03.addProduct(u3, v0); a13.addProduct(u3, v1)
      i += 8
    }
    acc[0] = a00; acc[1] = a01; acc[2] = a02; acc[3] = a03
    acc[4] = a10; acc[5] = a11; acc[6] = a12; acc[7] = a13
  }

  @inline(__always)
  static func tile3x3<L: WeightLoader>(_: L.Type, _ w0: UnsafeRawPointer, _ w1: UnsafeRawPointer, _ w2: UnsafeRawPointer,
                              _ x0: UnsafePointer<Float>, _ x1: UnsafePointer<Float>, _ x2: UnsafePointer<Float>,
                              _ kb: Int, _ ke: Int, _ acc: UnsafeMutablePointer<SIMD8<Float>>) {
    var a00 = acc[0], a01 = acc[1], a02 = acc[2]
    var a10 = acc[3], a11 = acc[4], a12 = acc[5]
    var a20 = acc[6], a21 = acc[7], a22 = acc[8]
    var i = kb
    while i < ke {
      let v0 = L.load8(w0, i), v1 = L.load8(w1, i), v2 = L.load8(w2, i)
      let u0 = loadX(x0, i)
      a00.addProduct(u0, v0); a10.addProduct(u0, v1); a20.addProduct(u0, v2)
      let u1 = loadX(x1, i)
      a01.addProduct(u1, v0); a11.addProduct(u1, v1); a21.addProduct(u1, v2)
      let u2 = loadX(x2, i)
      a02.addProduct(u2, v0); a12.addProduct(u2, v1); a22.addProduct(u2, v2)
      i += 8
    }
    acc[0] = a00; acc[1] = a01; acc[2] = a02
    acc[3] = a10; acc[4] = a11; acc[5] = a12
    acc[6] = a20; acc[7] = a21; acc[8] = a22
  }

  @inline(__always)
  static func tile4x2<L: WeightLoader>(_: L.Type, _ w0: UnsafeRawPointer, _ w1: UnsafeRawPointer, _ w2: UnsafeRawPointer, _ w3: UnsafeRawPointer,
                              _ x0: UnsafePointer<Float>, _ x1: UnsafePointer<Float>,
                              _ kb: Int, _ ke: Int, _ acc: UnsafeMutablePointer<SIMD8<Float>>) {
    var a00 = acc[0], a01 = acc[1]
    var a10 = acc[2], a11 = acc[3]
    var a20 = acc[4], a21 = acc[5]
    var a30 = acc[6], a31 = acc[7]
    var i = kb
    while i < ke {
      let v0 = L.load8(w0, i), v1 = L.load8(w1, i), v2 = L.load8(w2, i), v3 = L.load8(w3, i)
      let u0 = loadX(x0, i)
      a00.addProduct(u0, v0); a10.addProduct(u0, v1); a20.addProduct(u0, v2); a30.addProduct(u0, v3)
      let u1 = loadX(x1, i)
      a01.addProduct(u1, v0); a11.addProduct(u1, v1); a21.addProduct(u1, v2); a31.addProduct(u1, v3)
      i += 8
    }
    acc[0] = a00; acc[1] = a01
    acc[2] = a10; acc[3] = a11
    acc[4] = a20; acc[5] = a21
    acc[6] = a30; acc[7] = a31
  }

  // MARK: - linearTransposed

  /// y[t, k] = Σ_n x[t, n] · W[n, k]: multiply by the transpose of a [N, K] weight (MLA absorption:
  /// queries into the latent space). Row-invariant like `linear`: each y[t, k] starts at 0 and
  /// takes y = fma(x[t, n], W[n, k], y) for n = 0, 1, …, N-1, whatever the tile it falls in.
  public static func linearTransposed(_ y: UnsafeMutablePointer<Float>, ldy: Int, _ x: UnsafePointer<Float>, ldx: Int,
                                      tokens: Int, _ w: WeightMatrix) {
    if tokens <= 0 || w.cols == 0 { return }
    switch w.dtype {
    case .f32: transposedImpl(F32Loader.self, y, ldy, x, ldx, tokens, w)
    case .bf16: transposedImpl(BF16Loader.self, y, ldy, x, ldx, tokens, w)
    case .f16: transposedImpl(F16Loader.self, y, ldy, x, ldx, tokens, w)
    default:
      for t in 0..<tokens { for c in 0..<w.cols { y[t * ldy + c] = .nan } }
    }
  }

  @inline(__always)
  static func transposedImpl<L: WeightLoader>(_: L.Type, _ y: UnsafeMutablePointer<Float>, _ ldy: Int, _ x: UnsafePointer<Float>,
                                              _ ldx: Int, _ T: Int, _ w: WeightMatrix) {
    let nRows = w.rows, k = w.cols
    let k8 = k & ~7
    let stride = w.rowStride * L.size
    let base = w.data
    var t = 0
    // Tiles of 4 tokens while at least 2 remain (a short tile repeats its last real token, and
    // the copies store the same bits to that token's row again), then a last single token.
    while T - t >= 2 {
      let real = min(4, T - t)
      @inline(__always) func xp(_ u: Int) -> UnsafePointer<Float> { x + (t + min(u, real - 1)) * ldx }
      @inline(__always) func yp(_ u: Int) -> UnsafeMutablePointer<Float> { y + (t + min(u, real - 1)) * ldy }
      let x0 = xp(0), x1 = xp(1), x2 = xp(2), x3 = xp(3)
      let y0 = yp(0), y1 = yp(1), y2 = yp(2), y3 = yp(3)
      var c = 0
      // 4 tokens × 16 columns in registers over all n.
      while c + 16 <= k8 {
        var a00 = SIMD8<Float>(), a01 = SIMD8<Float>(), a10 = SIMD8<Float>(), a11 = SIMD8<Float>()
        var a20 = SIMD8<Float>(), a21 = SIMD8<Float>(), a30 = SIMD8<Float>(), a31 = SIMD8<Float>()
        for r in 0..<nRows {
          let p = base + r * stride
          let v0 = L.load8(p, c), v1 = L.load8(p, c + 8)
          let b0 = SIMD8<Float>(repeating: x0[r]), b1 = SIMD8<Float>(repeating: x1[r])
          let b2 = SIMD8<Float>(repeating: x2[r]), b3 = SIMD8<Float>(repeating: x3[r])
          a00.addProduct(b0, v0); a01.addProduct(b0, v1)
          a10.addProduct(b1, v0); a11.addProduct(b1, v1)
          a20.addProduct(b2, v0); a21.addProduct(b2, v1)
          a30.addProduct(b3, v0); a31.addProduct(b3, v1)
        }
        store8(y0 + c, a00); store8(y0 + c + 8, a01)
        store8(y1 + c, a10); store8(y1 + c + 8, a11)
        store8(y2 + c, a20); store8(y2 + c + 8, a21)
        store8(y3 + c, a30); store8(y3 + c + 8, a31)
        c += 16
      }
      while c < k8 {
        var a0 = SIMD8<Float>(), a1 = SIMD8<Float>(), a2 = SIMD8<Float>(), a3 = SIMD8<Float>()
        for r in 0..<nRows {
          let v = L.load8(base + r * stride, c)
          a0.addProduct(SIMD8<Float>(repeating: x0[r]), v)
          a1.addProduct(SIMD8<Float>(repeating: x1[r]), v)
          a2.addProduct(SIMD8<Float>(repeating: x2[r]), v)
          a3.addProduct(SIMD8<Float>(repeating: x3[r]), v)
        }
        store8(y0 + c, a0); store8(y1 + c, a1); store8(y2 + c, a2); store8(y3 + c, a3)
        c += 8
      }
      for u in 0..<real { transposedTail(L.self, y + (t + u) * ldy, x + (t + u) * ldx, w, k8) }
      t += real
    }
    while t < T {
      let xt = x + t * ldx, yt = y + t * ldy
      // One token: y[0..<K8] lives in L1 and each weight row is read in one sequential pass
      // (y = fma(x[r], W[r, :], y)). Measured faster from DRAM than keeping y in registers over
      // several interleaved row streams: the rows are short (K = Rkv) and one stream prefetches best.
      var c = 0
      while c < k8 { store8(yt + c, SIMD8<Float>()); c += 8 }
      for r in 0..<nRows {
        let p = base + r * stride
        let b = SIMD8<Float>(repeating: xt[r])
        c = 0
        while c < k8 {
          var a = loadX(UnsafePointer(yt), c)
          a.addProduct(b, L.load8(p, c))
          store8(yt + c, a)
          c += 8
        }
      }
      transposedTail(L.self, yt, xt, w, k8)
      t += 1
    }
  }

  /// Columns k8..<K of one token, one scalar chain each (the same fma sequence as a lane).
  @inline(__always)
  static func transposedTail<L: WeightLoader>(_: L.Type, _ y: UnsafeMutablePointer<Float>, _ x: UnsafePointer<Float>,
                                              _ w: WeightMatrix, _ k8: Int) {
    let stride = w.rowStride * L.size
    for c in k8..<w.cols {
      var s: Float = 0
      for r in 0..<w.rows { s = s.addingProduct(x[r], L.load1(w.data + r * stride, c)) }
      y[c] = s
    }
  }

  @inlinable @inline(__always)
  static func store8(_ p: UnsafeMutablePointer<Float>, _ v: SIMD8<Float>) {
    UnsafeMutableRawPointer(p).storeBytes(of: v, as: SIMD8<Float>.self)
  }
}
