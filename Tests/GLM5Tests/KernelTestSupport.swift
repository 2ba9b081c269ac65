// Helpers for the kernel tests: a seeded generator, weight matrices embedded in NaN-filled
// storage (padding columns and rows outside the slice read as NaN, so an out-of-slice read shows
// in the result), and float buffers with sentinel gaps and guards (an out-of-bounds write shows).

import GLM5Core
@testable import GLM5Kernels

/// SplitMix64: deterministic across platforms and runs.
struct KernelRNG {
  let seed: UInt64
  private var s: UInt64

  init(seed: UInt64) {
    self.seed = seed
    s = seed
  }

  mutating func next() -> UInt64 {
    s &+= 0x9E37_79B9_7F4A_7C15
    var z = s
    z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
    z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
    return z ^ (z >> 31)
  }

  /// Uniform in [-1, 1).
  mutating func uniform() -> Float { Float(next() >> 40) * 0x1p-23 - 1 }

  /// Uniform integer in 0..<n.
  mutating func below(_ n: Int) -> Int { Int(next() % UInt64(n)) }
}

/// The NaN pattern of a weight dtype.
func nanBits(_ dtype: DType) -> UInt32 {
  switch dtype {
  case .f32: return Float.nan.bitPattern
  case .bf16: return 0x7FC0
  default: return 0x7E00
  }
}

/// Store v as `dtype` (rounded as a checkpoint would hold it).
func storeWeight(_ v: Float, _ dtype: DType, _ p: UnsafeMutableRawPointer, _ i: Int) {
  switch dtype {
  case .f32: p.storeBytes(of: v, toByteOffset: 4 * i, as: Float.self)
  case .bf16: p.storeBytes(of: floatToBF16(v), toByteOffset: 2 * i, as: UInt16.self)
  default: p.storeBytes(of: Float16(v).bitPattern, toByteOffset: 2 * i, as: UInt16.self)
  }
}

/// A rows × cols weight of random values, stored as the slice rows(2, rows) of a larger matrix
/// whose row stride is cols + pad; every element outside the slice is NaN.
final class TestWeights {
  let storage: UnsafeMutableRawPointer
  let matrix: WeightMatrix
  let dtype: DType

  init(dtype: DType, rows: Int, cols: Int, pad: Int = 3, rng: inout KernelRNG, scale: Float = 1) {
    self.dtype = dtype
    let stride = cols + pad
    let allRows = rows + 4
    let bytes = max(1, allRows * stride * dtype.byteSize)
    storage = UnsafeMutableRawPointer.allocate(byteCount: bytes, alignment: 64)
    let nan = nanBits(dtype)
    for i in 0..<(allRows * stride) {
      switch dtype {
      case .f32: storage.storeBytes(of: nan, toByteOffset: 4 * i, as: UInt32.self)
      default: storage.storeBytes(of: UInt16(nan), toByteOffset: 2 * i, as: UInt16.self)
      }
    }
    for r in 0..<rows {
      for c in 0..<cols { storeWeight(rng.uniform() * scale, dtype, storage, (r + 2) * stride + c) }
    }
    let full = WeightMatrix(dtype: dtype, data: storage, rows: allRows, cols: cols, rowStride: stride)
    matrix = full.rows(2, rows)
  }

  /// Overwrite element (r, c) of the slice.
  func set(_ r: Int, _ c: Int, _ v: Float) {
    storeWeight(v, dtype, storage, (r + 2) * matrix.rowStride + c)
  }

  func setNaN(_ r: Int, _ c: Int) {
    let i = (r + 2) * matrix.rowStride + c
    switch dtype {
    case .f32: storage.storeBytes(of: Float.nan, toByteOffset: 4 * i, as: Float.self)
    default: storage.storeBytes(of: UInt16(nanBits(dtype)), toByteOffset: 2 * i, as: UInt16.self)
    }
  }

  deinit { storage.deallocate() }
}

/// A rows × cols Float matrix with row stride ld > cols, followed by `guardCount` guard values.
/// Gaps and guards hold `fill`; `intact` checks that nothing outside the rows × cols block changed.
final class TestFloats {
  let rows: Int, cols: Int, ld: Int
  let pointer: UnsafeMutablePointer<Float>
  let count: Int
  let fill: Float
  static let guardCount = 37
  /// A distinctive value no kernel produces from the test inputs.
  static let sentinel = Float(bitPattern: 0xC4F1_2345)

  init(rows: Int, cols: Int, gap: Int = 5, fill: Float = TestFloats.sentinel) {
    self.rows = rows
    self.cols = cols
    ld = cols + gap
    self.fill = fill
    count = rows * ld + TestFloats.guardCount
    pointer = .allocate(capacity: count)
    pointer.initialize(repeating: fill, count: count)
  }

  convenience init(rows: Int, cols: Int, gap: Int = 5, fill: Float = TestFloats.sentinel, rng: inout KernelRNG, scale: Float = 1) {
    self.init(rows: rows, cols: cols, gap: gap, fill: fill)
    for r in 0..<rows { for c in 0..<cols { pointer[r * ld + c] = rng.uniform() * scale } }
  }

  subscript(r: Int, c: Int) -> Float {
    get { pointer[r * ld + c] }
    set { pointer[r * ld + c] = newValue }
  }

  func row(_ r: Int) -> UnsafeMutablePointer<Float> { pointer + r * ld }

  /// The rows × cols block, row-major.
  var values: [Float] { (0..<rows).flatMap { r in (0..<cols).map { self[r, $0] } } }

  var bits: [UInt32] { values.map(\.bitPattern) }

  /// Number of gap or guard slots whose bits changed.
  var damaged: Int {
    var bad = 0
    for i in 0..<count {
      let inBlock = i < rows * ld && i % ld < cols
      if !inBlock && pointer[i].bitPattern != fill.bitPattern { bad += 1 }
    }
    return bad
  }

  deinit { pointer.deallocate() }
}

/// Error statistics of `got` against `want` (Double): normalized MSE and the worst ratio of an
/// element's error to its allowed bound.
struct ErrorStats {
  var sq: Double = 0, ref: Double = 0, worst: Double = 0, worstAt = -1, nans = 0

  mutating func add(_ got: Float, _ want: Float, bound: Double, at i: Int) {
    if got.isNaN || want.isNaN {
      if got.isNaN != want.isNaN { nans += 1 }
      return
    }
    let e = abs(Double(got) - Double(want))
    sq += e * e
    ref += Double(want) * Double(want)
    let r = bound > 0 ? e / bound : (e == 0 ? 0 : .infinity)
    if r > worst { worst = r; worstAt = i }
  }

  var nmse: Double { ref > 0 ? sq / ref : sq }
}

let u24: Double = 0x1p-24
