// Linear layers over quantized weights, read in place in the checkpoint's layout and decoded in
// registers or in a small scratch (no fp32 copy of a weight matrix is kept):
//   FP8 block:  y[t, n] = Σ_b  s[n / Br, b] · Σ_{c ∈ block b} x[t, c] · e4m3(W[n, c])
//   INT4 group: y[t, n] = Σ_g  s[n, g] · Σ_{c ∈ group g} x[t, c] · (u[n, c] − 8 − zp[n, g])
//
// Row invariance as in Linear.swift: each y[t, n] is one fixed sequence of operations, whatever
// the token count, the thread count or the tile it falls in:
//   total8 = 0;  per block/group b in order: acc = 0; acc = fma(x8, w8, acc) over the block's
//   8-lane steps in order; total8 = fma(acc, splat(scale_b), total8);   y = reduce8(total8) + rest
//   FP8: steps are 8 consecutive columns from the block start. Lanes hold e4m3 · 2^-120 (the
//        code's bits put in place: exact, subnormal codes as f32 subnormals) against x · 2^64,
//        scale_b = s · 2^56: the same products, bit for bit, as exact e4m3 values against x
//        (for |x| < 2^64). rest = Σ_b fma(t_b, scale_b, ·), t_b the scalar fma chain over the
//        block's columns past its last whole step (0 unless blocks or K are not multiples of 8).
//   INT4 (groups a multiple of 16 columns): each 16 columns make two steps, the even columns then
//        the odd ones (the nibbles of 8 bytes), x permuted to match once per call. Lanes hold
//        u · 2^-149 and 16u · 2^-149 (the nibbles masked in place: f32 subnormals) against x · 2^96
//        and x · 2^92, scale_b = s · 2^53 on AMD; on Intel, whose FMAs take a microcode assist per
//        subnormal operand, the same nibbles converted to u and 16u against x and x / 16 with s
//        itself (`Int4Lanes`): every product an exact power-of-two multiple of the other, so both
//        give the same bits. rest = the zero-point part Σ_g (−(8 + zp_g) · s_g) · Σx_g
//        (`int4Correction`: an 8-lane FMA chain over the groups, reduce8, the last groups scalar),
//        with Σx_g computed once per token (`prepareInt4`). Against computing x · (u − 8 − zp) in
//        the lanes this drops 3 of 8 vector ops per 16 weights (decode +35%) for a few bits lost
//        to cancellation (the x · u chain is ~3× larger than the result: ~3× the rounding error,
//        far below INT4's quantization error).
//   INT4 with other group sizes (odd test shapes only): column order, 8-column steps of u − 8 −
//        zp, per-group scalar tails.
//
// Decode (T < 3): tiles of 8 rows `decodeSpread` apart as the float kernel (adjacent rows when
// rows are ≤ 256 bytes); each x vector loaded once per tile, one FMA chain per row. FP8: 8 rows,
// block totals parked in L1; INT4: the same for groups ≥ 64, two 4-row tiles with the totals in
// registers for smaller groups; group scales widened 8 groups at a time inside the loop. Per 8
// weights and row: FP8 vpmovsxbd + shift + and + FMA; INT4 (per 16) vpmovzxbd + 2 and + 2 FMA.
// Both are compute-bound on one core (from L2: FP8 ~20 GB/s, INT4 ~14-15 GB/s of weight bytes,
// against BF16's 55), so two cores reach ~28 (FP8) and ~20-24 (INT4) GB/s from DRAM (the DRAM
// limit: 33-37).
// Prefill (T ≥ 3): per 24-row chunk, token block (≤ 48 tokens) and K-block (512 columns in whole
// blocks): the chunk's rows are decoded once into a float scratch (unscaled lane values), then
// 2 rows × 6 tokens register tiles (12 FMA chains, as the float kernel's) run over every token
// tile × row tile; at each block end the 12 chains are folded into parked totals with the rows'
// scales (1 FMA per chain per block: 1/16 extra for 128-column blocks, 1/4 for INT4 g32).

// Shapes: y [T, N] (ldy), x [T, K] (ldx). FP8: W [N, K] bytes, s [ceil(N/Br), ceil(K/Bc)] F32.
// INT4: packed [N, ceil(K/8)] words, s [N, K/G] (F32/BF16/F16), zp packed [ceil(N/8), K/G] or nil.

import GLM5Core
#if canImport(Glibc)
import Glibc
#endif

/// A Linear weight in any stored format, as the kernels take it. `rowOffset` lets a slice of rows
/// (one head of kv_b_proj) keep reading the right block scales and zero points.
public enum LinearWeight: @unchecked Sendable {
  case float(WeightMatrix)
  case fp8(data: UnsafeRawPointer, rows: Int, cols: Int, scales: UnsafePointer<Float>, blockRows: Int, blockCols: Int, rowOffset: Int)
  case int4(packed: UnsafeRawPointer, rows: Int, cols: Int, scales: UnsafeRawPointer, scaleDType: DType,
            zeroPoints: UnsafeRawPointer?, group: Int, totalRows: Int, rowOffset: Int)

  public var rows: Int {
    switch self {
    case .float(let m): return m.rows
    case .fp8(_, let r, _, _, _, _, _): return r
    case .int4(_, let r, _, _, _, _, _, _, _): return r
    }
  }

  public var cols: Int {
    switch self {
    case .float(let m): return m.cols
    case .fp8(_, _, let c, _, _, _, _): return c
    case .int4(_, _, let c, _, _, _, _, _, _): return c
    }
  }

  /// Rows [start, start + count) (e.g. one attention head's slice).
  public func rows(_ start: Int, _ count: Int) -> LinearWeight {
    switch self {
    case .float(let m): return .float(m.rows(start, count))
    case .fp8(let d, _, let c, let s, let br, let bc, let off):
      return .fp8(data: d + start * c, rows: count, cols: c, scales: s, blockRows: br, blockCols: bc, rowOffset: off + start)
    case .int4(let p, _, let c, let s, let sd, let z, let g, let total, let off):
      return .int4(packed: p + start * 4 * ((c + 7) / 8), rows: count, cols: c, scales: s, scaleDType: sd, zeroPoints: z,
                   group: g, totalRows: total, rowOffset: off + start)
    }
  }

