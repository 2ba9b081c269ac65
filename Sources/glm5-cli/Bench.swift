// glm5 bench: prefill and decode throughput on a checkpoint folder, then on a larger random
// GLM-5-shaped model written to disk in BF16, FP8 (128x128 blocks) and INT4 (our quantizer) —
// the same weights in each format. `--batch` (BatchBench.swift) and `--preset glm5-bench`
// (PresetBench.swift) measure the GLM-5-shaped INT4 bench model instead; `--write-bf16 FOLDER` only
// writes that model's shapes with random BF16 weights (for `glm5 quantize` and other engines'
// converters). Figures only; nothing is asserted.

import ArgumentParser
import GLM5Core
import GLM5Engine
import GLM5Kernels
import GLM5Model
#if canImport(Glibc)
import Glibc
#endif

struct Bench: ParsableCommand {
  static let configuration = CommandConfiguration(
    abstract: "Print prefill and decode tokens/s (and weight GB/s) on a model folder and on a random GLM-5-shaped model in BF16, FP8 and INT4 (--batch: batched decode; --preset glm5-bench: figures against this machine's limits).")

  @Argument(help: "Model folder (default: the bundled Tests/Fixtures/tiny-dsa).")
  var model: String = "Tests/Fixtures/tiny-dsa"

  @Option(help: "Compute threads (0 = one per CPU).")
  var threads: Int = 0

  @Option(help: "Prompt tokens for the prefill measurement.")
  var prompt: Int = 128

  @Option(help: "Decode steps.")
  var decode: Int = 16

  @Option(help: "Hidden size of the synthetic model (0 skips it).")
  var syntheticHidden: Int = 1024

  @Option(help: "Layers of the synthetic model.")
  var syntheticLayers: Int = 4

  @Option(help: "Routed experts of the synthetic model.")
  var syntheticExperts: Int = 64

  @Flag(help: "Also run the kernel benchmark (Linear kernels against sgemv/sgemm, ~45 s).")
  var kernels = false

  @Flag(help: "Batched decode instead: aggregate tokens/s of 1, 4, 16 and 32 sessions on the GLM-5-shaped bench model in INT4 g32 (writes ~1.8 GB to /tmp, or to --scratch).")
  var batch = false

  @Option(help: "Batch sizes for --batch, comma-separated.")
  var batchSizes: String = "1,4,16,32"

  @Option(help: "Repetitions of each batched measurement (best and median are printed).")
  var reps: Int = 3

  @Option(help: "Context depths, comma-separated: for --batch's single-session decode figures (none by default), for --preset's synthetic-cache decode figures (default 0,2048,8192).")
  var depths: String = ""

  @Option(help: "Folder for the synthetic checkpoints (default: a new one under /tmp, removed afterwards).")
  var scratch: String? = nil

  @Option(help: ArgumentHelp("A fixed set of figures instead: glm5-bench (the --batch model against read bandwidth, sgemm and FMA probes of this machine: decode, decode at depths 0/2048/8192, prefill of 512 tokens, 16 sessions against 1, a per-phase profile of a decode step; uses --threads, --reps, --decode, --depths, --scratch, --json).", valueName: "name"))
  var preset: String? = nil

  @Option(help: ArgumentHelp("With --preset: only these parts, comma-separated, of prefill (512 tokens, then decode at depth ≤ 512), depths, batch (the probes and the profiles of what ran always run).", valueName: "parts"))
  var only: String = ""

  @Option(name: .customLong("json"), help: ArgumentHelp("With --preset: also write every figure to this file as JSON.", valueName: "file"))
  var jsonFile: String? = nil

  @Option(name: .customLong("write-bf16"), help: ArgumentHelp("Only write the GLM-5-shaped bench model (the --batch and --preset model) with random BF16 weights to this folder (config.json + model.safetensors, 6.5 GB) and exit. `glm5 quantize FOLDER OUT` then makes the INT4 g32 copy that `--preset glm5-bench --scratch OUT` measures, from weights other engines' converters can read too (tools/bench/compare_llama_cpp.sh).", valueName: "folder"))
  var writeBF16: String? = nil

  @Flag(help: "Load bench: Model(path:) and first-token time with a cold and a warm page cache, resident memory (folder: --scratch, default /tmp/glm5-load-int4; the INT4 bench model is written there if missing).")
  var load = false

