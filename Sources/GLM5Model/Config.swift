// The model configuration: config.json read into a typed struct that mirrors transformers'
// `GlmMoeDsaConfig` and `DeepseekV32Config` (keys and defaults from
// ../shared/docs/glm5-architecture.md §1; what differs between the two: ConfigFamily.swift).
// Defaults are the transformers 5.24 ones and appear only here and in ConfigFamily.swift.
// Behaviour is never keyed on a dimension value.

import GLM5Core

public struct ModelConfig: Sendable {
  public enum MLPKind: String, Sendable { case dense, sparse }
  public enum IndexerKind: String, Sendable { case full, shared }

  public struct RoPE: Sendable, Equatable {
    public var theta: Double = 10000
    /// "default" or "yarn".
    public var type: String = "default"
    // YaRN (only when type == "yarn")
    public var factor: Double = 1
    public var originalMaxPositionEmbeddings: Int = 4096
    public var betaFast: Double = 32
    public var betaSlow: Double = 1
    /// YaRN: 0 when the key is absent (transformers treats absent and 0 alike).
    public var mscale: Double = 1
    public var mscaleAllDim: Double = 0
    /// Scale of cos/sin; nil = derived from factor/mscale as transformers does.
    public var attentionFactor: Double? = nil
    public var truncate: Bool = true
  }

  /// `quantization_config`, recognised; the formats are computed from in later issues.
  public struct Quantization: Sendable, Equatable {
    public var method: String
    public var format: String?
    public var raw: JSON
  }

  // Identity
  public var modelType: String
  /// Which configuration class model_type names (ConfigFamily.swift).
  public var family: Family
  /// Whether the indexer rotates interleaved pairs (GLM) or two halves (DeepSeek-V3.2).
  public var indexerRopeInterleaved: Bool { family.indexerRopeInterleaved }

  // Sizes
  public var vocabSize: Int
  public var hiddenSize: Int
  public var numHiddenLayers: Int
  public var maxPositionEmbeddings: Int = 202752
  public var rmsNormEps: Double = 1e-5
  public var tieWordEmbeddings: Bool = false

  // MLA
  public var numAttentionHeads: Int
  public var qLoraRank: Int = 2048
  public var kvLoraRank: Int
  public var qkNopeHeadDim: Int
  public var qkRopeHeadDim: Int
  public var vHeadDim: Int
  public var attentionBias: Bool = false
  public var rope = RoPE()

  // DSA lightning indexer
  public var indexTopK: Int = 2048
  public var indexHeadDim: Int = 128
  public var indexNHeads: Int = 32
  /// Per layer: "full" layers run their own indexer; "shared" (GLM-5.2) reuse the last full one's.
  public var indexerTypes: [IndexerKind] = []

  // MLP / MoE
  public var intermediateSize: Int = 12288
  public var moeIntermediateSize: Int = 2048
  public var firstKDenseReplace: Int = 3
  /// Per layer: dense SwiGLU MLP or routed MoE.
  public var mlpLayerTypes: [MLPKind] = []
  public var nRoutedExperts: Int
  public var numExpertsPerTok: Int = 8
  public var nSharedExperts: Int = 1
  public var nGroup: Int = 1
  public var topkGroup: Int = 1
  public var routedScalingFactor: Double = 2.5
  public var normTopkProb: Bool = true
  public var hiddenAct: String = "silu"

  // MTP
  public var numNextnPredictLayers: Int = 0

  // Tokens
  public var eosTokenIds: [Int] = []
  public var bosTokenId: Int? = nil
  public var padTokenId: Int? = nil

  public var quantization: Quantization? = nil

  // MARK: - Derived

  public var qkHeadDim: Int { qkNopeHeadDim + qkRopeHeadDim }
  /// Softmax scale of the main attention: qk_head_dim^-0.5, times mscale² under YaRN.
  public var softmaxScale: Double {
    var s = 1.0 / Double(qkHeadDim).squareRoot()
    if rope.type == "yarn", rope.mscaleAllDim != 0, rope.factor > 1 {
      let m = 0.1 * rope.mscaleAllDim * GLM5Kernels._log(rope.factor) + 1
      s *= m * m
    }
    return s
  }
  public var numMoELayers: Int { mlpLayerTypes.filter { $0 == .sparse }.count }
  public var numDenseLayers: Int { numHiddenLayers - numMoELayers }