  /// Row r fully dequantized, round((q − zp) · s) / round(e4m3 · s), into out [cols] (reference
  /// and transposed products). Vectorized; the same values as the scalar definitions (FP8 NaN
  /// codes, which no checkpoint holds, decode as ±480 · s).
  public func dequantizeRow(_ r: Int, into out: UnsafeMutablePointer<Float>) {
    switch self {
    case .float(let m): m.copyRow(r, to: out)
    case .fp8(let d, _, let c, let s, let br, let bc, let off):
      let sc = (c + bc - 1) / bc
      let srow = s + ((off + r) / br) * sc
      let row = d + r * c
      for b in 0..<sc {
        // e4m3 · 2^-8 (the lanes times 2^112, exact) times s · 2^8: the same real product as
        // e4m3 · s, so the same rounding.
        let s256 = srow[b] * 256
        let up = SIMD8<Float>(repeating: 0x1p112)
        var k = b * bc
        let end = min(c, k + bc)
        while k + 8 <= end {
          UnsafeMutableRawPointer(out + k).storeBytes(of: QuantKernels.fp8x8(row + k) * up * SIMD8<Float>(repeating: s256), as: SIMD8<Float>.self)
          k += 8
        }
        while k < end {
          out[k] = QuantKernels.fp8x1(row.load(fromByteOffset: k, as: UInt8.self)) * 0x1p112 * s256
          k += 1
        }
      }
    case .int4(let p, _, let c, let s, let sd, let z, let g, _, let off):
      let rowP = p + r * 4 * ((c + 7) / 8)
      let groups = c / g
      for gi in 0..<groups {
        let scale = QuantKernels.scale(s, sd, (off + r) * groups + gi)
        let zp = QuantKernels.zeroPoint(z, row: off + r, group: gi, groups: groups)
        var k = gi * g
        let end = k + g
        if k % 8 == 0 {
          let zs = SIMD8<Float>(repeating: Float(zp)), ss = SIMD8<Float>(repeating: scale)
          while k + 8 <= end {
            let v = (QuantKernels.int4x8(rowP.loadUnaligned(fromByteOffset: k / 2, as: UInt32.self)) - zs) * ss
            UnsafeMutableRawPointer(out + k).storeBytes(of: v, as: SIMD8<Float>.self)
            k += 8
          }
        }
        while k < end { out[k] = Float(Int4.nibble(rowP, k) - 8 - zp) * scale; k += 1 }
      }
    }
  }
}

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

  // MARK: - A quantized weight as the tiled kernels see it

  /// Blocks of `blockCols` columns (FP8 blocks; INT4 groups), each a run of whole 8-lane steps
  /// from its first column (then, FP8 only, scalar tail columns). `scales` are per row and block,
  /// as Float, already multiplied by the decoders' factor.
  struct Plan {
    enum Kind { case fp8, int4 }
    let kind: Kind
    let rows: Int, cols: Int
    let blockCols: Int, blocks: Int
    let data: UnsafeRawPointer
    let rowBytes: Int
    // FP8
    let fp8Scales: UnsafePointer<Float>?
    let blockRows: Int
    // INT4
    let int4Scales: UnsafeRawPointer?
    let scaleDType: DType
    let zeroPoints: UnsafeRawPointer?
    let rowOffset: Int
    /// FP8 blocks with a column count that is not a multiple of 8 (scalar tails).
    let hasTails: Bool
    /// INT4: the lane representation (Int4Lanes) and its factors on x and on the scales.
    let integerLanes: Bool
    let int4XFactor: Float, int4Factor: Float

    /// nil for the generic INT4 path (groups not a multiple of 16 columns).
    init?(_ w: LinearWeight) {
      switch w {
      case .fp8(let d, let n, let k, let s, let br, let bc, let off):
        kind = .fp8
        rows = n; cols = k; blockCols = bc; blocks = (k + bc - 1) / bc
        data = d; rowBytes = k
        fp8Scales = s; blockRows = br
        int4Scales = nil; scaleDType = .f32; zeroPoints = nil; rowOffset = off
        hasTails = bc % 8 != 0 || k % 8 != 0
        integerLanes = false; int4XFactor = 1; int4Factor = 1
      case .int4(let p, let n, let k, let s, let sd, let z, let g, _, let off):
        guard g % 16 == 0, k % g == 0, k > 0 else { return nil }
        kind = .int4
        rows = n; cols = k; blockCols = g; blocks = k / g
        data = p; rowBytes = k / 2
        fp8Scales = nil; blockRows = 1
        int4Scales = s; scaleDType = sd; zeroPoints = z; rowOffset = off
        hasTails = false
        integerLanes = QuantKernels.integerLanes
        int4XFactor = integerLanes ? 1 : QuantKernels.int4XFactor
        int4Factor = integerLanes ? 1 : QuantKernels.int4Factor
      case .float:
        return nil
      }
    }

    @inline(__always) func row(_ r: Int) -> UnsafeRawPointer { data + r * rowBytes }

    /// FP8: row r's block scales as stored (times fp8Factor before use).
    @inline(__always) func fp8ScaleRow(_ r: Int) -> UnsafePointer<Float> { fp8Scales! + ((rowOffset + r) / blockRows) * blocks }

    /// INT4: element index of row r's first group scale.
    @inline(__always) func int4ScaleIndex(_ r: Int) -> Int { (rowOffset + r) * blocks }

    /// Row r's per-block scales (times the decoder's factor) into out[0..<blocks].
    func rowScales(_ r: Int, into out: UnsafeMutablePointer<Float>) {
      switch kind {
      case .fp8:
        let src = fp8Scales! + ((rowOffset + r) / blockRows) * blocks
        for b in 0..<blocks { out[b] = src[b] * QuantKernels.fp8Factor }
      case .int4:
        let base = (rowOffset + r) * blocks
        let s = int4Scales!
        var b = 0
        switch scaleDType {
        case .bf16:
          while b + 8 <= blocks {
            let h = s.loadUnaligned(fromByteOffset: 2 * (base + b), as: SIMD8<UInt16>.self)
            let u = SIMD8<UInt32>(UInt32(h[0]), UInt32(h[1]), UInt32(h[2]), UInt32(h[3]),
                                  UInt32(h[4]), UInt32(h[5]), UInt32(h[6]), UInt32(h[7])) &<< 16
            UnsafeMutableRawPointer(out + b).storeBytes(of: unsafeBitCast(u, to: SIMD8<Float>.self), as: SIMD8<Float>.self)
            b += 8
          }
        case .f16:
          while b + 8 <= blocks {
            let h = s.loadUnaligned(fromByteOffset: 2 * (base + b), as: SIMD8<Float16>.self)
            let f = SIMD8<Float>(Float(h[0]), Float(h[1]), Float(h[2]), Float(h[3]),
                                 Float(h[4]), Float(h[5]), Float(h[6]), Float(h[7]))
            UnsafeMutableRawPointer(out + b).storeBytes(of: f, as: SIMD8<Float>.self)
            b += 8
          }
        default:
          break
        }
        while b < blocks { out[b] = QuantKernels.scale(s, scaleDType, base + b); b += 1 }
        for i in 0..<blocks { out[i] *= int4Factor }
      }
    }

    /// INT4: row r's per-group −(8 + zp) into out[0..<blocks] (−8 without zero points).
    func rowOffsets(_ r: Int, into out: UnsafeMutablePointer<Float>) {
      for g in 0..<blocks {
        out[g] = QuantKernels.int4Offset(QuantKernels.zeroPoint(zeroPoints, row: rowOffset + r, group: g, groups: blocks))
      }
    }

    /// Columns [b·blockCols, b·blockCols + 8·steps(b)) are the block's vector part.
    @inline(__always) func steps(_ b: Int) -> Int { (min(cols, (b + 1) * blockCols) - b * blockCols) >> 3 }

    /// Blocks [b0, b1) of row r decoded (unscaled) into out, column c at out[c − b0·blockCols]
    /// (INT4: in the lanes' column order).
    @inline(__always)
    func decodeBlocks(_ r: Int, _ b0: Int, _ b1: Int, into out: UnsafeMutablePointer<Float>) {
      let p = row(r)
      let base = b0 * blockCols
      switch kind {
      case .fp8:
        for b in b0..<b1 {
          let c0 = b * blockCols
          for i in 0..<steps(b) {
            let c = c0 + 8 * i
            UnsafeMutableRawPointer(out + (c - base)).storeBytes(of: QuantKernels.fp8x8(p + c), as: SIMD8<Float>.self)
          }
        }
      case .int4:
        var c = base
        let end = b1 * blockCols
        @inline(__always) func run<L: QuantKernels.Int4Lanes>(_: L.Type) {
          while c < end {
            let (lo, hi) = L.lanes(QuantKernels.int4Bytes(p + (c >> 1)))
            UnsafeMutableRawPointer(out + (c - base)).storeBytes(of: lo, as: SIMD8<Float>.self)
            UnsafeMutableRawPointer(out + (c + 8 - base)).storeBytes(of: hi, as: SIMD8<Float>.self)
            c += 16
          }
        }
        if integerLanes { run(QuantKernels.IntegerLanes.self) } else { run(QuantKernels.SubnormalLanes.self) }
      }
    }

    /// The scalar part of an element: per block, its tail columns in an fma chain, times the
    /// block scale, summed over the blocks in order (0 when there are no tail columns).
    @inline(__always)
    func tail(_ x: UnsafePointer<Float>, row r: Int) -> Float {
      if !hasTails { return 0 }
      let p = row(r)
      let scales = fp8ScaleRow(r)
      var tail: Float = 0
      for b in 0..<blocks {
        let end = min(cols, (b + 1) * blockCols)
        var c = b * blockCols + 8 * steps(b)
        if c == end { continue }
        var t: Float = 0
        while c < end {
          t = t.addingProduct(x[c], QuantKernels.fp8x1(p.load(fromByteOffset: c, as: UInt8.self)))
          c += 1
        }
        tail = tail.addingProduct(t, scales[b] * QuantKernels.fp8Factor)
      }
      return tail
    }
  }

  // MARK: - Generic INT4 (groups not a multiple of 16 columns: odd test shapes)
  //
  // Column order; per group an 8-lane FMA chain over its whole 8-column steps, then
  // total8 = fma(chain, splat(scale), total8); per group a scalar fma chain over the remaining
  // columns, tail = fma(chain, scale, tail); y = reduce8(total8) + tail. Weights u − 8 − zp.

  @inline(__always)
  static func dotInt4Generic(_ x: UnsafePointer<Float>, packed: UnsafeRawPointer, cols: Int, group: Int,
                             scales: UnsafePointer<Float>, zeros: UnsafePointer<Float>) -> Float {
    var total8 = SIMD8<Float>()
    var tail: Float = 0
    for g in 0..<(cols / group) {
      var acc = SIMD8<Float>()
      var c = g * group
      let end = c + group
      let zp = zeros[g]
      while c + 8 <= end {
        let w = c % 8 == 0 ? int4x8(packed.loadUnaligned(fromByteOffset: 4 * (c / 8), as: UInt32.self))
                           : SIMD8<Float>((0..<8).map { Float(Int4.nibble(packed, c + $0) - 8) })
        acc.addProduct(UnsafeRawPointer(x + c).loadUnaligned(as: SIMD8<Float>.self), w - SIMD8<Float>(repeating: zp))
        c += 8
      }
      let scale = scales[g]
      total8.addProduct(acc, SIMD8<Float>(repeating: scale))
      var t: Float = 0
      while c < end {
        t = t.addingProduct(x[c], Float(Int4.nibble(packed, c) - 8) - zp)
        c += 1
      }
      tail = tail.addingProduct(t, scale)
    }
    return reduce8(total8) + tail
  }
}

