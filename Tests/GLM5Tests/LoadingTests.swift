// Opening checkpoint folders: a generated tiny checkpoint loads; every kind of bad folder,
// config.json or weight set fails with the right status and a message that names the problem.

import Foundation
import GLM5Core
import GLM5Engine
@testable import GLM5Model
import Testing
#if canImport(Glibc)
import Glibc
#endif

@Suite struct LoadingTests {
  // MARK: - A valid generated checkpoint

  @Test func tinyCheckpointLoads() throws {
    let dims = TinyDims()
    let f = makeCheckpoint(dims)
    let ck = try Checkpoint(folder: f.path)
    #expect(ck.config.hiddenSize == dims.hidden)
    #expect(ck.config.mlpLayerTypes == [.dense, .sparse])
    #expect(ck.weights.layers.count == dims.layers)
    #expect(ck.weights.mtp.count == 1)
    #expect(ck.weights.mtp.first?.layerIndex == dims.layers)
    #expect(ck.weights.mtp.first?.embedTokens == nil)
    #expect(ck.weights.mtp.first?.sharedHead == nil)
    #expect(ck.weights.lmHead.outFeatures == dims.vocab)
    #expect(ck.weights.lmHead.inFeatures == dims.hidden)
    guard case .dense(let d) = ck.weights.layers[0].mlp else { Issue.record("layer 0 is not dense"); return }
    #expect(d.down.weight.shape == [dims.hidden, dims.intermediate])
    guard case .moe(let m) = ck.weights.layers[1].mlp else { Issue.record("layer 1 is not MoE"); return }
    #expect(m.experts.count == dims.experts)
    #expect(m.shared != nil)
    #expect(m.correctionBias.shape == [dims.experts])
    #expect(ck.weights.layers[1].attention.indexer?.kNormBias.shape == [dims.indexHeadDim])

    let specs = dims.tensorSpecs
    #expect(ck.store.byName.count == specs.count)
    #expect(ck.parameterCount == specs.reduce(0) { $0 + $1.shape.reduce(1, *) })
    #expect(ck.tensorBytes == 4 * ck.parameterCount)
    #expect(ck.dtypeMask == 1 << UInt32(DType.f32.rawValue))
    // The mapped bytes are the ones written.
    let t = try #require(ck.store.byName["model.norm.weight"])
    let expected = try #require(dims.tensors().first { $0.name == "model.norm.weight" })
    let got = Array(UnsafeRawBufferPointer(start: t.data, count: t.byteCount))
    #expect(got == expected.bytes)
  }

  @Test func tinyCheckpointLoadsThroughTheEngine() throws {
    let f = makeCheckpoint()
    let model = try Model(path: f.path, threads: 1)
    #expect(model.config.vocabSize == TinyDims().vocab)
    #expect(model.pool.threads == 1)
  }

  @Test func engineRejectsBadThreadCount() {
    let f = makeCheckpoint()
    expectFailure(.invalidArgument, ["n_threads", "-1"]) { () throws(GLM5Error) in _ = try Model(path: f.path, threads: -1) }
  }

  @Test func bf16CheckpointLoads() throws {
    let dims = TinyDims()
    let f = makeCheckpoint(dims, tensors: dims.tensors(dtype: "BF16"))
    let ck = try Checkpoint(folder: f.path)
    #expect(ck.dtypeMask == 1 << UInt32(DType.bf16.rawValue))
    #expect(ck.tensorBytes == 2 * ck.parameterCount)
  }

  @Test func checkpointWithoutMTPLoads() throws {
    // transformers' save_pretrained drops the MTP layer; num_nextn_predict_layers stays 1.
    var dims = TinyDims()
    let config = dims.configJSON
    dims.nextn = 0
    let f = makeCheckpoint(dims, config: config)
    let ck = try Checkpoint(folder: f.path)
    #expect(ck.weights.mtp.isEmpty)
    #expect(ck.config.numNextnPredictLayers == 1)
  }

  @Test func sharedIndexerLayersHaveNoIndexerTensors() throws {
    var dims = TinyDims()
    dims.indexerTypes = ["full", "shared"]
    let f = makeCheckpoint(dims)
    let ck = try Checkpoint(folder: f.path)
    #expect(ck.weights.layers[0].attention.indexer != nil)
    #expect(ck.weights.layers[1].attention.indexer == nil)
    // MTP layers always carry their own indexer.
    #expect(ck.weights.mtp.first?.block.attention.indexer != nil)
  }

