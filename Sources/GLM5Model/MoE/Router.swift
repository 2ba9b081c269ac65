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

  /// Route one token from its router logits [E]: experts in ascending id order into ids[0..<k]
  /// with their weights aligned in weights[0..<k]. scratch: [2E + groups] floats, heap: [E] ints.
  func route(logits: UnsafePointer<Float>, ids: UnsafeMutablePointer<Int32>, weights: UnsafeMutablePointer<Float>,
             scratch: UnsafeMutablePointer<Float>, heap: UnsafeMutablePointer<Int32>) {
    let s = scratch, choice = scratch + experts, groupScore = scratch + 2 * experts
    bias.withUnsafeBufferPointer { bb in
      for e in 0..<experts {
        s[e] = 1 / (1 + _exp(-logits[e]))
        choice[e] = s[e] + bb[e]
      }
    }
    if groups > 1 {
      let per = experts / groups
      for g in 0..<groups {
        Kernels.topK(choice + g * per, per, 2, heap: heap)
        groupScore[g] = choice[g * per + Int(heap[0])] + choice[g * per + Int(heap[1])]
      }
      let nKeep = Kernels.topK(groupScore, groups, topkGroup, heap: heap)
      // heap[0..<nKeep] are the kept groups; mask the others' experts.
      for g in 0..<groups {
        var kept = false
        for i in 0..<nKeep where Int(heap[i]) == g { kept = true }
        if !kept { for e in (g * per)..<((g + 1) * per) { choice[e] = -.infinity } }
      }
    }
    let n = Kernels.topK(choice, experts, perToken, heap: heap)
    ids.update(from: heap, count: n)
    Kernels.sortAscending(ids, n)
    for i in 0..<n { weights[i] = s[Int(ids[i])] }
    finish(weights, n)
  }

  /// The weights of given experts (a replayed route): exactly what `route` computes for them,
  /// sigmoid of their logits, normalised and scaled.   ids [k] ascending → weights [k]
  func weigh(logits: UnsafePointer<Float>, ids: UnsafePointer<Int32>, weights: UnsafeMutablePointer<Float>) {
    for i in 0..<perToken { weights[i] = 1 / (1 + _exp(-logits[Int(ids[i])])) }
    finish(weights, perToken)
  }

  /// Normalise (norm_topk_prob) and scale the n chosen sigmoid scores in place.
  private func finish(_ weights: UnsafeMutablePointer<Float>, _ n: Int) {
    if normalize {
      var sum: Float = 0
      for i in 0..<n { sum += weights[i] }
      let d = sum + 1e-20
      for i in 0..<n { weights[i] /= d }
    }
    for i in 0..<n { weights[i] *= scaling }
  }
}