extension Kernels {
  /// y[t, n] = Σ_k x[t, k] · W[n, k] for a weight in any format.
  public static func linear(_ y: UnsafeMutablePointer<Float>, ldy: Int, _ x: UnsafePointer<Float>, ldx: Int,
                            tokens: Int, _ w: LinearWeight, pool: ThreadPool) {
    switch w {
    case .float(let m):
      linear(y, ldy: ldy, x, ldx: ldx, tokens: tokens, m, pool: pool)
    case .fp8, .int4:
      quantLinear(y, ldy: ldy, x, ldx: ldx, tokens: tokens, w, pool: pool)
    }
  }

  /// y[t, k] = Σ_n x[t, n] · W[n, k] for a weight in any format: each y[t, k] starts at 0 and
  /// takes y = fma(x[t, n], W[n, k], y) for n in order, W the dequantized values (as the float
  /// kernel's sequence). One token: rows dequantized one at a time into an L1 row, y updated in
  /// place; more: the slice dequantized once into F32 and the float kernel's register tiles.
  public static func linearTransposed(_ y: UnsafeMutablePointer<Float>, ldy: Int, _ x: UnsafePointer<Float>, ldx: Int,
                                      tokens: Int, _ w: LinearWeight) {
    if case .float(let m) = w { linearTransposed(y, ldy: ldy, x, ldx: ldx, tokens: tokens, m); return }
    let rows = w.rows, cols = w.cols
    if tokens <= 0 || cols == 0 { return }
    if tokens >= 2 {
      let buf = UnsafeMutablePointer<Float>.allocate(capacity: max(1, rows * cols))
      defer { buf.deallocate() }
      for n in 0..<rows { w.dequantizeRow(n, into: buf + n * cols) }
      linearTransposed(y, ldy: ldy, x, ldx: ldx, tokens: tokens, WeightMatrix(dtype: .f32, data: UnsafeRawPointer(buf), rows: rows, cols: cols))
      return
    }
    withUnsafeTemporaryAllocation(of: Float.self, capacity: cols + 8) { rb in
      let row = rb.baseAddress!
      let k8 = cols & ~7
      for t in 0..<tokens {
        let yt = y + t * ldy
        yt.update(repeating: 0, count: cols)
        for n in 0..<rows {
          w.dequantizeRow(n, into: row)
          let a = x[t * ldx + n]
          let av = SIMD8<Float>(repeating: a)
          var k = 0
          while k < k8 {
            var v = loadX(UnsafePointer(yt), k)
            v.addProduct(av, loadX(UnsafePointer(row), k))
            store8(yt + k, v)
            k += 8
          }
          while k < cols { yt[k] = yt[k].addingProduct(a, row[k]); k += 1 }
        }
      }
    }
  }

