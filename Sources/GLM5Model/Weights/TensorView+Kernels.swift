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
  /// The [out, in] weight read in place.
  public var matrix: WeightMatrix {
    WeightMatrix(dtype: weight.dtype, data: weight.data ?? UnsafeRawPointer(bitPattern: 0x10)!, rows: outFeatures, cols: inFeatures)
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
