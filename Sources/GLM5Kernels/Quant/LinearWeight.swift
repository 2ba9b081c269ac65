// A Linear weight in any stored format as the kernels take it, and its plain row decoder
// (QuantLinear.swift describes the formats and the kernels).

import CGLM5Kernels
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
      if g % 8 == 0 && c % g == 0 && c > 0 {
        var w = glm5k_int4(packed: p.assumingMemoryBound(to: UInt8.self), scales: s, zeros: z,
                           row_offset: Int64(off), cols: Int64(c), group: Int64(g), scale_dtype: QuantKernels.scaleCode(sd))
        glm5k_int4_dequantize_row(&w, Int64(r), out)
        return
      }
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