  /// Tokens at or above which weight rows are decoded once into scratch and reused across
  /// tokens in register tiles; below, each token runs the decode tiles.
  static let decodeRowAbove = 3
  /// Output rows per work item of the prefill path (a multiple of the 2-row tile).
  static let quantRowsPerChunk = 24
  /// Tokens per pass of the prefill path (a multiple of the 6-token tile): bounds the x block
  /// (this many tokens × one K-block) to L2 and the parked accumulators to 36 KiB.
  static let quantTokenBlock = 48
  /// Columns per K-block of the prefill path (rounded down to whole blocks, at least one): the
  /// chunk's decoded rows (24 × this many floats, 48 KiB) stay in L2 and a token tile's x in L1
  /// (256 to 2048 measured within noise of each other).
  static let quantKBlock = 512
  /// INT4 groups from which decode runs 8-row tiles (totals parked in L1) rather than two 4-row
  /// tiles (totals in registers): measured from L2, g128 15.4 against 14.2 GB/s, g32 12.9 against 14.0.
  static let int4Tile8Group = 64

  static func quantLinear(_ y: UnsafeMutablePointer<Float>, ldy: Int, _ x: UnsafePointer<Float>, ldx: Int,
                          tokens: Int, _ w: LinearWeight, pool: ThreadPool) {
    let n = w.rows, k = w.cols
    if n == 0 || tokens <= 0 { return }
    let pool = n * k * tokens < 1 << 15 ? ThreadPool.serial : pool
    guard let plan = QuantKernels.Plan(w) else {
      int4GenericLinear(y, ldy: ldy, x, ldx: ldx, tokens: tokens, w, pool: pool)
      return
    }
    // x as the lanes take it (INT4: permuted and scaled, plus the group sums; FP8: scaled), one
    // token block at a time.
    let tbMax = tokenBlock(plan, tokens, 0)
    let permCount = tbMax * (k + (plan.kind == .int4 ? plan.blocks : 0))
    if permCount > 0 && permCount <= 16384 {
      withUnsafeTemporaryAllocation(of: Float.self, capacity: permCount) { p in
        quantLinearBlocks(plan, y, ldy: ldy, x, ldx: ldx, tokens: tokens, perm: p.baseAddress!, pool: pool)
      }
    } else {
      let perm: UnsafeMutablePointer<Float>? = permCount > 0 ? .allocate(capacity: permCount) : nil
      defer { perm?.deallocate() }
      quantLinearBlocks(plan, y, ldy: ldy, x, ldx: ldx, tokens: tokens, perm: perm, pool: pool)
    }
  }

  /// Tokens of the block starting at t0: INT4 with 2 ... fewTokensMax tokens all at once (the
  /// few-token kernel), else one at a time below decodeRowAbove, else up to quantTokenBlock.
  static func tokenBlock(_ plan: QuantKernels.Plan, _ tokens: Int, _ t0: Int) -> Int {
    if plan.kind == .int4 && tokens >= 2 && tokens <= fewTokensMax { return tokens }
    return tokens < decodeRowAbove ? 1 : min(quantTokenBlock, tokens - t0)
  }

  /// Token blocks (one token at a time below decodeRowAbove), x prepared into `perm`.
  static func quantLinearBlocks(_ plan: QuantKernels.Plan, _ y: UnsafeMutablePointer<Float>, ldy: Int, _ x: UnsafePointer<Float>,
                                ldx: Int, tokens: Int, perm: UnsafeMutablePointer<Float>?, pool: ThreadPool) {
    let k = plan.cols
    let tbMax = tokenBlock(plan, tokens, 0)
    var t0 = 0
    while t0 < tokens {
      let tb = tokenBlock(plan, tokens, t0)
      var xb = x + t0 * ldx, ldxb = ldx
      var xs: UnsafePointer<Float>? = nil
      if let perm {
        switch plan.kind {
        case .int4:
          QuantKernels.prepareInt4(xb, ldx: ldx, tokens: tb, k: k, group: plan.blockCols, xFactor: plan.int4XFactor,
                                   into: perm, sums: perm + tbMax * k)
          xs = UnsafePointer(perm + tbMax * k)
        case .fp8:
          QuantKernels.scaleForFP8(xb, ldx: ldx, tokens: tb, k: k, into: perm)
        }
        xb = UnsafePointer(perm)
        ldxb = k
      }
      if tb == 1 {
        quantDecode(plan, y + t0 * ldy, xb, xs, pool: pool)
      } else if plan.kind == .int4, tb <= fewTokensMax, let xs {
        int4FewTokens(plan, y + t0 * ldy, ldy: ldy, xb, xs, tokens: tb, pool: pool)
      } else {
        quantPrefill(plan, y + t0 * ldy, ldy: ldy, xb, ldx: ldxb, xs, tokens: tb, pool: pool)
      }
      t0 += tb
    }
  }

  // MARK: - Decode: one token, 8 rows `spread` apart per tile (as Linear.swift's decodeChunk)

