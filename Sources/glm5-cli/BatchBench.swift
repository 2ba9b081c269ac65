// glm5 bench --batch: batched decode on the GLM-5-shaped bench model in INT4 g32 (written to a
// temporary folder), aggregate tokens/s for 1, 4, 16 and 32 sessions sampling together against
// the single-session figure, and the share of each step not explained by reading its weights at
// the read bandwidth measured in the same run. Figures only; nothing is asserted.

import GLM5Core
@_spi(Bench) import GLM5Engine
@_spi(Bench) import GLM5Model
#if canImport(Glibc)
import Glibc
#endif

enum BatchBench {
  static func run(threads: Int, folder: String?, batches: [Int], depths ds: [Int], steps: Int, prompt: Int, reps: Int) throws(GLM5Error) {
    try withBenchModel(threads: threads, folder: folder) { (m) throws(GLM5Error) in
      let c = m.config
      let pool = m.pool
      say("model: hidden \(c.hiddenSize), \(c.numHiddenLayers) layers, \(c.nRoutedExperts) experts top-\(c.numExpertsPerTok), vocab \(c.vocabSize); weights \(fmt(Double(m.checkpoint.tensorBytes) / 1e9, 2)) GB; \(pool.threads) threads")
      let bw = readBandwidth(pool: pool)
      say("read bandwidth (same run, \(pool.threads) threads, 1 GiB): \(fmt(bw / 1e9, 1)) GB/s")
      try depths(m, ds, steps: steps)
      var single = 0.0
      for b in batches {
        let f = try batched(m, sessions: b, steps: steps, prompt: prompt, reps: reps, warmUp: false)
        if b == batches.first { single = f.rate }
        say(f.line(bandwidth: bw, single: single))
      }
    }
  }

  /// Run body on the GLM-5-shaped bench model in INT4 g32: the one in `folder` when it holds a
  /// checkpoint (model.safetensors, or shards listed by model.safetensors.index.json, as
  /// `glm5 quantize` writes for a sharded input; its config.json is updated when its
  /// max_position_embeddings is smaller than the bench config's), else random INT4 codes written
  /// there or to a temporary folder (removed after). The weights are prefaulted before body runs.
  static func withBenchModel(threads: Int, folder: String?, _ body: (Model) throws(GLM5Error) -> Void) throws(GLM5Error) {
    let json = SyntheticCheckpoint.glm5BenchConfigJSON()
    let c = try ModelConfig(json: json, source: "GLM-5-shaped bench config")
    var template = Array("/tmp/glm5-batch-XXXXXX".utf8CString)
    let dir = folder ?? String(cString: template.withUnsafeMutableBufferPointer { mkdtemp($0.baseAddress!) }!)
    defer { if folder == nil { _ = system("rm -rf '\(dir)'") } }
    let t0 = now()
    if !holdsCheckpoint(dir) {
      try SyntheticCheckpoint.write(config: c, configJSON: json, folder: dir, format: .int4(group: 32))
      say("GLM-5-shaped bench model, INT4 g32 (random codes), written in \(fmt(now() - t0, 1)) s to \(dir)")
    } else {
      try raiseMaxPositions(folder: dir, to: c.maxPositionEmbeddings)
    }
    let m = try Model(path: dir, threads: threads)
    m.checkpoint.prefault()
    try body(m)
  }

  /// Whether `folder` holds a checkpoint: model.safetensors or model.safetensors.index.json.
  static func holdsCheckpoint(_ folder: String) -> Bool {
    fileKind(joinPath(folder, "model.safetensors")) == .file || fileKind(joinPath(folder, "model.safetensors.index.json")) == .file
  }

  /// A model written before the bench config's max_position_embeddings grew: raise it in its
  /// config.json (the weights do not depend on it).
  static func raiseMaxPositions(folder: String, to n: Int) throws(GLM5Error) {
    let path = joinPath(folder, "config.json")
    let bytes = try readTextFile(path)
    let json = try withBytes(bytes) { (b) throws(GLM5Error) -> JSON in try JSON.parse(b) }
    guard case .object(var o) = json, let have = o["max_position_embeddings"]?.int, have < n else { return }
    o["max_position_embeddings"] = .number(Double(n))
    let fw = try FileWriter(path: path)
    try fw.write(JSON.object(o).serialized + "\n")
    try fw.close()
    say("\(path): max_position_embeddings \(have) → \(n)")
  }

  /// Weight bytes (scales included) of the Linear modules outside the MTP layer: the routed
  /// experts' and everything else's.
  static func linearBytes(_ m: Model) -> (dense: Double, expert: Double) {
    let c = m.config
    var dense = 0.0, expert = 0.0
    for (name, _, l) in m.checkpoint.linearModules {
      var b = Double(l.weight.byteCount)
      if case .int4Group(let s, let z, _) = l.format { b += Double(s.byteCount + (z?.byteCount ?? 0)) }
      if case .fp8Block(let s, _, _) = l.format { b += Double(s.byteCount) }
      if name.hasPrefix("model.layers.\(c.numHiddenLayers).") { continue }
      if name.contains(".mlp.experts.") { expert += b } else { dense += b }
    }
    return (dense, expert)
  }

  /// One batch size's figures.
  struct BatchFigure {
    let sessions: Int, steps: Int, tokens: Int
    /// Sorted wall times of the repetitions.
    let times: [Double]
    /// Weight bytes one step reads.
    let bytes: Double
    /// Wall time of the profiled repetition (0 without one).
    var profiledSeconds = 0.0
    var best: Double { times[0] }
    var median: Double { times[times.count / 2] }
    var rate: Double { Double(tokens) / best }
    var medianRate: Double { Double(tokens) / median }
    var stepTime: Double { best / Double(steps) }

