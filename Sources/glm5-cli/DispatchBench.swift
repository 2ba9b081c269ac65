// glm5 bench --dispatch: what one ThreadPool.parallelFor costs (empty and tiny bodies, 2, 8 and
// 64 chunks, against DispatchQueue.concurrentPerform alone and the one-thread inline loop), next
// to the work it splits: one expert-sized INT4 g32 Linear for one token (1024×2048 as the bench
// model's experts, 2048×6144 as GLM-5's), weights rotated over > 128 MB so they come from DRAM,
// and, given a model folder, one decode step of that model per layer. Dispatches per decode step
// are counted from the code (see `dispatches`), so the share of a step spent dispatching is an
// estimate: count × measured cost / measured step. Figures only; nothing is asserted. Timings on
// a shared machine vary: best (and median) of several batches of calls.

import Dispatch
import GLM5Core
import GLM5Engine
import GLM5Kernels
import GLM5Model
#if canImport(Glibc)
import Glibc
#endif

enum DispatchBench {
  static func run(threads: Int, folder: String? = nil, say: (String) -> Void) {
    let pool = ThreadPool(threads: threads == 0 ? ThreadPool.availableCPUs : threads)
    say("dispatch bench: ThreadPool(\(pool.threads) threads) on \(ThreadPool.availableCPUs) CPUs; µs per call = best (median) over 9 batches of ≥ 20 ms of back-to-back calls")

    // 1. Dispatch cost.
    let sink = UnsafeMutablePointer<Float>.allocate(capacity: 64 * 16)
    sink.initialize(repeating: 0, count: 64 * 16)
    defer { sink.deallocate() }
    let data = UnsafeMutablePointer<Float>.allocate(capacity: 64 * 64)
    for i in 0..<(64 * 64) { data[i] = Float(i % 7) }
    defer { data.deallocate() }
    var costAt: [Int: Double] = [:]  // chunks → µs per call, tiny body, best batch
    for chunks in [2, 8, 64] {
      let empty = time { pool.parallelFor(chunks) { _ in } }
      // Tiny: each chunk sums 64 floats into its own cache line.
      let tiny = time {
        pool.parallelFor(chunks) { c in
          var s: Float = 0
          for j in 0..<64 { s += data[c * 64 + j] }
          sink[c * 16] += s
        }
      }
      let raw = time { DispatchQueue.concurrentPerform(iterations: min(pool.threads, chunks)) { _ in } }
      let inline = time { ThreadPool.serial.parallelFor(chunks) { c in sink[c * 16] += 1 } }
      costAt[chunks] = tiny.best * 1e6  // µs
      say("parallelFor(\(chunks)): empty \(us(empty)) µs, tiny (64-float sum per chunk) \(us(tiny)) µs; "
          + "concurrentPerform(\(min(pool.threads, chunks))) alone \(us(raw)) µs; the same chunks inline on 1 thread \(us(inline)) µs")
    }
    if sink[0] == -1 { say("") }

    // 2. The work one dispatch splits: an expert-sized INT4 g32 Linear, one token.
    var expertTime = 0.0
    for (n, k) in [(1024, 2048), (2048, 6144)] {
      let w = RotatingInt4(rows: n, cols: k, group: 32, minBytes: 128 << 20)
      let x = UnsafeMutablePointer<Float>.allocate(capacity: k)
      for i in 0..<k { x[i] = Float(i % 13) * 0.01 - 0.06 }
      let y = UnsafeMutablePointer<Float>.allocate(capacity: n)
      defer { x.deallocate(); y.deallocate() }
      var c = 0
      let many = time(batches: 5, minSeconds: 0.05) {
        Kernels.linear(y, ldy: n, x, ldx: k, tokens: 1, w.weights[c % w.weights.count], pool: pool); c += 1
      }
      let one = time(batches: 5, minSeconds: 0.05) {
        Kernels.linear(y, ldy: n, x, ldx: k, tokens: 1, w.weights[c % w.weights.count], pool: .serial); c += 1
      }
      if n == 1024 { expertTime = many.best }
      let chunks = (n + 31) / 32
      let d = costAt[64] ?? .nan
      say("INT4 g32 linear \(n)×\(k), 1 token, from DRAM (\(w.weights.count) copies of \(fmt(Double(w.bytes) / 1e6, 2)) MB): "
          + "\(pool.threads) threads \(us(many)) µs (\(fmt(Double(w.bytes) / many.best / 1e9, 1)) GB/s), 1 thread \(us(one)) µs; "
          + "it makes 1 dispatch of \(chunks) chunks: ~\(fmt(d, 1)) µs (tiny body, 64 chunks) = \(fmt(d / many.best * 1e-4, 1))% of the call")
    }
    _ = expertTime

    // 3. Dispatches per decode step (from the code), and their share of a measured step.
    let d1 = costAt[8] ?? .nan
    let bench = try? ModelConfig(json: SyntheticCheckpoint.glm5BenchConfigJSON(), source: "bench config")
    let glm5 = try? ModelConfig(json: glm5ConfigJSON(), source: "GLM-5 config")
    for (name, c) in [("bench model", bench), ("GLM-5", glm5)] {
      guard let c else { continue }
      let d = dispatches(c, threads: pool.threads)
      let long = dispatches(c, threads: pool.threads, pastIndexTopK: true)
      say("\(name) (\(c.numHiddenLayers) layers, \(c.numHiddenLayers - c.numMoELayers) dense, \(c.nRoutedExperts) experts): per decode step \(d.total) dispatches "
          + "(attention \(d.attention)/layer, MoE \(d.moe)/layer, dense MLP \(d.dense)/layer, lm_head \(d.head)); \(long.total) past index_topk = \(c.indexTopK) tokens of context "
          + "→ \(d.total) × \(fmt(d1, 1)) µs = \(fmt(Double(d.total) * d1 / 1e3, 2)) ms of dispatch per step at the measured cost")
    }

    // 4. A decode step of a real model folder.
    guard let folder, fileKind(joinPath(folder, "config.json")) == .file else { return }
    do throws(GLM5Error) {
      let m = try Model(path: folder, threads: pool.threads)
      m.checkpoint.prefault()
      let c = m.config
      let steps = 16
      var rng: UInt64 = 3
      let prompt: [Int32] = (0..<16).map { _ in
        rng = rng &* 6364136223846793005 &+ 1442695040888963407
        return Int32((rng >> 33) % UInt64(c.vocabSize))
      }
      let s = try Session(model: m, maxTokens: 16 + steps + 2, mtp: false)
      try s.append(prompt, logits: .none)
      var times: [Double] = []
      for _ in 0..<5 {
        let f = try s.fork()
        let t0 = now()
        let r = try f.sample(SamplingParams(temperature: 1, seed: 1, maxNewTokens: steps, ignoreEOS: true))
        times.append((now() - t0) / Double(r.tokens.count))
      }
      times.sort()
      let step = times[0]
      let d = dispatches(c, threads: pool.threads)
      let over = Double(d.total) * d1 * 1e-6
      say("\(folder): decode step best \(fmt(step * 1e3, 2)) ms (median \(fmt(times[times.count / 2] * 1e3, 2)) ms) of 5 × \(steps) tokens at 16-32 tokens of context "
          + "= \(fmt(step * 1e3 / Double(c.numHiddenLayers), 3)) ms per layer; \(d.total) dispatches × \(fmt(d1, 1)) µs = \(fmt(over * 1e3, 3)) ms = \(fmt(over / step * 100, 1))% of the step; "
          + "one bench-expert INT4 linear (\(fmt(expertTime * 1e6, 0)) µs) = \(fmt(expertTime / step * 100, 2))% of the step")
    } catch {
      say("\(folder): \(error.message)")
    }
  }

