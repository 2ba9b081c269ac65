// A Linear's weights re-encoded in memory, in one of the formats the loader reads: float (F32,
// BF16, F16), FP8 e4m3 with block scales, or compressed-tensors INT4. The quantizer (`glm5
// quantize`) writes what `int4` makes; a weight update converts a trainer's tensors with the
// same functions. Every buffer is allocated fallibly.
//
//   float  <m>.weight [out, in]
//   fp8    <m>.weight F8_E4M3 [out, in], <m>.weight_scale_inv F32 [ceil(out/Br), ceil(in/Bc)]:
//          scale = amax(|block|) / 448 (1 for an all-zero block), code = e4m3(w / scale)
//   int4   <m>.weight_packed I32 [out, in/8], <m>.weight_scale [out, in/G], <m>.weight_shape I64 [2],
//          and <m>.weight_zero_point I32 [ceil(out/8), in/G] when asymmetric (Int4.quantizeRow)

import GLM5Core
import GLM5Kernels
import GLM5Model

/// Encoded tensors of one Linear, by suffix ("weight", "weight_packed", ...).
struct EncodedTensor {
  let suffix: String
  let dtype: DType
  let shape: [Int]
  let data: ByteBuffer
}

enum WeightEncoding {
  /// Rows of `l` dequantized to float, one at a time: body(r, row [inFeatures]).
  static func eachRow(_ l: Linear, _ body: (Int, UnsafeMutablePointer<Float>) -> Void) throws(GLM5Error) {
    let row = try FloatBuffer(count: l.inFeatures, what: "a weight row")
    for r in 0..<l.outFeatures {
      l.copyRowAsFloat(r, to: row.pointer)
      body(r, row.pointer)
    }
  }

  /// `v` stored as a float dtype (F32, BF16 round-to-nearest-even, F16) at element i of `out`.
  @inline(__always) static func store(_ v: Float, _ dtype: DType, _ out: UnsafeMutableRawPointer, _ i: Int) {
    switch dtype {
    case .bf16: out.storeBytes(of: floatToBF16(v), toByteOffset: 2 * i, as: UInt16.self)
    case .f16: out.storeBytes(of: Float16(v).bitPattern, toByteOffset: 2 * i, as: UInt16.self)
    default: out.storeBytes(of: v, toByteOffset: 4 * i, as: Float.self)
    }
  }

  static func float(_ l: Linear, dtype: DType) throws(GLM5Error) -> [EncodedTensor] {
    guard dtype.isFloatWeight else { throw .internal("float encoding to \(dtype.name)") }
    let n = l.outFeatures * l.inFeatures
    let out = try ByteBuffer(count: n * dtype.byteSize, what: "an updated weight")
    let base = UnsafeMutableRawPointer(out.pointer)
    try eachRow(l) { r, row in for c in 0..<l.inFeatures { store(row[c], dtype, base, r * l.inFeatures + c) } }
    return [EncodedTensor(suffix: "weight", dtype: dtype, shape: [l.outFeatures, l.inFeatures], data: out)]
  }

  static func fp8(_ l: Linear, blockRows br: Int, blockCols bc: Int) throws(GLM5Error) -> [EncodedTensor] {
    let rows = l.outFeatures, cols = l.inFeatures
    let sr = (rows + br - 1) / br, sc = (cols + bc - 1) / bc
    let vals = try FloatBuffer(count: rows * cols, what: "an updated weight")
    try eachRow(l) { r, row in (vals.pointer + r * cols).update(from: row, count: cols) }
    let scales = try FloatBuffer(count: sr * sc, what: "FP8 block scales")
    for r in 0..<rows { for c in 0..<cols { let k = (r / br) * sc + c / bc; scales[k] = max(scales[k], abs(vals[r * cols + c])) } }
    for k in 0..<(sr * sc) { scales[k] = scales[k] > 0 ? scales[k] / 448 : 1 }
    let q = try ByteBuffer(count: rows * cols, what: "FP8 codes")
    for r in 0..<rows { for c in 0..<cols { q[r * cols + c] = floatToF8E4M3(vals[r * cols + c] / scales[(r / br) * sc + c / bc]) } }
    let sb = try ByteBuffer(count: 4 * sr * sc, what: "FP8 block scales")
    UnsafeMutableRawPointer(sb.pointer).copyMemory(from: scales.pointer, byteCount: 4 * sr * sc)
    return [EncodedTensor(suffix: "weight", dtype: .f8e4m3, shape: [rows, cols], data: q),
            EncodedTensor(suffix: "weight_scale_inv", dtype: .f32, shape: [sr, sc], data: sb)]
  }

