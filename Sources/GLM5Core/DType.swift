// Element types of checkpoint tensors (safetensors names) and their scalar conversions.
// Raw values are pinned: they are `glm5_dtype` in include/glm5.h.

public enum DType: Int32, CaseIterable, Sendable {
  case f32 = 0, bf16 = 1, f16 = 2, f8e4m3 = 3, f8e5m2 = 4
  case i8 = 5, u8 = 6, i16 = 7, i32 = 8, i64 = 9, f64 = 10, bool = 11, u16 = 12, u32 = 13, u64 = 14

  /// The name in a safetensors header.
  public var name: StaticString {
    switch self {
    case .f32: return "F32"
    case .bf16: return "BF16"
    case .f16: return "F16"
    case .f8e4m3: return "F8_E4M3"
    case .f8e5m2: return "F8_E5M2"
    case .i8: return "I8"
    case .u8: return "U8"
    case .i16: return "I16"
    case .i32: return "I32"
    case .i64: return "I64"
    case .f64: return "F64"
    case .bool: return "BOOL"
    case .u16: return "U16"
    case .u32: return "U32"
    case .u64: return "U64"
    }
  }

  public init?(safetensorsName: String) {
    guard let d = DType.allCases.first(where: { "\($0.name)" == safetensorsName }) else { return nil }
    self = d
  }

  /// From a torch dtype name without the "torch." prefix ("float32", "bfloat16", ...), as
  /// slime's delta manifests write them.
  public init?(torchName: String) {
    let names: [String: DType] = [
      "float32": .f32, "float": .f32, "bfloat16": .bf16, "float16": .f16, "half": .f16,
      "float8_e4m3fn": .f8e4m3, "float8_e5m2": .f8e5m2, "int8": .i8, "uint8": .u8, "int16": .i16,
      "int32": .i32, "int": .i32, "int64": .i64, "long": .i64, "float64": .f64, "double": .f64, "bool": .bool,
      "uint16": .u16, "uint32": .u32, "uint64": .u64,
    ]
    guard let d = names[torchName] else { return nil }
    self = d
  }

  public var byteSize: Int {
    switch self {
    case .f8e4m3, .f8e5m2, .i8, .u8, .bool: return 1
    case .bf16, .f16, .i16, .u16: return 2
    case .f32, .i32, .u32: return 4
    case .i64, .f64, .u64: return 8
    }
  }

  /// Types the float compute path reads directly (issue 3); the others are parsed but need a
  /// quantization scheme to mean anything.
  public var isFloatWeight: Bool { self == .f32 || self == .bf16 || self == .f16 }
}

// MARK: - Scalar conversions (the reference versions; kernels inline their own)

@inline(__always) public func bf16ToFloat(_ bits: UInt16) -> Float {
  Float(bitPattern: UInt32(bits) << 16)
}

/// Round to nearest even, as torch does when casting float32 to bfloat16.
@inline(__always) public func floatToBF16(_ x: Float) -> UInt16 {
  let b = x.bitPattern
  if x.isNaN { return UInt16(truncatingIfNeeded: (b >> 16) | 0x40) }
  let rounding: UInt32 = 0x7FFF + ((b >> 16) & 1)
  return UInt16(truncatingIfNeeded: (b &+ rounding) >> 16)
}

@inline(__always) public func f16ToFloat(_ bits: UInt16) -> Float {
  Float(Float16(bitPattern: bits))
}

/// float8 e4m3fn (no infinities; 0x7F/0xFF are NaN), as torch.float8_e4m3fn.
@inline(__always) public func f8e4m3ToFloat(_ v: UInt8) -> Float {
  let sign: Float = (v & 0x80) != 0 ? -1 : 1
  let e = Int((v >> 3) & 0xF)
  let m = Float(v & 0x7)
  if e == 0xF && (v & 0x7) == 0x7 { return .nan }
  if e == 0 { return sign * m * 0x1p-9 }  // subnormal: m/8 * 2^-6
  return sign * (1 + m / 8) * Float(sign: .plus, exponent: e - 7, significand: 1)
}

/// float8 e5m2, as torch.float8_e5m2 (IEEE-like, with infinities).
@inline(__always) public func f8e5m2ToFloat(_ v: UInt8) -> Float {
  f16ToFloat(UInt16(v) << 8)
}

/// float → float8 e4m3fn, round to nearest even, saturating to ±448 (torch's
/// `x.clamp(-448, 448).to(torch.float8_e4m3fn)`). NaN → 0x7F.
public func floatToF8E4M3(_ x: Float) -> UInt8 {
  if x.isNaN { return 0x7F }
  let sign: UInt8 = x.sign == .minus ? 0x80 : 0
  let a = min(abs(x), 448)
  if a == 0 { return sign }
  // Subnormals: multiples of 2^-9 below 2^-6.
  if a < 0x1p-6 {
    let m = (a / 0x1p-9).rounded(.toNearestOrEven)  // 0...8; 8 becomes the smallest normal
    return sign | UInt8(m)
  }
  var e = Int(a.exponent)  // a = 2^e * 1.f
  var m = ((a / Float(sign: .plus, exponent: e, significand: 1)) - 1) * 8
  m = m.rounded(.toNearestOrEven)
  if m == 8 { m = 0; e += 1 }
  let biased = e + 7
  if biased > 15 || (biased == 15 && m > 6) { return sign | 0x7E }  // 448
  return sign | UInt8(biased << 3) | UInt8(m)
}
