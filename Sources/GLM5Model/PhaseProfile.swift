// Bench-only per-phase timing of forward steps (`glm5 bench --preset glm5-bench`). When
// `Transformer.profile` is nil (always, outside the bench) each hook is one nil check; when set,
// the forward pass reads CLOCK_MONOTONIC at the phase boundaries and adds the nanoseconds of each
// phase. Phases are timed on the calling thread around whole parallel sections, so they add up
// to the wall time of the step (the remainder is "everything else": embedding, layer norms,
// residual adds, sampling, the engine's bookkeeping). Not thread-safe: one step at a time.

#if canImport(Glibc)
import Glibc
#endif

@_spi(Bench) public final class PhaseProfile: @unchecked Sendable {
  public enum Phase: Int, CaseIterable, Sendable {
    /// q_a, q_a norm, q_b, kv_a, kv_a norm, RoPE of q and k (cache rows written).
    case attentionProjections
    /// Indexer projections (wq_b, wk, weights_proj, k LayerNorm, RoPE) and key scoring.
    case indexer
    /// Top-k selection of the scored keys (and the sort of the selection).
    case topK
    /// Absorbed attention over the selected keys, in five parts: q̃ = q_nope · W_UK (the
    /// transposed kv_b product), the multi-query scores, their softmax, the weighted sum of the
    /// selected latents, and the heads' values through W_UV.
    case attentionWUK
    case attentionScores
    case attentionSoftmax
    case attentionSum
    case attentionWUV
    case oProj
    /// Router logits, routing, packing rows per expert.
    case router
    /// Routed experts and the shared expert, and their weighted sum.
    case experts
    /// The dense SwiGLU MLP of the first_k_dense_replace layers.
    case denseMLP
    case lmHead

    public var name: String {
      switch self {
      case .attentionProjections: "attention projections (q_a, q_b, kv_a, norms, rope)"
      case .indexer: "indexer (projections + scoring)"
      case .topK: "top-k selection"
      case .attentionWUK: "sparse attention: q̃ = q_nope · W_UK"
      case .attentionScores: "sparse attention: multi-query scores"
      case .attentionSoftmax: "sparse attention: softmax"
      case .attentionSum: "sparse attention: weighted sum of latents"
      case .attentionWUV: "sparse attention: values through W_UV"
      case .oProj: "o_proj"
      case .router: "router"
      case .experts: "experts (routed + shared)"
      case .denseMLP: "dense MLP (layer 0)"
      case .lmHead: "lm_head"
      }
    }
    public var key: String {
      switch self {
      case .attentionProjections: "attention_projections"
      case .indexer: "indexer"
      case .topK: "top_k"
      case .attentionWUK: "sparse_attention_w_uk"
      case .attentionScores: "sparse_attention_scores"
      case .attentionSoftmax: "sparse_attention_softmax"
      case .attentionSum: "sparse_attention_sum"
      case .attentionWUV: "sparse_attention_w_uv"
      case .oProj: "o_proj"
      case .router: "router"
      case .experts: "experts"
      case .denseMLP: "dense_mlp"
      case .lmHead: "lm_head"
      }
    }
  }

  /// Accumulated nanoseconds per phase (indexed by Phase.rawValue).
  public private(set) var nanoseconds = [UInt64](repeating: 0, count: Phase.allCases.count)

  public init() {}

  public func reset() { for i in nanoseconds.indices { nanoseconds[i] = 0 } }

  /// CLOCK_MONOTONIC in nanoseconds.
  @inline(__always) public static func now() -> UInt64 {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return UInt64(ts.tv_sec) &* 1_000_000_000 &+ UInt64(ts.tv_nsec)
  }

  /// Add the time since `t` to `phase` and move `t` to now.
  @inline(__always) public func lap(_ phase: Phase, _ t: inout UInt64) {
    let n = PhaseProfile.now()
    nanoseconds[phase.rawValue] &+= n &- t
    t = n
  }
}
