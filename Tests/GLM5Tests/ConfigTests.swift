// config.json → ModelConfig: transformers defaults, alternative spellings, and every
// inconsistency rejected with the keys named.

import Foundation
import GLM5Core
@testable import GLM5Model
import Testing

@Suite struct ConfigTests {
  /// Only the keys ModelConfig requires; large enough that the transformers defaults of the
  /// other keys are consistent with it (num_experts_per_tok 8, first_k_dense_replace 3).
  static let minimal: [String: JSON] = [
    "model_type": .string("glm_moe_dsa"),
    "vocab_size": .number(32),
    "hidden_size": .number(16),
    "num_hidden_layers": .number(5),
    "num_attention_heads": .number(2),
    "kv_lora_rank": .number(8),
    "qk_nope_head_dim": .number(4),
    "qk_rope_head_dim": .number(2),
    "v_head_dim": .number(4),
    "n_routed_experts": .number(8),
  ]

  @Test func minimalConfigGetsTransformersDefaults() throws {
    let c = try parseConfig(Self.minimal)
    #expect(c.modelType == "glm_moe_dsa")
    #expect(c.rmsNormEps == 1e-5)
    #expect(c.maxPositionEmbeddings == 202752)
    #expect(c.tieWordEmbeddings == false)
    #expect(c.qLoraRank == 2048)
    #expect(c.attentionBias == false)
    #expect(c.rope == ModelConfig.RoPE())
    #expect(c.rope.theta == 10000 && c.rope.type == "default")
    #expect(c.indexTopK == 2048)
    #expect(c.indexHeadDim == 128)
    #expect(c.indexNHeads == 32)
    #expect(c.intermediateSize == 12288)
    #expect(c.moeIntermediateSize == 2048)
    #expect(c.firstKDenseReplace == 3)
    #expect(c.mlpLayerTypes == [.dense, .dense, .dense, .sparse, .sparse])
    #expect(c.indexerTypes == Array(repeating: .full, count: 5))
    #expect(c.numExpertsPerTok == 8)
    #expect(c.nSharedExperts == 1)
    #expect(c.nGroup == 1 && c.topkGroup == 1)
    #expect(c.routedScalingFactor == 2.5)
    #expect(c.normTopkProb == true)
    #expect(c.hiddenAct == "silu")
    #expect(c.numNextnPredictLayers == 0)
    #expect(c.quantization == nil)
    #expect(c.bosTokenId == nil && c.padTokenId == nil)
    // Derived
    #expect(c.qkHeadDim == 6)
    #expect(c.numMoELayers == 2 && c.numDenseLayers == 3)
    #expect(abs(c.softmaxScale - 1 / 6.0.squareRoot()) < 1e-15)
  }

  @Test func tinyConfigReadsEveryKey() throws {
    let d = TinyDims()
    let c = try parseConfig(d.configObject)
    #expect(c.vocabSize == d.vocab && c.hiddenSize == d.hidden && c.numHiddenLayers == d.layers)
    #expect(c.numAttentionHeads == d.heads && c.qLoraRank == d.qLoraRank && c.kvLoraRank == d.kvLoraRank)
    #expect(c.qkNopeHeadDim == d.qkNope && c.qkRopeHeadDim == d.qkRope && c.vHeadDim == d.vHead)
    #expect(c.indexNHeads == d.indexHeads && c.indexHeadDim == d.indexHeadDim && c.indexTopK == d.indexTopK)
    #expect(c.intermediateSize == d.intermediate && c.moeIntermediateSize == d.moeIntermediate)
    #expect(c.nRoutedExperts == d.experts && c.numExpertsPerTok == d.expertsPerTok)
    #expect(c.nGroup == d.nGroup && c.topkGroup == d.topkGroup && c.nSharedExperts == d.sharedExperts)
    #expect(c.numNextnPredictLayers == d.nextn)
    #expect(c.mlpLayerTypes == [.dense, .sparse])
    #expect(c.eosTokenIds == [1, 2])
    #expect(c.bosTokenId == 0)
    #expect(c.padTokenId == nil)
  }

