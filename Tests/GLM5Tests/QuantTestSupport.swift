// Helpers for the quantized-weight tests: plain, obviously-correct decoders written from the
// format definitions (glm5-architecture.md §7, §9.1) without reusing any library decoder, random
// quantized weights in memory, and a fixture copier that rewrites a quantized checkpoint with one
// defect.

import Foundation
import GLM5Core
@testable import GLM5Kernels
@testable import GLM5Model
import Testing

// MARK: - Plain scalar decoders

/// float8 e4m3fn from its definition: sign bit, 4-bit exponent with bias 7, 3-bit mantissa;
/// exponent 0 is subnormal (m · 2^-9); 0x7F and 0xFF are NaN; there are no infinities.
let e4m3Table: [Float] = (0..<256).map { code in
  let sign: FloatingPointSign = code & 0x80 != 0 ? .minus : .plus
  let e = (code >> 3) & 0xF
  let m = code & 0x7
  if e == 15 && m == 7 { return .nan }
  let v: Double
  if e == 0 {
    v = Double(sign: sign, exponent: -9, significand: Double(m))  // m · 2^-9 (±0 for m = 0)
  } else {
    v = Double(sign: sign, exponent: e - 7, significand: 1 + Double(m) / 8)
  }
  return Float(v)  // every e4m3 value is exact in Float
}

/// IEEE binary16 from its definition (1 sign, 5 exponent bits with bias 15, 10 mantissa bits).
func plainF16(_ h: UInt16) -> Float {
  let sign: FloatingPointSign = h & 0x8000 != 0 ? .minus : .plus
  let e = Int((h >> 10) & 0x1F)
  let m = Int(h & 0x3FF)
  if e == 31 { return m == 0 ? (sign == .minus ? -.infinity : .infinity) : .nan }
  if e == 0 { return Float(Double(sign: sign, exponent: -24, significand: Double(m))) }
  return Float(Double(sign: sign, exponent: e - 15, significand: 1 + Double(m) / 1024))
}

/// bfloat16: the top half of a float32.
func plainBF16(_ h: UInt16) -> Float { Float(bitPattern: UInt32(h) << 16) }

/// A little-endian integer read byte by byte (no alignment or host-order assumption).
func plainLoad(_ p: UnsafeRawPointer, byteOffset: Int, bytes: Int) -> UInt64 {
  var v: UInt64 = 0
  for k in 0..<bytes { v |= UInt64(p.load(fromByteOffset: byteOffset + k, as: UInt8.self)) << (8 * UInt64(k)) }
  return v
}

/// Element i of a scale tensor of dtype F32, BF16 or F16, converted to Float.
func plainScale(_ p: UnsafeRawPointer, _ dtype: DType, _ i: Int) -> Float {
  switch dtype {
  case .f32: return Float(bitPattern: UInt32(plainLoad(p, byteOffset: 4 * i, bytes: 4)))
  case .bf16: return plainBF16(UInt16(plainLoad(p, byteOffset: 2 * i, bytes: 2)))
  case .f16: return plainF16(UInt16(plainLoad(p, byteOffset: 2 * i, bytes: 2)))
  default: fatalError("scale dtype \(dtype.name)")
  }
}

/// Same Float, NaN-aware (any NaN equals any NaN; ±0 are different).
@inline(__always) func sameFloat(_ a: Float, _ b: Float) -> Bool {
  a.bitPattern == b.bitPattern || (a.isNaN && b.isNaN)
}

// MARK: - Plain dequantizers over raw tensors

/// An FP8 block-scaled weight read element by element: W[r, c] = e4m3(W8[r, c]) · s[r / br, c / bc].
struct PlainFP8 {
  let data: UnsafeRawPointer   // [rows, cols] bytes
  let rows: Int, cols: Int
  let scales: UnsafeRawPointer  // F32 [ceil(rows / br), ceil(cols / bc)]
  let br: Int, bc: Int

  var scaleCols: Int { (cols + bc - 1) / bc }

  func code(_ r: Int, _ c: Int) -> UInt8 { data.load(fromByteOffset: r * cols + c, as: UInt8.self) }
  func scale(_ r: Int, _ c: Int) -> Float { plainScale(scales, .f32, (r / br) * scaleCols + c / bc) }
  func element(_ r: Int, _ c: Int) -> Float { e4m3Table[Int(code(r, c))] * scale(r, c) }
  func row(_ r: Int) -> [Float] { (0..<cols).map { element(r, $0) } }
  /// |W[r, c]|: the size of the term the kernel accumulates.
  func magnitude(_ r: Int, _ c: Int) -> Double { abs(Double(element(r, c))) }
}