  @Option(help: ArgumentHelp("Tokenizer bench instead: encoding MB/s of this tokenizer.json (file or folder), single-threaded, on --corpus (tools/bench/tokenizer_bench.py gives HF tokenizers' figure on the same text).", valueName: "path"))
  var tokenizer: String? = nil

  @Option(help: ArgumentHelp("Text for --tokenizer (plain or zstd-compressed UTF-8).", valueName: "file"))
  var corpus: String = "Tests/Fixtures/tokenizers/corpus.txt.zst"

  @Flag(help: "Speculative decoding: tokens/s at k = 0...3 (greedy and sampled) with the mean accepted length, on MODEL (default: the bundled models/glm5-tiny); uses --threads, --decode (256 when left at 16), --reps.")
  var speculative = false

  @Flag(help: "ThreadPool.parallelFor overhead against an expert-sized INT4 linear and, given --scratch MODEL, a decode step.")
  var dispatch = false

  func validate() throws {
    if let preset, preset != "glm5-bench" { throw ValidationError("unknown preset '\(preset)' (known: glm5-bench)") }
    if jsonFile != nil && preset == nil { throw ValidationError("--json needs --preset") }
    if !only.isEmpty && preset == nil { throw ValidationError("--only needs --preset") }
    if let bad = onlyParts.first(where: { !PresetBench.parts.contains($0) }) {
      throw ValidationError("unknown --only part '\(bad)' (known: \(PresetBench.parts.sorted().joined(separator: ", ")))")
    }
  }

  var onlyParts: Set<String> { Set(only.split(separator: ",").map(String.init)) }

  func run() throws {
    if let folder = writeBF16 {
      try runOrExit { () throws(GLM5Error) in
        let json = SyntheticCheckpoint.glm5BenchConfigJSON()
        let c = try ModelConfig(json: json, source: "GLM-5-shaped bench config")
        let t0 = now()
        try SyntheticCheckpoint.write(config: c, configJSON: json, folder: folder, format: .bf16)
        BatchBench.say("GLM-5-shaped bench model, BF16 (random weights), written in \(fmt(now() - t0, 1)) s to \(folder)")
      }
      return
    }
    if let tokenizer {
      try runOrExit { () throws(GLM5Error) in try TokenizerBench.run(tokenizer: tokenizer, corpus: corpus, reps: reps, say: BatchBench.say) }
      return
    }
    if load {
      try runOrExit { () throws(GLM5Error) in try LoadBench.run(folder: scratch ?? "/tmp/glm5-load-int4", threads: threads, say: BatchBench.say) }
      return
    }
    if speculative {
      try runOrExit { () throws(GLM5Error) in
        // The default model folder and decode count are the plain bench's; this one's are the
        // bundled model (it has a trained MTP layer) and 256 tokens.
        let folder = model == "Tests/Fixtures/tiny-dsa" ? ((try? ModelFolder.resolve(nil)) ?? ModelFolder.bundled) : model
        try SpecBench.run(folder: folder, threads: threads, steps: decode == 16 ? 256 : decode, reps: reps, say: BatchBench.say)
      }
      return
    }
    if dispatch { DispatchBench.run(threads: threads, folder: scratch, say: BatchBench.say); return }
    if kernels { KernelBench.run { print($0) } }
    if preset != nil {
      try runOrExit { () throws(GLM5Error) in
        try PresetBench.run(threads: threads, folder: scratch, reps: reps, steps: decode,
                            depths: depths.split(separator: ",").compactMap { Int($0) }, only: onlyParts, jsonPath: jsonFile)
      }
      return
    }
    if batch {
      try runOrExit { () throws(GLM5Error) in
        try BatchBench.run(threads: threads, folder: scratch, batches: batchSizes.split(separator: ",").compactMap { Int($0) },
                               depths: depths.split(separator: ",").compactMap { Int($0) }, steps: decode, prompt: 8, reps: reps)
      }
      return
    }
    try runOrExit { () throws(GLM5Error) in
      let m = try Model(path: model, threads: threads)
      try report(name: model, m)
      guard syntheticHidden > 0 else { return }
      let json = SyntheticCheckpoint.configJSON(hidden: syntheticHidden, layers: syntheticLayers, experts: syntheticExperts)
      let c = try ModelConfig(json: json, source: "synthetic config")
      var template = Array("/tmp/glm5-bench-XXXXXX".utf8CString)
      let dir = scratch ?? String(cString: template.withUnsafeMutableBufferPointer { mkdtemp($0.baseAddress!) }!)
      defer { if scratch == nil { _ = system("rm -rf '\(dir)'") } }
      try makeDirectory(dir)
      var t0 = now()
      try SyntheticCheckpoint.write(config: c, configJSON: json, folder: dir + "/bf16", format: .bf16)
      try SyntheticCheckpoint.write(config: c, configJSON: json, folder: dir + "/fp8", format: .fp8)
      print("synthetic GLM-5-shaped model: hidden \(c.hiddenSize), \(c.numHiddenLayers) layers (\(c.numMoELayers) MoE), \(c.nRoutedExperts) experts of \(c.moeIntermediateSize), vocab \(c.vocabSize); BF16 and FP8 written in \(fmt(now() - t0, 1)) s")
      t0 = now()
      let q = try Quantizer.run(input: dir + "/bf16", output: dir + "/int4", options: QuantizeOptions(groupSize: 32))
      print("glm5 quantize → INT4 g32: \(q.quantizedModules) modules in \(fmt(now() - t0, 1)) s")
      var results: [(String, Double, Double)] = []
      for f in ["bf16", "fp8", "int4"] {
        t0 = now()
        let mm = try Model(path: dir + "/" + f, threads: threads)
        let load = now() - t0
        mm.checkpoint.prefault()
        let (_, decodeRate) = try report(name: "synthetic \(f.uppercased()) (loaded in \(fmt(load * 1e3, 0)) ms)", mm)
        let active = activeBytesPerToken(mm)
        print("  weights read per decoded token \(fmt(active / 1e6, 1)) MB → \(fmt(active * decodeRate / 1e9, 2)) GB/s effective")
        results.append((f, decodeRate, active * decodeRate / 1e9))
      }
      if let base = results.first {
        print("decode relative to BF16: " + results.map { "\($0.0) \(fmt($0.1 / base.1, 2))x" }.joined(separator: ", "))
      }
      print("peak resident memory of this process: \(fmt(Double(ProcessMemory.peakResidentBytes) / 1e6, 0)) MB")
    }
  }