  /// `xs`: INT4 group sums of x (`prepareInt4`).
  static func quantDecode(_ plan: QuantKernels.Plan, _ y: UnsafeMutablePointer<Float>, _ x: UnsafePointer<Float>,
                          _ xs: UnsafePointer<Float>?, pool: ThreadPool) {
    let n = plan.rows
    // Rows of at most 4 cache lines: adjacent rows (one sequential stream) measured 20% faster
    // than spaced ones (1024 × 256 INT4 and FP8, from DRAM); longer rows as the float kernel.
    let spread = plan.rowBytes <= 256 ? 1 : decodeSpread(rowBytes: plan.rowBytes, rows: n)
    let chunkRows = 8 * spread
    let chunks = (n + chunkRows - 1) / chunkRows
    let blocks = plan.blocks
    let zp = plan.zeroPoints != nil
    pool.parallelFor(chunks) { ci in
      let r0 = ci * chunkRows, r1 = min(n, r0 + chunkRows)
      // INT4 zero points: the tile's per-group −(8 + zp); the totals, zero-point parts and scratch.
      withUnsafeTemporaryAllocation(of: Float.self, capacity: zp ? 8 * blocks : 1) { buf in
        withUnsafeTemporaryAllocation(of: SIMD8<Float>.self, capacity: 26) { tot in
          let offs: UnsafeMutablePointer<Float>? = zp ? buf.baseAddress! : nil
          let totals = tot.baseAddress!
          let zpart = UnsafeMutableRawPointer(totals + 8).assumingMemoryBound(to: Float.self)
          var g = r0
          while g < r1 {
            for phase in 0..<spread {
              let r = g + phase
              if r >= r1 { break }
              // Rows past r1 repeat the last real row; their results are dropped.
              @inline(__always) func rr(_ j: Int) -> Int { min(r + spread * j, r1 - 1) }
              let m = (r1 - r + spread - 1) / spread  // real rows in this tile
              switch plan.kind {
              case .fp8:
                fp8Tile8(plan, rr(0), rr(1), rr(2), rr(3), rr(4), rr(5), rr(6), rr(7), x, totals)
              case .int4:
                let rows = (rr(0), rr(1), rr(2), rr(3), rr(4), rr(5), rr(6), rr(7))
                let o: UnsafeMutablePointer<Float>? = offs
                if let offs { for j in 0..<8 { plan.rowOffsets(rr(j), into: offs + j * blocks) } }
                @inline(__always) func tiles<L: QuantKernels.Int4Lanes>(_ l: L.Type) {
                  if plan.blockCols >= int4Tile8Group {
                    int4Tile8(l, plan, rows, x, xs!, o, totals, zpart, totals + 10)
                  } else {
                    int4Tile4(l, plan, (rows.0, rows.1, rows.2, rows.3), x, xs!, o, totals, zpart, totals + 10)
                    int4Tile4(l, plan, (rows.4, rows.5, rows.6, rows.7), x, xs!, o.map { $0 + 4 * blocks }, totals + 4, zpart + 4,
                              totals + 10)
                  }
                }
                if plan.integerLanes { tiles(QuantKernels.IntegerLanes.self) } else { tiles(QuantKernels.SubnormalLanes.self) }
              }
              for j in 0..<min(m, 8) {
                y[rr(j)] = reduce8(totals[j]) + (plan.kind == .int4 ? zpart[j] : plan.tail(x, row: rr(j)))
              }
            }
            g += chunkRows
          }
        }
      }
    }
  }

  /// FP8, one token, 8 rows: per block 8 FMA chains over its 8-column steps (x loaded once per
  /// step for the 8 rows), then totals[j] = fma(chain j, splat(scale), totals[j]).
  @inline(__always)
  static func fp8Tile8(_ plan: QuantKernels.Plan, _ r0: Int, _ r1: Int, _ r2: Int, _ r3: Int, _ r4: Int, _ r5: Int, _ r6: Int,
                       _ r7: Int, _ x: UnsafePointer<Float>, _ totals: UnsafeMutablePointer<SIMD8<Float>>) {
    let p0 = plan.row(r0), p1 = plan.row(r1), p2 = plan.row(r2), p3 = plan.row(r3)
    let p4 = plan.row(r4), p5 = plan.row(r5), p6 = plan.row(r6), p7 = plan.row(r7)
    let s0 = plan.fp8ScaleRow(r0), s1 = plan.fp8ScaleRow(r1), s2 = plan.fp8ScaleRow(r2), s3 = plan.fp8ScaleRow(r3)
    let s4 = plan.fp8ScaleRow(r4), s5 = plan.fp8ScaleRow(r5), s6 = plan.fp8ScaleRow(r6), s7 = plan.fp8ScaleRow(r7)
    let f = QuantKernels.fp8Factor
    let blocks = plan.blocks, bc = plan.blockCols
    for j in 0..<8 { totals[j] = SIMD8<Float>() }
    for b in 0..<blocks {
      var a0 = SIMD8<Float>(), a1 = SIMD8<Float>(), a2 = SIMD8<Float>(), a3 = SIMD8<Float>()
      var a4 = SIMD8<Float>(), a5 = SIMD8<Float>(), a6 = SIMD8<Float>(), a7 = SIMD8<Float>()
      var c = b &* bc
      let end = c &+ 8 &* plan.steps(b)
      while c < end {
        let xv = loadX(x, c)
        a0.addProduct(xv, QuantKernels.fp8x8(p0 + c))
        a1.addProduct(xv, QuantKernels.fp8x8(p1 + c))
        a2.addProduct(xv, QuantKernels.fp8x8(p2 + c))
        a3.addProduct(xv, QuantKernels.fp8x8(p3 + c))
        a4.addProduct(xv, QuantKernels.fp8x8(p4 + c))
        a5.addProduct(xv, QuantKernels.fp8x8(p5 + c))
        a6.addProduct(xv, QuantKernels.fp8x8(p6 + c))
        a7.addProduct(xv, QuantKernels.fp8x8(p7 + c))
        c &+= 8
      }
      totals[0].addProduct(a0, SIMD8<Float>(repeating: s0[b] * f))
      totals[1].addProduct(a1, SIMD8<Float>(repeating: s1[b] * f))
      totals[2].addProduct(a2, SIMD8<Float>(repeating: s2[b] * f))
      totals[3].addProduct(a3, SIMD8<Float>(repeating: s3[b] * f))
      totals[4].addProduct(a4, SIMD8<Float>(repeating: s4[b] * f))
      totals[5].addProduct(a5, SIMD8<Float>(repeating: s5[b] * f))
      totals[6].addProduct(a6, SIMD8<Float>(repeating: s6[b] * f))
      totals[7].addProduct(a7, SIMD8<Float>(repeating: s7[b] * f))
    }
  }

