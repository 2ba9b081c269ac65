// INT4 with groups that are not a multiple of 16 columns (odd test shapes): column order.

import GLM5Core
#if canImport(Glibc)
import Glibc
#endif

extension QuantKernels {
  // MARK: - Generic INT4 (groups not a multiple of 16 columns: odd test shapes)
  //
  // Column order; per group an 8-lane FMA chain over its whole 8-column steps, then
  // total8 = fma(chain, splat(scale), total8); per group a scalar fma chain over the remaining
  // columns, tail = fma(chain, scale, tail); y = reduce8(total8) + tail. Weights u − 8 − zp.

  @inline(__always)
  static func dotInt4Generic(_ x: UnsafePointer<Float>, packed: UnsafeRawPointer, cols: Int, group: Int,
                             scales: UnsafePointer<Float>, zeros: UnsafePointer<Float>) -> Float {
    var total8 = SIMD8<Float>()
    var tail: Float = 0
    for g in 0..<(cols / group) {
      var acc = SIMD8<Float>()
      var c = g * group
      let end = c + group
      let zp = zeros[g]
      while c + 8 <= end {
        let w = c % 8 == 0 ? int4x8(packed.loadUnaligned(fromByteOffset: 4 * (c / 8), as: UInt32.self))
                           : SIMD8<Float>((0..<8).map { Float(Int4.nibble(packed, c + $0) - 8) })
        acc.addProduct(UnsafeRawPointer(x + c).loadUnaligned(as: SIMD8<Float>.self), w - SIMD8<Float>(repeating: zp))
        c += 8
      }
      let scale = scales[g]
      total8.addProduct(acc, SIMD8<Float>(repeating: scale))
      var t: Float = 0
      while c < end {
        t = t.addingProduct(x[c], Float(Int4.nibble(packed, c) - 8) - zp)
        c += 1
      }
      tail = tail.addingProduct(t, scale)
    }
    return reduce8(total8) + tail
  }
}

extension Kernels {
  // MARK: - Generic INT4 (groups not a multiple of 16 columns)

  static func int4GenericLinear(_ y: UnsafeMutablePointer<Float>, ldy: Int, _ x: UnsafePointer<Float>, ldx: Int,
                                tokens: Int, _ w: LinearWeight, pool: ThreadPool) {
    guard case .int4(let pk, let n, let cols, let s, let sd, let z, let g, _, let off) = w else { return }
    let words = (cols + 7) / 8
    let groups = cols / g
    let chunk = 16
    let chunks = (n + chunk - 1) / chunk
    pool.parallelFor(chunks) { ci in
      let r0 = ci * chunk, r1 = min(n, r0 + chunk)
      withUnsafeTemporaryAllocation(of: Float.self, capacity: 2 * max(1, groups)) { buf in
        let sbuf = buf.baseAddress!, zbuf = sbuf + max(1, groups)
        for r in r0..<r1 {
          let row = pk + r * 4 * words
          for gi in 0..<groups {
            sbuf[gi] = QuantKernels.scale(s, sd, (off + r) * groups + gi)
            zbuf[gi] = Float(QuantKernels.zeroPoint(z, row: off + r, group: gi, groups: groups))
          }
          for t in 0..<tokens {
            y[t * ldy + r] = QuantKernels.dotInt4Generic(x + t * ldx, packed: row, cols: cols, group: g, scales: sbuf, zeros: zbuf)
          }
        }
      }
    }
  }
}
