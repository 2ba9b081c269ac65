// The fast Linear kernels: y = x · Wᵀ reading F32, BF16 or F16 weights in place and converting
// in registers.
//
// Row invariance (a design rule, not an accident): every output element y[t, n] is one dot
// product computed by `dot` with the same sequence of operations whatever the number of tokens
// in the call, the thread count or the position of (t, n) in its tile. Decoding one token,
// prefilling many, and scoring a whole sequence therefore give bitwise-identical rows; batched
// decode of many sessions will inherit the same property.
//
// Shapes: y [T, N] (row stride ldy), x [T, K] (row stride ldx), W [N, K].

import GLM5Core

public enum Kernels {
  /// Output rows per work item. Fixed (not derived from the thread count) so that the split of
  /// work never changes results.
  static let rowsPerChunk = 16

  /// y[t, n] = Σ_k x[t, k] · W[n, k]
  public static func linear(_ y: UnsafeMutablePointer<Float>, ldy: Int, _ x: UnsafePointer<Float>, ldx: Int,
                            tokens: Int, _ w: WeightMatrix, pool: ThreadPool) {
    let n = w.rows
    if n == 0 || tokens == 0 { return }
    let chunks = (n + rowsPerChunk - 1) / rowsPerChunk
    // Tiny problems are not worth waking a second thread.
    let work = n * w.cols * tokens
    let p = work < 1 << 15 ? ThreadPool(threads: 1) : pool
    p.parallelFor(chunks) { c in
      let r0 = c * rowsPerChunk
      let r1 = min(n, r0 + rowsPerChunk)
      // Tokens are the inner loop: a weight row is read once from memory and reused from L1/L2
      // for every token of the call.
      for r in r0..<r1 {
        let row = w.data + r * w.rowStride * w.dtype.byteSize
        for t in 0..<tokens {
          y[t * ldy + r] = dot(x + t * ldx, row, w.cols, w.dtype)
        }
      }
    }
  }

  /// Σ_k x[k] · w[k] for one stored weight row. Fixed order: 16 lanes × 2 accumulators over
  /// blocks of 32, a fixed reduction, then the tail in order.
  @inline(__always)
  public static func dot(_ x: UnsafePointer<Float>, _ w: UnsafeRawPointer, _ k: Int, _ dtype: DType) -> Float {
    switch dtype {
    case .f32: return dotF32(x, w, k)
    case .bf16: return dotBF16(x, w, k)
    case .f16: return dotF16(x, w, k)
    default: return .nan
    }
  }

  @inline(__always)
  static func reduce(_ a: SIMD16<Float>, _ b: SIMD16<Float>) -> Float {
    let s = a + b
    let h8 = SIMD8<Float>(s[0], s[1], s[2], s[3], s[4], s[5], s[6], s[7])
      + SIMD8<Float>(s[8], s[9], s[10], s[11], s[12], s[13], s[14], s[15])
    let h4 = SIMD4<Float>(h8[0], h8[1], h8[2], h8[3]) + SIMD4<Float>(h8[4], h8[5], h8[6], h8[7])
    return (h4[0] + h4[2]) + (h4[1] + h4[3])
  }

  @inline(__always)
  static func loadX(_ x: UnsafePointer<Float>, _ i: Int) -> SIMD16<Float> {
    UnsafeRawPointer(x + i).loadUnaligned(as: SIMD16<Float>.self)
  }

  static func dotF32(_ x: UnsafePointer<Float>, _ w: UnsafeRawPointer, _ k: Int) -> Float {
    var a0 = SIMD16<Float>(), a1 = SIMD16<Float>()
    var i = 0
    while i + 32 <= k {
      a0.addProduct(loadX(x, i), w.loadUnaligned(fromByteOffset: 4 * i, as: SIMD16<Float>.self))
      a1.addProduct(loadX(x, i + 16), w.loadUnaligned(fromByteOffset: 4 * (i + 16), as: SIMD16<Float>.self))
      i += 32
    }
    var s = reduce(a0, a1)
    while i < k {
      s = s.addingProduct(x[i], w.loadUnaligned(fromByteOffset: 4 * i, as: Float.self))
      i += 1
    }
    return s
  }

