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
