// THE table of checkpoint names. Every tensor name of a Hugging Face GLM-5 checkpoint appears in
// this file and nowhere else; binding a folder checks each tensor's presence, shape and dtype,
// and that no tensor is left over (mlx-swift-lm `verify: [.all]`, DeepSeek convert.py `mapping`).
//
// Shape legend: V vocab, H hidden, Rq q_lora_rank, Rkv kv_lora_rank, Nh heads, Dn qk_nope,
// Dr qk_rope, Dv v_head, Hi indexer heads, Di indexer head dim, I dense width, Im expert width,
// E routed experts. Linear weights are [out, in]; y = x · Wᵀ.

import GLM5Core

/// A Linear layer's weight, logically [out, in], in the format the checkpoint stores it.
public struct Linear: Sendable {
  public enum Format: Sendable {
    /// `weight` is F32, BF16 or F16 [out, in].
    case float
    /// `weight` is F8_E4M3 [out, in]; `scaleInv` F32 [ceil(out/blockRows), ceil(in/blockCols)].
    case fp8Block(scaleInv: TensorView, blockRows: Int, blockCols: Int)
    /// `weight` is the I32 `weight_packed` [out, ceil(in/8)]; `scale` [out, in/groupSize] float;
    /// `zeroPoint` I32 [ceil(out/8), in/groupSize] packed along the output dim, nil if symmetric.
    case int4Group(scale: TensorView, zeroPoint: TensorView?, groupSize: Int)
  }

  public let weight: TensorView
  public let format: Format
  public let outFeatures: Int
  public let inFeatures: Int

  public init(weight: TensorView, format: Format = .float, out: Int? = nil, in inF: Int? = nil) {
    self.weight = weight
    self.format = format
    outFeatures = out ?? weight.shape[0]
    inFeatures = inF ?? weight.shape[1]
  }
}

public struct IndexerWeights: Sendable {
  public let wqB: Linear          // [Hi*Di, Rq]
  public let wk: Linear           // [Di, H]
  public let kNormWeight: TensorView  // [Di]  LayerNorm
  public let kNormBias: TensorView    // [Di]
  public let weightsProj: Linear  // [Hi, H]
}

public struct AttentionWeights: Sendable {
  public let qA: Linear           // [Rq, H]
  public let qANorm: TensorView   // [Rq]
  public let qB: Linear           // [Nh*(Dn+Dr), Rq]
  public let kvA: Linear          // [Rkv+Dr, H]
  public let kvANorm: TensorView  // [Rkv]
  public let kvB: Linear          // [Nh*(Dn+Dv), Rkv]
  public let o: Linear            // [H, Nh*Dv]
  /// nil on GLM-5.2 "shared" indexer layers.
  public let indexer: IndexerWeights?
}

public struct SwiGLUWeights: Sendable {
  public let gate: Linear         // [W, H]
  public let up: Linear           // [W, H]
  public let down: Linear         // [H, W]
}

public struct MoEWeights: Sendable {
  public let router: Linear       // [E, H]
  public let correctionBias: TensorView  // [E]
  public let experts: [SwiGLUWeights]    // E of them, width Im
  public let shared: SwiGLUWeights?      // width Im * n_shared_experts
}

public enum MLPWeights: Sendable {
  case dense(SwiGLUWeights)
  case moe(MoEWeights)
}

public struct LayerWeights: Sendable {
  public let inputNorm: TensorView          // [H]
  public let postAttentionNorm: TensorView  // [H]
  public let attention: AttentionWeights
  public let mlp: MLPWeights
}

/// The multi-token-prediction layer (stored as layer num_hidden_layers + m).
public struct MTPWeights: Sendable {
  public let layerIndex: Int
  public let enorm: TensorView          // [H]
  public let hnorm: TensorView          // [H]
  public let ehProj: Linear             // [H, 2H]: input is [enorm(embedding), hnorm(hidden)]
  public let sharedHeadNorm: TensorView // [H]
  public let block: LayerWeights
  /// Some recipes copy the main embedding / head into the MTP layer; nil means "use the main ones".
  public let embedTokens: TensorView?   // [V, H]
  public let sharedHead: Linear?        // [V, H]
}

