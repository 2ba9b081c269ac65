// glm5 bench --preset glm5-bench: the GLM-5-shaped INT4 g32 bench model (BatchBench.swift) against
// limits of this machine measured in the same process, with the model's thread pool:
//
//   probes     read bandwidth (1 GiB summed on every thread), OpenBLAS sgemm GFLOP/s
//              (512×2048 · 2048×2048, one BLAS thread per pool thread, split by output columns
//              as the engine splits its Linears), FMA GFLOP/s (12 independent FMA chains of
//              the kernels' widest vectors, AVX2 or AVX-512, on every thread)
//   decode     one session at depth ≤ 512 (after a real prefill): tokens/s, weight bytes read per
//              token × tokens/s as GB/s and % of the read bandwidth
//   depths     decode ms/token at depths 0, 2048, 8192 (or --depths) on a synthetic cache (random
//              cache rows: decode cost depends on the cache's size only; Session+Bench.swift),
//              ratio to 0
//   prefill    512 tokens: tokens/s; 2 × active parameters per token × tokens/s as GFLOP/s and %
//              of sgemm (attention-score FLOPs, which grow with the context, are not counted)
//   batch      aggregate decode tokens/s of 16 sessions against 1 (BatchBench.batched)
//   profile    one decode step split into phases (GLM5Model/PhaseProfile.swift), at depth ≤ 512
//              and at depths 2048 and 8192 (synthetic cache; those of them that were measured)
// Every measurement runs once untimed, then --reps times; min and median are printed (rates from
// the min time are "best"). `--json FILE` writes every figure. Nothing is asserted on time.

import CBLAS
import GLM5Core
import GLM5Kernels
@_spi(Bench) import GLM5Engine
@_spi(Bench) import GLM5Model
#if canImport(Glibc)
import Glibc
#endif

enum PresetBench {
  static let prefillTokens = 512
  static let depthList = [0, 2048, 8192]
  /// Synthetic-cache depths that also get a phase profile (when measured).
  static let profileDepths: Set<Int> = [2048, 8192]
  static let batchSizes = [1, 16]
  /// What `--only` can name (an empty set runs every part).
  static let parts: Set<String> = ["prefill", "depths", "batch"]