  @Test func mtpCopiesOfEmbeddingAndHeadAreBound() throws {
    let dims = TinyDims()
    let l = dims.layers
    let extra = [STTensor("model.layers.\(l).embed_tokens.weight", "F32", [dims.vocab, dims.hidden]),
                 STTensor("model.layers.\(l).shared_head.head.weight", "F32", [dims.vocab, dims.hidden])]
    let f = makeCheckpoint(dims, tensors: dims.tensors() + extra)
    let ck = try Checkpoint(folder: f.path)
    #expect(ck.weights.mtp.first?.embedTokens?.shape == [dims.vocab, dims.hidden])
    #expect(ck.weights.mtp.first?.sharedHead?.outFeatures == dims.vocab)
  }

  // MARK: - Bad folders

  @Test func pathDoesNotExist() {
    let f = TempFolder()
    let p = f.file("no-such-model")
    expectLoadFailure(p, .io, [p, "no such file"])
  }

  @Test func fileInsteadOfFolder() {
    let f = TempFolder()
    f.write("weights.bin", [1, 2, 3])
    expectLoadFailure(f.file("weights.bin"), .io, ["weights.bin", "is a file"])
  }

  @Test func folderWithoutConfig() {
    let f = TempFolder()
    f.write("model.safetensors", safetensorsBytes(TinyDims().tensors()))
    expectLoadFailure(f.path, .io, [f.path, "config.json"])
  }

  @Test func configIsAFolder() throws {
    let f = TempFolder()
    try FileManager.default.createDirectory(atPath: f.file("config.json"), withIntermediateDirectories: false)
    expectLoadFailure(f.path, .io, ["config.json"])
  }

  @Test func folderWithoutWeights() {
    let f = TempFolder()
    f.write("config.json", text: TinyDims().configJSON)
    expectLoadFailure(f.path, .io, ["model.safetensors", "model.safetensors.index.json"])
  }

  // MARK: - Bad config.json

  @Test func invalidJSONConfig() {
    let f = TempFolder()
    f.write("config.json", text: "{\"model_type\": \"glm_moe_dsa\",}")
    expectLoadFailure(f.path, .badFormat, ["config.json", "invalid JSON"])
  }

  @Test func emptyConfig() {
    let f = TempFolder()
    f.write("config.json", text: "")
    expectLoadFailure(f.path, .badFormat, ["config.json", "invalid JSON"])
  }

  @Test func configTopLevelNotAnObject() {
    let f = TempFolder()
    f.write("config.json", text: "[1, 2]")
    expectLoadFailure(f.path, .badFormat, ["config.json", "an array", "expected an object"])
  }

  @Test func configMissingRequiredKey() {
    var o = TinyDims().configObject
    o["hidden_size"] = nil
    let f = makeCheckpoint(config: JSON.object(o).serialized)
    expectLoadFailure(f.path, .badFormat, ["config.json", "hidden_size", "missing"])
  }

  @Test func configWrongType() {
    var o = TinyDims().configObject
    o["num_attention_heads"] = .string("2")
    let f = makeCheckpoint(config: JSON.object(o).serialized)
    expectLoadFailure(f.path, .badFormat, ["config.json", "num_attention_heads", "a string", "expected an integer"])
  }

  @Test func configInconsistentDimensions() {
    var o = TinyDims().configObject
    o["num_experts_per_tok"] = .number(11)
    let f = makeCheckpoint(config: JSON.object(o).serialized)
    expectLoadFailure(f.path, .badFormat, ["config.json", "num_experts_per_tok (11)", "n_routed_experts (10)"])
  }

  @Test func unsupportedModelType() {
    var o = TinyDims().configObject
    o["model_type"] = .string("deepseek_v3")
    let f = makeCheckpoint(config: JSON.object(o).serialized)
    expectLoadFailure(f.path, .unsupported, ["config.json", "deepseek_v3", "glm_moe_dsa"])
  }

  @Test func configThatIsNotARegularFileIsRefused() {
    let f = makeCheckpoint()
    _ = unlink(f.path + "/config.json")
    #expect(mkfifo(f.path + "/config.json", 0o644) == 0)
    // A FIFO must not block the load waiting for a writer.
    expectLoadFailure(f.path, .io, ["config.json", "not a regular file"])
  }

