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
//        the odd ones (the nibbles of 8 bytes), x permuted to match once per call; the lanes hold
//        q = u − 8 − zp as exact small integers, so each product is x · q rounded once inside its
//        FMA and there is no zero-point correction: y = reduce8(total8). The kernels are C
//        (CGLM5Kernels/int4.c; glm5_kernels.h states the sequence). This is at least as accurate
//        as a float32 dot product with the dequantized weights (tested), where the earlier
//        factorised form s · (Σ u·x − (8 + zp) · Σ x) lost bits to cancellation.
//   INT4 with other group sizes (odd test shapes only): column order, 8-column steps of u − 8 −
//        zp, per-group scalar tails.
//
// Decode (T < 3): FP8 tiles of 8 rows `decodeSpread` apart as the float kernel (adjacent rows when
// rows are ≤ 256 bytes), each x vector loaded once per tile, one FMA chain per row, block totals
// parked in L1. INT4 (C): AVX2 4-row tiles, per 16 weights and row vpmovzxbd + vpand + vpsrld +
// 2 vpsubd + 2 vcvtdq2ps + 2 FMA; AVX-512 8-row tiles, two rows per vector: symmetric weights
// take q by vpermps from a register of its 16 values (7 µops per 32 weights), others 8 with x's
// odd halves pre-scaled by 1/16 (glm5k_int4_decode_prepare); the next tile's
// rows and scales prefetched; 2-8 tokens: one row against 4 (or 2) tokens, AVX-512 4 rows against
// 4 tokens (Int4FewTokens).
// Prefill (T ≥ 3): per 24-row chunk, token block (≤ 48 tokens) and K-block (512 columns in whole
// blocks): the chunk's rows are decoded once into a float scratch (unscaled lane values), then
// 2 rows × 6 tokens register tiles (12 FMA chains, as the float kernel's) run over every token
// tile × row tile; at each block end the 12 chains are folded into parked totals with the rows'
// scales (1 FMA per chain per block: 1/16 extra for 128-column blocks, 1/4 for INT4 g32). INT4
// with AVX-512F runs the same sequence in C (CGLM5Kernels/int4_prefill_avx512.c: 24-row work
// items, two rows' chains per vector, 3-pair × 4-token tiles).

// Files: LinearWeight (the weight view), QuantLanes (FP8 lane decoders, x preparation), QuantPlan,
// QuantDecode (one-token tiles), Int4FewTokens (2-8 tokens), QuantPrefill (register tiles over
// decoded rows), Int4Generic (odd group sizes), CGLM5Kernels/int4.c (the INT4 tiles); this file
// holds the entry points.
//
// Shapes: y [T, N] (ldy), x [T, K] (ldx). FP8: W [N, K] bytes, s [ceil(N/Br), ceil(K/Bc)] F32.
// INT4: packed [N, ceil(K/8)] words, s [N, K/G] (F32/BF16/F16), zp packed [ceil(N/8), K/G] or nil.

