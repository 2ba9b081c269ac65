// glm5 bench: prefill and decode throughput on a checkpoint folder and on a larger random
// GLM-5-shaped model built in memory. Figures only; nothing is asserted.

import ArgumentParser
import GLM5Core
import GLM5Engine
import GLM5Model

struct Bench: ParsableCommand {
  static let configuration = CommandConfiguration(
    abstract: "Print prefill and decode tokens/s on a model folder and on a random GLM-5-shaped model.")

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

  func run() throws {
    try runOrExit { () throws(GLM5Error) in
      let m = try Model(path: model, threads: threads)
      try report(name: model, m)
      if syntheticHidden > 0 {
        let c = try SyntheticCheckpoint.config(hidden: syntheticHidden, layers: syntheticLayers)
        let t0 = now()
        let ck = try SyntheticCheckpoint.make(config: c, dtype: .bf16)
        print("synthetic model: hidden \(c.hiddenSize), \(c.numHiddenLayers) layers, \(c.nRoutedExperts) experts, vocab \(c.vocabSize), BF16 \(fmt(Double(ck.tensorBytes) / 1e9, 2)) GB, built in \(fmt(now() - t0, 1)) s")
        try report(name: "synthetic", try Model(checkpoint: ck, threads: threads))
      }
    }
  }

  func report(name: String, _ m: Model) throws(GLM5Error) {
    let c = m.config
    let n = min(prompt, c.maxPositionEmbeddings - decode - 1)
    var rng: UInt64 = 7
    let ids: [Int32] = (0..<n).map { _ in
      rng = rng &* 6364136223846793005 &+ 1442695040888963407
      return Int32((rng >> 33) % UInt64(c.vocabSize))
    }
    let s = try Session(model: m)
    let t0 = now()
    try s.append(ids, logits: .last)
    let t1 = now()
    _ = try s.generate(decode)
    let t2 = now()
    let bytes = Double(m.checkpoint.tensorBytes)
    print("\(name): threads \(m.pool.threads), weights \(fmt(bytes / 1e6, 1)) MB")
    print("  prefill \(n) tokens: \(fmt(Double(n) / (t1 - t0), 1)) tokens/s (\(fmt((t1 - t0) * 1e3, 1)) ms)")
    print("  decode \(decode) tokens (context \(n)..\(n + decode), index_topk \(c.indexTopK)): \(fmt(Double(decode) / (t2 - t1), 2)) tokens/s (\(fmt((t2 - t1) * 1e3 / Double(max(decode, 1)), 2)) ms/token)")
  }
}