  @Test func explicitLayerSchedulesWin() throws {
    var o = Self.minimal
    o["mlp_layer_types"] = .array(["sparse", "dense", "sparse", "dense", "dense"].map { .string($0) })
    o["indexer_types"] = .array(["full", "shared", "shared", "full", "shared"].map { .string($0) })
    let c = try parseConfig(o)
    #expect(c.mlpLayerTypes == [.sparse, .dense, .sparse, .dense, .dense])
    #expect(c.indexerTypes == [.full, .shared, .shared, .full, .shared])
  }

  // MARK: - RoPE spellings

  @Test func ropeThetaAtTopLevel() throws {
    var o = Self.minimal
    o["rope_theta"] = .number(500000)
    let c = try parseConfig(o)
    #expect(c.rope.theta == 500000 && c.rope.type == "default")
  }

  @Test func ropeParameters() throws {
    var o = Self.minimal
    o["rope_parameters"] = .object(["rope_theta": .number(1_000_000), "rope_type": .string("default")])
    let c = try parseConfig(o)
    #expect(c.rope.theta == 1_000_000 && c.rope.type == "default")
  }

  @Test func ropeParametersOverrideTopLevelTheta() throws {
    var o = Self.minimal
    o["rope_theta"] = .number(10)
    o["rope_parameters"] = .object(["rope_theta": .number(20)])
    #expect(try parseConfig(o).rope.theta == 20)
    // Without a theta inside, the top-level one is kept.
    o["rope_parameters"] = .object(["rope_type": .string("default")])
    #expect(try parseConfig(o).rope.theta == 10)
  }

  @Test func legacyRopeScalingYaRN() throws {
    var o = Self.minimal
    o["rope_theta"] = .number(10000)
    o["rope_scaling"] = .object([
      "type": .string("yarn"), "factor": .number(40), "original_max_position_embeddings": .number(4096),
      "beta_fast": .number(32), "beta_slow": .number(1), "mscale": .number(1), "mscale_all_dim": .number(1),
    ])
    let c = try parseConfig(o)
    #expect(c.rope.type == "yarn" && c.rope.factor == 40 && c.rope.theta == 10000)
    #expect(c.rope.originalMaxPositionEmbeddings == 4096 && c.rope.mscaleAllDim == 1)
    let m = 0.1 * 1 * log(40.0) + 1
    #expect(abs(c.softmaxScale - m * m / 6.0.squareRoot()) < 1e-12)
  }

  @Test func unsupportedRopeType() {
    var o = Self.minimal
    o["rope_parameters"] = .object(["rope_type": .string("llama3")])
    expectFailure(.unsupported, ["rope type", "llama3"]) { () throws(GLM5Error) in _ = try parseConfig(o) }
  }

  @Test func ropeParametersNotAnObject() {
    var o = Self.minimal
    o["rope_parameters"] = .number(10000)
    expectFailure(.badFormat, ["rope_parameters", "a number", "expected an object"]) { () throws(GLM5Error) in _ = try parseConfig(o) }
  }

  @Test func ropeThetaWrongType() {
    var o = Self.minimal
    o["rope_parameters"] = .object(["rope_theta": .string("1e6")])
    expectFailure(.badFormat, ["rope_theta", "a string", "expected a number"]) { () throws(GLM5Error) in _ = try parseConfig(o) }
  }

  // MARK: - eos_token_id

  @Test func eosTokenIdInt() throws {
    var o = Self.minimal
    o["eos_token_id"] = .number(7)
    #expect(try parseConfig(o).eosTokenIds == [7])
  }

  @Test func eosTokenIdList() throws {
    var o = Self.minimal
    o["eos_token_id"] = .array([.number(154820), .number(154827), .number(154829)])
    #expect(try parseConfig(o).eosTokenIds == [154820, 154827, 154829])
  }

