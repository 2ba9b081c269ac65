// Kernel micro-benchmarks: figures only, nothing is asserted (timings on a shared 2-core VM vary;
// run it on an idle machine). `glm5 bench --kernels` calls `KernelBench.run`.
//
// `Kernels.linear` is timed for one token (decode: bandwidth-bound, GB/s of weight bytes and
// GFLOP/s) and for 64 tokens (prefill: compute-bound, GFLOP/s) on 32768×1024 (lm_head-like, short
// rows), 2048×6144 and 6144×2048, F32/BF16/F16 weights, on one thread and on every CPU, next to
// same-process anchors:
//   naive        a scalar loop (one Float accumulator, scalar conversions, 1 thread): the floor;
//   cblas        OpenBLAS sgemv/sgemm on the F32 weights, the roofline reference (one BLAS thread
//                as the engine runs it, split over our threads by rows like the kernel);
//   L2-resident  the decode kernel on rows that stay in L2: its compute ceiling.
// Decode weights rotate through copies totalling > 4× the 32 MB L3, so decode figures come from
// DRAM. `linearTransposed` is timed as MLA uses it (64 heads × [192, 512] slices of a kv_b-like
// matrix, heads split over the threads) against the straightforward row-copy + scalar axpy loop.
// Quantized `Kernels.linear` (INT4 g32 / g128 with BF16 scales, FP8 with 128×128 F32 block scales,
// weights distributed like a checkpoint's) on 2048×6144 and 6144×2048, 1 and 64 tokens, against
// the BF16 kernel on the same shape; GB/s counts weight + scale bytes; decode rotates copies
// > 128 MB and also reports the L2-resident rate (the kernel's compute ceiling).
// About 45 s on 2 cores. `GLM5_KERNEL_BENCH=quant` runs only the quantized cases (about 20 s);
// with `GLM5_KERNEL_BENCH_SMALL=1` as well, only one-thread decode on small expert-like shapes.

import CBLAS
import GLM5Core

#if canImport(Glibc)
import Glibc
#endif

public enum KernelBench {
  /// Runs every measurement (about 25 s) and prints one line per figure.
  public static func run(print: (String) -> Void) {
    if let only = getenv("GLM5_KERNEL_BENCH"), String(cString: only) == "quant" { runQuant(print: print); return }
    ThreadPool.pinBLASToOneThread()
    let cpus = ThreadPool.availableCPUs
    let pools = cpus > 1 ? [ThreadPool(threads: 1), ThreadPool(threads: cpus)] : [ThreadPool(threads: 1)]
    print("kernel bench: \(cpus) CPUs; decode = 1 token, weights rotated over > 128 MB (DRAM); prefill = 64 tokens")
    print("GB/s counts weight bytes read once per call; GFLOP/s = 2·N·K·T / time; best of several calls; \"best ×r\": the faster thread count against the baseline")
    let shapes = [(n: 32768, k: 1024), (n: 2048, k: 6144), (n: 6144, k: 2048)]
    for (n, k) in shapes {
      for dtype in [DType.f32, .bf16, .f16] {
        linearCase(dtype: dtype, n: n, k: k, pools: pools, print: print)
      }
    }
    transposedCase(pools: pools, print: print)
    quantRun(pools: pools, print: print)
  }

  /// Only the quantized Linear cases (`GLM5_KERNEL_BENCH=quant` makes `run` do just this).
  public static func runQuant(print: (String) -> Void) {
    ThreadPool.pinBLASToOneThread()
    let cpus = ThreadPool.availableCPUs
    let pools = cpus > 1 ? [ThreadPool(threads: 1), ThreadPool(threads: cpus)] : [ThreadPool(threads: 1)]
    quantRun(pools: pools, print: print)
  }