  @Test func perTokenWidthsAreBounded() {
    var o = TinyDims().configObject
    o["num_attention_heads"] = .number(65536)
    o["qk_nope_head_dim"] = .number(Double(1 << 23))
    let f = makeCheckpoint(config: JSON.object(o).serialized)
    expectLoadFailure(f.path, .badFormat, ["num_attention_heads * (qk_nope_head_dim + qk_rope_head_dim)", "larger than this library accepts"])
  }

  @Test func unsupportedQuantizationChoicesAreNamed() {
    let cases: [([String: JSON], [String])] = [
      (["quant_method": .string("awq"), "bits": .number(4)], ["quant_method", "\"awq\""]),
      (["quant_method": .string("fp8"), "fmt": .string("e5m2"), "weight_block_size": .array([.number(128), .number(128)])], ["fmt", "e5m2"]),
      (["quant_method": .string("fp8"), "activation_scheme": .string("static"), "weight_block_size": .array([.number(128), .number(128)])], ["activation_scheme", "static"]),
      (["quant_method": .string("fp8")], ["weight_block_size"]),
      (["quant_method": .string("compressed-tensors"), "format": .string("marlin-24")], ["compressed-tensors", "marlin-24"]),
      (["quant_method": .string("compressed-tensors"), "format": .string("pack-quantized"),
        "config_groups": .object(["group_0": .object(["targets": .array([.string("Linear")]),
          "weights": .object(["num_bits": .number(8), "type": .string("int"), "strategy": .string("group"), "group_size": .number(32)])])])],
       ["num_bits 8"]),
      (["quant_method": .string("compressed-tensors"), "format": .string("pack-quantized"),
        "config_groups": .object(["group_0": .object(["targets": .array([.string("Linear")]),
          "weights": .object(["num_bits": .number(4), "type": .string("int"), "strategy": .string("group"), "group_size": .number(48)])])])],
       ["group_size 48"]),
    ]
    for (q, words) in cases {
      var o = TinyDims().configObject
      o["quantization_config"] = .object(q)
      let f = makeCheckpoint(config: JSON.object(o).serialized)
      expectLoadFailure(f.path, .unsupported, ["quantization_config"] + words)
    }
  }

  @Test func quantizationConfigWithoutGroupsIsBadFormat() {
    var o = TinyDims().configObject
    o["quantization_config"] = .object(["quant_method": .string("compressed-tensors"), "format": .string("pack-quantized")])
    let f = makeCheckpoint(config: JSON.object(o).serialized)
    expectLoadFailure(f.path, .badFormat, ["quantization_config", "config_groups"])
  }

  // MARK: - Weights that do not match the table

  static let representativeTensors = [
    "model.layers.1.mlp.experts.7.down_proj.weight",
    "model.layers.0.self_attn.indexer.k_norm.bias",
    "lm_head.weight",
    "model.layers.1.mlp.gate.e_score_correction_bias",
    "model.embed_tokens.weight",
    "model.layers.0.mlp.gate_proj.weight",
    "model.layers.1.self_attn.kv_b_proj.weight",
    "model.layers.1.mlp.shared_experts.up_proj.weight",
    "model.layers.2.eh_proj.weight",          // the MTP layer
    "model.layers.2.mlp.experts.0.gate_proj.weight",
    "model.norm.weight",
  ]

  @Test(arguments: representativeTensors)
  func missingTensorIsNamed(_ name: String) throws {
    let dims = TinyDims()
    let shape = try #require(dims.tensorSpecs.first { $0.name == name }?.shape)
    let f = makeCheckpoint(dims, tensors: dims.tensors().filter { $0.name != name })
    expectLoadFailure(f.path, .badFormat, ["missing tensor", name, "expected shape \(shapeString(shape))"])
  }

  /// Every tensor of the table is required: dropping any one fails, naming it.
  @Test func everyTensorIsRequired() {
    let dims = TinyDims()
    let all = dims.tensors()
    // The MTP layer as a whole is optional, but a partial one is an error; so every single
    // removal must fail.
    for t in all {
      let f = makeCheckpoint(dims, tensors: all.filter { $0.name != t.name })
      expectLoadFailure(f.path, .badFormat, [t.name])
    }
  }

