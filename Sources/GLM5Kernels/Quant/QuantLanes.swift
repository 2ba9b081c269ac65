// Lane decoders and input preparation shared by the quantized kernels: FP8 bytes to float lanes
// and x scaled to match; INT4 words to u − 8 lanes (the generic path; the tiled INT4 kernels are
// in C, CGLM5Kernels/int4.c).

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
}
