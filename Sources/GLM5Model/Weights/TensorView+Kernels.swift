// How bound checkpoint tensors are handed to the kernels.

import GLM5Core
import GLM5Kernels

extension TensorView {
  /// A small tensor (norm weight, bias) as Float values.
  public func floats() -> [Float] {
    guard let data else { return [] }
    return WeightMatrix(dtype: dtype, data: data, rows: 1, cols: count).toFloats()
  }
}

extension Linear {
  /// The weight as the kernels read it, in place, in its stored format.
  public var kernel: LinearWeight {
    let base = weight.data ?? UnsafeRawPointer(bitPattern: 0x10)!  // empty tensors are never read
    switch format {
    case .float:
      return .float(WeightMatrix(dtype: weight.dtype, data: base, rows: outFeatures, cols: inFeatures))
    case .fp8Block(let s, let br, let bc):
      return .fp8(data: base, rows: outFeatures, cols: inFeatures, scales: s.data!.assumingMemoryBound(to: Float.self),
                  blockRows: br, blockCols: bc, rowOffset: 0)
    case .int4Group(let s, let zp, let g):
      return .int4(packed: base, rows: outFeatures, cols: inFeatures, scales: s.data!, scaleDType: s.dtype,
                   zeroPoints: zp?.data, group: g, totalRows: outFeatures, rowOffset: 0)
    }
  }
}

extension Linear {
  /// Row r dequantized to Float, whatever the format (the plain reference path: quantizer,
  /// tests; not the compute kernels).   out [inFeatures]
  public func copyRowAsFloat(_ r: Int, to out: UnsafeMutablePointer<Float>) {
    guard let w = weight.data else { return }
    switch format {
    case .float:
      WeightMatrix(dtype: weight.dtype, data: w, rows: outFeatures, cols: inFeatures).copyRow(r, to: out)
    case .fp8Block(let s, let br, let bc):
      let sCols = (inFeatures + bc - 1) / bc
      let sp = s.data!
      for c in 0..<inFeatures {
        let scale = sp.loadUnaligned(fromByteOffset: 4 * ((r / br) * sCols + c / bc), as: Float.self)
        out[c] = f8e4m3ToFloat(w.load(fromByteOffset: r * inFeatures + c, as: UInt8.self)) * scale
      }
    case .int4Group(let s, let zp, let g):
      for c in 0..<inFeatures {
        out[c] = Int4.dequantize(packed: w, row: r, col: c, cols: inFeatures, scale: s.data!, scaleDType: s.dtype,
                                 group: g, zeroPacked: zp?.data)
      }
    }
  }
}
