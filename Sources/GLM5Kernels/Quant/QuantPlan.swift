// A quantized weight as the tiled kernels see it: blocks, scales, rows.

import CGLM5Kernels
import GLM5Core
#if canImport(Glibc)
import Glibc
#endif

extension QuantKernels {
  /// A scale dtype as the C kernels name it (F32, BF16, F16; a Plan never holds another).
  static func scaleCode(_ dt: DType) -> Int32 {
    dt == .f32 ? Int32(GLM5K_SCALE_F32) : (dt == .bf16 ? Int32(GLM5K_SCALE_BF16) : Int32(GLM5K_SCALE_F16))
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
    /// INT4: the weight as the C kernels take it (CGLM5Kernels/include/glm5_kernels.h).
    let int4: glm5k_int4
    /// The prefill tiles' instruction set, read once per call: the scratch is sized for the tiles
    /// that then run, even if a test switches the ISA meanwhile.
    let avx512 = InstructionSet.current == .avx512

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
        int4 = glm5k_int4()
      case .int4(let p, let n, let k, let s, let sd, let z, let g, _, let off):
        guard g % 16 == 0, k % g == 0, k > 0 else { return nil }
        kind = .int4
        rows = n; cols = k; blockCols = g; blocks = k / g
        data = p; rowBytes = k / 2
        fp8Scales = nil; blockRows = 1
        int4Scales = s; scaleDType = sd; zeroPoints = z; rowOffset = off
        hasTails = false
        int4 = glm5k_int4(packed: p.assumingMemoryBound(to: UInt8.self), scales: s, zeros: z,
                          row_offset: Int64(off), cols: Int64(k), group: Int64(g), scale_dtype: QuantKernels.scaleCode(sd))
      case .float:
        return nil
      }
    }

    @inline(__always) func row(_ r: Int) -> UnsafeRawPointer { data + r * rowBytes }

    /// FP8: row r's block scales as stored (times fp8Factor before use).
    @inline(__always) func fp8ScaleRow(_ r: Int) -> UnsafePointer<Float> { fp8Scales! + ((rowOffset + r) / blockRows) * blocks }

    /// Row r's per-block scales (FP8: times fp8Factor) into out[0..<blocks].
    func rowScales(_ r: Int, into out: UnsafeMutablePointer<Float>) {
      switch kind {
      case .fp8:
        let src = fp8Scales! + ((rowOffset + r) / blockRows) * blocks
        for b in 0..<blocks { out[b] = src[b] * QuantKernels.fp8Factor }
      case .int4:
        withUnsafePointer(to: int4) { glm5k_int4_row_scales($0, Int64(r), out, nil) }
      }
    }

    /// Columns [b·blockCols, b·blockCols + 8·steps(b)) are the block's vector part.
    @inline(__always) func steps(_ b: Int) -> Int { (min(cols, (b + 1) * blockCols) - b * blockCols) >> 3 }

    /// Blocks [b0, b1) of row r decoded (unscaled) into out, column c at out[c − b0·blockCols]
    /// (INT4: q = u − 8 − zp in the permuted column order, glm5k_int4_lanes).
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
        withUnsafePointer(to: int4) { glm5k_int4_lanes($0, Int64(r), Int64(b0), Int64(b1), out) }
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