  static func quantRun(pools: [ThreadPool], print: (String) -> Void) {
    print("quantized linear: GB/s counts weight + scale bytes read once per call; baseline = the BF16 kernel on the same shape")
    // Small expert-like matrices, one thread each as the MoE runs them in decode.
    if getenv("GLM5_KERNEL_BENCH_SMALL") != nil {
      for (n, k) in [(256, 1024), (1024, 256)] {
        let b = quantLinearCase(.bf16, n: n, k: k, T: 1, pools: [pools[0]], baseline: nil, print: print)
        for f in [QuantFormat.int4(group: 32), .fp8(block: 128)] {
          _ = quantLinearCase(f, n: n, k: k, T: 1, pools: [pools[0]], baseline: b, print: print)
        }
      }
      return
    }
    // GLM5_KERNEL_BENCH_TOKENS=1,2,16,64 measures other token counts (batched decode: 2-16).
    let tokenCounts = getenv("GLM5_KERNEL_BENCH_TOKENS").map { String(cString: $0).split(separator: ",").compactMap { Int($0) } }
      .flatMap { $0.isEmpty ? nil : $0 } ?? [1, 64]
    for (n, k) in [(2048, 6144), (6144, 2048)] {
      var base: [Int: Double] = [:]
      for T in tokenCounts { base[T] = quantLinearCase(.bf16, n: n, k: k, T: T, pools: pools, baseline: nil, print: print) }
      for f in [QuantFormat.int4(group: 32), .int4(group: 128), .fp8(block: 128)] {
        for T in tokenCounts { _ = quantLinearCase(f, n: n, k: k, T: T, pools: pools, baseline: base[T], print: print) }
      }
    }
  }

  // MARK: - Linear

  static func linearCase(dtype: DType, n: Int, k: Int, pools: [ThreadPool], print: (String) -> Void) {
    let prefillT = 64
    let bytes = n * k * dtype.byteSize
    let copies = max(2, (128 << 20) / bytes + 1)
    let mats = RotatingWeights(dtype: dtype, rows: n, cols: k, copies: copies, seed: UInt64(n * 31 + k))
    defer { mats.free() }
    let x = randomFloats(prefillT * k, seed: 99)
    let y = UnsafeMutablePointer<Float>.allocate(capacity: prefillT * n)
    defer { x.deallocate(); y.deallocate() }

    // The floor: the naive scalar loop on the first 256 rows of each copy (1 thread, 1 token; it
    // reuses nothing across tokens, so its rate per multiply-add is the same for any T).
    let naiveRows = min(n, 256)
    let tNaive = bestTime(calls: mats.copies) { c in
      naiveLinear(y, x, tokens: 1, mats.matrix(c % mats.copies).rows(0, naiveRows))
    }
    let naiveGF = 2 * Double(naiveRows * k) / tNaive / 1e9

    for T in [1, prefillT] {
      let flops = 2 * Double(n * k * T)
      /// "GB/s (GFLOP/s)" for decode, "GFLOP/s" for prefill.
      func figure(_ t: Double) -> String {
        T == 1 ? "\(fmt(Double(bytes) / t / 1e9, 1)) GB/s (\(fmt(flops / t / 1e9, 1)) GFLOP/s)" : "\(fmt(flops / t / 1e9, 1)) GFLOP/s"
      }
      var parts: [String] = []
      var best = Double.infinity
      for pool in pools {
        let t = bestTime(calls: T == 1 ? 3 * mats.copies : 6) { c in
          Kernels.linear(y, ldy: n, x, ldx: k, tokens: T, mats.matrix(c % mats.copies), pool: pool)
        }
        best = min(best, t)
        parts.append("\(pool.threads) thr \(figure(t))")
      }
      var line = "linear \(dtype.name) [\(T)] × \(n)×\(k)  " + parts.joined(separator: ", ")
      if T == 1 {
        // The same kernel on rows that stay in L2: its compute ceiling for one token.
        let hotRows = max(8, (640 << 10) / (k * dtype.byteSize))
        let hot = mats.matrix(0).rows(0, hotRows)
        let th = bestTime(calls: 50) { _ in Kernels.linear(y, ldy: n, x, ldx: k, tokens: 1, hot, pool: pools[0]) }
        line += ";  L2-resident 1 thr \(fmt(Double(hotRows * k * dtype.byteSize) / th / 1e9, 1)) GB/s"
      }
      line += ";  naive 1 thr \(fmt(naiveGF, 2)) GFLOP/s (best ×\(fmt(flops / best / 1e9 / naiveGF, 1)))"
      if dtype == .f32 {
        var cb: [String] = []
        var cbBest = Double.infinity
        for pool in pools {
          let t = bestTime(calls: T == 1 ? 3 * mats.copies : 6) { c in
            blasLinear(y, x, tokens: T, mats.matrix(c % mats.copies), pool: pool)
          }
          cbBest = min(cbBest, t)
          cb.append("\(pool.threads) thr \(figure(t))")
        }
        line += ";  cblas_\(T == 1 ? "sgemv" : "sgemm") " + cb.joined(separator: ", ") + " (kernel/cblas ×\(fmt(cbBest / best, 2)))"
      }
      print(line)
    }
  }