/// An INT4 pack-quantized weight read element by element:
///   u = nibble (c mod 8) of word c / 8 of row r (lowest nibble first), q = u − 8,
///   zp = nibble (r mod 8) of word [r / 8, g] of the zero points, minus 8 (0 if symmetric),
///   W[r, c] = (u − 8 − zp) · scale[r, c / group].
struct PlainInt4 {
  let packed: UnsafeRawPointer  // I32 [rows, ceil(cols / 8)]
  let rows: Int, cols: Int
  let scales: UnsafeRawPointer  // [rows, cols / group]
  let scaleDType: DType
  let zeroPoints: UnsafeRawPointer?  // I32 [ceil(rows / 8), cols / group]
  let group: Int

  var words: Int { (cols + 7) / 8 }
  var groups: Int { cols / group }

  func u(_ r: Int, _ c: Int) -> Int {
    let word = plainLoad(packed, byteOffset: 4 * (r * words + c / 8), bytes: 4)
    return Int((word >> (4 * UInt64(c % 8))) & 0xF)
  }

  func zp(_ r: Int, _ g: Int) -> Int {
    guard let z = zeroPoints else { return 0 }
    let word = plainLoad(z, byteOffset: 4 * ((r / 8) * groups + g), bytes: 4)
    return Int((word >> (4 * UInt64(r % 8))) & 0xF) - 8
  }

  func scale(_ r: Int, _ g: Int) -> Float { plainScale(scales, scaleDType, r * groups + g) }
  func element(_ r: Int, _ c: Int) -> Float { Float(u(r, c) - 8 - zp(r, c / group)) * scale(r, c / group) }
  func row(_ r: Int) -> [Float] { (0..<cols).map { element(r, $0) } }
  /// |q| · |scale| = |W|: the size of the terms the kernel accumulates (x · q, exact lanes).
  func magnitude(_ r: Int, _ c: Int) -> Double {
    Double(abs(u(r, c) - 8 - zp(r, c / group))) * abs(Double(scale(r, c / group)))
  }
}

enum PlainQuant {
  case fp8(PlainFP8)
  case int4(PlainInt4)

  var rows: Int { switch self { case .fp8(let p): return p.rows; case .int4(let p): return p.rows } }
  var cols: Int { switch self { case .fp8(let p): return p.cols; case .int4(let p): return p.cols } }
  func row(_ r: Int) -> [Float] { switch self { case .fp8(let p): return p.row(r); case .int4(let p): return p.row(r) } }
  func element(_ r: Int, _ c: Int) -> Float {
    switch self { case .fp8(let p): return p.element(r, c); case .int4(let p): return p.element(r, c) }
  }
  func magnitude(_ r: Int, _ c: Int) -> Double {
    switch self { case .fp8(let p): return p.magnitude(r, c); case .int4(let p): return p.magnitude(r, c) }
  }
  /// Number of scale blocks (FP8) or groups (INT4) along a row.
  var blocksPerRow: Int { switch self { case .fp8(let p): return p.scaleCols; case .int4(let p): return p.groups } }
}

// MARK: - Random quantized weights in memory

/// One quantized weight [rows, cols] with random contents, owning its memory. Scale tensors are
/// followed by NaN scales, so a read past the scale grid shows up as a NaN output.
final class RandomQuantWeight {
  let describe: String
  let weight: LinearWeight
  let plain: PlainQuant
  private var buffers: [UnsafeMutableRawPointer] = []

  private func alloc(_ bytes: Int) -> UnsafeMutableRawPointer {
    let p = UnsafeMutableRawPointer.allocate(byteCount: max(bytes, 1), alignment: 64)
    buffers.append(p)
    return p
  }

  static let scalePad = 16

