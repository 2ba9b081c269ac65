// Rollout Routing Replay ("R3"), the replay half: a host's selections and routes for the tokens
// of one append, used instead of computing them (the trainer-side recomputation, or reproducing
// a rollout exactly after a weight update). Layouts are those of RoutingRecord:
//
//   topk          [T, L, K]  int32  per token and layer: ascending key positions, then -1 padding
//   expertIds     [T, M, k]  int32  per token and MoE layer: k distinct expert ids, ascending
//   expertWeights [T, M, k]  float  their combine weights; when absent the router computes them
//                                   from its current logits for the replayed ids (sigmoid of the
//                                   chosen experts' logits, normalised and scaled as usual)
//
// The pointers are the caller's and must stay valid for the call. Everything is checked (validate)
// before any session changes. A replayed selection replaces the indexer's choice on every layer,
// "shared"-indexer layers included (the indexer's keys are still computed and cached, so later
// tokens can be computed normally); replayed ids replace the router's choice.

import GLM5Core

public struct RoutingReplay: @unchecked Sendable {
  public var topk: UnsafePointer<Int32>?
  public var expertIds: UnsafePointer<Int32>?
  public var expertWeights: UnsafePointer<Float>?

  public init(topk: UnsafePointer<Int32>? = nil, expertIds: UnsafePointer<Int32>? = nil, expertWeights: UnsafePointer<Float>? = nil) {
    self.topk = topk
    self.expertIds = expertIds
    self.expertWeights = expertWeights
  }

  public var isEmpty: Bool { topk == nil && expertIds == nil }

  /// The same replay starting `rows` tokens later (a request cut into steps).
  public func advanced(by rows: Int, _ c: ModelConfig) -> RoutingReplay {
    let (ts, rs) = RoutingReplay.strides(c)
    return RoutingReplay(topk: topk.map { $0 + rows * ts }, expertIds: expertIds.map { $0 + rows * rs },
                         expertWeights: expertWeights.map { $0 + rows * rs })
  }

  /// Ints per token of topk, and of expertIds.
  static func strides(_ c: ModelConfig) -> (topk: Int, routes: Int) {
    let moe = (0..<c.numHiddenLayers).filter { c.mlpLayerTypes[$0] == .sparse }.count
    return (c.numHiddenLayers * c.indexTopK, moe * (moe > 0 ? c.numExpertsPerTok : 0))
  }

  /// Check the replay of `tokens` tokens appended at positions start..<start+tokens: every
  /// selection strictly ascending within [0, position], at least one key, -1 only as trailing
  /// padding; every route k distinct ascending ids in [0, n_routed_experts) with finite weights.
  /// The message names the token, layer and entry (prefixed by `context`).
  public func validate(_ c: ModelConfig, start: Int, tokens: Int, context ctx: String = "") throws(GLM5Error) {
    if expertWeights != nil && expertIds == nil {
      throw .invalidArgument("\(ctx)replayed expert weights need replayed expert ids")
    }
    let L = c.numHiddenLayers, K = c.indexTopK
    if let topk {
      for t in 0..<tokens {
        let pos = start + t
        for l in 0..<L {
          let row = topk + (t * L + l) * K
          var prev: Int32 = -1
          var n = 0
          for i in 0..<K {
            let v = row[i]
            if v < 0 {
              guard v == -1 else { throw .invalidArgument("\(ctx)replay_topk[\(t), \(l), \(i)] is \(v): entries are key positions or -1 (padding)") }
              for j in (i + 1)..<max(i + 1, K) where row[j] != -1 {
                throw .invalidArgument("\(ctx)replay_topk[\(t), \(l), \(j)] is \(row[j]) after -1 padding at entry \(i)")
              }
              break
            }
            guard Int(v) <= pos else {
              throw .invalidArgument("\(ctx)replay_topk[\(t), \(l), \(i)] is key \(v), but token \(t) is at position \(pos) (keys 0...\(pos))")
            }
            guard v > prev else {
              throw .invalidArgument("\(ctx)replay_topk[\(t), \(l), \(i)] is \(v) after \(prev): a selection must be strictly ascending")
            }
            prev = v
            n += 1
          }
          guard n > 0 else { throw .invalidArgument("\(ctx)replay_topk[\(t), \(l)] selects no key") }
        }
      }
    }
    if let expertIds {
      let k = c.numExpertsPerTok, E = c.nRoutedExperts
      let moe = (0..<L).filter { c.mlpLayerTypes[$0] == .sparse }
      for t in 0..<tokens {
        for (m, l) in moe.enumerated() {
          let o = (t * moe.count + m) * k
          var prev: Int32 = -1
          for i in 0..<k {
            let e = expertIds[o + i]
            guard e >= 0 && Int(e) < E else {
              throw .invalidArgument("\(ctx)replay_routes[\(t), \(m), \(i)] (layer \(l)) is expert \(e), outside [0, \(E))")
            }
            guard e > prev else {
              throw .invalidArgument("\(ctx)replay_routes[\(t), \(m), \(i)] (layer \(l)) is \(e) after \(prev): expert ids must be strictly ascending")
            }
            prev = e
            if let w = expertWeights, !w[o + i].isFinite {
              throw .invalidArgument("\(ctx)replay_route_weights[\(t), \(m), \(i)] (layer \(l)) is \(w[o + i]), must be finite")
            }
          }
        }
      }
    }
  }
}