  /// `depths`: the decode depths on a synthetic cache (empty: depthList).
  static func run(threads: Int, folder: String?, reps: Int, steps: Int, depths: [Int] = [], only: Set<String> = [],
                  jsonPath: String?) throws(GLM5Error) {
    let reps = max(1, reps), steps = max(1, steps)
    func runs(_ part: String) -> Bool { only.isEmpty || only.contains(part) }
    let depthList = depths.isEmpty ? depthList : depths
    try BatchBench.withBenchModel(threads: threads, folder: folder) { (m) throws(GLM5Error) in
      let c = m.config
      let pool = m.pool
      var out: [String: JSON] = ["preset": .string("glm5-bench"), "threads": num(pool.threads), "reps": num(reps),
                                 "decode_steps": num(steps)]
      let (denseBytes, expertBytes) = BatchBench.linearBytes(m)
      let k = Double(c.numExpertsPerTok), e = Double(c.nRoutedExperts)
      let bytesPerToken = denseBytes + expertBytes * k / e
      let p = activeParameters(m)
      let flopsPerToken = 2 * p.total
      say("glm5 bench --preset glm5-bench: \(pool.threads) threads, warm-up + \(reps) reps of each measurement (min / median)")
      say("model: GLM-5-shaped INT4 g32, hidden \(c.hiddenSize), \(c.numHiddenLayers) layers, \(c.nRoutedExperts) experts top-\(c.numExpertsPerTok) + \(c.nSharedExperts) shared, "
          + "index_topk \(c.indexTopK), vocab \(c.vocabSize); weight files \(fmt(Double(m.checkpoint.tensorBytes) / 1e9, 2)) GB")
      say("  weights read per decoded token \(fmt(bytesPerToken / 1e6, 1)) MB; active parameters per token \(fmt(p.total / 1e6, 1)) M "
          + "(non-expert Linears \(fmt(p.nonExpert / 1e6, 1)) M incl. lm_head \(fmt(p.lmHead / 1e6, 1)) M and shared expert \(fmt(p.shared / 1e6, 1)) M; "
          + "top-\(c.numExpertsPerTok) routed \(fmt(p.routed / 1e6, 1)) M) → \(fmt(flopsPerToken / 1e9, 2)) GFLOP/token")
      out["model"] = .object([
        "hidden_size": num(c.hiddenSize), "layers": num(c.numHiddenLayers), "routed_experts": num(c.nRoutedExperts),
        "experts_per_token": num(c.numExpertsPerTok), "vocab_size": num(c.vocabSize), "index_topk": num(c.indexTopK),
        "weight_file_bytes": num(m.checkpoint.tensorBytes), "weight_bytes_per_token": num(bytesPerToken),
        "active_parameters_per_token": num(p.total), "active_non_expert_parameters": num(p.nonExpert),
        "active_routed_parameters": num(p.routed), "lm_head_parameters": num(p.lmHead), "shared_expert_parameters": num(p.shared),
        "active_flops_per_token": num(flopsPerToken),
      ])

      // MARK: - Probes
      let buffer = ReadBuffer()
      let bwT = try repeated(reps) { () throws(GLM5Error) in buffer.pass(pool) }
      let bwBytes = Double(buffer.bytes)
      let bw = bwBytes / bwT.min
      say("probe read bandwidth (1 GiB, \(pool.threads) threads): best \(fmt(bw / 1e9, 1)) GB/s, median \(fmt(bwBytes / bwT.median / 1e9, 1)) GB/s")
      let gemm = SgemmProbe()
      let gemmT = try repeated(reps) { () throws(GLM5Error) in gemm.time(pool) }
      let sgemm = gemm.flops / gemmT.min
      let core = openblas_get_corename().map { String(cString: $0) } ?? "?"
      say("probe OpenBLAS sgemm \(gemm.m)×\(gemm.k) · \(gemm.k)×\(gemm.n) (core \(core), 1 BLAS thread × \(pool.threads), split by columns): best \(fmt(sgemm / 1e9, 1)) GFLOP/s, "
          + "median \(fmt(gemm.flops / gemmT.median / 1e9, 1)) GFLOP/s")
      let fmaT = try repeated(reps) { () throws(GLM5Error) in fmaProbe(pool) }
      let fmaWork = fmaFlops(pool)
      let fma = fmaWork / fmaT.min
      say("probe FMA (\(fmaChains) chains of \(fmaLanes)-lane vectors per thread, \(InstructionSet.current), \(pool.threads) threads): best \(fmt(fma / 1e9, 1)) GFLOP/s, median \(fmt(fmaWork / fmaT.median / 1e9, 1)) GFLOP/s; "
          + "sgemm reaches \(fmt(sgemm / fma * 100, 0))% of it")
      buffer.free()
      gemm.free()
      out["probes"] = .object([
        "read_bandwidth": rates(bwT, work: bwBytes, unit: "bytes_per_s"),
        "sgemm": rates(gemmT, work: gemm.flops, unit: "flops_per_s", extra: ["m": num(gemm.m), "k": num(gemm.k), "n": num(gemm.n), "openblas_core": .string(core)]),
        "fma": rates(fmaT, work: fmaWork, unit: "flops_per_s", extra: ["chains_per_thread": num(fmaChains), "simd_width": num(fmaLanes)]),
      ])

      // MARK: - Prefill of 512 tokens
      let n = prefillTokens
      let params = SamplingParams(temperature: 1, topP: 0.95, seed: 3, maxNewTokens: steps, ignoreEOS: true)
      var base: Session? = nil, decT1: Times? = nil, from = 0
      if runs("prefill") {
        var rng: UInt64 = 5
        let ids: [Int32] = (0..<n).map { _ in
          rng = rng &* 6364136223846793005 &+ 1442695040888963407
          return Int32((rng >> 33) % UInt64(c.vocabSize))
        }
        var prefilled: Session? = nil
        let preT = try repeated(reps) { () throws(GLM5Error) in
          let s = try Session(model: m, maxTokens: n + steps + 1, mtp: false)
          let t0 = now()
          try s.append(ids, logits: .last)
          let t = now() - t0
          prefilled = s
          return t
        }
        let preRate = Double(n) / preT.min
        say("prefill \(n) tokens: best \(fmt(preRate, 1)) tokens/s (\(fmt(preT.min, 2)) s), median \(fmt(Double(n) / preT.median, 1)) tokens/s; "
            + "\(fmt(flopsPerToken * preRate / 1e9, 1)) GFLOP/s of active weights = \(fmt(flopsPerToken * preRate / sgemm * 100, 1))% of sgemm, \(fmt(flopsPerToken * preRate / fma * 100, 1))% of FMA")
        var pj = rates(preT, work: Double(n), unit: "tokens_per_s", extra: ["tokens": num(n)])
        pj = merge(pj, ["gflops_best": .number(flopsPerToken * preRate / 1e9), "percent_of_sgemm": .number(flopsPerToken * preRate / sgemm * 100),
                        "percent_of_fma": .number(flopsPerToken * preRate / fma * 100)])
        out["prefill"] = pj

        // MARK: - Decode, one session at depth ≤ 512
        from = max(1, n - steps)
        let base1 = try prefilled!.fork()
        try base1.truncate(from)
        base = base1
        let decT = try decodeTimes(base1, params, reps: reps)
        decT1 = decT
        let decRate = 1 / decT.min
        let decGBs = bytesPerToken * decRate
        say("decode 1 session, context \(from)..\(from + steps) (after a real prefill): best \(fmt(decRate, 2)) tokens/s (\(fmt(decT.min * 1e3, 1)) ms/token), "
            + "median \(fmt(1 / decT.median, 2)) tokens/s; weights \(fmt(decGBs / 1e9, 2)) GB/s = \(fmt(decGBs / bw * 100, 1))% of read bandwidth")
        var dj = rates(decT, work: 1, unit: "tokens_per_s", extra: ["context_from": num(from), "context_to": num(from + steps)])
        dj = merge(dj, ["ms_per_token_min": .number(decT.min * 1e3), "ms_per_token_median": .number(decT.median * 1e3),
                        "weight_bytes_per_s_best": .number(decGBs), "percent_of_read_bandwidth": .number(decGBs / bw * 100)])
        out["decode"] = dj
      }

      // MARK: - Decode at depths 0, 2048, 8192 (synthetic cache)
      var depthJSON: [JSON] = []
      var depth0 = 0.0, depth0Median = 0.0
      var synthetic: [(Int, Session)] = []
      for d in runs("depths") ? depthList : [] {
        let positions = max(d, 1)
        let s = try Session(model: m, maxTokens: positions + steps + 1, mtp: false)
        try s.setSyntheticContext(positions: positions, seed: UInt64(d) + 17)
        let t = try decodeTimes(s, params, reps: reps)
        if d == depthList[0] { depth0 = t.min; depth0Median = t.median }
        if profileDepths.contains(d) { synthetic.append((d, s)) }
        say("decode at depth \(d)\(d == 0 ? " (1 position)" : "") (synthetic cache): \(fmt(t.min * 1e3, 1)) ms/token min, \(fmt(t.median * 1e3, 1)) median; "
            + "\(fmt(t.min / depth0, 2))× depth \(depthList[0]) (median \(fmt(t.median / depth0Median, 2))×)")
        depthJSON.append(.object([
          "depth": num(d), "positions": num(positions), "synthetic_cache": .bool(true),
          "ms_per_token_min": .number(t.min * 1e3), "ms_per_token_median": .number(t.median * 1e3),
          "ms_per_token_all": .array(t.all.map { .number($0 * 1e3) }),
          "ratio_to_depth0_min": .number(t.min / depth0), "ratio_to_depth0_median": .number(t.median / depth0Median),
        ]))
      }
      out["depths"] = .array(depthJSON)

      // MARK: - Batched decode, 16 sessions against 1
      var batchJSON: [JSON] = []
      var single = 0.0, singleMedian = 0.0
      var batchProfile: (PhaseProfile, Double)? = nil
      for b in runs("batch") ? batchSizes : [] {
        let prof = b == batchSizes.last ? PhaseProfile() : nil
        let f = try BatchBench.batched(m, sessions: b, steps: steps, prompt: 8, reps: reps, warmUp: true, profile: prof)
        if let prof { batchProfile = (prof, f.profiledSeconds) }
        let t = Times(f.times)
        let rate = Double(f.tokens) / t.min, medianRate = Double(f.tokens) / t.median
        if b == batchSizes[0] { single = rate; singleMedian = medianRate }
        say("batched decode \(b) session\(b == 1 ? "" : "s") (context 8..\(8 + steps)): best \(fmt(rate, 2)) tokens/s aggregate (\(fmt(rate / single, 2))× 1 session), "
            + "median \(fmt(medianRate, 2)) (\(fmt(medianRate / singleMedian, 2))×); \(fmt(t.min / Double(steps) * 1e3, 1)) ms/step; "
            + "weights read per step \(fmt(f.bytes / 1e6, 0)) MB → \(fmt(f.bytes / (t.min / Double(steps)) / bw * 100, 1))% of read bandwidth")
        batchJSON.append(merge(rates(t, work: Double(f.tokens), unit: "tokens_per_s", extra: ["sessions": num(b), "tokens": num(f.tokens)]), [
          "ratio_to_1_session_best": .number(rate / single), "ratio_to_1_session_median": .number(medianRate / singleMedian),
          "weight_bytes_per_step": .number(f.bytes), "percent_of_read_bandwidth": .number(f.bytes / (t.min / Double(steps)) / bw * 100),
        ]))
      }
      out["batch"] = .array(batchJSON)

      // MARK: - Phase profile of a decode step
      var profJSON: [JSON] = []
      let real = base.map { [("depth \(from)..\(from + steps) (real prefill)", "depth_512", $0, decT1)] } ?? []
      let contexts = real
        + synthetic.map { ("depth \($0.0) (synthetic cache)", "depth_\($0.0)", $0.1, nil as Times?) }
      func report(_ label: String, _ key: String, _ prof: PhaseProfile, wall: Double, steps stepsRun: Double, ref: Times?) {
        let stepMs = wall / stepsRun * 1e3
        say("profile of one decode step, \(label), average of \(Int(stepsRun)) steps: \(fmt(stepMs, 2)) ms/step measured"
            + (ref.map { " (unprofiled median \(fmt($0.median * 1e3, 2)) ms)" } ?? ""))
        var sum = 0.0
        var phases: [String: JSON] = [:]
        for ph in PhaseProfile.Phase.allCases {
          let ms = Double(prof.nanoseconds[ph.rawValue]) / 1e6 / stepsRun
          sum += ms
          say("  \(pad(ph.name, 56)) \(pad(fmt(ms, 3), 8, left: true)) ms  \(pad(fmt(ms / stepMs * 100, 1), 5, left: true))%")
          phases[ph.key] = .object(["ms": .number(ms), "percent": .number(ms / stepMs * 100)])
        }
        let other = stepMs - sum
        say("  \(pad("everything else (embedding, norms, residuals, sampling)", 56)) \(pad(fmt(other, 3), 8, left: true)) ms  \(pad(fmt(other / stepMs * 100, 1), 5, left: true))%")
        say("  sum of the phases \(fmt(sum, 2)) ms = \(fmt(sum / stepMs * 100, 1))% of the measured \(fmt(stepMs, 2)) ms step")
        phases["everything_else"] = .object(["ms": .number(other), "percent": .number(other / stepMs * 100)])
        var pj: [String: JSON] = ["context": .string(key), "label": .string(label), "steps": num(Int(stepsRun)),
                                  "measured_ms_per_step": .number(stepMs), "sum_of_phases_ms": .number(sum), "phases": .object(phases)]
        if let ref { pj["unprofiled_ms_per_token_median"] = .number(ref.median * 1e3) }
        profJSON.append(.object(pj))
      }
      for (label, key, s, ref) in contexts {
        let prof = PhaseProfile()
        var wall = 0.0
        for _ in 0..<reps {
          let f = try s.fork()
          try f.reserveForBench(f.count + params.maxNewTokens + 1)
          m.transformer.profile = prof
          let t0 = now()
          _ = try f.sample(params)
          wall += now() - t0
          m.transformer.profile = nil
        }
        report(label, key, prof, wall: wall, steps: Double(reps * steps), ref: ref)
      }
      if let (prof, wall) = batchProfile {
        report("\(batchSizes.last!) sessions batched, context 8..\(8 + steps) (one step decodes \(batchSizes.last!) tokens)",
               "batch_\(batchSizes.last!)", prof, wall: wall, steps: Double(steps), ref: nil)
      }
      out["profile"] = .array(profJSON)
      say("peak resident memory of this process: \(fmt(Double(ProcessMemory.peakResidentBytes) / 1e6, 0)) MB")
      out["peak_resident_bytes"] = num(ProcessMemory.peakResidentBytes)
      // The calling thread runs every call's entry point, so it holds the largest region.
      say("kernel scratch held by the calling thread: \(fmt(Double(KernelScratch.threadBytes) / 1e6, 2)) MB")
      out["kernel_scratch_bytes"] = num(KernelScratch.threadBytes)

      if let jsonPath {
        let fw = try FileWriter(path: jsonPath)
        try fw.write(JSON.object(out).serialized + "\n")
        try fw.close()
        say("figures written to \(jsonPath)")
      }
    }
  }

