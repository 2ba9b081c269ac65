// Random GLM-5-shaped checkpoints built in memory, for benchmarks at sizes no fixture has.
// Weights are uniform in ±sqrt(3 / fan_in) (unit-variance outputs), norms are 1, stored in the
// dtype asked for. Nothing here is used for correctness.

import GLM5Core
#if canImport(Glibc)
import Glibc
#endif

public enum SyntheticCheckpoint {
  /// Owns the tensors' memory.
  final class Arena: @unchecked Sendable {
    var blocks: [UnsafeMutableRawPointer] = []
    deinit { for b in blocks { free(b) } }
  }

  /// A config JSON for a GLM-5-shaped model; `scale` 1 is small (~0.3 GB in BF16).
  public static func config(hidden: Int = 1024, layers: Int = 4, experts: Int = 64, vocab: Int = 32768) throws(GLM5Error) -> ModelConfig {
    let json: JSON = .object([
      "model_type": .string("glm_moe_dsa"),
      "vocab_size": .number(Double(vocab)), "hidden_size": .number(Double(hidden)),
      "num_hidden_layers": .number(Double(layers)), "first_k_dense_replace": .number(1),
      "intermediate_size": .number(Double(hidden * 2)), "moe_intermediate_size": .number(Double(hidden / 4)),
      "num_attention_heads": .number(16), "q_lora_rank": .number(Double(hidden / 2)), "kv_lora_rank": .number(256),
      "qk_nope_head_dim": .number(96), "qk_rope_head_dim": .number(32), "v_head_dim": .number(128),
      "n_routed_experts": .number(Double(experts)), "num_experts_per_tok": .number(8), "n_shared_experts": .number(1),
      "n_group": .number(1), "topk_group": .number(1), "routed_scaling_factor": .number(2.5),
      "index_topk": .number(256), "index_head_dim": .number(64), "index_n_heads": .number(16),
      "max_position_embeddings": .number(8192), "rms_norm_eps": .number(1e-5),
      "rope_parameters": .object(["rope_theta": .number(1_000_000), "rope_type": .string("default")]),
    ])
    return try ModelConfig(json: json, source: "synthetic config")
  }

  /// Build a checkpoint with random weights in `dtype` (F32, BF16 or F16).
  public static func make(config: ModelConfig, dtype: DType = .bf16, seed: UInt64 = 42) throws(GLM5Error) -> Checkpoint {
    let arena = Arena()
    var state = seed | 1
    let store = TensorStore { name, shape in
      let count = shape.reduce(1, *)
      let isNorm = shape.count == 1
      let dt: DType = isNorm ? .f32 : dtype
      guard let mem = malloc(max(1, count * dt.byteSize)) else { return nil }
      arena.blocks.append(mem)
      let fanIn = Float(shape.last ?? 1)
      let a = (3 / fanIn).squareRoot()
      for i in 0..<count {
        var v: Float
        if isNorm {
          v = name.hasSuffix("e_score_correction_bias") || name.hasSuffix(".bias") ? 0 : 1
        } else {
          state ^= state << 13; state ^= state >> 7; state ^= state << 17
          v = (Float(state >> 40) / Float(1 << 24) * 2 - 1) * a
        }
        switch dt {
        case .f32: mem.storeBytes(of: v, toByteOffset: 4 * i, as: Float.self)
        case .bf16: mem.storeBytes(of: floatToBF16(v), toByteOffset: 2 * i, as: UInt16.self)
        default: mem.storeBytes(of: Float16(v).bitPattern, toByteOffset: 2 * i, as: UInt16.self)
        }
      }
      return TensorView(name: name, dtype: dt, shape: shape, data: UnsafeRawPointer(mem), byteCount: count * dt.byteSize, file: "<synthetic>")
    }
    let ck = try Checkpoint(config: config, store: store, path: "<synthetic>")
    ck.retain(arena)
    return ck
  }
}
