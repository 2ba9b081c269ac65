// Lane decoders and input preparation shared by the quantized kernels: FP8 and INT4 bytes to
// float lanes, x scaled or permuted to match, INT4 group sums and zero-point parts.

import GLM5Core
#if canImport(Glibc)
import Glibc
#endif

public enum QuantKernels {
  @inline(__always) static func scale(_ s: UnsafeRawPointer, _ dt: DType, _ i: Int) -> Float {
    switch dt {
    case .f32: return s.loadUnaligned(fromByteOffset: 4 * i, as: Float.self)
    case .bf16: return bf16ToFloat(s.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self))
    default: return f16ToFloat(s.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self))
    }
  }

  /// Scales i..<i+8 as Float (bf16/f16 widened in registers).
  @inline(__always) static func scales8(_ s: UnsafeRawPointer, _ dt: DType, _ i: Int) -> SIMD8<Float> {
    switch dt {
    case .f32: return s.loadUnaligned(fromByteOffset: 4 &* i, as: SIMD8<Float>.self)
    case .bf16: return Kernels.BF16Loader.load8(s, i)
    default: return Kernels.F16Loader.load8(s, i)
    }
  }

  @inline(__always) static func zeroPoint(_ z: UnsafeRawPointer?, row: Int, group: Int, groups: Int) -> Int32 {
    guard let z else { return 0 }
    let word = z.loadUnaligned(fromByteOffset: 4 * ((row / 8) * groups + group), as: UInt32.self)
    return Int32((word >> (4 * UInt32(row % 8))) & 0xF) - 8
  }

  @inline(__always) static func reduce8(_ a: SIMD8<Float>) -> Float { Kernels.reduce8(a) }

  /// FP8 kernels take x times this (`scaleForFP8`) ...
  static let fp8XFactor: Float = 0x1p64
  /// ... and the block scales times this: with the lanes' 2^-120, every product is x · e4m3 · 2^-56
  /// and every block total x · e4m3 · s.
  static let fp8Factor: Float = 0x1p56

  /// 8 e4m3 bytes → their values times 2^-120 as Float lanes, exactly, by bit placement alone:
  /// each byte sign-extended to 32 bits and shifted left by 20 puts the sign in bit 31 (bits
  /// 30…27, copies of it, masked off) and exponent and mantissa in bits 26…20, an f32 of the same
  /// mantissa and exponent e − 127 (subnormal codes landing on f32 subnormals, which the FMAs take
  /// at full speed). x is scaled by 2^64 instead (exact for |x| < 2^64), so no multiply is needed:
  /// 25% faster than multiplying the lanes by 2^112 (a multiply that also slows down on vectors
  /// mixing subnormal and normal codes) and 60% faster than binary16 + vcvtph2ps.
  @inline(__always) static func fp8x8(_ p: UnsafeRawPointer) -> SIMD8<Float> {
    let b = p.loadUnaligned(as: SIMD8<Int8>.self)
    let s = SIMD8<Int32>(Int32(b[0]), Int32(b[1]), Int32(b[2]), Int32(b[3]),
                         Int32(b[4]), Int32(b[5]), Int32(b[6]), Int32(b[7]))
    return unsafeBitCast(unsafeBitCast(s &<< 20, to: SIMD8<UInt32>.self) & 0x87F0_0000, to: SIMD8<Float>.self)
  }

  /// One e4m3 byte as `fp8x8` decodes it.
  @inline(__always) static func fp8x1(_ v: UInt8) -> Float {
    Float(bitPattern: UInt32(bitPattern: Int32(Int8(bitPattern: v)) &<< 20) & 0x87F0_0000)
  }

  /// x rows times fp8XFactor, into out [tokens, k].
  static func scaleForFP8(_ x: UnsafePointer<Float>, ldx: Int, tokens: Int, k: Int, into out: UnsafeMutablePointer<Float>) {
    let f = SIMD8<Float>(repeating: fp8XFactor)
    for t in 0..<tokens {
      let src = x + t * ldx, dst = out + t * k
      var c = 0
      while c + 8 <= k { Kernels.store8(dst + c, Kernels.loadX(src, c) * f); c += 8 }
      while c < k { dst[c] = src[c] * fp8XFactor; c += 1 }
    }
  }

  /// 8 nibbles of one packed word → (u − 8) as Float lanes in column order, exactly (2^23 + u
  /// trick, no int→float call). The generic INT4 path (groups not a multiple of 16).
  @inline(__always) static func int4x8(_ word: UInt32) -> SIMD8<Float> {
    let w = SIMD8<UInt32>(repeating: word)
    let nib = (w &>> SIMD8<UInt32>(0, 4, 8, 12, 16, 20, 24, 28)) & 0xF
    return unsafeBitCast(nib | 0x4B00_0000, to: SIMD8<Float>.self) - SIMD8<Float>(repeating: 8_388_616)
  }

  /// INT4 kernels take x's even columns times this and its odd ones times 1/16 of it
  /// (`prepareInt4`) ...
  static let int4XFactor: Float = 0x1p96
  /// ... and the group scales times this: with lanes of u · 2^-149 and 16u · 2^-149, every
  /// product is x · u · 2^-53.
  static let int4Factor: Float = 0x1p53

  /// −(8 + zp): what multiplies s · Σ x in the zero-point part of an INT4 element.
  @inline(__always) static func int4Offset(_ zp: Int32) -> Float { -Float(8 + zp) }

  /// 16 columns c..<c+16 (the 8 bytes at p, column c + 2i in the low nibble of byte i) →
  /// (u of the even columns c, c+2, …, c+14 times 2^-149;  u of the odd columns times 16 · 2^-149)
  /// by bit placement alone: each byte widened to 32 bits, its low nibble masked is the f32
  /// subnormal u · 2^-149 and its high nibble masked 16u · 2^-149 (the FMAs take subnormals at
  /// full speed). 5 vector µops per 16 weights with the 2 FMAs.
  @inline(__always)
  static func int4x16(_ p: UnsafeRawPointer) -> (SIMD8<Float>, SIMD8<Float>) {
    let d = int4Bytes(p)
    return (unsafeBitCast(d & 0xF, to: SIMD8<Float>.self), unsafeBitCast(d & 0xF0, to: SIMD8<Float>.self))
  }

  /// How INT4 lanes are formed from the widened bytes d (low nibble: even column u, high nibble
  /// masked in place: odd column 16u), in one of two representations that give the same bits:
  ///   SubnormalLanes  the masked bits as f32 subnormals u · 2^-149 and 16u · 2^-149 against
  ///                   x · 2^96 (x · 2^92 odd) and scales · 2^53: no conversion (AMD Zen takes
  ///                   subnormal FMA operands at full speed);
  ///   IntegerLanes    the masked bits converted to floats u and 16u (vcvtdq2ps) against x
  ///                   (x / 16 odd) and the scales as stored: Intel cores take a microcode assist
  ///                   on every subnormal FMA operand (measured 20-40× slower INT4 kernels).
  /// Every product is the other's times an exact power of two, so results are bitwise equal.
  protocol Int4Lanes {
    static func lanes(_ d: SIMD8<UInt32>) -> (SIMD8<Float>, SIMD8<Float>)
  }
  enum SubnormalLanes: Int4Lanes {
    @inline(__always) static func lanes(_ d: SIMD8<UInt32>) -> (SIMD8<Float>, SIMD8<Float>) {
      (unsafeBitCast(d & 0xF, to: SIMD8<Float>.self), unsafeBitCast(d & 0xF0, to: SIMD8<Float>.self))
    }
  }
  enum IntegerLanes: Int4Lanes {
    @inline(__always) static func lanes(_ d: SIMD8<UInt32>) -> (SIMD8<Float>, SIMD8<Float>) {
      let lo = unsafeBitCast(d & 0xF, to: SIMD8<Int32>.self), hi = unsafeBitCast(d & 0xF0, to: SIMD8<Int32>.self)
      return (SIMD8<Float>(Float(lo[0]), Float(lo[1]), Float(lo[2]), Float(lo[3]), Float(lo[4]), Float(lo[5]), Float(lo[6]), Float(lo[7])),
              SIMD8<Float>(Float(hi[0]), Float(hi[1]), Float(hi[2]), Float(hi[3]), Float(hi[4]), Float(hi[5]), Float(hi[6]), Float(hi[7])))
    }
  }

  /// Which representation this machine runs: GLM5_INT4_LANES=integer|subnormal, else integer
  /// lanes on Intel CPUs (vendor_id GenuineIntel in /proc/cpuinfo) and subnormal lanes elsewhere.
  static let integerLanesByDefault: Bool = {
    if let e = getenv("GLM5_INT4_LANES") {
      let v = String(cString: e)
      if v == "integer" { return true }
      if v == "subnormal" { return false }
    }
    guard let f = fopen("/proc/cpuinfo", "r") else { return false }
    defer { fclose(f) }
    var line = [CChar](repeating: 0, count: 512)
    while fgets(&line, 512, f) != nil {
      let s = String(cString: line)
      if s.hasPrefix("vendor_id") { return s.contains("GenuineIntel") }
    }
    return false
  }()
  /// Tests set this to run one representation or the other (nil: the machine's default).
  nonisolated(unsafe) static var forceIntegerLanes: Bool? = nil
  static var integerLanes: Bool { forceIntegerLanes ?? integerLanesByDefault }

  /// The 8 bytes at p widened to 32-bit lanes (vpmovzxbd).
  @inline(__always) static func int4Bytes(_ p: UnsafeRawPointer) -> SIMD8<UInt32> {
    let b = p.loadUnaligned(as: SIMD8<UInt8>.self)
    return SIMD8<UInt32>(UInt32(b[0]), UInt32(b[1]), UInt32(b[2]), UInt32(b[3]),
                         UInt32(b[4]), UInt32(b[5]), UInt32(b[6]), UInt32(b[7]))
  }

  /// x rows as the INT4 lanes take them, into xp [tokens, k]: per 16 columns the even ones times
  /// 2^96, then the odd ones times 2^92 (exact for |x| < 2^32); and per group g the sum of x
  /// over the group into xs [tokens, groups]: lane-wise s = (s + x[c + 2i]) + x[c + 2i + 1] over
  /// the group's 16-column steps, then reduce8. k a multiple of `group`, a multiple of 16.
  static func prepareInt4(_ x: UnsafePointer<Float>, ldx: Int, tokens: Int, k: Int, group: Int, xFactor: Float = int4XFactor,
                          into xp: UnsafeMutablePointer<Float>, sums xs: UnsafeMutablePointer<Float>) {
    let groups = k / group
    for t in 0..<tokens {
      let src = x + t * ldx, dst = xp + t * k, sum = xs + t * groups
      for g in 0..<groups {
        var acc = SIMD8<Float>()
        var c = g * group
        let end = c + group
        while c < end {
          let e = SIMD8<Float>(src[c], src[c + 2], src[c + 4], src[c + 6], src[c + 8], src[c + 10], src[c + 12], src[c + 14])
          let o = SIMD8<Float>(src[c + 1], src[c + 3], src[c + 5], src[c + 7], src[c + 9], src[c + 11], src[c + 13], src[c + 15])
          Kernels.store8(dst + c, e * xFactor)
          Kernels.store8(dst + c + 8, o * (xFactor / 16))
          acc = (acc + e) + o
          c += 16
        }
        sum[g] = reduce8(acc)
      }
    }
  }

  /// The zero-point part of an INT4 element: Σ_g (−(8 + zp_g) · s_g) · Σx_g, as an 8-lane FMA
  /// chain over groups 8 at a time, `reduce8`, then a scalar fma chain over the last groups.
  /// `cs` [groups]: the row's −(8 + zp) · s products; `xs` [groups]: the token's sums.
  @inline(__always)
  static func int4Correction(_ cs: UnsafePointer<Float>, _ xs: UnsafePointer<Float>, groups: Int) -> Float {
    var a = SIMD8<Float>()
    var g = 0
    while g &+ 8 <= groups {
      a.addProduct(Kernels.loadX(cs, g), Kernels.loadX(xs, g))
      g &+= 8
    }
    var r = reduce8(a)
    while g < groups { r = r.addingProduct(cs[g], xs[g]); g &+= 1 }
    return r
  }

}