  /// Bytes of weights one decode step reads: every Linear once (routed experts in the proportion
  /// a token uses them), scales and zero points included, plus one embedding row.
  func activeBytesPerToken(_ m: Model) -> Double {
    let c = m.config
    var total = 0.0
    for (name, _, l) in m.checkpoint.linearModules {
      var b = Double(l.weight.byteCount)
      switch l.format {
      case .float: break
      case .fp8Block(let s, _, _): b += Double(s.byteCount)
      case .int4Group(let s, let z, _): b += Double(s.byteCount + (z?.byteCount ?? 0))
      }
      if name.contains(".mlp.experts.") { b *= Double(c.numExpertsPerTok) / Double(c.nRoutedExperts) }
      if name.hasPrefix("model.layers.\(c.numHiddenLayers).") { continue }  // MTP is not run
      total += b
    }
    return total + Double(c.hiddenSize * m.checkpoint.weights.embedTokens.dtype.byteSize)
  }

  @discardableResult
  func report(name: String, _ m: Model) throws(GLM5Error) -> (Double, Double) {
    let c = m.config
    let n = min(prompt, c.maxPositionEmbeddings - decode - 1)
    var rng: UInt64 = 7
    let ids: [Int32] = (0..<n).map { _ in
      rng = rng &* 6364136223846793005 &+ 1442695040888963407
      return Int32((rng >> 33) % UInt64(c.vocabSize))
    }
    let s = try Session(model: m, mtp: false)
    let t0 = now()
    try s.append(ids, logits: .last)
    let t1 = now()
    _ = try s.generate(decode)
    let t2 = now()
    let prefillRate = Double(n) / (t1 - t0), decodeRate = Double(decode) / (t2 - t1)
    print("\(name): threads \(m.pool.threads), weight files \(fmt(Double(m.checkpoint.tensorBytes) / 1e6, 1)) MB, resident now \(fmt(Double(ProcessMemory.residentBytes) / 1e6, 0)) MB")
    print("  prefill \(n) tokens: \(fmt(prefillRate, 1)) tokens/s (\(fmt((t1 - t0) * 1e3, 1)) ms)")
    print("  decode \(decode) tokens (context \(n)..\(n + decode), index_topk \(c.indexTopK)): \(fmt(decodeRate, 2)) tokens/s (\(fmt((t2 - t1) * 1e3 / Double(max(decode, 1)), 2)) ms/token)")
    return (prefillRate, decodeRate)
  }
}