  /// FP8 e4m3 with random codes (no NaN codes) and block scales of varying magnitude.
  init(fp8 rows: Int, _ cols: Int, blockRows br: Int, blockCols bc: Int, rng: inout KernelRNG) {
    describe = "seed \(rng.seed) FP8 N \(rows) K \(cols) block \(br)x\(bc)"
    let data = UnsafeMutableRawPointer.allocate(byteCount: max(rows * cols, 1), alignment: 64)
    let sr = (rows + br - 1) / br, sc = (cols + bc - 1) / bc
    let scales = UnsafeMutableRawPointer.allocate(byteCount: 4 * (sr * sc + RandomQuantWeight.scalePad), alignment: 64)
    for i in 0..<(rows * cols) {
      var b = UInt8(truncatingIfNeeded: rng.next())
      if b & 0x7F == 0x7F { b ^= 0x01 }  // NaN codes → ±448
      data.storeBytes(of: b, toByteOffset: i, as: UInt8.self)
    }
    for i in 0..<(sr * sc + RandomQuantWeight.scalePad) {
      let s: Float = i < sr * sc ? Float(sign: .plus, exponent: rng.below(7) - 12, significand: 1 + (rng.uniform() + 1) / 2) : .nan
      scales.storeBytes(of: s, toByteOffset: 4 * i, as: Float.self)
    }
    weight = .fp8(data: data, rows: rows, cols: cols, scales: scales.assumingMemoryBound(to: Float.self),
                  blockRows: br, blockCols: bc, rowOffset: 0)
    plain = .fp8(PlainFP8(data: data, rows: rows, cols: cols, scales: scales, br: br, bc: bc))
    buffers = [data, scales]
  }

  /// INT4 pack-quantized with random nibbles (including the unused ones of a last partial word
  /// and of the zero-point padding rows), random scales in `scaleDType`.
  init(int4 rows: Int, groups: Int, group: Int, symmetric: Bool, scaleDType: DType, rng: inout KernelRNG) {
    let cols = groups * group
    describe = "seed \(rng.seed) INT4 N \(rows) K \(cols) group \(group) \(symmetric ? "sym" : "asym") \(scaleDType.name) scales"
    let words = (cols + 7) / 8
    let packed = UnsafeMutableRawPointer.allocate(byteCount: max(4 * rows * words, 1), alignment: 64)
    for i in 0..<(rows * words) { packed.storeBytes(of: UInt32(truncatingIfNeeded: rng.next()), toByteOffset: 4 * i, as: UInt32.self) }
    let ns = rows * groups + RandomQuantWeight.scalePad
    let scales = UnsafeMutableRawPointer.allocate(byteCount: scaleDType.byteSize * ns, alignment: 64)
    for i in 0..<ns {
      let v: Float = i < rows * groups ? Float(sign: .plus, exponent: rng.below(7) - 9, significand: 1 + (rng.uniform() + 1) / 2) : .nan
      storeWeight(v, scaleDType, scales, i)
    }
    var zp: UnsafeMutableRawPointer? = nil, zpBuffer: UnsafeMutableRawPointer? = nil
    if !symmetric {
      let n = ((rows + 7) / 8) * groups
      // The table starts 2 bytes past a 4-byte boundary, as a zero-point tensor after a BF16
      // tensor of odd length does in a safetensors file (offsets are not aligned): the kernels
      // must read it at any address (`make sanitize-asan` runs them under UBSan's alignment check).
      let b = UnsafeMutableRawPointer.allocate(byteCount: 4 * max(n, 1) + 2, alignment: 64)
      let z = b + 2
      for i in 0..<n { z.storeBytes(of: UInt32(truncatingIfNeeded: rng.next()), toByteOffset: 4 * i, as: UInt32.self) }
      zp = z
      zpBuffer = b
    }
    weight = .int4(packed: packed, rows: rows, cols: cols, scales: scales, scaleDType: scaleDType,
                   zeroPoints: zp.map { UnsafeRawPointer($0) }, group: group, totalRows: rows, rowOffset: 0)
    plain = .int4(PlainInt4(packed: packed, rows: rows, cols: cols, scales: scales, scaleDType: scaleDType,
                            zeroPoints: zp.map { UnsafeRawPointer($0) }, group: group))
    buffers = [packed, scales] + (zpBuffer.map { [$0] } ?? [])
  }

  deinit { for b in buffers { b.deallocate() } }
}

/// The plain product y[t, n] = Σ_k x[t, k] · W[n, k] in Double with its error scale
/// Σ_k |x[t, k]| · magnitude(n, k), for rows [start, start + count) of `plain`.
func plainLinear(_ x: TestFloats, _ plain: PlainQuant, start: Int = 0, count: Int? = nil) -> (y: [[Double]], scale: [[Double]]) {
  let n = count ?? plain.rows
  var y = [[Double]](repeating: [Double](repeating: 0, count: n), count: x.rows)
  var s = y
  for j in 0..<n {
    let row = plain.row(start + j)
    let mag = (0..<plain.cols).map { plain.magnitude(start + j, $0) }
    for t in 0..<x.rows {
      var acc: Double = 0, abs: Double = 0
      for k in 0..<plain.cols {
        acc += Double(x[t, k]) * Double(row[k])
        abs += Swift.abs(Double(x[t, k])) * mag[k]
      }
      y[t][j] = acc
      s[t][j] = abs
    }
  }
  return (y, s)
}

