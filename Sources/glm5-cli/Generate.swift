// glm5 generate: sample (or, at temperature 0, greedily pick) a continuation of a prompt of token
// ids, one line per new token with its raw, scaled and processed logprobs (include/glm5.h
// "Sampling"), and why it stopped.

import ArgumentParser
import GLM5Core
import GLM5Engine

struct Generate: ParsableCommand {
  static let configuration = CommandConfiguration(
    abstract: "Sample a continuation of a prompt of token ids; prints each new id with its raw, scaled and processed logprob.")

  @Argument(help: "Folder with config.json and safetensors weights.")
  var model: String

  @Argument(help: "Prompt token ids (default: 1 2 3 4 5).")
  var prompt: [Int32] = []

  @Option(name: [.short, .long], help: "Most tokens to generate.")
  var n: Int = 8

  @Option(help: "Temperature (0 = greedy).")
  var temperature: Float = 0

  @Option(help: "top-k (0 = off).")
  var topK: Int = 0

  @Option(help: "top-p (1 = off).")
  var topP: Float = 1

  @Option(help: "min-p (0 = off).")
  var minP: Float = 0

  @Option(help: "Seed of the counter-based sampler.")
  var seed: UInt64 = 0

  @Flag(help: "Do not stop at the model's end-of-sequence ids.")
  var ignoreEos = false

  @Option(help: "Compute threads (0 = one per CPU).")
  var threads: Int = 0

  func run() throws {
    let ids = prompt.isEmpty ? [1, 2, 3, 4, 5] : prompt
    let p = SamplingParams(temperature: temperature, topK: topK, topP: topP, minP: minP, seed: seed, maxNewTokens: n, ignoreEOS: ignoreEos)
    let (r, seconds) = try runOrExit { () throws(GLM5Error) -> (SampleResult, Double) in
      let m = try Model(path: model, threads: threads)
      let s = try Session(model: m)
      let t0 = now()
      try s.append(ids, logits: .none)
      let r = try s.sample(p)
      return (r, now() - t0)
    }
    print("prompt  \(ids.map(String.init).joined(separator: " "))")
    print("sampling: temperature \(temperature), top-k \(topK), top-p \(topP), min-p \(minP), seed \(seed)")
    for i in r.tokens.indices {
      print("token \(r.tokens[i])  logprob \(fmt(Double(r.logprobs[i]), 4))  scaled \(fmt(Double(r.scaledLogprobs[i]), 4))  processed \(fmt(Double(r.processedLogprobs[i]), 4))")
    }
    let why = r.finishReason == .stop ? "stop (token \(r.stopTokenId ?? -1))" : (r.finishReason == .cancelled ? "cancelled" : "length")
    print("\(r.tokens.count) tokens in \(fmt(seconds, 3)) s, finished: \(why)")
  }
}

/// Seconds from a monotonic clock.
func now() -> Double {
  let d = ContinuousClock.now - ContinuousClock.Instant.zeroReference
  return Double(d.components.seconds) + Double(d.components.attoseconds) * 1e-18
}

extension ContinuousClock.Instant {
  static let zeroReference = ContinuousClock.now
}

/// Fixed-point text without Foundation.
func fmt(_ x: Double, _ digits: Int) -> String {
  if x.isNaN { return "nan" }
  var p = 1.0
  for _ in 0..<digits { p *= 10 }
  let r = (abs(x) * p).rounded()
  let whole = Int(r / p)
  var frac = String(Int(r.truncatingRemainder(dividingBy: p)))
  while frac.count < digits { frac = "0" + frac }
  return (x < 0 && r != 0 ? "-" : "") + "\(whole)" + (digits > 0 ? "." + frac : "")
}