  // MARK: - Measurement helpers

  /// Sorted repetition times with min and median.
  struct Times {
    let all: [Double]
    init(_ t: [Double]) { all = t.sorted() }
    var min: Double { all[0] }
    var median: Double { all.count % 2 == 1 ? all[all.count / 2] : (all[all.count / 2 - 1] + all[all.count / 2]) / 2 }
  }

  /// One untimed run of body, then `reps` timed ones (body returns the seconds it measured).
  static func repeated(_ reps: Int, _ body: () throws(GLM5Error) -> Double) throws(GLM5Error) -> Times {
    _ = try body()
    var t: [Double] = []
    for _ in 0..<reps { t.append(try body()) }
    return Times(t)
  }

  /// Seconds per decoded token of `steps` tokens sampled on forks of `s` (warm-up + reps).
  static func decodeTimes(_ s: Session, _ params: SamplingParams, reps: Int) throws(GLM5Error) -> Times {
    try repeated(reps) { () throws(GLM5Error) in
      let f = try s.fork()
      try f.reserveForBench(f.count + params.maxNewTokens + 1)  // no cache doubling inside the timing
      let t0 = now()
      let r = try f.sample(params)
      return (now() - t0) / Double(max(1, r.tokens.count))
    }
  }

  /// min/median times and the rates work / time.
  static func rates(_ t: Times, work: Double, unit: String, extra: [String: JSON] = [:]) -> JSON {
    var o = extra
    o["time_s_min"] = .number(t.min)
    o["time_s_median"] = .number(t.median)
    o["time_s_all"] = .array(t.all.map { .number($0) })
    o["\(unit)_best"] = .number(work / t.min)
    o["\(unit)_median"] = .number(work / t.median)
    return .object(o)
  }