  // MARK: - Reading config.json

  public static let supportedModelTypes = Family.allCases.map(\.rawValue)

  public init(json: JSON, source: String = "config.json") throws(GLM5Error) {
    var r = Reader(json: json, source: source)
    guard json.object != nil else { throw .badFormat("\(source): top level is \(json.kind), expected an object") }
    modelType = try r.string("model_type")
    guard let f = Family(rawValue: modelType) else {
      throw .unsupported("\(source): model_type \"\(modelType)\" is not supported (supported: \(ModelConfig.supportedModelTypes.joined(separator: ", ")))")
    }
    family = f
    let fd = FamilyDefaults.of(f)
    vocabSize = try r.int("vocab_size")
    hiddenSize = try r.int("hidden_size")
    numHiddenLayers = try r.int("num_hidden_layers")
    // The per-layer schedules below are sized by it, before validate() bounds every size: a
    // hostile count must not allocate first (validate's limit, checked early).
    guard numHiddenLayers <= 1 << 24 else {
      throw .badFormat("\(source): num_hidden_layers is \(numHiddenLayers), larger than this library accepts (\(1 << 24))")
    }
    maxPositionEmbeddings = try r.int("max_position_embeddings", default: fd.maxPositionEmbeddings)
    rmsNormEps = try r.double("rms_norm_eps", default: fd.rmsNormEps)
    tieWordEmbeddings = try r.bool("tie_word_embeddings", default: tieWordEmbeddings)

    numAttentionHeads = try r.int("num_attention_heads")
    guard let q = try r.optionalInt("q_lora_rank", default: fd.qLoraRank) else {
      throw .unsupported("\(source): q_lora_rank is null (full-rank queries); GLM-5 checkpoints use a low-rank query")
    }
    qLoraRank = q
    kvLoraRank = try r.int("kv_lora_rank")
    qkNopeHeadDim = try r.int("qk_nope_head_dim")
    qkRopeHeadDim = try r.int("qk_rope_head_dim")
    vHeadDim = try r.int("v_head_dim")
    attentionBias = try r.bool("attention_bias", default: attentionBias)
    rope = try r.rope(maxPositionEmbeddings: maxPositionEmbeddings)

    indexTopK = try r.int("index_topk", default: indexTopK)
    indexHeadDim = try r.int("index_head_dim", default: indexHeadDim)
    indexNHeads = try r.int("index_n_heads", default: fd.indexNHeads)

    intermediateSize = try r.int("intermediate_size", default: fd.intermediateSize)
    moeIntermediateSize = try r.int("moe_intermediate_size", default: moeIntermediateSize)
    firstKDenseReplace = try r.int("first_k_dense_replace", default: firstKDenseReplace)
    nRoutedExperts = try r.int("n_routed_experts")
    numExpertsPerTok = try r.int("num_experts_per_tok", default: numExpertsPerTok)
    nSharedExperts = try r.int("n_shared_experts", default: nSharedExperts)
    nGroup = try r.int("n_group", default: fd.nGroup)
    topkGroup = try r.int("topk_group", default: fd.topkGroup)
    routedScalingFactor = try r.double("routed_scaling_factor", default: routedScalingFactor)
    normTopkProb = try r.bool("norm_topk_prob", default: normTopkProb)
    hiddenAct = try r.string("hidden_act", default: hiddenAct)
    numNextnPredictLayers = try r.int("num_nextn_predict_layers", default: numNextnPredictLayers)

    eosTokenIds = try r.intOrList("eos_token_id")
    bosTokenId = try r.optionalInt("bos_token_id", default: nil)
    padTokenId = try r.optionalInt("pad_token_id", default: nil)

    // Layer schedules: explicit lists win; otherwise derived as transformers derives them.
    if let list = try r.stringList("mlp_layer_types") {
      mlpLayerTypes = try list.map { (s) throws(GLM5Error) -> MLPKind in
        guard let k = MLPKind(rawValue: s) else { throw .badFormat("\(source): mlp_layer_types has \"\(s)\", expected \"dense\" or \"sparse\"") }
        return k
      }
    } else {
      mlpLayerTypes = (0..<max(0, numHiddenLayers)).map { $0 < firstKDenseReplace ? .dense : .sparse }
    }
    if let list = try r.stringList("indexer_types") {
      indexerTypes = try list.map { (s) throws(GLM5Error) -> IndexerKind in
        guard let k = IndexerKind(rawValue: s) else { throw .badFormat("\(source): indexer_types has \"\(s)\", expected \"full\" or \"shared\"") }
        return k
      }
    } else if f.hasSharedIndexers {
      indexerTypes = try ModelConfig.derivedIndexerTypes(json, layers: numHiddenLayers, source: source)
    } else {
      indexerTypes = Array(repeating: .full, count: max(0, numHiddenLayers))
    }

    if let qc = json["quantization_config"], !qc.isNull {
      guard let method = qc["quant_method"]?.string else {
        throw .badFormat("\(source): quantization_config has no string \"quant_method\"")
      }
      quantization = Quantization(method: method, format: qc["format"]?.string, raw: qc)
    }
    try validate(source: source)
    try ModelConfig.checkFamilyKeys(json, family: f, numAttentionHeads: numAttentionHeads, qkHeadDim: qkHeadDim, source: source)
  }

