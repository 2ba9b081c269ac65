// The forward pass against transformers on every fixture: logits, logprobs, DSA selections,
// MoE routes, greedy continuation.

import Testing
import GLM5Core
@testable import GLM5Model
import GLM5Kernels
import GLM5Engine

@Suite("Golden forward")
struct GoldenForwardTests {
  @Test("full-sequence logits, DSA top-k and MoE routes match transformers", arguments: goldenPresets)
  func fullSequence(preset: String) throws {
    let g = try Golden(preset: preset)
    let model = try Model(path: modelFolder(preset), threads: 2)
    let c = model.config
    #expect(g.sequenceCount >= 2)
    var worst: Float = 0
    for s in 0..<g.sequenceCount {
      let tokens = g.ints("seq\(s).tokens")
      let rec = try RoutingRecord(config: c)
      let logits = try model.fullForwardLogits(tokens, record: rec)
      let want = g.floats("seq\(s).logits")
      let d = maxAbsDiff(logits, want)
      worst = max(worst, d)
      #expect(d <= logitTolerance(preset), "\(preset) seq\(s): max |Δlogit| = \(d)")
      for l in 0..<c.numHiddenLayers {
        let name = "seq\(s).topk.layer\(l)"
        if g.has(name) {
          let k = g.shape(name)[1]
          let gold = g.ints(name)
          for t in 0..<tokens.count {
            let expected = Array(gold[(t * k)..<((t + 1) * k)].filter { $0 >= 0 })
            #expect(rec.selection(position: t, layer: l) == expected, "\(preset) seq\(s) layer \(l) pos \(t): top-k")
          }
        }
        let en = "seq\(s).experts.layer\(l)"
        if g.has(en) {
          let k = g.shape(en)[1]
          let gold = g.ints(en)
          let goldW = g.floats("seq\(s).expert_weights.layer\(l)")
          for t in 0..<tokens.count {
            let r = rec.route(position: t, layer: l)
            #expect(r?.experts == Array(gold[(t * k)..<((t + 1) * k)]), "\(preset) seq\(s) layer \(l) pos \(t): experts")
            if let r {
              #expect(maxAbsDiff(r.weights, Array(goldW[(t * k)..<((t + 1) * k)])) <= 1e-5)
            }
          }
        }
      }
    }
    print("[golden] \(preset): max |Δlogit| over all sequences = \(worst)")
  }
}