// MARK: - Quantized fixtures

let quantizedFixtures = ["tiny-fp8-block", "tiny-int4-g32", "tiny-int4-g64-asym", "tiny-int4-g128", "tiny-int4-partial",
                         "glm5-quantized/int4"]

/// The plain view of a bound quantized Linear, built from the checkpoint's raw tensors found by
/// name (not from the binder's views) and the config's block size / the scale tensor's shape.
func plainQuant(_ ck: Checkpoint, module name: String, linear l: Linear) -> PlainQuant? {
  let t = ck.store.byName
  if let packed = t[name + ".weight_packed"] {
    let s = t[name + ".weight_scale"]!
    let cols = l.inFeatures
    return .int4(PlainInt4(packed: packed.data!, rows: packed.shape[0], cols: cols, scales: s.data!, scaleDType: s.dtype,
                           zeroPoints: t[name + ".weight_zero_point"]?.data, group: cols / s.shape[1]))
  }
  if let s = t[name + ".weight_scale_inv"] {
    let w = t[name + ".weight"]!
    let block = ck.config.quantization!.raw["weight_block_size"]!.array!.map { $0.int! }
    return .fp8(PlainFP8(data: w.data!, rows: w.shape[0], cols: w.shape[1], scales: s.data!, br: block[0], bc: block[1]))
  }
  return nil
}

// MARK: - Rewriting a fixture with one defect

/// A quantized fixture read into memory (config.json as JSON, every model tensor as bytes), to be
/// changed and written out as a single-file checkpoint in a temp folder.
struct FixtureCopy {
  let fixture: String
  var config: [String: JSON]
  var tensors: [STTensor]

  init(_ fixture: String) throws {
    self.fixture = fixture
    let folder = fixturesFolder() + "/" + fixture
    let text = try String(contentsOfFile: folder + "/config.json", encoding: .utf8)
    config = try #require(try JSON.parse(text).object)
    let files = try FileManager.default.contentsOfDirectory(atPath: folder)
      .filter { $0.hasPrefix("model") && $0.hasSuffix(".safetensors") }.sorted()
    try #require(!files.isEmpty)
    var out: [STTensor] = []
    for f in files {
      let st = try SafeTensorsFile(path: folder + "/" + f)
      for t in st.tensors {
        let bytes = t.byteCount == 0 ? [] : Array(UnsafeRawBufferPointer(start: t.data, count: t.byteCount))
        out.append(STTensor(t.name, "\(t.dtype.name)", t.shape, bytes: bytes))
      }
    }
    tensors = out
  }

  func index(_ name: String) -> Int {
    guard let i = tensors.firstIndex(where: { $0.name == name }) else { fatalError("\(fixture) has no tensor \(name)") }
    return i
  }

  subscript(_ name: String) -> STTensor {
    get { tensors[index(name)] }
    set { tensors[index(name)] = newValue }
  }

  func has(_ name: String) -> Bool { tensors.contains { $0.name == name } }

  mutating func remove(_ name: String) { tensors.remove(at: index(name)) }

  mutating func add(_ t: STTensor) { tensors.append(t) }

  /// Set (or with nil remove) the value at a key path of config.json, creating objects on the way.
  mutating func setConfig(_ path: [String], _ value: JSON?) {
    func set(_ o: [String: JSON], _ path: ArraySlice<String>) -> [String: JSON] {
      var o = o
      let k = path.first!
      if path.count == 1 {
        o[k] = value
      } else {
        o[k] = .object(set(o[k]?.object ?? [:], path.dropFirst()))
      }
      return o
    }
    config = set(config, path[...])
  }

  func write() -> TempFolder {
    let f = TempFolder("glm5-quant")
    f.write("config.json", text: JSON.object(config).serialized)
    f.write("model.safetensors", safetensorsBytes(tensors))
    return f
  }
}

extension STTensor {
  /// Element i of a 2- or 4-byte tensor overwritten with `bits`.
  mutating func setBits(_ i: Int, _ bits: UInt32, size: Int) {
    for k in 0..<size { bytes[size * i + k] = UInt8(truncatingIfNeeded: bits >> (8 * UInt32(k))) }
  }
}

func littleEndianBytes<T: FixedWidthInteger>(_ values: [T]) -> [UInt8] {
  values.flatMap { v in withUnsafeBytes(of: v.littleEndian) { Array($0) } }
}
