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
    /// Absorbed attention: W_UK products, multi-query scores / softmax / sum, W_UV.
    case sparseAttention
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
      case .sparseAttention: "sparse attention (W_UK, scores/softmax/sum, W_UV)"
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
      case .sparseAttention: "sparse_attention"
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
