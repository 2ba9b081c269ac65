// INT4 group quantization in the compressed-tensors `pack-quantized` layout
// (glm5-architecture.md §9.1), as the quantizer writes it and the reference unpacker reads it:
//   q ∈ [−8, 7] stored as u = q + 8; column j of a row in bits [4(j mod 8), 4(j mod 8)+3] of word j/8
//   symmetric:  scale = max|w| / 7.5,            zp = 0
//   asymmetric: scale = (max(w,0) − min(w,0)) / 15, zp = clamp(−8 − round(min(w,0) / scale), −8, 7)
//   q = clamp(round_half_even(w / scale) + zp, −8, 7);   W ≈ (q − zp) · scale
// (compressed-tensors `calculate_qparams` / `quantize` with a min-max observer). The scale used
// to round is the stored one (already rounded to the checkpoint's scale dtype).

import GLM5Core

public enum Int4 {
  /// Quantize one row of `count` values in groups of `group`.
  ///   packed [ceil(count/8)] words, scales [count/group], zeros [count/group] (0 if symmetric)
  /// `storeScale` rounds a scale to the dtype it will be stored in; `eps` replaces a zero scale.
  public static func quantizeRow(_ w: UnsafePointer<Float>, count: Int, group: Int, symmetric: Bool,
                                 storeScale: (Float) -> Float, eps: Float,
                                 packed: UnsafeMutablePointer<UInt32>, scales: UnsafeMutablePointer<Float>,
                                 zeros: UnsafeMutablePointer<Int32>) {
    for i in 0..<((count + 7) / 8) { packed[i] = 0 }
    for g in 0..<(count / group) {
      let x = w + g * group
      var mn: Float = 0, mx: Float = 0
      for i in 0..<group { mn = min(mn, x[i]); mx = max(mx, x[i]) }
      var scale: Float
      var zp: Float = 0
      if symmetric {
        scale = max(-mn, mx) / 7.5
      } else {
        scale = (mx - mn) / 15
      }
      if scale == 0 { scale = eps }
      scale = storeScale(scale)
      if !symmetric {
        zp = min(max(-8 - (mn / scale).rounded(.toNearestOrEven), -8), 7)
      }
      scales[g] = scale
      zeros[g] = Int32(zp)
      for i in 0..<group {
        let q = min(max((x[i] / scale).rounded(.toNearestOrEven) + zp, -8), 7)
        let u = UInt32(Int32(q) + 8)
        let j = g * group + i
        packed[j / 8] |= u << (4 * UInt32(j % 8))
      }
    }
  }

  /// The stored nibble of column j of a packed row, as u ∈ [0, 15].
  @inline(__always) public static func nibble(_ packed: UnsafeRawPointer, _ j: Int) -> Int32 {
    let word = packed.loadUnaligned(fromByteOffset: 4 * (j / 8), as: UInt32.self)
    return Int32((word >> (4 * UInt32(j % 8))) & 0xF)
  }

  /// Reference unpacker: W[r, c] = (u − 8 − zp) · scale for one element.
  ///   packed [rows, ceil(cols/8)] I32, scale [rows, cols/group] (any float dtype),
  ///   zeroPacked [ceil(rows/8), cols/group] I32 packed along rows (or nil)
  public static func dequantize(packed: UnsafeRawPointer, row r: Int, col c: Int, cols: Int,
                                scale: UnsafeRawPointer, scaleDType: DType, group: Int,
                                zeroPacked: UnsafeRawPointer?) -> Float {
    let words = (cols + 7) / 8
    let u = nibble(packed + 4 * r * words, c)
    let groups = cols / group
    let si = r * groups + c / group
    let s: Float
    switch scaleDType {
    case .f32: s = scale.loadUnaligned(fromByteOffset: 4 * si, as: Float.self)
    case .bf16: s = bf16ToFloat(scale.loadUnaligned(fromByteOffset: 2 * si, as: UInt16.self))
    default: s = f16ToFloat(scale.loadUnaligned(fromByteOffset: 2 * si, as: UInt16.self))
    }
    var zp: Int32 = 0
    if let z = zeroPacked {
      let word = z.loadUnaligned(fromByteOffset: 4 * ((r / 8) * groups + c / group), as: UInt32.self)
      zp = Int32((word >> (4 * UInt32(r % 8))) & 0xF) - 8
    }
    return Float(u - 8 - zp) * s
  }
}
