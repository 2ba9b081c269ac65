// glm5 bench --speculative: decode tokens/s with MTP speculation at k = 0 (plain), 1, 2, 3, greedy
// and sampled, on one model (default: the bundled models/glm5-tiny; plain = a session without the
// MTP layer, what a host that does not speculate runs), each the best of --reps runs
// of --decode tokens from the same prompt, with the mean accepted length (accepted drafts + 1 per
// verification step) and the ratio to plain decoding measured in the same run. Every run's tokens
// are checked equal to the plain run's (speculation changes no result). Also the cost of one
// verification step against one plain decode step, from the same runs: a step of k drafts pays
// for k MTP draft steps and a (k + 1)-row forward, so speculation gains when the mean accepted
// length exceeds that ratio. Figures only.

import GLM5Core
import GLM5Engine

enum SpecBench {
  static func run(folder: String, threads: Int, steps: Int, reps: Int, say: (String) -> Void) throws(GLM5Error) {
    let m = try Model(path: folder, threads: threads)
    guard m.transformer.hasMTP else { throw .invalidArgument("\(folder) has no MTP layer: nothing to speculate with") }
    let prompt: [Int32] = (0..<32).map { Int32(($0 * 97 + 31) % m.config.vocabSize) }
    say("speculative bench: \(folder), \(m.pool.threads) threads, \(steps) tokens after a \(prompt.count)-token prompt, best of \(max(reps, 1))")
    for (name, base) in [("greedy", SamplingParams(temperature: 0, maxNewTokens: steps, ignoreEOS: true)),
                         ("temperature 0.7, top-p 0.95", SamplingParams(temperature: 0.7, topP: 0.95, seed: 1, maxNewTokens: steps, ignoreEOS: true))] {
      var plainRate = 0.0
      var plainTokens: [Int32] = []
      for k in 0...3 {
        var p = base
        p.speculative = k
        var best = Double.infinity
        var r = SampleResult()
        for _ in 0..<max(reps, 1) {
          let s = try Session(model: m, mtp: k > 0)  // plain: without the MTP layer
          try s.append(prompt, logits: .none)
          let t0 = now()
          r = try s.sample(p)
          best = min(best, now() - t0)
        }
        let rate = Double(r.tokens.count) / best
        if k == 0 {
          plainRate = rate
          plainTokens = r.tokens
          say("  \(name), plain:          \(fmt(rate, 1)) tokens/s")
          continue
        }
        guard r.tokens == plainTokens else { throw .internal("speculative k = \(k) changed the tokens") }
        let length = 1 + Double(r.accepted.reduce(0) { $0 + Int($1) }) / Double(max(r.accepted.count, 1))
        // Seconds per verification step against seconds per plain token.
        let stepCost = (best / Double(max(r.accepted.count, 1))) * plainRate
        say("  \(name), speculative \(k): \(fmt(rate, 1)) tokens/s (\(fmt(rate / plainRate, 2))x plain), mean accepted length \(fmt(length, 2)), a step costs \(fmt(stepCost, 2)) plain tokens")
      }
    }
  }
}