  @Test func eosTokenIdAbsentOrNull() throws {
    #expect(try parseConfig(Self.minimal).eosTokenIds == [])
    var o = Self.minimal
    o["eos_token_id"] = .null
    #expect(try parseConfig(o).eosTokenIds == [])
  }

  @Test func eosTokenIdBad() {
    var o = Self.minimal
    o["eos_token_id"] = .array([.number(1), .string("2")])
    expectFailure(.badFormat, ["eos_token_id", "an integer or a list of integers"]) { () throws(GLM5Error) in _ = try parseConfig(o) }
  }

  // MARK: - Missing keys and wrong types

  static let requiredKeys = ["model_type", "vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads",
                             "kv_lora_rank", "qk_nope_head_dim", "qk_rope_head_dim", "v_head_dim", "n_routed_experts"]

  @Test(arguments: requiredKeys)
  func missingRequiredKey(_ key: String) {
    var o = Self.minimal
    o[key] = nil
    expectFailure(.badFormat, ["config.json", "missing required key", "\"\(key)\""]) { () throws(GLM5Error) in _ = try parseConfig(o) }
    o[key] = .null
    expectFailure(.badFormat, ["missing required key", "\"\(key)\""]) { () throws(GLM5Error) in _ = try parseConfig(o) }
  }

  @Test(arguments: [
    ("hidden_size", JSON.string("16"), "a string"),
    ("hidden_size", JSON.number(16.5), "a number"),
    ("vocab_size", JSON.array([.number(32)]), "an array"),
    ("model_type", JSON.number(1), "a number"),
    ("rms_norm_eps", JSON.string("1e-5"), "a string"),
    ("norm_topk_prob", JSON.number(1), "a number"),
    ("mlp_layer_types", JSON.string("dense"), "a string"),
    ("indexer_types", JSON.array([.number(1)]), "an array"),
    ("q_lora_rank", JSON.bool(true), "a boolean"),
    ("hidden_act", JSON.object([:]), "an object"),
  ])
  func wrongTypeForAKey(_ key: String, _ value: JSON, _ kind: String) {
    var o = Self.minimal
    o[key] = value
    expectFailure(.badFormat, ["\"\(key)\"", "is \(kind)", "expected"]) { () throws(GLM5Error) in _ = try parseConfig(o) }
  }

  @Test func topLevelNotAnObject() {
    expectFailure(.badFormat, ["config.json", "an array", "expected an object"]) { () throws(GLM5Error) in
      _ = try ModelConfig(json: .array([]))
    }
  }

  @Test func sourceNameIsUsed() {
    var o = Self.minimal
    o["hidden_size"] = nil
    expectFailure(.badFormat, ["/models/x/config.json", "hidden_size"]) { () throws(GLM5Error) in
      _ = try ModelConfig(json: .object(o), source: "/models/x/config.json")
    }
  }

  // MARK: - Inconsistent values

