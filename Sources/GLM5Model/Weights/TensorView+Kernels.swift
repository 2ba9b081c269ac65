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