  /// parallelFor calls of one decode step (one row) with more than one thread, read off the code:
  ///   attention (MLA.swift, DSAIndexer.swift): the Linears q_a, q_b, kv_a, o, indexer wq_b, wk,
  ///     weights_proj (each one dispatch when it is not serial and splits into > 1 chunk),
  ///     the absorbed q̃ (parallelFor(heads)), the multi-query block (parallelFor(min(⌈heads/4⌉, 64))),
  ///     the per-head values (parallelFor(heads)); the indexer's scoring (parallelFor(min(blocks, 64)))
  ///     only once the position is past index_topk; the pick (parallelRows) runs inline for one row;
  ///   MoE (MoE.swift): the router Linear and the grouped experts' two parallelFors (gate and up
  ///     rows of every used expert and the shared one, then their down rows; no nested dispatch);
  ///   dense MLP: gate, up, down; then lm_head (Transformer.logits). Sampling one row: inline.
  static func dispatches(_ c: ModelConfig, threads: Int, pastIndexTopK: Bool = false)
    -> (attention: Int, moe: Int, dense: Int, head: Int, total: Int) {
    if threads <= 1 { return (0, 0, 0, 0, 0) }
    let h = c.hiddenSize, nh = c.numAttentionHeads
    let dqk = c.qkNopeHeadDim + c.qkRopeHeadDim
    // INT4 decode: chunks of 32 rows, serial below 32768 weights; float (BF16): 8·spread rows.
    func int4(_ n: Int, _ k: Int) -> Int { n * k >= 1 << 15 && (n + 31) / 32 > 1 ? 1 : 0 }
    func bf16(_ n: Int, _ k: Int) -> Int {
      if n * k < 32768 { return 0 }
      let spread = max(1, min((65536 + 2 * k - 1) / (2 * k), 32, n / 64))
      return (n + 8 * spread - 1) / (8 * spread) > 1 ? 1 : 0
    }
    var attn = int4(c.qLoraRank, h) + int4(nh * dqk, c.qLoraRank) + int4(c.kvLoraRank + c.qkRopeHeadDim, h)
      + int4(h, nh * c.vHeadDim)
    attn += int4(c.indexNHeads * c.indexHeadDim, c.qLoraRank) + int4(c.indexHeadDim, h) + bf16(c.indexNHeads, h)
    attn += (nh > 1 ? 1 : 0) + (min((nh + 3) / 4, 64) > 1 ? 1 : 0) + (nh > 1 ? 1 : 0)
    if pastIndexTopK { attn += 1 }
    let moe = bf16(c.nRoutedExperts, h) + 2
    let dense = 2 * int4(c.intermediateSize, h) + int4(h, c.intermediateSize)
    let head = bf16(c.vocabSize, h)
    let moeLayers = c.numMoELayers
    let total = c.numHiddenLayers * attn + moeLayers * moe + (c.numHiddenLayers - moeLayers) * dense + head
    return (attn, moe, dense, head, total)
  }