public struct ModelWeights: Sendable {
  public let embedTokens: TensorView  // [V, H]
  public let layers: [LayerWeights]
  public let norm: TensorView         // [H]
  public let lmHead: Linear           // [V, H]
  public let mtp: [MTPWeights]
}

// MARK: - Binding a TensorStore to the table

struct WeightBinder {
  let store: TensorStore
  let config: ModelConfig
  /// The declared quantized format, if any.
  let quant: QuantScheme?
  private(set) var used: Set<String> = []
  /// Every Linear module bound, in table order, and whether the quantizer may convert it.
  private(set) var linearModules: [(name: String, quantizable: Bool, linear: Linear)] = []

  init(store: TensorStore, config: ModelConfig, quant: QuantScheme? = nil) {
    self.store = store
    self.config = config
    self.quant = quant
  }

  func has(_ name: String) -> Bool { store.byName[name] != nil }

  /// A float tensor (F32/BF16/F16) with exactly this shape.
  mutating func tensor(_ name: String, _ shape: [Int]) throws(GLM5Error) -> TensorView {
    guard let t = store.lookup(name, shape: shape) else {
      throw .badFormat("missing tensor \(name) (expected shape \(shapeString(shape)))")
    }
    guard t.shape == shape else {
      throw .badFormat("tensor \(name) in \(t.file) has shape \(shapeString(t.shape)), expected \(shapeString(shape))")
    }
    guard t.dtype.isFloatWeight else {
      throw .unsupported("tensor \(name) in \(t.file) has dtype \(t.dtype.name); unquantized weights must be F32, BF16 or F16")
    }
    used.insert(name)
    return t
  }

  /// Any tensor with exactly this shape and one of these dtypes.
  mutating func raw(_ name: String, _ shape: [Int], dtypes: [DType]) throws(GLM5Error) -> TensorView {
    guard let t = store.lookup(name, shape: shape) else {
      throw .badFormat("missing tensor \(name) (expected shape \(shapeString(shape)))")
    }
    guard t.shape == shape else {
      throw .badFormat("tensor \(name) in \(t.file) has shape \(shapeString(t.shape)), expected \(shapeString(shape))")
    }
    guard dtypes.contains(t.dtype) else {
      throw .badFormat("tensor \(name) in \(t.file) has dtype \(t.dtype.name), expected \(dtypes.map { "\($0.name)" }.joined(separator: " or "))")
    }
    used.insert(name)
    return t
  }

  /// A Linear module `name` with logical shape [out, in], in whichever format its tensors are.
  /// `quantizable` says whether our quantizer may turn it into INT4 (the router, the indexer's
  /// head weights, lm_head and the MTP glue stay in float, as in published quantized GLM-5s).
  mutating func linear(_ name: String, out: Int, in inF: Int, quantizable: Bool = true) throws(GLM5Error) -> Linear {
    let l: Linear
    if has(name + ".weight_packed") {
      l = try int4Linear(name, out: out, in: inF)
    } else if has(name + ".weight_scale_inv") {
      l = try fp8Linear(name, out: out, in: inF)
    } else if let w = store.byName[name + ".weight"], w.dtype == .f8e4m3 || w.dtype == .f8e5m2 {
      throw .badFormat("tensor \(name).weight is \(w.dtype.name) but \(name).weight_scale_inv is missing")
    } else {
      l = Linear(weight: try tensor(name + ".weight", [out, inF]))
    }
    linearModules.append((name, quantizable, l))
    return l
  }

  mutating func fp8Linear(_ name: String, out: Int, in inF: Int) throws(GLM5Error) -> Linear {
    guard case .fp8Block(let br, let bc, _)? = quant else {
      throw .badFormat("tensor \(name).weight_scale_inv is present but quantization_config does not declare FP8 (quant_method \"fp8\")")
    }
    let w = try raw(name + ".weight", [out, inF], dtypes: [.f8e4m3])
    let s = try raw(name + ".weight_scale_inv", [(out + br - 1) / br, (inF + bc - 1) / bc], dtypes: [.f32])
    try checkFinite(s)
    return Linear(weight: w, format: .fp8Block(scaleInv: s, blockRows: br, blockCols: bc), out: out, in: inF)
  }