  /// y[t, :] = x[t, :] · Wᵀ with OpenBLAS, rows split into one contiguous block per worker.
  static func blasLinear(_ y: UnsafeMutablePointer<Float>, _ x: UnsafePointer<Float>, tokens T: Int, _ w: WeightMatrix,
                         pool: ThreadPool) {
    let n = w.rows, k = w.cols
    let a = w.data.assumingMemoryBound(to: Float.self)
    let parts = pool.threads
    pool.parallelFor(parts) { p in
      let r0 = n * p / parts, r1 = n * (p + 1) / parts
      if r1 <= r0 { return }
      if T == 1 {
        cblas_sgemv(CblasRowMajor, CblasNoTrans, Int32(r1 - r0), Int32(k), 1, a + r0 * w.rowStride, Int32(w.rowStride),
                    x, 1, 0, y + r0, 1)
      } else {
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, Int32(T), Int32(r1 - r0), Int32(k), 1, x, Int32(k),
                    a + r0 * w.rowStride, Int32(w.rowStride), 0, y + r0, Int32(n))
      }
    }
  }

  /// The floor: one serial Float accumulator per output, scalar conversions.
  static func naiveLinear(_ y: UnsafeMutablePointer<Float>, _ x: UnsafePointer<Float>, tokens T: Int, _ w: WeightMatrix) {
    for t in 0..<T {
      for r in 0..<w.rows {
        let row = w.data + r * w.rowStride * w.dtype.byteSize
        var s: Float = 0
        switch w.dtype {
        case .f32:
          for i in 0..<w.cols { s += x[t * w.cols + i] * row.loadUnaligned(fromByteOffset: 4 * i, as: Float.self) }
        case .bf16:
          for i in 0..<w.cols { s += x[t * w.cols + i] * bf16ToFloat(row.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self)) }
        default:
          for i in 0..<w.cols { s += x[t * w.cols + i] * f16ToFloat(row.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self)) }
        }
        y[t * w.rows + r] = s
      }
    }
  }

  // MARK: - linearTransposed (MLA absorption: per head, q_nope [T, Dn] · W_UK [Dn, Rkv])

  static func transposedCase(pools: [ThreadPool], print: (String) -> Void) {
    let heads = 64, dn = 192, rkv = 512
    for dtype in [DType.bf16, .f32] {
      // kv_b-like: per head Dn key rows then (unused here) Dv value rows.
      let rows = heads * (dn + 256)
      let bytes = heads * dn * rkv * dtype.byteSize
      let copies = max(2, (128 << 20) / (rows * rkv * dtype.byteSize) + 1)
      let mats = RotatingWeights(dtype: dtype, rows: rows, cols: rkv, copies: copies, seed: 5)
      defer { mats.free() }
      for T in [1, 64] {
        let x = randomFloats(T * heads * dn, seed: 3)
        let y = UnsafeMutablePointer<Float>.allocate(capacity: T * heads * rkv)
        defer { x.deallocate(); y.deallocate() }
        let flops = 2 * Double(heads * dn * rkv * T)
        func figure(_ t: Double) -> String {
          T == 1 ? "\(fmt(Double(bytes) / t / 1e9, 1)) GB/s (\(fmt(flops / t / 1e9, 1)) GFLOP/s)" : "\(fmt(flops / t / 1e9, 1)) GFLOP/s"
        }
        var parts: [String] = []
        var best = Double.infinity
        for pool in pools {
          let t = bestTime(calls: T == 1 ? 3 * mats.copies : 4) { c in
            let m = mats.matrix(c % mats.copies)
            pool.parallelFor(heads) { h in
              Kernels.linearTransposed(y + h * rkv, ldy: heads * rkv, x + h * dn, ldx: heads * dn, tokens: T,
                                       m.rows(h * (dn + 256), dn))
            }
          }
          best = min(best, t)
          parts.append("\(pool.threads) thr \(figure(t))")
        }
        // Baseline: row copy + scalar axpy per token (the straightforward loop), 1 thread.
        let tNaive = bestTime(calls: mats.copies) { c in
          let m = mats.matrix(c % mats.copies)
          for h in 0..<heads {
            naiveTransposed(y + h * rkv, ldy: heads * rkv, x + h * dn, ldx: heads * dn, tokens: T, m.rows(h * (dn + 256), dn))
          }
        }
        let naiveGF = flops / tNaive / 1e9
        print("linearTransposed \(dtype.name) [\(T)] × \(heads) heads × \(dn)×\(rkv)  " + parts.joined(separator: ", ")
              + ";  naive 1 thr \(fmt(naiveGF, 2)) GFLOP/s (best ×\(fmt(flops / best / 1e9 / naiveGF, 1)))")
      }
    }
  }

  static func naiveTransposed(_ y: UnsafeMutablePointer<Float>, ldy: Int, _ x: UnsafePointer<Float>, ldx: Int, tokens: Int,
                              _ w: WeightMatrix) {
    let row = UnsafeMutablePointer<Float>.allocate(capacity: w.cols)
    defer { row.deallocate() }
    for t in 0..<tokens { for c in 0..<w.cols { y[t * ldy + c] = 0 } }
    for r in 0..<w.rows {
      w.copyRow(r, to: row)
      for t in 0..<tokens {
        let a = x[t * ldx + r]
        for c in 0..<w.cols { y[t * ldy + c] = y[t * ldy + c].addingProduct(a, row[c]) }
      }
    }
  }

  // MARK: - Quantized Linear

  enum QuantFormat {
    case bf16
    case int4(group: Int)
    case fp8(block: Int)

    var name: String {
      switch self {
      case .bf16: return "BF16"
      case .int4(let g): return "INT4 g\(g)"
      case .fp8(let b): return "FP8 \(b)x\(b)"
      }
    }
  }

  /// `copies` random weights of one quantized format (bytes of data + scales each), visited in turn.
  final class RotatingQuant {
    let weights: [LinearWeight]
    let bytes: Int
    private let buffers: [UnsafeMutableRawPointer]

    init(_ f: QuantFormat, rows n: Int, cols k: Int, minBytes: Int, seed: UInt64) {
      var s = seed
      var ws: [LinearWeight] = []
      var bytesEach = 0
      var copies = 2
      var bufs: [UnsafeMutableRawPointer] = []
      func alloc(_ b: Int) -> UnsafeMutableRawPointer {
        let p = UnsafeMutableRawPointer.allocate(byteCount: max(b, 64), alignment: 64)
        bufs.append(p)
        return p
      }
      switch f {
      case .bf16:
        bytesEach = n * k * 2
      case .int4(let g):
        bytesEach = n * k / 2 + n * (k / g) * 2
      case .fp8(let b):
        bytesEach = n * k + ((n + b - 1) / b) * ((k + b - 1) / b) * 4
      }
      copies = max(2, minBytes / bytesEach + 1)
      for _ in 0..<copies {
        switch f {
        case .bf16:
          let p = alloc(n * k * 2)
          for i in 0..<(n * k) { p.storeBytes(of: floatToBF16(nextUniform(&s) * 0.1), toByteOffset: 2 * i, as: UInt16.self) }
          ws.append(.float(WeightMatrix(dtype: .bf16, data: UnsafeRawPointer(p), rows: n, cols: k)))
        case .int4(let g):
          let words = k / 8, groups = k / g
          let p = alloc(n * words * 4), sc = alloc(n * groups * 2)
          for i in 0..<(n * words) {
            s &+= 0x9E37_79B9_7F4A_7C15
            p.storeBytes(of: UInt32(truncatingIfNeeded: (s ^ (s >> 29)) &* 0xBF58_476D_1CE4_E5B9 >> 17), toByteOffset: 4 * i, as: UInt32.self)
          }
          for i in 0..<(n * groups) { sc.storeBytes(of: floatToBF16(0.01 + 0.001 * nextUniform(&s)), toByteOffset: 2 * i, as: UInt16.self) }
          ws.append(.int4(packed: UnsafeRawPointer(p), rows: n, cols: k, scales: UnsafeRawPointer(sc), scaleDType: .bf16,
                          zeroPoints: nil, group: g, totalRows: n, rowOffset: 0))
        case .fp8(let b):
          let sr = (n + b - 1) / b, scn = (k + b - 1) / b
          let p = alloc(n * k), sc = alloc(sr * scn * 4)
          // As a checkpoint holds them: roughly normal weights over a block scale that maps about
          // 4.5 σ to 448 (so subnormal codes are as rare as in real blocks).
          for i in 0..<(n * k) {
            let g = nextUniform(&s) + nextUniform(&s) + nextUniform(&s)  // σ = 1
            p.storeBytes(of: floatToF8E4M3(g * (448 / 4.5)), toByteOffset: i, as: UInt8.self)
          }
          for i in 0..<(sr * scn) { sc.storeBytes(of: 2e-4 + 1e-5 * nextUniform(&s), toByteOffset: 4 * i, as: Float.self) }
          ws.append(.fp8(data: UnsafeRawPointer(p), rows: n, cols: k, scales: UnsafePointer(sc.assumingMemoryBound(to: Float.self)),
                         blockRows: b, blockCols: b, rowOffset: 0))
        }
      }
      weights = ws
      bytes = bytesEach
      buffers = bufs
    }

    deinit { for p in buffers { p.deallocate() } }
  }

  /// Times `Kernels.linear` on one format, shape and token count; returns the best time.
  static func quantLinearCase(_ f: QuantFormat, n: Int, k: Int, T: Int, pools: [ThreadPool], baseline: Double?,
                              print: (String) -> Void) -> Double {
    let mats = RotatingQuant(f, rows: n, cols: k, minBytes: T == 1 ? 128 << 20 : 1, seed: UInt64(n &* 7 &+ k))
    let copies = mats.weights.count
    let x = randomFloats(T * k, seed: 17)
    let y = UnsafeMutablePointer<Float>.allocate(capacity: T * n)
    defer { x.deallocate(); y.deallocate() }
    let flops = 2 * Double(n * k * T)
    var parts: [String] = []
    var best = Double.infinity
    for pool in pools {
      let t = bestTime(calls: T == 1 ? 3 * copies : 6) { c in
        Kernels.linear(y, ldy: n, x, ldx: k, tokens: T, mats.weights[c % copies], pool: pool)
      }
      best = min(best, t)
      let fig = T == 1 ? "\(fmt(Double(mats.bytes) / t / 1e9, 1)) GB/s (\(fmt(flops / t / 1e9, 1)) GFLOP/s)"
                       : "\(fmt(flops / t / 1e9, 1)) GFLOP/s"
      parts.append("\(pool.threads) thr \(fig)")
    }
    var line = "linear \(f.name) [\(T)] × \(n)×\(k)  " + parts.joined(separator: ", ")
    if T == 1 {
      // The same kernel on rows that stay in L2: its compute ceiling for one token.
      let hotRows = max(8, min(n, (640 << 10) * n / mats.bytes))
      let hot = mats.weights[0].rows(0, hotRows)
      let th = bestTime(calls: 50) { _ in Kernels.linear(y, ldy: n, x, ldx: k, tokens: 1, hot, pool: pools[0]) }
      line += ";  L2-resident 1 thr \(fmt(Double(mats.bytes) * Double(hotRows) / Double(n) / th / 1e9, 1)) GB/s"
    }
    line += "  (\(fmt(best * 1e3, 3)) ms"
    if let baseline { line += ", \(fmt(baseline / best, 2))× the BF16 kernel's speed" }
    print(line + ")")
    return best
  }

  // MARK: - Support

  /// `copies` independent random matrices of one shape, visited in turn.
  struct RotatingWeights {
    let dtype: DType, rows: Int, cols: Int, copies: Int
    let base: UnsafeMutableRawPointer
    let bytes: Int

    init(dtype: DType, rows: Int, cols: Int, copies: Int, seed: UInt64) {
      self.dtype = dtype
      self.rows = rows
      self.cols = cols
      self.copies = copies
      bytes = rows * cols * dtype.byteSize
      base = UnsafeMutableRawPointer.allocate(byteCount: bytes * copies, alignment: 64)
      var s = seed
      for i in 0..<(rows * cols * copies) {
        let v = nextUniform(&s) * 0.1
        switch dtype {
        case .f32: base.storeBytes(of: v, toByteOffset: 4 * i, as: Float.self)
        case .bf16: base.storeBytes(of: floatToBF16(v), toByteOffset: 2 * i, as: UInt16.self)
        default: base.storeBytes(of: Float16(v).bitPattern, toByteOffset: 2 * i, as: UInt16.self)
        }
      }
    }

    func matrix(_ c: Int) -> WeightMatrix {
      WeightMatrix(dtype: dtype, data: UnsafeRawPointer(base + c * bytes), rows: rows, cols: cols)
    }

    func free() { base.deallocate() }
  }

  static func randomFloats(_ n: Int, seed: UInt64) -> UnsafeMutablePointer<Float> {
    let p = UnsafeMutablePointer<Float>.allocate(capacity: n)
    var s = seed
    for i in 0..<n { p[i] = nextUniform(&s) }
    return p
  }

  /// Uniform in [-1, 1) (SplitMix64).
  static func nextUniform(_ s: inout UInt64) -> Float {
    s &+= 0x9E37_79B9_7F4A_7C15
    var z = s
    z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
    z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
    z ^= z >> 31
    return Float(z >> 40) * 0x1p-23 - 1
  }

  /// Best wall time of one call over at least `calls` calls and 0.25 s (after one warm-up call).
  /// `body(i)` receives the call number (for rotating inputs).
  static func bestTime(calls: Int, _ body: (Int) -> Void) -> Double {
    body(0)
    var best = Double.infinity
    var i = 1
    let start = now()
    while i <= calls || now() - start < 0.25 {
      let t0 = now()
      body(i)
      best = min(best, now() - t0)
      i += 1
      if i > 100_000 { break }
    }
    return best
  }

  static func now() -> Double {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return Double(ts.tv_sec) + Double(ts.tv_nsec) * 1e-9
  }

  static func fmt(_ v: Double, _ digits: Int) -> String {
    guard v.isFinite else { return "\(v)" }
    var p = 1.0
    for _ in 0..<digits { p *= 10 }
    let r = (v * p).rounded() / p
    var s = "\(r)"
    if let dot = s.firstIndex(of: ".") {
      let decimals = s.distance(from: dot, to: s.endIndex) - 1
      if decimals < digits { s += String(repeating: "0", count: digits - decimals) }
    }
    return s
  }
}
