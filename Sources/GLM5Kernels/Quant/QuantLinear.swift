// Linear layers over quantized weights, dequantized in registers (no fp32 copy of a weight is
// ever kept):
//   FP8 block:  y[t, n] = Σ_b  s[n / Br, b] · Σ_{c ∈ block b} x[t, c] · fp8(W[n, c])
//   INT4 group: y[t, n] = Σ_g  s[n, g] · ( Σ_{c ∈ group g} x[t, c] · (u[n, c] − 8)  −  zp[n, g] · Σ_{c ∈ g} x[t, c] )
// Row invariance as in Linear.swift: each (t, n) is computed by one fixed sequence — per block or
// group an 8-lane FMA chain in column order, the `reduce8` reduction, the scalar tail, then the
// scaled sum over blocks in order — whether the weight row is decoded in registers (few tokens)
// or once into a scratch row of exact small integers / e4m3 values (many tokens).
//
// Shapes: y [T, N] (ldy), x [T, K] (ldx). FP8: W [N, K] bytes, s [ceil(N/Br), ceil(K/Bc)] F32.
// INT4: packed [N, ceil(K/8)] words, s [N, K/G] (F32/BF16/F16), zp packed [ceil(N/8), K/G] or nil.

import GLM5Core

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

  /// Row r fully dequantized (q − zp) · s into out [cols] (reference and transposed products).
  public func dequantizeRow(_ r: Int, into out: UnsafeMutablePointer<Float>) {
    switch self {
    case .float(let m): m.copyRow(r, to: out)
    case .fp8(let d, _, let c, let s, let br, let bc, let off):
      let sc = (c + bc - 1) / bc
      let srow = s + ((off + r) / br) * sc
      let row = d + r * c
      for k in 0..<c { out[k] = f8e4m3ToFloat(row.load(fromByteOffset: k, as: UInt8.self)) * srow[k / bc] }
    case .int4(let p, _, let c, let s, let sd, let z, let g, _, let off):
      let rowP = p + r * 4 * ((c + 7) / 8)
      let groups = c / g
      for gi in 0..<groups {
        let scale = QuantKernels.scale(s, sd, (off + r) * groups + gi)
        let zp = QuantKernels.zeroPoint(z, row: off + r, group: gi, groups: groups)
        for k in (gi * g)..<((gi + 1) * g) { out[k] = Float(Int4.nibble(rowP, k) - 8 - zp) * scale }
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

  @inline(__always) static func zeroPoint(_ z: UnsafeRawPointer?, row: Int, group: Int, groups: Int) -> Int32 {
    guard let z else { return 0 }
    let word = z.loadUnaligned(fromByteOffset: 4 * ((row / 8) * groups + group), as: UInt32.self)
    return Int32((word >> (4 * UInt32(row % 8))) & 0xF) - 8
  }

  @inline(__always) static func reduce8(_ a: SIMD8<Float>) -> Float {
    ((a[0] + a[4]) + (a[2] + a[6])) + ((a[1] + a[5]) + (a[3] + a[7]))
  }

  /// 8 e4m3 bytes → Float lanes, exactly: sign to bit 31, exponent and mantissa to bits 26…20
  /// (an f32 of exponent e − 127, subnormal codes landing on f32 subnormals), times 2^120.
  @inline(__always) static func fp8x8(_ p: UnsafeRawPointer) -> SIMD8<Float> {
    let b = p.loadUnaligned(as: SIMD8<UInt8>.self)
    let u = SIMD8<UInt32>(UInt32(b[0]), UInt32(b[1]), UInt32(b[2]), UInt32(b[3]),
                          UInt32(b[4]), UInt32(b[5]), UInt32(b[6]), UInt32(b[7]))
    let bits = ((u & 0x80) &<< 24) | ((u & 0x7F) &<< 20)
    return unsafeBitCast(bits, to: SIMD8<Float>.self) * SIMD8<Float>(repeating: 0x1p120)
  }

  @inline(__always) static func fp8x1(_ v: UInt8) -> Float {
    Float(bitPattern: (UInt32(v & 0x80) << 24) | (UInt32(v & 0x7F) << 20)) * 0x1p120
  }

  /// 8 nibbles of one packed word → (u − 8) as Float lanes, exactly (2^23 + u trick, no int→float call).
  @inline(__always) static func int4x8(_ word: UInt32) -> SIMD8<Float> {
    let w = SIMD8<UInt32>(repeating: word)
    let nib = (w &>> SIMD8<UInt32>(0, 4, 8, 12, 16, 20, 24, 28)) & 0xF
    return unsafeBitCast(nib | 0x4B00_0000, to: SIMD8<Float>.self) - SIMD8<Float>(repeating: 8_388_616)
  }

  // MARK: - One row · one token, in the fixed sequence
  //
  // Per block (FP8) or group (INT4): an 8-lane FMA chain over its columns in order, then
  // total8 = fma(chain, splat(scale), total8). One `reduce8` per row, then the scalar parts
  // (columns past the last multiple of 8 in a block, and the INT4 zero-point term) in order.

  /// FP8: `w` are the row's e4m3 bytes, or their decoded floats in `decoded`.
  @inline(__always)
  static func dotFP8(_ x: UnsafePointer<Float>, row: UnsafeRawPointer, decoded: UnsafePointer<Float>?, cols: Int,
                     scales: UnsafePointer<Float>, blockCols: Int) -> Float {
    var total8 = SIMD8<Float>()
    var tail: Float = 0
    var b = 0, start = 0
    while start < cols {
      let end = min(cols, start + blockCols)
      let scale = scales[b]
      var acc = SIMD8<Float>()
      var c = start
      if let decoded {
        while c + 8 <= end {
          acc.addProduct(UnsafeRawPointer(x + c).loadUnaligned(as: SIMD8<Float>.self),
                         UnsafeRawPointer(decoded + c).loadUnaligned(as: SIMD8<Float>.self))
          c += 8
        }
      } else {
        while c + 8 <= end {
          acc.addProduct(UnsafeRawPointer(x + c).loadUnaligned(as: SIMD8<Float>.self), fp8x8(row + c))
          c += 8
        }
      }
      total8.addProduct(acc, SIMD8<Float>(repeating: scale))
      var t: Float = 0
      while c < end {
        t = t.addingProduct(x[c], decoded?[c] ?? fp8x1(row.load(fromByteOffset: c, as: UInt8.self)))
        c += 1
      }
      tail = tail.addingProduct(t, scale)
      b += 1
      start = end
    }
    return reduce8(total8) + tail
  }

  /// INT4: `packed` are the row's words, or `decoded` their (u − 8) values; `scales`/`zeros` the
  /// row's per-group values as Float; `xsum` Σ x over each group (shared by every row).
  @inline(__always)
  static func dotInt4(_ x: UnsafePointer<Float>, packed: UnsafeRawPointer, decoded: UnsafePointer<Float>?, cols: Int, group: Int,
                      scales: UnsafePointer<Float>, zeros: UnsafePointer<Float>?, xsum: UnsafePointer<Float>?) -> Float {
    var total8 = SIMD8<Float>()
    var tail: Float = 0
    for g in 0..<(cols / group) {
      var acc = SIMD8<Float>()
      var c = g * group
      let end = c + group
      if let decoded {
        while c + 8 <= end {
          acc.addProduct(UnsafeRawPointer(x + c).loadUnaligned(as: SIMD8<Float>.self),
                         UnsafeRawPointer(decoded + c).loadUnaligned(as: SIMD8<Float>.self))
          c += 8
        }
      } else {
        while c + 8 <= end {
          acc.addProduct(UnsafeRawPointer(x + c).loadUnaligned(as: SIMD8<Float>.self),
                         int4x8(packed.loadUnaligned(fromByteOffset: 4 * (c / 8), as: UInt32.self)))
          c += 8
        }
      }
      let scale = scales[g]
      total8.addProduct(acc, SIMD8<Float>(repeating: scale))
      var t: Float = 0
      while c < end {  // groups are multiples of 32 in practice; kept for odd test shapes
        t = t.addingProduct(x[c], decoded?[c] ?? Float(Int4.nibble(packed, c) - 8))
        c += 1
      }
      if let zeros, let xsum { t = t.addingProduct(-zeros[g], xsum[g]) }
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

  /// y[t, k] = Σ_n x[t, n] · W[n, k] for a weight in any format (quantized rows are dequantized
  /// one at a time; each y[t, k] accumulates over n in order).
  public static func linearTransposed(_ y: UnsafeMutablePointer<Float>, ldy: Int, _ x: UnsafePointer<Float>, ldx: Int,
                                      tokens: Int, _ w: LinearWeight) {
    if case .float(let m) = w { linearTransposed(y, ldy: ldy, x, ldx: ldx, tokens: tokens, m); return }
    let cols = w.cols
    for t in 0..<tokens { (y + t * ldy).update(repeating: 0, count: cols) }
    let row = UnsafeMutablePointer<Float>.allocate(capacity: max(cols, 1))
    defer { row.deallocate() }
    for n in 0..<w.rows {
      w.dequantizeRow(n, into: row)
      for t in 0..<tokens {
        let a = x[t * ldx + n]
        let yt = y + t * ldy
        for k in 0..<cols { yt[k] = yt[k].addingProduct(a, row[k]) }
      }
    }
  }

  /// Tokens at or above which a weight row is decoded once into scratch instead of per token.
  static let decodeRowAbove = 3

  static func quantLinear(_ y: UnsafeMutablePointer<Float>, ldy: Int, _ x: UnsafePointer<Float>, ldx: Int,
                          tokens: Int, _ w: LinearWeight, pool: ThreadPool) {
    let n = w.rows, cols = w.cols
    if n == 0 || tokens <= 0 { return }
    // INT4 with zero points: Σ x per group and token, shared by every row.
    var xsum: UnsafeMutablePointer<Float>? = nil
    if case .int4(_, _, _, _, _, let z, let g, _, _) = w, z != nil {
      let groups = cols / g
      let p = UnsafeMutablePointer<Float>.allocate(capacity: max(1, tokens * groups))
      for t in 0..<tokens {
        for gi in 0..<groups {
          var s: Float = 0
          for c in (gi * g)..<((gi + 1) * g) { s += x[t * ldx + c] }
          p[t * groups + gi] = s
        }
      }
      xsum = p
    }
    defer { xsum?.deallocate() }
    let chunk = 16
    let chunks = (n + chunk - 1) / chunk
    let pool = n * cols * tokens < 1 << 15 ? ThreadPool.serial : pool
    pool.parallelFor(chunks) { ci in
      let r0 = ci * chunk, r1 = min(n, r0 + chunk)
      let scratch: UnsafeMutablePointer<Float>? = tokens >= decodeRowAbove ? .allocate(capacity: cols) : nil
      defer { scratch?.deallocate() }
      switch w {
      case .fp8(let d, _, _, let s, let br, let bc, let off):
        let sCols = (cols + bc - 1) / bc
        for r in r0..<r1 {
          let row = d + r * cols
          let srow = s + ((off + r) / br) * sCols
          if let scratch { for c in 0..<cols { scratch[c] = QuantKernels.fp8x1(row.load(fromByteOffset: c, as: UInt8.self)) } }
          for t in 0..<tokens {
            y[t * ldy + r] = QuantKernels.dotFP8(x + t * ldx, row: row, decoded: scratch.map { UnsafePointer($0) }, cols: cols,
                                                 scales: srow, blockCols: bc)
          }
        }
      case .int4(let pk, _, _, let s, let sd, let z, let g, _, let off):
        let words = (cols + 7) / 8
        let groups = cols / g
        let sbuf = UnsafeMutablePointer<Float>.allocate(capacity: max(1, groups))
        let zbuf: UnsafeMutablePointer<Float>? = z != nil ? .allocate(capacity: max(1, groups)) : nil
        defer { sbuf.deallocate(); zbuf?.deallocate() }
        for r in r0..<r1 {
          let row = pk + r * 4 * words
          for gi in 0..<groups {
            sbuf[gi] = QuantKernels.scale(s, sd, (off + r) * groups + gi)
            zbuf?[gi] = Float(QuantKernels.zeroPoint(z, row: off + r, group: gi, groups: groups))
          }
          if let scratch { for c in 0..<cols { scratch[c] = Float(Int4.nibble(row, c) - 8) } }
          for t in 0..<tokens {
            y[t * ldy + r] = QuantKernels.dotInt4(x + t * ldx, packed: row, decoded: scratch.map { UnsafePointer($0) }, cols: cols,
                                                  group: g, scales: sbuf, zeros: zbuf.map { UnsafePointer($0) },
                                                  xsum: xsum.map { UnsafePointer($0 + t * groups) })
          }
        }
      case .float:
        break
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