  @Test func wrongShapeShowsBothShapes() {
    let dims = TinyDims()
    let name = "model.layers.1.mlp.gate.weight"  // [E, H] = [10, 8]
    var tensors = dims.tensors()
    let k = tensors.firstIndex { $0.name == name }!
    tensors[k] = STTensor(name, "F32", [dims.hidden, dims.experts])
    let f = makeCheckpoint(dims, tensors: tensors)
    expectLoadFailure(f.path, .badFormat, [name, "model.safetensors", "[8, 10]", "expected [10, 8]"])
  }

  @Test func wrongRankIsAWrongShape() {
    let dims = TinyDims()
    let name = "model.layers.0.self_attn.indexer.k_norm.weight"  // [Di] = [6]
    var tensors = dims.tensors()
    let k = tensors.firstIndex { $0.name == name }!
    tensors[k] = STTensor(name, "F32", [1, dims.indexHeadDim])
    let f = makeCheckpoint(dims, tensors: tensors)
    expectLoadFailure(f.path, .badFormat, [name, "[1, 6]", "expected [6]"])
  }

  @Test func leftoverTensorIsNamed() {
    let dims = TinyDims()
    let extra = STTensor("model.layers.0.self_attn.rotary_emb.inv_freq", "F32", [2])
    let f = makeCheckpoint(dims, tensors: dims.tensors() + [extra])
    expectLoadFailure(f.path, .badFormat, ["unexpected tensor", extra.name])
  }

  @Test func manyLeftoverTensorsAreCounted() {
    let dims = TinyDims()
    let extra = (0..<7).map { STTensor("extra.\($0).weight", "F32", [1]) }
    let f = makeCheckpoint(dims, tensors: dims.tensors() + extra)
    expectLoadFailure(f.path, .badFormat, ["unexpected tensors", "extra.0.weight", "and 2 more"])
  }

  @Test func indexerTensorsOnASharedLayerAreLeftOver() {
    var dims = TinyDims()
    let withIndexer = dims.tensors()  // every layer full
    dims.indexerTypes = ["full", "shared"]
    let f = makeCheckpoint(dims, tensors: withIndexer)
    expectLoadFailure(f.path, .badFormat, ["unexpected tensors", "model.layers.1.self_attn.indexer."])
  }

  @Test func tensorsOfAnExtraLayerAreLeftOver() {
    // A checkpoint with three layers read with a config that says two and no MTP.
    var dims = TinyDims()
    dims.nextn = 0
    var config = dims.configObject
    config["num_nextn_predict_layers"] = .number(0)
    var three = dims
    three.layers = 3
    let f = makeCheckpoint(dims, config: JSON.object(config).serialized, tensors: three.tensors())
    expectLoadFailure(f.path, .badFormat, ["unexpected tensors", "model.layers.2."])
  }

  @Test func integerDTypeForAFloatWeight() {
    let dims = TinyDims()
    let name = "model.layers.0.self_attn.q_a_proj.weight"
    var tensors = dims.tensors()
    let k = tensors.firstIndex { $0.name == name }!
    tensors[k] = STTensor(name, "I32", [dims.qLoraRank, dims.hidden])
    let f = makeCheckpoint(dims, tensors: tensors)
    expectLoadFailure(f.path, .unsupported, [name, "I32", "F32, BF16 or F16"])
  }

  @Test func fp8WeightWithoutQuantizationConfig() {
    let dims = TinyDims()
    let name = "model.layers.1.mlp.experts.0.up_proj.weight"
    var tensors = dims.tensors()
    let k = tensors.firstIndex { $0.name == name }!
    tensors[k] = STTensor(name, "F8_E4M3", [dims.moeIntermediate, dims.hidden])
    let f = makeCheckpoint(dims, tensors: tensors)
    expectLoadFailure(f.path, .badFormat, ["model.layers.1.mlp.experts.0.up_proj.weight_scale_inv", "F8_E4M3", "missing"])
  }

  // MARK: - Sharded checkpoints

  @Test func shardedCheckpointLoads() throws {
    let dims = TinyDims()
    let f = makeShardedCheckpoint(dims, shards: 3)
    let ck = try Checkpoint(folder: f.path)
    #expect(ck.store.files.count == 3)
    #expect(ck.store.byName.count == dims.tensorSpecs.count)
    #expect(ck.weights.mtp.count == 1)
    #expect(ck.store.byName["lm_head.weight"]?.file.hasSuffix(".safetensors") == true)
  }