  mutating func int4Linear(_ name: String, out: Int, in inF: Int) throws(GLM5Error) -> Linear {
    guard case .int4Group(let gs, let symmetric, _)? = quant else {
      throw .badFormat("tensor \(name).weight_packed is present but quantization_config does not declare compressed-tensors pack-quantized")
    }
    let g = gs ?? inF
    guard inF % g == 0 else {
      throw .badFormat("\(name): group size \(g) does not divide the input dimension \(inF)")
    }
    let packed = try raw(name + ".weight_packed", [out, (inF + 7) / 8], dtypes: [.i32])
    let shapeT = try raw(name + ".weight_shape", [2], dtypes: [.i32, .i64])
    let declared = (0..<2).map { i -> Int in
      guard let d = shapeT.data else { return -1 }
      return shapeT.dtype == .i64 ? Int(d.loadUnaligned(fromByteOffset: 8 * i, as: Int64.self)) : Int(d.loadUnaligned(fromByteOffset: 4 * i, as: Int32.self))
    }
    guard declared == [out, inF] else {
      throw .badFormat("\(name).weight_shape says \(shapeString(declared)), the configuration implies \(shapeString([out, inF]))")
    }
    let scale = try raw(name + ".weight_scale", [out, inF / g], dtypes: [.bf16, .f16, .f32])
    try checkFinite(scale)
    var zp: TensorView? = nil
    if !symmetric {
      zp = try raw(name + ".weight_zero_point", [(out + 7) / 8, inF / g], dtypes: [.i32])
    } else if has(name + ".weight_zero_point") {
      throw .badFormat("\(name).weight_zero_point is present but the scheme is symmetric")
    }
    return Linear(weight: packed, format: .int4Group(scale: scale, zeroPoint: zp, groupSize: g), out: out, in: inF)
  }