  /// GLM-5's config.json dimensions (no weights needed to count dispatches).
  static func glm5ConfigJSON() -> JSON {
    guard case .object(var o) = SyntheticCheckpoint.glm5BenchConfigJSON() else { return .null }
    let v: [(String, Double)] = [
      ("hidden_size", 6144), ("num_hidden_layers", 78), ("first_k_dense_replace", 3), ("intermediate_size", 12288),
      ("moe_intermediate_size", 2048), ("n_routed_experts", 256), ("num_experts_per_tok", 8), ("num_attention_heads", 64),
      ("num_key_value_heads", 64), ("q_lora_rank", 2048), ("kv_lora_rank", 512), ("qk_nope_head_dim", 192),
      ("qk_rope_head_dim", 64), ("v_head_dim", 256), ("index_n_heads", 32), ("index_head_dim", 128), ("index_topk", 2048),
      ("vocab_size", 154880), ("max_position_embeddings", 202752),
    ]
    for (k, x) in v { o[k] = .number(x) }
    o["quantization_config"] = nil
    return .object(o)
  }

  // MARK: - Support

  struct Timing { var best: Double; var median: Double }

  /// Seconds per call of `body`: batches of back-to-back calls lasting ≥ minSeconds, best and median.
  static func time(batches: Int = 9, minSeconds: Double = 0.02, _ body: () -> Void) -> Timing {
    body()
    var calls = 1
    while true {
      let t0 = now()
      for _ in 0..<calls { body() }
      if now() - t0 >= minSeconds { break }
      calls *= 2
    }
    var per: [Double] = []
    for _ in 0..<batches {
      let t0 = now()
      for _ in 0..<calls { body() }
      per.append((now() - t0) / Double(calls))
    }
    per.sort()
    return Timing(best: per[0], median: per[per.count / 2])
  }

  static func us(_ t: Timing) -> String { "\(fmt(t.best * 1e6, 2)) (\(fmt(t.median * 1e6, 2)))" }

  /// Copies of one random INT4 g32 weight (BF16 scales, symmetric) totalling ≥ minBytes.
  final class RotatingInt4 {
    let weights: [LinearWeight]
    let bytes: Int
    private var buffers: [UnsafeMutableRawPointer] = []

    init(rows n: Int, cols k: Int, group g: Int, minBytes: Int) {
      let words = k / 8, groups = k / g
      bytes = n * words * 4 + n * groups * 2
      let copies = max(2, minBytes / bytes + 1)
      var s: UInt64 = UInt64(n &* 31 &+ k)
      var ws: [LinearWeight] = []
      var bufs: [UnsafeMutableRawPointer] = []
      for _ in 0..<copies {
        let p = UnsafeMutableRawPointer.allocate(byteCount: n * words * 4, alignment: 64)
        let sc = UnsafeMutableRawPointer.allocate(byteCount: n * groups * 2, alignment: 64)
        bufs += [p, sc]
        for i in 0..<(n * words) {
          s &+= 0x9E37_79B9_7F4A_7C15
          p.storeBytes(of: UInt32(truncatingIfNeeded: (s ^ (s >> 29)) &* 0xBF58_476D_1CE4_E5B9 >> 17), toByteOffset: 4 * i, as: UInt32.self)
        }
        for i in 0..<(n * groups) {
          s &+= 0x9E37_79B9_7F4A_7C15
          sc.storeBytes(of: floatToBF16(0.01 + 0.001 * Float(s >> 40) * 0x1p-24), toByteOffset: 2 * i, as: UInt16.self)
        }
        ws.append(.int4(packed: UnsafeRawPointer(p), rows: n, cols: k, scales: UnsafeRawPointer(sc), scaleDType: .bf16,
                        zeroPoints: nil, group: g, totalRows: n, rowOffset: 0))
      }
      weights = ws
      buffers = bufs
    }

    deinit { for p in buffers { p.deallocate() } }
  }
}
