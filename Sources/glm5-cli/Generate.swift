// glm5 generate: greedy continuation of a prompt of token ids, one line per new token.

import ArgumentParser
import GLM5Core
import GLM5Engine

struct Generate: ParsableCommand {
  static let configuration = CommandConfiguration(
    abstract: "Greedy generation from a prompt of token ids; prints each new token id with its logprob.")

  @Argument(help: "Folder with config.json and safetensors weights.")
  var model: String

  @Argument(help: "Prompt token ids (default: 1 2 3 4 5).")
  var prompt: [Int32] = []

  @Option(name: [.short, .long], help: "Number of tokens to generate.")
  var n: Int = 8

  @Option(help: "Compute threads (0 = one per CPU).")
  var threads: Int = 0

  func run() throws {
    let ids = prompt.isEmpty ? [1, 2, 3, 4, 5] : prompt
    let (out, lps, seconds) = try runOrExit { () throws(GLM5Error) -> ([Int32], [Float], Double) in
      let m = try Model(path: model, threads: threads)
      let s = try Session(model: m)
      let t0 = now()
      try s.append(ids, logits: .none)
      let (out, lps) = try s.generate(n)
      return (out, lps, now() - t0)
    }
    print("prompt  \(ids.map(String.init).joined(separator: " "))")
    for (t, lp) in zip(out, lps) {
      print("token \(t)  logprob \(fmt(Double(lp), 4))")
    }
    print("\(out.count) tokens in \(fmt(seconds, 3)) s")
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