  /// 16 BF16 values widened to Float by a shift (hand-inlined lanes: the stdlib SIMD conversion
  /// initialisers stay out-of-line calls, toolchain.md §5).
  @inline(__always)
  static func bf16x16(_ p: UnsafeRawPointer) -> SIMD16<Float> {
    let h = p.loadUnaligned(as: SIMD16<UInt16>.self)
    let u = SIMD16<UInt32>(UInt32(h[0]), UInt32(h[1]), UInt32(h[2]), UInt32(h[3]),
                           UInt32(h[4]), UInt32(h[5]), UInt32(h[6]), UInt32(h[7]),
                           UInt32(h[8]), UInt32(h[9]), UInt32(h[10]), UInt32(h[11]),
                           UInt32(h[12]), UInt32(h[13]), UInt32(h[14]), UInt32(h[15])) &<< 16
    return unsafeBitCast(u, to: SIMD16<Float>.self)
  }

  static func dotBF16(_ x: UnsafePointer<Float>, _ w: UnsafeRawPointer, _ k: Int) -> Float {
    var a0 = SIMD16<Float>(), a1 = SIMD16<Float>()
    var i = 0
    while i + 32 <= k {
      a0.addProduct(loadX(x, i), bf16x16(w + 2 * i))
      a1.addProduct(loadX(x, i + 16), bf16x16(w + 2 * (i + 16)))
      i += 32
    }
    var s = reduce(a0, a1)
    while i < k {
      s = s.addingProduct(x[i], bf16ToFloat(w.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self)))
      i += 1
    }
    return s
  }

  @inline(__always)
  static func f16x16(_ p: UnsafeRawPointer) -> SIMD16<Float> {
    let h = p.loadUnaligned(as: SIMD16<Float16>.self)
    return SIMD16<Float>(Float(h[0]), Float(h[1]), Float(h[2]), Float(h[3]),
                         Float(h[4]), Float(h[5]), Float(h[6]), Float(h[7]),
                         Float(h[8]), Float(h[9]), Float(h[10]), Float(h[11]),
                         Float(h[12]), Float(h[13]), Float(h[14]), Float(h[15]))
  }

  static func dotF16(_ x: UnsafePointer<Float>, _ w: UnsafeRawPointer, _ k: Int) -> Float {
    var a0 = SIMD16<Float>(), a1 = SIMD16<Float>()
    var i = 0
    while i + 32 <= k {
      a0.addProduct(loadX(x, i), f16x16(w + 2 * i))
      a1.addProduct(loadX(x, i + 16), f16x16(w + 2 * (i + 16)))
      i += 32
    }
    var s = reduce(a0, a1)
    while i < k {
      s = s.addingProduct(x[i], f16ToFloat(w.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self)))
      i += 1
    }
    return s
  }

  /// y[t, k] = Σ_n x[t, n] · W[n, k]: multiply by the transpose of a [N, K] weight (MLA absorption:
  /// queries into the latent space). Row-invariant like `linear`: each y row accumulates over n in
  /// order with the same lane-wise operations.
  public static func linearTransposed(_ y: UnsafeMutablePointer<Float>, ldy: Int, _ x: UnsafePointer<Float>, ldx: Int,
                                      tokens: Int, _ w: WeightMatrix) {
    let kDim = w.cols
    let row = UnsafeMutablePointer<Float>.allocate(capacity: kDim)
    defer { row.deallocate() }
    for t in 0..<tokens { for k in 0..<kDim { y[t * ldy + k] = 0 } }
    for n in 0..<w.rows {
      w.copyRow(n, to: row)
      for t in 0..<tokens {
        let a = x[t * ldx + n]
        let yt = y + t * ldy
        for k in 0..<kDim { yt[k] = yt[k].addingProduct(a, row[k]) }
      }
    }
  }
}