import CGLM5Kernels
import GLM5Core
#if canImport(Glibc)
import Glibc
#endif

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
  /// kernel's sequence). INT4, up to transposedPerTokenMax tokens: per token, rows decoded in
  /// registers; more tokens (FP8: 2 or more): the slice dequantized once into F32 in the calling
  /// thread's KernelScratch and the float kernel's register tiles; otherwise (one token, or no
  /// scratch) rows dequantized one at a time into a row on the stack. Every path is the same
  /// sequence, so the same bits.
  public static func linearTransposed(_ y: UnsafeMutablePointer<Float>, ldy: Int, _ x: UnsafePointer<Float>, ldx: Int,
                                      tokens: Int, _ w: LinearWeight) {
    if case .float(let m) = w { linearTransposed(y, ldy: ldy, x, ldx: ldx, tokens: tokens, m); return }
    let rows = w.rows, cols = w.cols
    if tokens <= 0 || cols == 0 { return }
    let int4Rows: Bool
    if case .int4(_, _, _, _, _, _, let g, _, _) = w, g % 8 == 0, cols % g == 0 { int4Rows = true } else { int4Rows = false }
    if tokens > transposedPerTokenMax || (tokens >= 2 && !int4Rows),
       let buf = KernelScratch.take(rows * cols * MemoryLayout<Float>.stride)?.bindMemory(to: Float.self, capacity: rows * cols) {
      // Many tokens: the slice dequantized once into F32 (the calling thread's KernelScratch)
      // and the float kernel's register tiles.
      for n in 0..<rows { w.dequantizeRow(n, into: buf + n * cols) }
      linearTransposed(y, ldy: ldy, x, ldx: ldx, tokens: tokens, WeightMatrix(dtype: .f32, data: UnsafeRawPointer(buf), rows: rows, cols: cols))
      return
    }
    if int4Rows, case .int4(let p, _, _, let s, let sd, let z, let g, _, let off) = w {
      // INT4, one token at a time (a few tokens in batched decode, or no scratch): the rows
      // decoded in registers straight into the fma (the same W values and order), the slice
      // re-read from L1/L2 (a head's W_UK is 48 KiB in INT4 g32); each token's bits are its
      // bits alone, as the row-invariance test requires of every path.
      var v = glm5k_int4(packed: p.assumingMemoryBound(to: UInt8.self), scales: s, zeros: z,
                         row_offset: Int64(off), cols: Int64(cols), group: Int64(g), scale_dtype: QuantKernels.scaleCode(sd))
      for t in 0..<tokens {
        y.advanced(by: t * ldy).update(repeating: 0, count: cols)
        glm5k_int4_axpy_rows(&v, 0, Int64(rows), x + t * ldx, y + t * ldy)
      }
      return
    }
    // Any format, no scratch: each row dequantized into a row on the stack, y updated in place.
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

  /// Most tokens for which the INT4 transposed product runs the one-token kernel per token.
  static let transposedPerTokenMax = 32
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
  /// Output rows per work item of the INT4 one-token path, at least (a multiple of the 8-row
  /// tile): each worker takes one contiguous range of rows, so that every tile can prefetch the
  /// next one; more items than workers only when a range would exceed int4DecodeRowsMax.
  static let int4DecodeRows = 32
  static let int4DecodeRowsMax = 4096

  static func quantLinear(_ y: UnsafeMutablePointer<Float>, ldy: Int, _ x: UnsafePointer<Float>, ldx: Int,
                          tokens: Int, _ w: LinearWeight, pool: ThreadPool) {
    let n = w.rows, k = w.cols
    if n == 0 || tokens <= 0 { return }
    let pool = n * k * tokens < 1 << 15 ? ThreadPool.serial : pool
    guard let plan = QuantKernels.Plan(w) else {
      int4GenericLinear(y, ldy: ldy, x, ldx: ldx, tokens: tokens, w, pool: pool)
      return
    }
    // x as the lanes take it (INT4: permuted and scaled; FP8: scaled) one token block at a time,
    // and the prefill workers' tiles, in the calling thread's KernelScratch. With room for x
    // only, the blocks' tokens one at a time through the decode tiles; with none, the same with
    // x one row at a time on the stack (the same bits on every path).
    let tbMax = tokenBlock(plan, tokens, 0)
    var cv = Carver.measuring()
    _ = LinearScratch(plan, tokens: tbMax, pool: pool, tiles: true, &cv)
    let tiles = KernelScratch.take(cv.used) != nil
    if !tiles { cv = Carver.measuring(); _ = LinearScratch(plan, tokens: tbMax, pool: pool, tiles: false, &cv) }
    guard let region = KernelScratch.take(cv.used) else {
      withUnsafeTemporaryAllocation(of: Float.self, capacity: max(k, 1)) { p in
        for t in 0..<tokens {
          quantLinearBlocks(plan, y + t * ldy, ldy: ldy, x + t * ldx, ldx: ldx, tokens: 1, perm: p.baseAddress!, tiles: nil, pool: pool)
        }
      }
      return
    }
    var carve = Carver(base: region, limit: cv.used)
    let s = LinearScratch(plan, tokens: tbMax, pool: pool, tiles: tiles, &carve)
    quantLinearBlocks(plan, y, ldy: ldy, x, ldx: ldx, tokens: tokens, perm: s.perm, tiles: s.tiles, pool: pool)
  }

  /// A quantized linear call's scratch: x prepared for one token block [tb, K], and prefill
  /// workers' tiles when the block takes the prefill path (and `tiles`).
  struct LinearScratch {
    let perm: UnsafeMutablePointer<Float>
    let tiles: UnsafeMutableRawPointer?

    init(_ plan: QuantKernels.Plan, tokens tb: Int, pool: ThreadPool, tiles withTiles: Bool, _ cv: inout Carver) {
      perm = cv.floats(tb * plan.cols)
      let prefill = withTiles && tb >= decodeRowAbove && !(plan.kind == .int4 && tb <= fewTokensMax)
      let bytes = prefill ? prefillWorkers(plan, pool: pool) * PrefillScratch.bytes(plan, tokens: tb) : 0
      tiles = bytes > 0 ? UnsafeMutableRawPointer(cv.take(bytes, UInt8.self)) : nil
    }
  }

  /// Tokens of the block starting at t0: INT4 with 2 ... fewTokensMax tokens all at once (the
  /// few-token kernel), else one at a time below decodeRowAbove, else up to quantTokenBlock.
  static func tokenBlock(_ plan: QuantKernels.Plan, _ tokens: Int, _ t0: Int) -> Int {
    if plan.kind == .int4 && tokens >= 2 && tokens <= fewTokensMax { return tokens }
    return tokens < decodeRowAbove ? 1 : min(quantTokenBlock, tokens - t0)
  }

  /// Token blocks (one token at a time below decodeRowAbove), x prepared into `perm` [tb, K];
  /// `tiles` holds the prefill workers' scratch (LinearScratch) when a block takes that path.
  static func quantLinearBlocks(_ plan: QuantKernels.Plan, _ y: UnsafeMutablePointer<Float>, ldy: Int, _ x: UnsafePointer<Float>,
                                ldx: Int, tokens: Int, perm: UnsafeMutablePointer<Float>, tiles: UnsafeMutableRawPointer?,
                                pool: ThreadPool) {
    let k = plan.cols
    var t0 = 0
    while t0 < tokens {
      let tb = tokenBlock(plan, tokens, t0)
      switch plan.kind {
      case .int4:
        glm5k_int4_permute(x + t0 * ldx, Int64(ldx), Int64(tb), Int64(k), perm)
      case .fp8:
        QuantKernels.scaleForFP8(x + t0 * ldx, ldx: ldx, tokens: tb, k: k, into: perm)
      }
      let xb = UnsafePointer(perm)
      if tb == 1 {
        var form: Int32 = 0
        if plan.kind == .int4 { form = withUnsafePointer(to: plan.int4) { glm5k_int4_decode_prepare($0, perm) } }
        quantDecode(plan, y + t0 * ldy, xb, form: form, pool: pool)
      } else if plan.kind == .int4, tb <= fewTokensMax {
        int4FewTokens(plan, y + t0 * ldy, ldy: ldy, xb, tokens: tb, pool: pool)
      } else if let tiles {
        quantPrefill(plan, y + t0 * ldy, ldy: ldy, xb, ldx: k, tokens: tb, scratch: tiles, pool: pool)
      } else {
        // No room for the tiles: the block's tokens one at a time.
        for u in 0..<tb {
          var form: Int32 = 0
          if plan.kind == .int4 { form = withUnsafePointer(to: plan.int4) { glm5k_int4_decode_prepare($0, perm + u * k) } }
          quantDecode(plan, y + (t0 + u) * ldy, xb + u * k, form: form, pool: pool)
        }
      }
      t0 += tb
    }
  }
}