  /// INT4, one token (x prepared, xs its group sums), 8 rows (−(8 + zp) of row j at j·blocks, or
  /// −8 for all): per group 8 FMA chains over its 16-column steps (even then odd lanes), then
  /// totals[j] = fma(chain j, splat(scale), totals[j]) (totals parked in L1); the zero-point parts
  /// into zpart[j] (`int4Correction`). The group scales are widened 8 groups at a time inside the
  /// loop (their loads overlap the work), which also advances the zero-point chains (in L1).
  /// Each row's step is written load → FMA(even) → FMA(odd): decoding both halves first made
  /// LLVM rotate the chains through the FMA's 213 form and spill them (30% slower).
  /// `tmp`: 16 vectors of scratch.
  @inline(__always)
  static func int4Tile8<L: QuantKernels.Int4Lanes>(_: L.Type, _ plan: QuantKernels.Plan, _ r: (Int, Int, Int, Int, Int, Int, Int, Int),
                        _ x: UnsafePointer<Float>, _ xs: UnsafePointer<Float>, _ offs: UnsafePointer<Float>?,
                        _ totals: UnsafeMutablePointer<SIMD8<Float>>, _ zpart: UnsafeMutablePointer<Float>,
                        _ tmp: UnsafeMutablePointer<SIMD8<Float>>) {
    let p0 = plan.row(r.0), p1 = plan.row(r.1), p2 = plan.row(r.2), p3 = plan.row(r.3)
    let p4 = plan.row(r.4), p5 = plan.row(r.5), p6 = plan.row(r.6), p7 = plan.row(r.7)
    let blocks = plan.blocks, g = plan.blockCols
    let s = plan.int4Scales!, dt = plan.scaleDType
    @inline(__always) func si(_ j: Int) -> Int {
      switch j {
      case 0: return plan.int4ScaleIndex(r.0)
      case 1: return plan.int4ScaleIndex(r.1)
      case 2: return plan.int4ScaleIndex(r.2)
      case 3: return plan.int4ScaleIndex(r.3)
      case 4: return plan.int4ScaleIndex(r.4)
      case 5: return plan.int4ScaleIndex(r.5)
      case 6: return plan.int4ScaleIndex(r.6)
      default: return plan.int4ScaleIndex(r.7)
      }
    }
    let scl = tmp, zc = tmp + 8  // scales times int4Factor [8 × 8]; zero-point chains [8]
    let sp = UnsafeMutableRawPointer(scl).assumingMemoryBound(to: Float.self)
    let f = SIMD8<Float>(repeating: plan.int4Factor)
    let m8 = SIMD8<Float>(repeating: QuantKernels.int4Offset(0))
    for j in 0..<8 { totals[j] = SIMD8<Float>(); zc[j] = SIMD8<Float>() }
    let full = blocks & ~7
    var c = 0
    for b in 0..<blocks {
      let k = b & 7
      if k == 0 {
        if b < full {
          let xv = loadX(xs, b)
          for j in 0..<8 {
            let v = QuantKernels.scales8(s, dt, si(j) &+ b)
            scl[j] = v * f
            zc[j].addProduct(v * (offs.map { loadX($0, j &* blocks &+ b) } ?? m8), xv)
          }
        } else {
          let fs = plan.int4Factor
          for j in 0..<8 {
            for i in 0..<(blocks - b) { sp[8 * j + i] = QuantKernels.scale(s, dt, si(j) + b + i) * fs }
          }
        }
      }
      var a0 = SIMD8<Float>(), a1 = SIMD8<Float>(), a2 = SIMD8<Float>(), a3 = SIMD8<Float>()
      var a4 = SIMD8<Float>(), a5 = SIMD8<Float>(), a6 = SIMD8<Float>(), a7 = SIMD8<Float>()
      let end = c &+ g
      while c < end {
        let xa = loadX(x, c), xb = loadX(x, c &+ 8)
        let h = c &>> 1
        @inline(__always) func step(_ p: UnsafeRawPointer, _ a: inout SIMD8<Float>) {
          let (lo, hi) = L.lanes(QuantKernels.int4Bytes(p + h))
          a.addProduct(xa, lo)
          a.addProduct(xb, hi)
        }
        step(p0, &a0); step(p1, &a1); step(p2, &a2); step(p3, &a3)
        step(p4, &a4); step(p5, &a5); step(p6, &a6); step(p7, &a7)
        c &+= 16
      }
      totals[0].addProduct(a0, SIMD8<Float>(repeating: sp[k])); totals[1].addProduct(a1, SIMD8<Float>(repeating: sp[8 &+ k]))
      totals[2].addProduct(a2, SIMD8<Float>(repeating: sp[16 &+ k])); totals[3].addProduct(a3, SIMD8<Float>(repeating: sp[24 &+ k]))
      totals[4].addProduct(a4, SIMD8<Float>(repeating: sp[32 &+ k])); totals[5].addProduct(a5, SIMD8<Float>(repeating: sp[40 &+ k]))
      totals[6].addProduct(a6, SIMD8<Float>(repeating: sp[48 &+ k])); totals[7].addProduct(a7, SIMD8<Float>(repeating: sp[56 &+ k]))
    }
    // The zero-point parts: reduce8 of the chains, then the last groups one by one.
    for j in 0..<8 {
      var rr = reduce8(zc[j])
      for b in full..<blocks {
        let o = offs.map { $0[j * blocks + b] } ?? QuantKernels.int4Offset(0)
        rr = rr.addingProduct(QuantKernels.scale(s, dt, si(j) + b) * o, xs[b])
      }
      zpart[j] = rr
    }
  }