  @Test(arguments: [
    (["num_experts_per_tok": JSON.number(9)], ["num_experts_per_tok (9)", "n_routed_experts (8)"]),
    (["n_group": .number(3)], ["n_routed_experts (8)", "n_group (3)", "divisible"]),
    (["n_group": .number(4), "topk_group": .number(5)], ["topk_group (5)", "n_group (4)"]),
    (["n_group": .number(4), "topk_group": .number(1)], ["num_experts_per_tok (8)", "topk_group (1)"]),
    (["n_group": .number(8), "topk_group": .number(8)], ["n_routed_experts / n_group = 1"]),
    (["mlp_layer_types": .array([.string("dense"), .string("sparse")])], ["mlp_layer_types has 2 entries", "num_hidden_layers is 5"]),
    (["indexer_types": .array(Array(repeating: .string("full"), count: 6))], ["indexer_types has 6 entries", "num_hidden_layers is 5"]),
    (["indexer_types": .array(Array(repeating: .string("shared"), count: 5))], ["indexer_types[0]", "shared"]),
    (["mlp_layer_types": .array(Array(repeating: .string("moe"), count: 5))], ["mlp_layer_types", "\"moe\""]),
    (["indexer_types": .array(Array(repeating: .string("sparse"), count: 5))], ["indexer_types", "\"sparse\""]),
    (["index_head_dim": .number(1), "qk_rope_head_dim": .number(2)], ["index_head_dim (1)", "qk_rope_head_dim (2)"]),
    (["qk_rope_head_dim": .number(3), "index_head_dim": .number(8)], ["qk_rope_head_dim is 3", "even"]),
    (["first_k_dense_replace": .number(6)], ["first_k_dense_replace is 6", "num_hidden_layers = 5"]),
    (["first_k_dense_replace": .number(-1)], ["first_k_dense_replace is -1"]),
    (["hidden_size": .number(0)], ["hidden_size is 0", "positive"]),
    (["vocab_size": .number(-4)], ["vocab_size is -4", "positive"]),
    (["index_topk": .number(0)], ["index_topk is 0"]),
    (["intermediate_size": .number(Double(1 << 25))], ["intermediate_size is \(1 << 25)", "larger"]),
    (["n_shared_experts": .number(-1)], ["n_shared_experts is -1"]),
    (["num_nextn_predict_layers": .number(-1)], ["num_nextn_predict_layers is -1"]),
    (["rms_norm_eps": .number(0)], ["rms_norm_eps is 0"]),
    (["rms_norm_eps": .number(2)], ["rms_norm_eps is 2"]),
    (["rope_theta": .number(0)], ["rope_theta is 0"]),
    (["rope_theta": .number(-1)], ["rope_theta is -1"]),
  ] as [([String: JSON], [String])])
  func inconsistentValues(_ change: [String: JSON], _ needles: [String]) {
    var o = Self.minimal
    for (k, v) in change { o[k] = v }
    expectFailure(.badFormat, ["config.json"] + needles) { () throws(GLM5Error) in _ = try parseConfig(o) }
  }

  @Test(arguments: [
    (["model_type": JSON.string("deepseek_v3")], ["model_type", "\"deepseek_v3\"", "glm_moe_dsa, deepseek_v32"]),
    (["model_type": .string("")], ["model_type \"\""]),
    (["hidden_act": .string("gelu")], ["hidden_act", "gelu"]),
    (["attention_bias": .bool(true)], ["attention_bias"]),
    (["tie_word_embeddings": .bool(true)], ["tie_word_embeddings"]),
    (["q_lora_rank": .null], ["q_lora_rank", "null"]),
  ] as [([String: JSON], [String])])
  func unsupportedValues(_ change: [String: JSON], _ needles: [String]) {
    var o = Self.minimal
    for (k, v) in change { o[k] = v }
    expectFailure(.unsupported, ["config.json"] + needles) { () throws(GLM5Error) in _ = try parseConfig(o) }
  }

  // MARK: - Quantization

  @Test func quantizationConfigIsRecognised() throws {
    var o = Self.minimal
    o["quantization_config"] = .object(["quant_method": .string("compressed-tensors"), "format": .string("pack-quantized")])
    let q = try #require(try parseConfig(o).quantization)
    #expect(q.method == "compressed-tensors")
    #expect(q.format == "pack-quantized")
  }

  @Test func quantizationConfigNullIsAbsent() throws {
    var o = Self.minimal
    o["quantization_config"] = .null
    #expect(try parseConfig(o).quantization == nil)
  }

  @Test func quantizationConfigWithoutMethod() {
    var o = Self.minimal
    o["quantization_config"] = .object(["bits": .number(4)])
    expectFailure(.badFormat, ["quantization_config", "quant_method"]) { () throws(GLM5Error) in _ = try parseConfig(o) }
  }

  // MARK: - Keys this library does not read

  @Test func unknownKeysAreIgnored() throws {
    var o = Self.minimal
    o["some_future_key"] = .object(["x": .array([])])
    o["layer_types"] = .array(Array(repeating: .string("indexed_attention"), count: 5))
    _ = try parseConfig(o)
  }
}