  /// Cross-key consistency; every message names the keys involved.
  func validate(source: String) throws(GLM5Error) {
    func bad(_ m: String) -> GLM5Error { .badFormat("\(source): \(m)") }
    let positives: [(String, Int)] = [
      ("vocab_size", vocabSize), ("hidden_size", hiddenSize), ("num_hidden_layers", numHiddenLayers),
      ("num_attention_heads", numAttentionHeads), ("q_lora_rank", qLoraRank), ("kv_lora_rank", kvLoraRank),
      ("qk_nope_head_dim", qkNopeHeadDim), ("qk_rope_head_dim", qkRopeHeadDim), ("v_head_dim", vHeadDim),
      ("index_topk", indexTopK), ("index_head_dim", indexHeadDim), ("index_n_heads", indexNHeads),
      ("intermediate_size", intermediateSize), ("moe_intermediate_size", moeIntermediateSize),
      ("n_routed_experts", nRoutedExperts), ("num_experts_per_tok", numExpertsPerTok),
      ("n_group", nGroup), ("topk_group", topkGroup), ("max_position_embeddings", maxPositionEmbeddings),
    ]
    for (k, v) in positives where v <= 0 { throw bad("\(k) is \(v), must be positive") }
    // Sizes that would overflow products later are refused here.
    for (k, v) in positives where v > 1 << 24 { throw bad("\(k) is \(v), larger than this library accepts (\(1 << 24))") }
    // Per-token widths must stay small enough that tokens × width never overflows (tokens are
    // bounded by max_position_embeddings ≤ 2^24); real GLM-5 widths are below 2^15.
    let widths: [(String, Int)] = [
      ("num_attention_heads * (qk_nope_head_dim + qk_rope_head_dim)", numAttentionHeads * qkHeadDim),
      ("num_attention_heads * (qk_nope_head_dim + v_head_dim)", numAttentionHeads * (qkNopeHeadDim + vHeadDim)),
      ("num_attention_heads * kv_lora_rank", numAttentionHeads * kvLoraRank),
      ("index_n_heads * index_head_dim", indexNHeads * indexHeadDim),
      ("moe_intermediate_size * n_shared_experts", moeIntermediateSize * nSharedExperts),
      ("num_experts_per_tok * hidden_size", numExpertsPerTok * hiddenSize),
      ("kv_lora_rank + qk_rope_head_dim", kvLoraRank + qkRopeHeadDim),
    ]
    for (k, v) in widths where v > 1 << 30 { throw bad("\(k) is \(v), larger than this library accepts (\(1 << 30))") }
    if firstKDenseReplace < 0 || firstKDenseReplace > numHiddenLayers {
      throw bad("first_k_dense_replace is \(firstKDenseReplace), must be in [0, num_hidden_layers = \(numHiddenLayers)]")
    }
    if nSharedExperts < 0 || nSharedExperts > 1 << 16 { throw bad("n_shared_experts is \(nSharedExperts), must be in [0, 65536]") }
    if numNextnPredictLayers < 0 || numNextnPredictLayers > 1 << 16 {
      throw bad("num_nextn_predict_layers is \(numNextnPredictLayers), must be in [0, 65536]")
    }
    if qkRopeHeadDim % 2 != 0 { throw bad("qk_rope_head_dim is \(qkRopeHeadDim), must be even (RoPE rotates pairs)") }
    if indexHeadDim < qkRopeHeadDim {
      throw bad("index_head_dim (\(indexHeadDim)) is smaller than qk_rope_head_dim (\(qkRopeHeadDim)), the indexer's rotated slice")
    }
    if numExpertsPerTok > nRoutedExperts {
      throw bad("num_experts_per_tok (\(numExpertsPerTok)) exceeds n_routed_experts (\(nRoutedExperts))")
    }
    if nRoutedExperts % nGroup != 0 {
      throw bad("n_routed_experts (\(nRoutedExperts)) is not divisible by n_group (\(nGroup))")
    }
    if topkGroup > nGroup { throw bad("topk_group (\(topkGroup)) exceeds n_group (\(nGroup))") }
    if numExpertsPerTok > topkGroup * (nRoutedExperts / nGroup) {
      throw bad("num_experts_per_tok (\(numExpertsPerTok)) exceeds the experts in topk_group (\(topkGroup)) groups of \(nRoutedExperts / nGroup)")
    }
    if nGroup > 1 && nRoutedExperts / nGroup < 2 {
      throw bad("group-limited routing scores a group by its top-2 experts, but n_routed_experts / n_group = \(nRoutedExperts / nGroup)")
    }
    if mlpLayerTypes.count != numHiddenLayers {
      throw bad("mlp_layer_types has \(mlpLayerTypes.count) entries, num_hidden_layers is \(numHiddenLayers)")
    }
    if indexerTypes.count != numHiddenLayers {
      throw bad("indexer_types has \(indexerTypes.count) entries, num_hidden_layers is \(numHiddenLayers)")
    }
    if indexerTypes.first == .shared { throw bad("indexer_types[0] is \"shared\", but there is no earlier full indexer to share") }
    if hiddenAct != "silu" { throw GLM5Error.unsupported("\(source): hidden_act \"\(hiddenAct)\" is not supported (only silu)") }
    if attentionBias { throw GLM5Error.unsupported("\(source): attention_bias = true is not supported (GLM-5 and DeepSeek-V3.2 have no attention biases)") }
    if tieWordEmbeddings { throw GLM5Error.unsupported("\(source): tie_word_embeddings = true is not supported (GLM-5 and DeepSeek-V3.2 have a separate lm_head)") }
    if !(rmsNormEps > 0 && rmsNormEps < 1) { throw bad("rms_norm_eps is \(rmsNormEps), must be in (0, 1)") }
    if !(rope.theta > 0) { throw bad("rope_theta is \(rope.theta), must be positive") }
    if rope.type != "default" && rope.type != "yarn" {
      throw GLM5Error.unsupported("\(source): rope type \"\(rope.type)\" is not supported (default, yarn)")
    }
    if rope.type == "yarn" {
      if !(rope.factor >= 1) { throw bad("rope_parameters factor is \(rope.factor), YaRN needs a factor ≥ 1") }
      if rope.originalMaxPositionEmbeddings <= 0 {
        throw bad("rope_parameters original_max_position_embeddings is \(rope.originalMaxPositionEmbeddings), must be positive")
      }
    }
  }
}

