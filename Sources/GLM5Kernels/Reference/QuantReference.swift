// The plain oracle for Linear layers of every weight format.

import GLM5Core
#if canImport(Glibc)
import Glibc
#endif

extension Reference {
  /// y = x · Wᵀ with W dequantized element by element (Double accumulation): the oracle for every
  /// format.
  public static func linear(_ y: UnsafeMutablePointer<Float>, ldy: Int, _ x: UnsafePointer<Float>, ldx: Int,
                            tokens: Int, _ w: LinearWeight) {
    let row = UnsafeMutablePointer<Float>.allocate(capacity: max(w.cols, 1))
    defer { row.deallocate() }
    for n in 0..<w.rows {
      w.dequantizeRow(n, into: row)
      for t in 0..<tokens {
        var s: Double = 0
        for k in 0..<w.cols { s += Double(x[t * ldx + k]) * Double(row[k]) }
        y[t * ldy + n] = Float(s)
      }
    }
  }
}

extension Reference {
  /// The INT4 kernels' element sequence (CGLM5Kernels/include/glm5_kernels.h) written out lane by
  /// lane in scalar code: y[t, n] for groups a multiple of 16 columns. The tiled kernels must give
  /// these bits exactly, for every tile, token count and thread count.
  public static func int4Sequence(_ y: UnsafeMutablePointer<Float>, ldy: Int, _ x: UnsafePointer<Float>, ldx: Int,
                                  tokens: Int, _ w: LinearWeight) {
    guard case .int4(let p, let n, let k, let s, let sd, let z, let g, _, let off) = w, g % 16 == 0, k % g == 0 else { return }
    let groups = k / g, words = (k + 7) / 8
    for r in 0..<n {
      let row = p + r * 4 * words
      for t in 0..<tokens {
        let xt = x + t * ldx
        var total = [Float](repeating: 0, count: 8)
        for gi in 0..<groups {
          let scale = QuantKernels.scale(s, sd, (off + r) * groups + gi)
          let zp = QuantKernels.zeroPoint(z, row: off + r, group: gi, groups: groups)
          @inline(__always) func q(_ c: Int) -> Float { Float(Int4.nibble(row, c) - 8 - zp) }
          var a = [Float](repeating: 0, count: 8)
          var c = gi * g
          while c < (gi + 1) * g {
            for i in 0..<8 {
              a[i] = a[i].addingProduct(xt[c + 2 * i], q(c + 2 * i))
              a[i] = a[i].addingProduct(xt[c + 2 * i + 1], q(c + 2 * i + 1))
            }
            c += 16
          }
          for i in 0..<8 { total[i] = total[i].addingProduct(a[i], scale) }
        }
        y[t * ldy + r] = ((total[0] + total[4]) + (total[2] + total[6])) + ((total[1] + total[5]) + (total[3] + total[7]))
      }
    }
  }
}