  /// Scales must be finite: a NaN or infinite scale would poison every output it touches.
  func checkFinite(_ t: TensorView) throws(GLM5Error) {
    guard let d = t.data else { return }
    MappedFile.willNeed(d, count: t.count * t.dtype.byteSize)  // read in large I/Os (the mapping is under random advice)
    for i in 0..<t.count {
      let v: Float
      switch t.dtype {
      case .f32: v = d.loadUnaligned(fromByteOffset: 4 * i, as: Float.self)
      case .bf16: v = bf16ToFloat(d.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self))
      case .f16: v = f16ToFloat(d.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self))
      default: continue
      }
      guard v.isFinite else {
        throw .badFormat("tensor \(t.name) holds a non-finite scale (\(v)) at element \(i)")
      }
    }
  }

  mutating func swiglu(_ p: String, width: Int) throws(GLM5Error) -> SwiGLUWeights {
    let h = config.hiddenSize
    return SwiGLUWeights(gate: try linear(p + ".gate_proj", out: width, in: h),
                         up: try linear(p + ".up_proj", out: width, in: h),
                         down: try linear(p + ".down_proj", out: h, in: width))
  }

  mutating func layer(_ l: Int, mlp kind: ModelConfig.MLPKind, indexer: ModelConfig.IndexerKind) throws(GLM5Error) -> LayerWeights {
    let c = config
    let h = c.hiddenSize
    let p = "model.layers.\(l)"
    let a = "\(p).self_attn"
    var idx: IndexerWeights? = nil
    if indexer == .full {
      idx = IndexerWeights(
        wqB: try linear("\(a).indexer.wq_b", out: c.indexNHeads * c.indexHeadDim, in: c.qLoraRank),
        wk: try linear("\(a).indexer.wk", out: c.indexHeadDim, in: h),
        kNormWeight: try tensor("\(a).indexer.k_norm.weight", [c.indexHeadDim]),
        kNormBias: try tensor("\(a).indexer.k_norm.bias", [c.indexHeadDim]),
        weightsProj: try linear("\(a).indexer.weights_proj", out: c.indexNHeads, in: h, quantizable: false))
    }
    let attn = AttentionWeights(
      qA: try linear("\(a).q_a_proj", out: c.qLoraRank, in: h),
      qANorm: try tensor("\(a).q_a_layernorm.weight", [c.qLoraRank]),
      qB: try linear("\(a).q_b_proj", out: c.numAttentionHeads * c.qkHeadDim, in: c.qLoraRank),
      kvA: try linear("\(a).kv_a_proj_with_mqa", out: c.kvLoraRank + c.qkRopeHeadDim, in: h),
      kvANorm: try tensor("\(a).kv_a_layernorm.weight", [c.kvLoraRank]),
      kvB: try linear("\(a).kv_b_proj", out: c.numAttentionHeads * (c.qkNopeHeadDim + c.vHeadDim), in: c.kvLoraRank),
      o: try linear("\(a).o_proj", out: h, in: c.numAttentionHeads * c.vHeadDim),
      indexer: idx)
    let mlp: MLPWeights
    switch kind {
    case .dense:
      mlp = .dense(try swiglu("\(p).mlp", width: c.intermediateSize))
    case .sparse:
      var experts: [SwiGLUWeights] = []
      experts.reserveCapacity(c.nRoutedExperts)
      for e in 0..<c.nRoutedExperts {
        experts.append(try swiglu("\(p).mlp.experts.\(e)", width: c.moeIntermediateSize))
      }
      mlp = .moe(MoEWeights(
        router: try linear("\(p).mlp.gate", out: c.nRoutedExperts, in: h, quantizable: false),
        correctionBias: try tensor("\(p).mlp.gate.e_score_correction_bias", [c.nRoutedExperts]),
        experts: experts,
        shared: c.nSharedExperts > 0 ? try swiglu("\(p).mlp.shared_experts", width: c.moeIntermediateSize * c.nSharedExperts) : nil))
    }
    return LayerWeights(inputNorm: try tensor("\(p).input_layernorm.weight", [h]),
                        postAttentionNorm: try tensor("\(p).post_attention_layernorm.weight", [h]),
                        attention: attn, mlp: mlp)
  }

  mutating func mtp(_ l: Int) throws(GLM5Error) -> MTPWeights {
    let c = config
    let h = c.hiddenSize
    let p = "model.layers.\(l)"
    return MTPWeights(
      layerIndex: l,
      enorm: try tensor("\(p).enorm.weight", [h]),
      hnorm: try tensor("\(p).hnorm.weight", [h]),
      ehProj: try linear("\(p).eh_proj", out: h, in: 2 * h, quantizable: false),
      sharedHeadNorm: try tensor("\(p).shared_head.norm.weight", [h]),
      block: try layer(l, mlp: .sparse, indexer: .full),
      embedTokens: has("\(p).embed_tokens.weight") ? try tensor("\(p).embed_tokens.weight", [c.vocabSize, h]) : nil,
      sharedHead: has("\(p).shared_head.head.weight") ? try linear("\(p).shared_head.head", out: c.vocabSize, in: h, quantizable: false) : nil)
  }

  /// Bind everything; fails on a missing, mis-shaped or left-over tensor.
  mutating func model() throws(GLM5Error) -> ModelWeights {
    let c = config
    let h = c.hiddenSize
    var layers: [LayerWeights] = []
    for l in 0..<c.numHiddenLayers {
      layers.append(try layer(l, mlp: c.mlpLayerTypes[l], indexer: c.indexerTypes[l]))
    }
    // MTP layers follow the main stack. A checkpoint saved by transformers drops them, so their
    // absence is fine; a partial one is not.
    var mtp: [MTPWeights] = []
    var m = 0
    while has("model.layers.\(c.numHiddenLayers + m).eh_proj.weight") || m < c.numNextnPredictLayers {
      let l = c.numHiddenLayers + m
      let any = store.byName.keys.contains { $0.hasPrefix("model.layers.\(l).") }
      if !any { break }
      mtp.append(try self.mtp(l))
      m += 1
    }
    let weights = ModelWeights(
      embedTokens: try tensor("model.embed_tokens.weight", [c.vocabSize, h]),
      layers: layers,
      norm: try tensor("model.norm.weight", [h]),
      lmHead: try linear("lm_head", out: c.vocabSize, in: h, quantizable: false),
      mtp: mtp)
    let leftover = store.byName.keys.filter { !used.contains($0) }.sorted()
    if !leftover.isEmpty {
      let shown = leftover.prefix(5).joined(separator: ", ")
      throw .badFormat("unexpected tensor\(leftover.count > 1 ? "s" : "") not used by the \(c.modelType) configuration: \(shown)\(leftover.count > 5 ? " and \(leftover.count - 5) more" : "")")
    }
    return weights
  }
}