/// Typed access to config.json keys with messages that name the key.
private struct Reader {
  let json: JSON
  let source: String

  func missing(_ key: String) -> GLM5Error { .badFormat("\(source): missing required key \"\(key)\"") }
  func wrongType(_ key: String, _ v: JSON, _ want: String) -> GLM5Error {
    .badFormat("\(source): \"\(key)\" is \(v.kind) (\(v.serialized.prefix(40))), expected \(want)")
  }

  func int(_ key: String) throws(GLM5Error) -> Int {
    guard let v = json[key], !v.isNull else { throw missing(key) }
    guard let i = v.int else { throw wrongType(key, v, "an integer") }
    return i
  }
  func int(_ key: String, default d: Int) throws(GLM5Error) -> Int {
    guard let v = json[key], !v.isNull else { return d }
    guard let i = v.int else { throw wrongType(key, v, "an integer") }
    return i
  }
  func optionalInt(_ key: String, default d: Int?) throws(GLM5Error) -> Int? {
    guard let v = json[key] else { return d }
    if v.isNull { return nil }
    guard let i = v.int else { throw wrongType(key, v, "an integer or null") }
    return i
  }
  func double(_ key: String, default d: Double) throws(GLM5Error) -> Double {
    guard let v = json[key], !v.isNull else { return d }
    guard let x = v.double else { throw wrongType(key, v, "a number") }
    return x
  }
  func bool(_ key: String, default d: Bool) throws(GLM5Error) -> Bool {
    guard let v = json[key], !v.isNull else { return d }
    guard let b = v.bool else { throw wrongType(key, v, "a boolean") }
    return b
  }
  func string(_ key: String) throws(GLM5Error) -> String {
    guard let v = json[key], !v.isNull else { throw missing(key) }
    guard let s = v.string else { throw wrongType(key, v, "a string") }
    return s
  }
  func string(_ key: String, default d: String) throws(GLM5Error) -> String {
    guard let v = json[key], !v.isNull else { return d }
    guard let s = v.string else { throw wrongType(key, v, "a string") }
    return s
  }
  func stringList(_ key: String) throws(GLM5Error) -> [String]? {
    guard let v = json[key], !v.isNull else { return nil }
    guard let a = v.array else { throw wrongType(key, v, "a list of strings") }
    return try a.map { (e) throws(GLM5Error) -> String in
      guard let s = e.string else { throw wrongType(key, v, "a list of strings") }
      return s
    }
  }
  func intOrList(_ key: String) throws(GLM5Error) -> [Int] {
    guard let v = json[key], !v.isNull else { return [] }
    if let i = v.int { return [i] }
    guard let a = v.array else { throw wrongType(key, v, "an integer or a list of integers") }
    return try a.map { (e) throws(GLM5Error) -> Int in
      guard let i = e.int else { throw wrongType(key, v, "an integer or a list of integers") }
      return i
    }
  }