  static func merge(_ j: JSON, _ more: [String: JSON]) -> JSON {
    guard case .object(var o) = j else { return j }
    for (k, v) in more { o[k] = v.double.map { $0.isFinite ? v : .null } ?? v }
    return .object(o)
  }

  static func num(_ i: Int) -> JSON { .number(Double(i)) }
  static func num(_ d: Double) -> JSON { .number(d) }

  static func pad(_ s: String, _ w: Int, left: Bool = false) -> String {
    let fill = String(repeating: " ", count: max(0, w - s.count))
    return left ? fill + s : s + fill
  }

  /// Parameters one token multiplies by: every Linear outside the MTP layer (lm_head, routers,
  /// indexers, the shared expert, the dense MLP included) once, the routed experts in the share
  /// k / E a token uses.
  static func activeParameters(_ m: Model) -> (total: Double, nonExpert: Double, routed: Double, lmHead: Double, shared: Double) {
    let c = m.config
    var nonExpert = 0.0, routed = 0.0, lmHead = 0.0, shared = 0.0
    for (name, _, l) in m.checkpoint.linearModules {
      if name.hasPrefix("model.layers.\(c.numHiddenLayers).") { continue }  // MTP is not run
      let p = Double(l.outFeatures * l.inFeatures)
      if name.contains(".mlp.experts.") { routed += p } else { nonExpert += p }
      if name == "lm_head" { lmHead += p }
      if name.contains(".mlp.shared_experts.") { shared += p }
    }
    routed *= Double(c.numExpertsPerTok) / Double(c.nRoutedExperts)
    return (nonExpert + routed, nonExpert, routed, lmHead, shared)
  }