  /// `int4Tile8` for 4 rows with the totals in registers (better for small groups, where the
  /// per-group fold of parked totals would cost as much as the group's steps).
  @inline(__always)
  static func int4Tile4<L: QuantKernels.Int4Lanes>(_: L.Type, _ plan: QuantKernels.Plan, _ r: (Int, Int, Int, Int),
                        _ x: UnsafePointer<Float>, _ xs: UnsafePointer<Float>, _ offs: UnsafePointer<Float>?,
                        _ totals: UnsafeMutablePointer<SIMD8<Float>>, _ zpart: UnsafeMutablePointer<Float>,
                        _ tmp: UnsafeMutablePointer<SIMD8<Float>>) {
    let p0 = plan.row(r.0), p1 = plan.row(r.1), p2 = plan.row(r.2), p3 = plan.row(r.3)
    let blocks = plan.blocks, g = plan.blockCols
    let s = plan.int4Scales!, dt = plan.scaleDType
    @inline(__always) func si(_ j: Int) -> Int {
      switch j {
      case 0: return plan.int4ScaleIndex(r.0)
      case 1: return plan.int4ScaleIndex(r.1)
      case 2: return plan.int4ScaleIndex(r.2)
      default: return plan.int4ScaleIndex(r.3)
      }
    }
    let scl = tmp, zc = tmp + 4  // scales times int4Factor [4 × 8]; zero-point chains [4]
    let sp = UnsafeMutableRawPointer(scl).assumingMemoryBound(to: Float.self)
    let f = SIMD8<Float>(repeating: plan.int4Factor)
    let m8 = SIMD8<Float>(repeating: QuantKernels.int4Offset(0))
    for j in 0..<4 { zc[j] = SIMD8<Float>() }
    var t0 = SIMD8<Float>(), t1 = SIMD8<Float>(), t2 = SIMD8<Float>(), t3 = SIMD8<Float>()
    let full = blocks & ~7
    var c = 0
    for b in 0..<blocks {
      let k = b & 7
      if k == 0 {
        if b < full {
          let xv = loadX(xs, b)
          for j in 0..<4 {
            let v = QuantKernels.scales8(s, dt, si(j) &+ b)
            scl[j] = v * f
            zc[j].addProduct(v * (offs.map { loadX($0, j &* blocks &+ b) } ?? m8), xv)
          }
        } else {
          let fs = plan.int4Factor
          for j in 0..<4 {
            for i in 0..<(blocks - b) { sp[8 * j + i] = QuantKernels.scale(s, dt, si(j) + b + i) * fs }
          }
        }
      }
      var a0 = SIMD8<Float>(), a1 = SIMD8<Float>(), a2 = SIMD8<Float>(), a3 = SIMD8<Float>()
      let end = c &+ g
      while c < end {
        let xa = loadX(x, c), xb = loadX(x, c &+ 8)
        let h = c &>> 1
        @inline(__always) func step(_ p: UnsafeRawPointer, _ a: inout SIMD8<Float>) {
          let (lo, hi) = L.lanes(QuantKernels.int4Bytes(p + h))
          a.addProduct(xa, lo)
          a.addProduct(xb, hi)
        }
        step(p0, &a0); step(p1, &a1); step(p2, &a2); step(p3, &a3)
        c &+= 16
      }
      t0.addProduct(a0, SIMD8<Float>(repeating: sp[k])); t1.addProduct(a1, SIMD8<Float>(repeating: sp[8 &+ k]))
      t2.addProduct(a2, SIMD8<Float>(repeating: sp[16 &+ k])); t3.addProduct(a3, SIMD8<Float>(repeating: sp[24 &+ k]))
    }
    totals[0] = t0; totals[1] = t1; totals[2] = t2; totals[3] = t3
    for j in 0..<4 {
      var rr = reduce8(zc[j])
      for b in full..<blocks {
        let o = offs.map { $0[j * blocks + b] } ?? QuantKernels.int4Offset(0)
        rr = rr.addingProduct(QuantKernels.scale(s, dt, si(j) + b) * o, xs[b])
      }
      zpart[j] = rr
    }
  }

  // MARK: - Prefill: rows decoded once per token block into float scratch, 2 × 6 register tiles

  /// Tokens [0, T) (T ≤ quantTokenBlock), x already in the lanes' column order.
  static func quantPrefill(_ plan: QuantKernels.Plan, _ y: UnsafeMutablePointer<Float>, ldy: Int, _ x: UnsafePointer<Float>,
                           ldx: Int, _ xs: UnsafePointer<Float>?, tokens T: Int, pool: ThreadPool) {
    let int4 = plan.kind == .int4
    let n = plan.rows, blocks = plan.blocks, bc = plan.blockCols
    let chunkRows = quantRowsPerChunk
    let chunks = (n + chunkRows - 1) / chunkRows
    let rowTiles = chunkRows / 2
    let tTiles = (T + 5) / 6
    let kbBlocks = max(1, quantKBlock / bc)
    let scratchCols = kbBlocks * bc
    let workers = min(pool.threads, chunks)
    pool.parallelFor(workers) { wk in
      // Per worker: row scales (INT4: and the rows' −(8 + zp) · s) of a chunk, parked
      // accumulators, the chunk's decoded rows over one K-block.
      let sc = UnsafeMutablePointer<Float>.allocate(capacity: chunkRows * blocks * (int4 ? 2 : 1))
      let state = UnsafeMutablePointer<SIMD8<Float>>.allocate(capacity: rowTiles * tTiles * 12)
      let wbuf = UnsafeMutablePointer<Float>.allocate(capacity: chunkRows * scratchCols + 16)
      defer { sc.deallocate(); state.deallocate(); wbuf.deallocate() }
      let cs: UnsafeMutablePointer<Float>? = int4 ? sc + chunkRows * blocks : nil
      var ci = wk
      while ci < chunks {
        let r0 = ci * chunkRows, r1 = min(n, r0 + chunkRows)
        let rows = r1 - r0
        let rt1 = (rows + 1) / 2
        for i in 0..<rows {
          plan.rowScales(r0 + i, into: sc + i * blocks)
          if let cs {
            // s · (−(8 + zp)), s recovered exactly from s · int4Factor: as the decode tile's product.
            let ci = cs + i * blocks, si = sc + i * blocks
            plan.rowOffsets(r0 + i, into: ci)
            for g in 0..<blocks { ci[g] = (si[g] * (1 / plan.int4Factor)) * ci[g] }
          }
        }
        state.initialize(repeating: SIMD8<Float>(), count: rt1 * tTiles * 12)
        var b0 = 0
        while b0 < blocks {
          let b1 = min(blocks, b0 + kbBlocks)
          let cBase = b0 * bc
          // The chunk's rows over this K-block, decoded once, then every token tile × row tile.
          for i in 0..<rows { plan.decodeBlocks(r0 + i, b0, b1, into: wbuf + i * scratchCols) }
          for tt in 0..<tTiles {
            let t = 6 * tt
            // Tokens past T repeat the last real one; their results are dropped.
            @inline(__always) func xp(_ u: Int) -> UnsafePointer<Float> { x + min(t + u, T - 1) * ldx }
            let x0 = xp(0), x1 = xp(1), x2 = xp(2), x3 = xp(3), x4 = xp(4), x5 = xp(5)
            for rt in 0..<rt1 {
              // Rows past r1 repeat the last real row; their results are dropped.
              let ia = 2 * rt, ib = min(2 * rt + 1, rows - 1)
              quantTile2x6(plan, wbuf + ia * scratchCols - cBase, wbuf + ib * scratchCols - cBase, x0, x1, x2, x3, x4, x5,
                           b0, b1, sc + ia * blocks, sc + ib * blocks, state + 12 * (rt * tTiles + tt))
            }
          }
          b0 = b1
        }
        for rt in 0..<rt1 {
          for j in 0..<min(2, r1 - r0 - 2 * rt) {
            let i = 2 * rt + j
            for t in 0..<T {
              let xt = x + t * ldx
              let rest = cs.map { QuantKernels.int4Correction($0 + i * blocks, xs! + t * blocks, groups: blocks) }
                ?? plan.tail(xt, row: r0 + i)
              y[t * ldy + r0 + i] = reduce8(state[12 * (rt * tTiles + t / 6) + 6 * j + t % 6]) + rest
            }
          }
        }
        ci += workers
      }
    }
  }