  /// `rope_parameters` (transformers 5) or the older `rope_theta` + `rope_scaling`. YaRN keys as
  /// transformers reads them: `factor` required (the softmax mscale reads it),
  /// original_max_position_embeddings defaulting to max_position_embeddings, an absent mscale or
  /// mscale_all_dim as 0, and beta_fast / beta_slow of 0 as their defaults (`or 32`, `or 1`).
  func rope(maxPositionEmbeddings: Int) throws(GLM5Error) -> ModelConfig.RoPE {
    var r = ModelConfig.RoPE()
    let params: JSON? = {
      if let p = json["rope_parameters"], !p.isNull { return p }
      if let p = json["rope_scaling"], !p.isNull { return p }
      return nil
    }()
    if let top = json["rope_theta"], !top.isNull {
      guard let t = top.double else { throw wrongType("rope_theta", top, "a number") }
      r.theta = t
    }
    guard let p = params else { return r }
    guard p.object != nil else { throw wrongType("rope_parameters", p, "an object") }
    let sub = Reader(json: p, source: source + " rope_parameters")
    r.theta = try sub.double("rope_theta", default: r.theta)
    r.type = try sub.string("rope_type", default: try sub.string("type", default: "default"))
    let yarn = r.type == "yarn"
    if yarn, p["factor"]?.isNull ?? true {
      throw .badFormat("\(source): rope type yarn needs rope_parameters \"factor\" (transformers reads it for the softmax scale)")
    }
    r.factor = try sub.double("factor", default: r.factor)
    r.originalMaxPositionEmbeddings = try sub.int("original_max_position_embeddings",
                                                  default: yarn ? maxPositionEmbeddings : r.originalMaxPositionEmbeddings)
    r.betaFast = try sub.double("beta_fast", default: r.betaFast)
    r.betaSlow = try sub.double("beta_slow", default: r.betaSlow)
    if r.betaFast == 0 { r.betaFast = 32 }
    if r.betaSlow == 0 { r.betaSlow = 1 }
    r.mscale = try sub.double("mscale", default: yarn ? 0 : r.mscale)
    r.mscaleAllDim = try sub.double("mscale_all_dim", default: r.mscaleAllDim)
    if let af = p["attention_factor"], !af.isNull { r.attentionFactor = try sub.double("attention_factor", default: 1) }
    r.truncate = try sub.bool("truncate", default: true)
    return r
  }
}

import GLM5Kernels