    func line(bandwidth bw: Double, single: Double) -> String {
      let readShare = (bytes / bw) / stepTime
      return "batch \(sessions): \(tokens) tokens, best of \(times.count) \(fmt(best, 2)) s (median \(fmt(median, 2)) s) → \(fmt(rate, 2)) tokens/s aggregate (\(fmt(rate / single, 2))× one session), "
        + "\(fmt(stepTime * 1e3, 1)) ms/step; weights read per step \(fmt(bytes / 1e6, 0)) MB = \(fmt(bytes / bw * 1e3, 1)) ms at \(fmt(bw / 1e9, 1)) GB/s; "
        + "outside the weight reads \(fmt(max(0, 1 - readShare) * 100, 0))% of the step"
    }
  }

  /// `b` sessions prefilled with `prompt` random tokens in one batched append, then `steps`
  /// tokens sampled together, `reps` times on forks of the prefilled sessions (the same work
  /// each time), after one untimed run when `warmUp`.
  /// With `profile`, one more untimed repetition runs with the phase profile on; its wall time
  /// is returned in `profiledSeconds`.
  static func batched(_ m: Model, sessions b: Int, steps: Int, prompt: Int, reps: Int, warmUp: Bool,
                      profile: PhaseProfile? = nil) throws(GLM5Error) -> BatchFigure {
    let c = m.config
    var rng: UInt64 = 11
    var sessions: [Session] = []
    for _ in 0..<b {
      let s = try Session(model: m, maxTokens: prompt + steps + 1, mtp: false)
      sessions.append(s)
    }
    let reqs = sessions.map { s in
      AppendRequest(session: s, tokens: (0..<prompt).map { _ in
        rng = rng &* 6364136223846793005 &+ 1442695040888963407
        return Int32((rng >> 33) % UInt64(c.vocabSize))
      })
    }
    var t0 = now()
    _ = try m.appendBatch(reqs)
    say("batch \(b): prefill of \(b) × \(prompt) tokens in one batched append: \(fmt(now() - t0, 2)) s")
    let params = (0..<b).map { i in SamplingParams(temperature: 1, topP: 0.95, seed: UInt64(i), maxNewTokens: steps, ignoreEOS: true) }
    var times: [Double] = []
    var tokens = 0
    for rep in 0..<(max(1, reps) + (warmUp ? 1 : 0)) {
      var forks: [Session] = []
      for s in sessions { let f = try s.fork(); try f.reserveForBench(f.count + steps + 1); forks.append(f) }
      t0 = now()
      let r = try m.sampleBatch(forks, params)
      if warmUp && rep == 0 { continue }
      times.append(now() - t0)
      tokens = r.reduce(0) { $0 + $1.tokens.count }
    }
    times.sort()
    var profiled = 0.0
    if let profile {
      var forks: [Session] = []
      for s in sessions { let f = try s.fork(); try f.reserveForBench(f.count + steps + 1); forks.append(f) }
      m.transformer.profile = profile
      t0 = now()
      _ = try m.sampleBatch(forks, params)
      profiled = now() - t0
      m.transformer.profile = nil
    }
    // Bytes one step reads: everything but the routed experts once, plus the experts the batch
    // touches (expected unique experts of B uniform top-k draws: E·(1 − (1 − k/E)^B)).
    let (dense, expert) = linearBytes(m)
    let e = Double(c.nRoutedExperts), k = Double(c.numExpertsPerTok)
    return BatchFigure(sessions: b, steps: steps, tokens: tokens, times: times,
                       bytes: dense + expert * (1 - pow(1 - k / e, Double(b))), profiledSeconds: profiled)
  }

  /// Decode ms/token of one session at each context depth (prefilled with random tokens).
  static func depths(_ m: Model, _ depths: [Int], steps: Int) throws(GLM5Error) {
    let c = m.config
    for d in depths {
      var rng: UInt64 = 5
      let ids: [Int32] = (0..<max(d, 1)).map { _ in
        rng = rng &* 6364136223846793005 &+ 1442695040888963407
        return Int32((rng >> 33) % UInt64(c.vocabSize))
      }
      let s = try Session(model: m, maxTokens: ids.count + steps + 1, mtp: false)
      var t0 = now()
      try s.append(ids, logits: .none)
      let prefill = now() - t0
      say("depth \(ids.count): prefilled in \(fmt(prefill, 1)) s; decoding \(steps) tokens")
      t0 = now()
      let r = try s.sample(SamplingParams(temperature: 1, seed: 1, maxNewTokens: steps, ignoreEOS: true))
      let t = now() - t0
      say("depth \(ids.count): prefill \(fmt(Double(ids.count) / prefill, 1)) tokens/s; decode \(fmt(t * 1e3 / Double(r.tokens.count), 1)) ms/token (index_topk \(c.indexTopK))")
    }
  }

  /// Print and flush (the bench runs for minutes; progress shows through a pipe too).
  static func say(_ s: String) {
    print(s)
    fflush(nil)
  }

  /// Sum a 1 GiB buffer on every thread (8-lane chains), best of 3: bytes / time.
  static func readBandwidth(pool: ThreadPool) -> Double {
    let b = PresetBench.ReadBuffer()
    defer { b.free() }
    var best = Double.infinity
    for _ in 0..<3 { best = min(best, b.pass(pool)) }
    return Double(b.bytes) / best
  }
}