  static func say(_ s: String) { BatchBench.say(s) }

  // MARK: - Probes

  /// y [M, N] = x [M, K] · W [N, K]ᵀ with OpenBLAS, N split into one block per pool thread, each
  /// a one-thread sgemm (OpenBLAS stays at one thread; ThreadPool.swift).
  final class SgemmProbe {
    let m = 512, k = 2048, n = 2048
    let x: UnsafeMutablePointer<Float>, w: UnsafeMutablePointer<Float>, y: UnsafeMutablePointer<Float>
    var flops: Double { 2 * Double(m) * Double(k) * Double(n) }
    static let calls = 4

    init() {
      x = .allocate(capacity: m * k); w = .allocate(capacity: n * k); y = .allocate(capacity: m * n)
      var s: UInt64 = 9
      for (p, c) in [(x, m * k), (w, n * k)] {
        for i in 0..<c {
          s ^= s << 13; s ^= s >> 7; s ^= s << 17
          p[i] = Float(s >> 40) / Float(1 << 24) - 0.5
        }
      }
      y.initialize(repeating: 0, count: m * n)
    }

    func free() { x.deallocate(); w.deallocate(); y.deallocate() }

    /// Seconds per sgemm (the mean of a few back-to-back calls).
    func time(_ pool: ThreadPool) -> Double {
      ThreadPool.pinBLASToOneThread()
      let parts = pool.threads
      let (m, k, n, x, w, y) = (m, k, n, x, w, y)
      let t0 = now()
      for _ in 0..<SgemmProbe.calls {
        pool.parallelFor(parts) { p in
          let c0 = n * p / parts, c1 = n * (p + 1) / parts
          if c1 <= c0 { return }
          cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, Int32(m), Int32(c1 - c0), Int32(k), 1, x, Int32(k),
                      w + c0 * k, Int32(k), 0, y + c0, Int32(n))
        }
      }
      return (now() - t0) / Double(SgemmProbe.calls)
    }
  }

  /// A 1 GiB buffer summed on every thread (8-lane chains): one pass, timed.
  final class ReadBuffer {
    let n = 1 << 28  // floats
    let p: UnsafeMutablePointer<Float>?
    var bytes: Int { n * 4 }

    init() {
      p = calloc(1 << 28, 4)?.assumingMemoryBound(to: Float.self)
      if let p { for i in stride(from: 0, to: n, by: 1024) { p[i] = 1 } }
    }

    func free() { Glibc.free(p) }

    /// Seconds of one pass over the buffer (NaN-free: infinity when the allocation failed).
    func pass(_ pool: ThreadPool) -> Double {
      guard let p else { return .infinity }
      let n = self.n
      let parts = pool.threads
      var sinks = [Float](repeating: 0, count: parts)
      let t0 = now()
      sinks.withUnsafeMutableBufferPointer { sb in
        let sink = sb.baseAddress!
        pool.parallelFor(parts) { w in
          let lo = n / parts * w, hi = w == parts - 1 ? n : n / parts * (w + 1)
          var a0 = SIMD8<Float>(), a1 = SIMD8<Float>(), a2 = SIMD8<Float>(), a3 = SIMD8<Float>()
          var i = lo
          while i + 32 <= hi {
            let r = UnsafeRawPointer(p + i)
            a0 += r.loadUnaligned(as: SIMD8<Float>.self)
            a1 += r.loadUnaligned(fromByteOffset: 32, as: SIMD8<Float>.self)
            a2 += r.loadUnaligned(fromByteOffset: 64, as: SIMD8<Float>.self)
            a3 += r.loadUnaligned(fromByteOffset: 96, as: SIMD8<Float>.self)
            i += 32
          }
          sink[w] = (a0 + a1 + a2 + a3).sum()
        }
      }
      let t = now() - t0
      if sinks.reduce(0, +) == -1 { print("") }
      return t
    }
  }

  static let fmaChains = 12
  static let fmaIterations = 40_000_000

  /// FLOPs of one FMA probe run: threads × chains × iterations × lanes of the ISA in use × 2.
  static func fmaFlops(_ pool: ThreadPool) -> Double {
    Double(pool.threads) * Double(fmaChains) * Double(fmaIterations) * Double(2 * fmaLanes)
  }

  /// Lanes of the FMA probe's vectors: those of the kernels' instruction set.
  static var fmaLanes: Int { InstructionSet.current == .avx512 ? 16 : 8 }

  /// Seconds for every pool thread to run fmaIterations steps of 12 independent FMA chains of
  /// the widest vectors the kernels use (InstructionSet.fmaProbe, C).
  static func fmaProbe(_ pool: ThreadPool) -> Double {
    var sinks = [Float](repeating: 0, count: pool.threads)
    let iters = fmaIterations
    let t0 = now()
    sinks.withUnsafeMutableBufferPointer { sb in
      let sink = sb.baseAddress!
      pool.parallelFor(pool.threads) { w in sink[w] = InstructionSet.fmaProbe(iterations: iters).sink }
    }
    let t = now() - t0
    if sinks.reduce(0, +) == -1 { print("") }
    return t
  }
}