  /// Blocks [b0, b1) of 2 decoded rows (w0, w1 indexed by column) × 6 tokens: per block 12 fresh
  /// FMA chains over the block's 8-column steps, then acc[6j + u] = fma(chain, splat(scale_j), acc[6j + u]).
  @inline(__always)
  static func quantTile2x6(_ plan: QuantKernels.Plan, _ w0: UnsafePointer<Float>, _ w1: UnsafePointer<Float>,
                           _ x0: UnsafePointer<Float>, _ x1: UnsafePointer<Float>, _ x2: UnsafePointer<Float>,
                           _ x3: UnsafePointer<Float>, _ x4: UnsafePointer<Float>, _ x5: UnsafePointer<Float>,
                           _ b0: Int, _ b1: Int, _ s0: UnsafePointer<Float>, _ s1: UnsafePointer<Float>,
                           _ acc: UnsafeMutablePointer<SIMD8<Float>>) {
    let bc = plan.blockCols
    for b in b0..<b1 {
      var a00 = SIMD8<Float>(), a01 = SIMD8<Float>(), a02 = SIMD8<Float>(), a03 = SIMD8<Float>(), a04 = SIMD8<Float>(), a05 = SIMD8<Float>()
      var a10 = SIMD8<Float>(), a11 = SIMD8<Float>(), a12 = SIMD8<Float>(), a13 = SIMD8<Float>(), a14 = SIMD8<Float>(), a15 = SIMD8<Float>()
      var i = b &* bc
      let end = i &+ 8 &* plan.steps(b)
      while i < end {
        let v0 = loadX(w0, i), v1 = loadX(w1, i)
        let u0 = loadX(x0, i)
        a00.addProduct(u0, v0); a10.addProduct(u0, v1)
        let u1 = loadX(x1, i)
        a01.addProduct(u1, v0); a11.addProduct(u1, v1)
        let u2 = loadX(x2, i)
        a02.addProduct(u2, v0); a12.addProduct(u2, v1)
        let u3 = loadX(x3, i)
        a03.addProduct(u3, v0); a13.addProduct(u3, v1)
        let u4 = loadX(x4, i)
        a04.addProduct(u4, v0); a14.addProduct(u4, v1)
        let u5 = loadX(x5, i)
        a05.addProduct(u5, v0); a15.addProduct(u5, v1)
        i &+= 8
      }
      let c0 = SIMD8<Float>(repeating: s0[b]), c1 = SIMD8<Float>(repeating: s1[b])
      acc[0].addProduct(a00, c0); acc[1].addProduct(a01, c0); acc[2].addProduct(a02, c0)
      acc[3].addProduct(a03, c0); acc[4].addProduct(a04, c0); acc[5].addProduct(a05, c0)
      acc[6].addProduct(a10, c1); acc[7].addProduct(a11, c1); acc[8].addProduct(a12, c1)
      acc[9].addProduct(a13, c1); acc[10].addProduct(a14, c1); acc[11].addProduct(a15, c1)
    }
  }

  // MARK: - Generic INT4 (groups not a multiple of 16 columns)

  static func int4GenericLinear(_ y: UnsafeMutablePointer<Float>, ldy: Int, _ x: UnsafePointer<Float>, ldx: Int,
                                tokens: Int, _ w: LinearWeight, pool: ThreadPool) {
    guard case .int4(let pk, let n, let cols, let s, let sd, let z, let g, _, let off) = w else { return }
    let words = (cols + 7) / 8
    let groups = cols / g
    let chunk = 16
    let chunks = (n + chunk - 1) / chunk
    pool.parallelFor(chunks) { ci in
      let r0 = ci * chunk, r1 = min(n, r0 + chunk)
      withUnsafeTemporaryAllocation(of: Float.self, capacity: 2 * max(1, groups)) { buf in
        let sbuf = buf.baseAddress!, zbuf = sbuf + max(1, groups)
        for r in r0..<r1 {
          let row = pk + r * 4 * words
          for gi in 0..<groups {
            sbuf[gi] = QuantKernels.scale(s, sd, (off + r) * groups + gi)
            zbuf[gi] = Float(QuantKernels.zeroPoint(z, row: off + r, group: gi, groups: groups))
          }
          for t in 0..<tokens {
            y[t * ldy + r] = QuantKernels.dotInt4Generic(x + t * ldx, packed: row, cols: cols, group: g, scales: sbuf, zeros: zbuf)
          }
        }
      }
    }
  }
}

extension Reference {
  /// y = x · Wᵀ with W dequantized element by element (Double accumulation): the oracle for every
  /// format.
  public static func linear(_ y: UnsafeMutablePointer<Float>, ldy: Int, _ x: UnsafePointer<Float>, ldx: Int,
                            tokens: Int, _ w: LinearWeight) {
    let row = UnsafeMutablePointer<Float>.allocate(capacity: max(w.cols, 1))
    defer { row.deallocate() }
    for n in 0..<w.rows {
      w.dequantizeRow(n, into: row)
      for t in 0..<tokens {
        var s: Double = 0
        for k in 0..<w.cols { s += Double(x[t * ldx + k]) * Double(row[k]) }
        y[t * ldy + n] = Float(s)
      }
    }
  }
}
