// The MoE router (DeepSeek-V3 "noaux_tc", transformers `GlmMoeDsaTopkRouter`), per token, fp32:
//   s      = sigmoid(x · W_gateᵀ)                           [E]
//   choice = s + e_score_correction_bias                    bias only chooses, never weighs
//   groups: score = sum of the top-2 choices in each of n_group groups; keep the best topk_group
//   ids    = top num_experts_per_tok of choice over the kept groups (fixed tie rule)
//   w      = s[ids] / (Σ s[ids] + 1e-20) if norm_topk_prob, then × routed_scaling_factor

import GLM5Core
import GLM5Kernels

struct Router {
  let weight: Linear
  let bias: [Float]
  let experts: Int, perToken: Int, groups: Int, topkGroup: Int
  let normalize: Bool
  let scaling: Float

  init(_ w: MoEWeights, config c: ModelConfig) {
    weight = w.router
    bias = w.correctionBias.floats()
    experts = c.nRoutedExperts
    perToken = c.numExpertsPerTok
    groups = c.nGroup
    topkGroup = c.topkGroup
    normalize = c.normTopkProb
    scaling = Float(c.routedScalingFactor)
  }

  /// Route one token from its router logits [E]. Returns experts in ascending id order with their
  /// weights aligned.
  func route(logits: UnsafePointer<Float>, ids: inout [Int32], weights: inout [Float]) {
    var s = [Float](repeating: 0, count: experts)
    var choice = [Float](repeating: 0, count: experts)
    for e in 0..<experts {
      s[e] = 1 / (1 + _exp(-logits[e]))
      choice[e] = s[e] + bias[e]
    }
    if groups > 1 {
      let per = experts / groups
      var groupScore = [Float](repeating: 0, count: groups)
      var best = [Int32]()
      for g in 0..<groups {
        choice.withUnsafeBufferPointer { cb in Kernels.topK(cb.baseAddress! + g * per, per, 2, into: &best) }
        groupScore[g] = choice[g * per + Int(best[0])] + choice[g * per + Int(best[1])]
      }
      var keep = [Int32]()
      groupScore.withUnsafeBufferPointer { gb in Kernels.topK(gb.baseAddress!, groups, topkGroup, into: &keep) }
      var kept = [Bool](repeating: false, count: groups)
      for g in keep { kept[Int(g)] = true }
      for e in 0..<experts where !kept[e / per] { choice[e] = -.infinity }
    }
    choice.withUnsafeBufferPointer { cb in Kernels.topK(cb.baseAddress!, experts, perToken, into: &ids) }
    ids.sort()
    weights = ids.map { s[Int($0)] }
    if normalize {
      var sum: Float = 0
      for w in weights { sum += w }
      let d = sum + 1e-20
      for i in weights.indices { weights[i] /= d }
    }
    for i in weights.indices { weights[i] *= scaling }
  }
}
