// The sampling options `generate` and `chat` share (include/glm5.h "Sampling" for what each does).

import ArgumentParser
import GLM5Engine

struct SamplingOptions: ParsableArguments {
  @Option(name: [.short, .long], help: "Most tokens to generate (per reply in chat).")
  var n: Int?

  @Option(help: "Temperature (0 = greedy).")
  var temperature: Float = 0

  @Option(help: "top-k (0 = off).")
  var topK: Int = 0

  @Option(help: "top-p (1 = off).")
  var topP: Float = 1

  @Option(help: "min-p (0 = off).")
  var minP: Float = 0

  @Option(help: "Seed of the counter-based sampler (a draw depends on the seed and the token's position only).")
  var seed: UInt64 = 0

  @Flag(help: "Do not stop at the model's end-of-sequence ids.")
  var ignoreEos = false

  @Option(help: "Tokens the MTP layer drafts per step (0 = off, 1...8); the output is the same, only faster when drafts agree.")
  var speculative: Int = 0

  @Option(help: "Compute threads (0 = one per CPU).")
  var threads: Int = 0

  @Flag(help: "Do not read the weights at load (pages are read at first use; tokens/s then include the disk).")
  var lazyLoad = false

  func params(defaultN: Int, stopTokenIds: [Int32] = []) -> SamplingParams {
    SamplingParams(temperature: temperature, topK: topK, topP: topP, minP: minP, seed: seed,
                   maxNewTokens: n ?? defaultN, stopTokenIds: stopTokenIds, ignoreEOS: ignoreEos,
                   speculative: speculative)
  }

  var summary: String {
    "temperature \(temperature), top-k \(topK), top-p \(topP), min-p \(minP), seed \(seed)" + (speculative > 0 ? ", speculative \(speculative)" : "")
  }
}

extension FinishReason {
  var name: String {
    switch self {
    case .none: return "none"
    case .length: return "length"
    case .stop: return "stop"
    case .cancelled: return "cancelled"
    }
  }
}
