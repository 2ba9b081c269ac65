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
    try ModelConfig(json: configJSON(hidden: hidden, layers: layers, experts: experts, vocab: vocab), source: "synthetic config")
  }

  /// The config.json of a synthetic model. Besides what glm5 reads it has what a saved
  /// transformers GlmMoeDsaConfig carries and other loaders need: `architectures` (llama.cpp's
  /// converter picks its model class by it), `num_key_value_heads` = `num_attention_heads`
  /// (transformers' default is a fixed 64, not the head count: 16 or 32 heads without it give
  /// `num_key_value_groups` 0 there), `norm_topk_prob` (converters read it from the file only).
  public static func configJSON(hidden: Int = 1024, layers: Int = 4, experts: Int = 64, vocab: Int = 32768) -> JSON {
    .object([
      "model_type": .string("glm_moe_dsa"), "architectures": .array([.string("GlmMoeDsaForCausalLM")]),
      "vocab_size": .number(Double(vocab)), "hidden_size": .number(Double(hidden)),
      "num_hidden_layers": .number(Double(layers)), "first_k_dense_replace": .number(1),
      "intermediate_size": .number(Double(hidden * 2)), "moe_intermediate_size": .number(Double(hidden / 4)),
      "num_attention_heads": .number(16), "num_key_value_heads": .number(16),
      "q_lora_rank": .number(Double(hidden / 2)), "kv_lora_rank": .number(256),
      "qk_nope_head_dim": .number(96), "qk_rope_head_dim": .number(32), "v_head_dim": .number(128),
      "n_routed_experts": .number(Double(experts)), "num_experts_per_tok": .number(8), "n_shared_experts": .number(1),
      "norm_topk_prob": .bool(true),
      "n_group": .number(1), "topk_group": .number(1), "routed_scaling_factor": .number(2.5),
      "index_topk": .number(256), "index_head_dim": .number(64), "index_n_heads": .number(16),
      "max_position_embeddings": .number(8192), "rms_norm_eps": .number(1e-5),
      "rope_parameters": .object(["rope_theta": .number(1_000_000), "rope_type": .string("default")]),
    ])
  }

  /// The GLM-5-shaped bench model (real head dimensions, fewer layers and experts): hidden 2048,
  /// 8 layers (layer 0 dense), 32 heads, q_lora 768, kv_lora 512, nope 192 / rope 64 / v 256,
  /// indexer 32 × 128 with index_topk 2048, 64 routed experts top-8 of width 1024 plus 1 shared,
  /// dense intermediate 4096, vocab 16384, untied lm_head: 3.25 B parameters, 0.75 B active.
  /// max_position_embeddings 16384: room for decode at depth 8192 (bench --preset glm5-bench).
  public static func glm5BenchConfigJSON() -> JSON {
    guard case .object(var o) = configJSON(hidden: 2048, layers: 8, experts: 64, vocab: 16384) else { return .null }
    o["intermediate_size"] = .number(4096)
    o["moe_intermediate_size"] = .number(1024)
    o["num_attention_heads"] = .number(32)
    o["num_key_value_heads"] = .number(32)
    o["q_lora_rank"] = .number(768)
    o["kv_lora_rank"] = .number(512)
    o["qk_nope_head_dim"] = .number(192)
    o["qk_rope_head_dim"] = .number(64)
    o["v_head_dim"] = .number(256)
    o["index_n_heads"] = .number(32)
    o["index_head_dim"] = .number(128)
    o["index_topk"] = .number(2048)
    o["max_position_embeddings"] = .number(16384)
    return .object(o)
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

extension SyntheticCheckpoint {
  /// The tensors the weight table asks for under `config`, in table order.
  static func tensorList(config: ModelConfig) throws(GLM5Error) -> [(name: String, shape: [Int])] {
    var list: [(String, [Int])] = []
    var dummy: UInt8 = 0
    let p = withUnsafeMutablePointer(to: &dummy) { UnsafeRawPointer($0) }
    let store = TensorStore { name, shape in
      list.append((name, shape))
      return TensorView(name: name, dtype: .f32, shape: shape, data: p, byteCount: 0, file: "<plan>")
    }
    _ = try Checkpoint(config: config, store: store, path: "<plan>")
    return list
  }

  public enum Format: Sendable, Equatable {
    case bf16
    /// F8_E4M3 with 128×128 block scales, as the official GLM-5-FP8 release.
    case fp8
    /// compressed-tensors pack-quantized INT4, symmetric, this group size (random codes).
    case int4(group: Int)
  }

  /// Write a random checkpoint folder (config.json + model.safetensors), streaming one tensor at
  /// a time. Quantized formats apply to every Linear the quantizers convert (not the router, the
  /// indexer's weights_proj, lm_head or the MTP glue); everything else is BF16 (norms F32).
  public static func write(config: ModelConfig, configJSON: JSON, folder: String, format: Format = .bf16, seed: UInt64 = 42) throws(GLM5Error) {
    let fp8 = format == .fp8
    var int4Group = 0
    if case .int4(let g) = format { int4Group = g }
    try makeDirectory(folder)
    let plan = try tensorList(config: config)
    let keep: Set<String> = {
      // Linear modules the quantizers leave alone (router, indexer head weights, lm_head, MTP glue).
      var s = Set<String>()
      for (name, _) in plan where name.hasSuffix("mlp.gate.weight") || name.hasSuffix("weights_proj.weight")
        || name == "lm_head.weight" || name.hasSuffix("eh_proj.weight") || name.hasSuffix("shared_head.head.weight") { s.insert(name) }
      return s
    }()
    let block = 128
    var specs: [TensorSpec] = []
    for (name, shape) in plan {
      let isLinear = shape.count == 2 && name.hasSuffix(".weight") && !name.hasSuffix("embed_tokens.weight")
      if int4Group > 0 && isLinear && !keep.contains(name) && shape[1] % int4Group == 0 {
        let m = String(name.dropLast(7))
        specs.append(TensorSpec(name: m + ".weight_packed", dtype: .i32, shape: [shape[0], (shape[1] + 7) / 8]))
        specs.append(TensorSpec(name: m + ".weight_scale", dtype: .bf16, shape: [shape[0], shape[1] / int4Group]))
        specs.append(TensorSpec(name: m + ".weight_shape", dtype: .i64, shape: [2]))
      } else if fp8 && isLinear && !keep.contains(name) {
        specs.append(TensorSpec(name: name, dtype: .f8e4m3, shape: shape))
        specs.append(TensorSpec(name: String(name.dropLast(6)) + "weight_scale_inv", dtype: .f32,
                                shape: [(shape[0] + block - 1) / block, (shape[1] + block - 1) / block]))
      } else {
        specs.append(TensorSpec(name: name, dtype: shape.count == 1 ? .f32 : .bf16, shape: shape))
      }
    }
    let w = try SafeTensorsWriter(path: joinPath(folder, "model.safetensors"), specs: specs)
    var state = seed | 1
    var i = 0
    while i < specs.count {
      let s = specs[i]
      let count = s.shape.reduce(1, *)
      if s.shape.count == 1 {
        let ones = s.name.hasSuffix("e_score_correction_bias") || s.name.hasSuffix(".bias") ? Float(0) : 1
        let v = [Float](repeating: ones, count: count)
        try withBytes(v) { (b) throws(GLM5Error) in try w.write(s.name, b) }
        i += 1
        continue
      }
      if s.dtype == .i32 {  // INT4: random codes, a scale giving the same spread as the float weights
        let rows = s.shape[0], words = s.shape[1]
        let cols = specs[i + 1].shape[1] * int4Group
        var packed = [UInt32](repeating: 0, count: rows * words)
        for j in packed.indices {
          state ^= state << 13; state ^= state >> 7; state ^= state << 17
          packed[j] = UInt32(truncatingIfNeeded: state >> 16)
        }
        let scale = floatToBF16((3 / Float(cols)).squareRoot() / 8)
        let scales = [UInt16](repeating: scale, count: specs[i + 1].shape.reduce(1, *))
        let shape: [Int64] = [Int64(rows), Int64(cols)]
        try withBytes(packed) { (b) throws(GLM5Error) in try w.write(s.name, b) }
        try withBytes(scales) { (b) throws(GLM5Error) in try w.write(specs[i + 1].name, b) }
        try withBytes(shape) { (b) throws(GLM5Error) in try w.write(specs[i + 2].name, b) }
        i += 3
        continue
      }
      let rows = s.shape[0], cols = s.shape[1]
      let a = (3 / Float(cols)).squareRoot()
      var vals = [Float](repeating: 0, count: count)
      for j in 0..<count {
        state ^= state << 13; state ^= state >> 7; state ^= state << 17
        vals[j] = (Float(state >> 40) / Float(1 << 24) * 2 - 1) * a
      }
      if s.dtype == .f8e4m3 {
        let br = (rows + block - 1) / block, bc = (cols + block - 1) / block
        var scales = [Float](repeating: 0, count: br * bc)
        for r in 0..<rows { for c in 0..<cols { let k = (r / block) * bc + c / block; scales[k] = max(scales[k], abs(vals[r * cols + c])) } }
        for k in scales.indices { scales[k] = scales[k] > 0 ? scales[k] / 448 : 1 }
        var q = [UInt8](repeating: 0, count: count)
        for r in 0..<rows { for c in 0..<cols { q[r * cols + c] = floatToF8E4M3(vals[r * cols + c] / scales[(r / block) * bc + c / block]) } }
        try withBytes(q) { (b) throws(GLM5Error) in try w.write(s.name, b) }
        try withBytes(scales) { (b) throws(GLM5Error) in try w.write(specs[i + 1].name, b) }
        i += 2
      } else {
        let h = vals.map(floatToBF16)
        try withBytes(h) { (b) throws(GLM5Error) in try w.write(s.name, b) }
        i += 1
      }
    }
    try w.finish()
    var cfg = configJSON.object ?? [:]
    if fp8 {
      cfg["quantization_config"] = .object([
        "quant_method": .string("fp8"), "fmt": .string("e4m3"), "activation_scheme": .string("dynamic"),
        "weight_block_size": .array([.number(128), .number(128)]),
        "modules_to_not_convert": .array([.string("lm_head"), .string("model.layers.*.mlp.gate$"),
                                          .string("model.layers.*.self_attn.indexer.weights_proj$")]),
      ])
    }
    if int4Group > 0 {
      let ignore = plan.map(\.name).filter { keep.contains($0) }.map { String($0.dropLast(7)) }
      cfg["quantization_config"] = .object([
        "quant_method": .string("compressed-tensors"), "format": .string("pack-quantized"),
        "quantization_status": .string("compressed"),
        "config_groups": .object(["group_0": .object([
          "targets": .array([.string("Linear")]), "input_activations": .null,
          "weights": .object(["num_bits": .number(4), "type": .string("int"), "symmetric": .bool(true),
                              "strategy": .string("group"), "group_size": .number(Double(int4Group))]),
        ])]),
        "ignore": .array(ignore.map { .string($0) }),
      ])
    }
    let fw = try FileWriter(path: joinPath(folder, "config.json"))
    try fw.write(JSON.object(cfg).serialized + "\n")
    try fw.close()
  }
}
