// A weight matrix as the kernels see it: [rows = out, cols = in], row-major, in its stored dtype,
// read in place from the memory-mapped checkpoint (never converted to a resident fp32 copy).

import GLM5Core

public struct WeightMatrix: @unchecked Sendable {
  public let dtype: DType
  public let data: UnsafeRawPointer
  public let rows: Int
  public let cols: Int
  /// Elements between the starts of consecutive rows (>= cols).
  public let rowStride: Int

  public init(dtype: DType, data: UnsafeRawPointer, rows: Int, cols: Int, rowStride: Int? = nil) {
    precondition(dtype.isFloatWeight, "WeightMatrix holds F32, BF16 or F16")
    self.dtype = dtype
    self.data = data
    self.rows = rows
    self.cols = cols
    self.rowStride = rowStride ?? cols
  }

  /// Rows [start, start + count) as a matrix of their own (e.g. one head's slice of kv_b_proj).
  public func rows(_ start: Int, _ count: Int) -> WeightMatrix {
    WeightMatrix(dtype: dtype, data: data + start * rowStride * dtype.byteSize, rows: count, cols: cols, rowStride: rowStride)
  }

  /// Element (r, c) as Float (reference path; slow).
  @inline(__always) public func element(_ r: Int, _ c: Int) -> Float {
    let i = r * rowStride + c
    switch dtype {
    case .f32: return data.loadUnaligned(fromByteOffset: 4 * i, as: Float.self)
    case .bf16: return bf16ToFloat(data.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self))
    case .f16: return f16ToFloat(data.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self))
    default: return .nan
    }
  }

  /// Row r converted to Float into `out[0..<cols]`.
  public func copyRow(_ r: Int, to out: UnsafeMutablePointer<Float>) {
    let base = data + r * rowStride * dtype.byteSize
    switch dtype {
    case .f32:
      for c in 0..<cols { out[c] = base.loadUnaligned(fromByteOffset: 4 * c, as: Float.self) }
    case .bf16:
      for c in 0..<cols { out[c] = bf16ToFloat(base.loadUnaligned(fromByteOffset: 2 * c, as: UInt16.self)) }
    case .f16:
      for c in 0..<cols { out[c] = f16ToFloat(base.loadUnaligned(fromByteOffset: 2 * c, as: UInt16.self)) }
    default:
      for c in 0..<cols { out[c] = .nan }
    }
  }

  /// The whole matrix as a Float array (for small vectors: norm weights, biases).
  public func toFloats() -> [Float] {
    var out = [Float](repeating: 0, count: rows * cols)
    out.withUnsafeMutableBufferPointer { b in
      for r in 0..<rows { copyRow(r, to: b.baseAddress! + r * cols) }
    }
    return out
  }
}
