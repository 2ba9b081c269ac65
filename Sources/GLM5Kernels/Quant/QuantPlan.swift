// A quantized weight as the tiled kernels see it: blocks, scales, rows.

import GLM5Core
#if canImport(Glibc)
import Glibc
#endif

extension QuantKernels {
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

}