  static func int4(_ l: Linear, group g: Int, symmetric: Bool, scaleDType: DType) throws(GLM5Error) -> [EncodedTensor] {
    let rows = l.outFeatures, cols = l.inFeatures, groups = cols / g
    let words = (cols + 7) / 8
    let packed = try Int32Buffer(count: rows * words, what: "INT4 codes")
    let scales = try FloatBuffer(count: rows * groups, what: "INT4 scales")
    let zeros = try Int32Buffer(count: rows * groups, what: "INT4 zero points")
    let storeScale: (Float) -> Float
    let eps: Float
    switch scaleDType {
    case .bf16: storeScale = { bf16ToFloat(floatToBF16($0)) }; eps = 0.0078125
    case .f16: storeScale = { Float(Float16($0)) }; eps = 0.0009765625
    default: storeScale = { $0 }; eps = Float.ulpOfOne
    }
    try eachRow(l) { r, row in
      UnsafeMutableRawPointer(packed.pointer + r * words).withMemoryRebound(to: UInt32.self, capacity: words) { pw in
        Int4.quantizeRow(row, count: cols, group: g, symmetric: symmetric, storeScale: storeScale, eps: eps,
                         packed: pw, scales: scales.pointer + r * groups, zeros: zeros.pointer + r * groups)
      }
    }
    let packedBytes = try ByteBuffer(count: 4 * rows * words, what: "INT4 codes")
    UnsafeMutableRawPointer(packedBytes.pointer).copyMemory(from: packed.pointer, byteCount: 4 * rows * words)
    let sb = try ByteBuffer(count: rows * groups * scaleDType.byteSize, what: "INT4 scales")
    for i in 0..<(rows * groups) { store(scales[i], scaleDType, UnsafeMutableRawPointer(sb.pointer), i) }
    let shape = try ByteBuffer(count: 16, what: "weight_shape")
    UnsafeMutableRawPointer(shape.pointer).storeBytes(of: Int64(rows), toByteOffset: 0, as: Int64.self)
    UnsafeMutableRawPointer(shape.pointer).storeBytes(of: Int64(cols), toByteOffset: 8, as: Int64.self)
    var out = [EncodedTensor(suffix: "weight_packed", dtype: .i32, shape: [rows, words], data: packedBytes),
               EncodedTensor(suffix: "weight_scale", dtype: scaleDType, shape: [rows, groups], data: sb),
               EncodedTensor(suffix: "weight_shape", dtype: .i64, shape: [2], data: shape)]
    if !symmetric {
      // zero points [rows, groups] as u = zp + 8, packed 8 rows per word along dim 0; the padding
      // rows of the last word hold 8 (zp 0), as compressed-tensors writes them.
      let zr = (rows + 7) / 8
      let zp = try ByteBuffer(count: 4 * zr * groups, what: "INT4 zero points")
      let zw = UnsafeMutableRawPointer(zp.pointer)
      for i in 0..<(zr * groups) { zw.storeBytes(of: UInt32(0x8888_8888), toByteOffset: 4 * i, as: UInt32.self) }
      for r in 0..<rows {
        for gi in 0..<groups {
          let o = 4 * ((r / 8) * groups + gi)
          var w = zw.load(fromByteOffset: o, as: UInt32.self)
          w &= ~(0xF << (4 * UInt32(r % 8)))
          w |= UInt32(zeros[r * groups + gi] + 8) << (4 * UInt32(r % 8))
          zw.storeBytes(of: w, toByteOffset: o, as: UInt32.self)
        }
      }
      out.append(EncodedTensor(suffix: "weight_zero_point", dtype: .i32, shape: [zr, groups], data: zp))
    }
    return out
  }
}