  @Test func indexNamesAMissingShard() {
    let f = makeShardedCheckpoint(shards: 3)
    let gone = shardName(1, of: 3)
    f.remove(gone)
    expectLoadFailure(f.path, .badFormat, ["model.safetensors.index.json", gone, "does not exist"])
  }

  @Test func indexNamesATensorNoShardHolds() {
    let f = makeShardedCheckpoint(shards: 2, indexExtra: ["model.layers.0.mlp.phantom.weight": shardName(0, of: 2)])
    expectLoadFailure(f.path, .badFormat, ["model.safetensors.index.json", "model.layers.0.mlp.phantom.weight",
                                           shardName(0, of: 2), "no shard holds it"])
  }

  @Test func indexPlacesATensorInTheWrongShard() throws {
    let f = makeShardedCheckpoint(shards: 2)
    let indexPath = f.file("model.safetensors.index.json")
    var index = try JSON.parse(String(decoding: try Data(contentsOf: URL(fileURLWithPath: indexPath)), as: UTF8.self))
    guard case .object(var top) = index, case .object(var map) = top["weight_map"]! else {
      Issue.record("index is not an object"); return
    }
    let name = "lm_head.weight"
    let wrong = map[name] == .string(shardName(0, of: 2)) ? shardName(1, of: 2) : shardName(0, of: 2)
    map[name] = .string(wrong)
    top["weight_map"] = .object(map)
    index = .object(top)
    f.write("model.safetensors.index.json", text: index.serialized)
    expectLoadFailure(f.path, .badFormat, [name, wrong])
  }

  @Test func indexWithoutWeightMap() {
    let f = makeShardedCheckpoint(shards: 2)
    f.write("model.safetensors.index.json", text: "{\"metadata\": {}}")
    expectLoadFailure(f.path, .badFormat, ["model.safetensors.index.json", "weight_map"])
  }

  @Test func indexIsNotJSON() {
    let f = makeShardedCheckpoint(shards: 2)
    f.write("model.safetensors.index.json", text: "{\"weight_map\": ")
    expectLoadFailure(f.path, .badFormat, ["model.safetensors.index.json", "invalid JSON"])
  }

  @Test func indexShardNameWithAPath() {
    let f = makeShardedCheckpoint(shards: 2, indexExtra: ["model.norm.weight": "../elsewhere.safetensors"])
    expectLoadFailure(f.path, .badFormat, ["model.safetensors.index.json", "model.norm.weight", "not a file name"])
  }

  @Test func tensorInTwoShards() {
    let dims = TinyDims()
    let f = makeShardedCheckpoint(dims, shards: 2)
    // Add a copy of model.norm.weight to whichever shard does not hold it.
    let all = dims.tensors()
    let k = all.firstIndex { $0.name == "model.norm.weight" }!
    let other = (k % 2 == 0) ? 1 : 0
    let part = all.enumerated().filter { $0.offset % 2 == other }.map(\.element) + [all[k]]
    f.write(shardName(other, of: 2), safetensorsBytes(part))
    expectLoadFailure(f.path, .badFormat, ["model.norm.weight", "appears in both", shardName(0, of: 2), shardName(1, of: 2)])
  }

  // MARK: - The fixtures of Tests/Fixtures

  /// Every fixture folder (one with config.json) loads; fails if there are none.
  @Test func fixturesLoad() throws {
    let root = fixturesFolder()
    let names = ((try? FileManager.default.contentsOfDirectory(atPath: root)) ?? []).sorted()
    let folders = names.map { root + "/" + $0 }.filter { FileManager.default.fileExists(atPath: $0 + "/config.json") }
    try #require(!folders.isEmpty, "no fixtures with a config.json under \(root)")
    for folder in folders {
      do {
        let ck = try Checkpoint(folder: folder)
        #expect(ck.weights.mtp.count == 1, "\(folder): \(ck.weights.mtp.count) MTP layers")
        let sum = ck.store.files.flatMap(\.tensors).reduce(0) { $0 + $1.shape.reduce(1, *) }
        #expect(ck.parameterCount == sum, "\(folder)")
        #expect(ck.weights.layers.count == ck.config.numHiddenLayers, "\(folder)")
        #expect(ck.parameterCount > 0, "\(folder)")
      } catch {
        Issue.record("\(folder) failed to load: \(error)")
      }
    }
  }
}
