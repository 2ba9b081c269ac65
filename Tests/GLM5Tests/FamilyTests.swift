// The rest of the DSA family: DeepSeek-V3.2 configurations (defaults, keys refused as
// inconsistent) and GLM-5.2 shared indexer layers (schedule spellings, what the record reports).
// Their forward passes are checked against transformers by the golden suites (tiny-v32,
// tiny-dsa-shared in goldenPresets).

import Foundation
import GLM5Core
@testable import GLM5Model
@testable import GLM5Engine
import Testing

/// The keys a DeepSeek-V3.2 config needs here, sized so that its defaults (8 experts per token,
/// 8 groups keep 4, 3 dense layers) are consistent.
private let minimalV32: [String: JSON] = [
  "model_type": .string("deepseek_v32"),
  "vocab_size": .number(32),
  "hidden_size": .number(16),
  "num_hidden_layers": .number(5),
  "num_attention_heads": .number(2),
  "kv_lora_rank": .number(8),
  "qk_nope_head_dim": .number(4),
  "qk_rope_head_dim": .number(2),
  "v_head_dim": .number(4),
  "n_routed_experts": .number(64),
]

/// A copy of a fixture folder (weights linked) whose config.json is `edit`ed.
private func editedFixture(_ preset: String, _ edit: (inout [String: JSON]) -> Void) throws -> TempFolder {
  let src = fixturesRoot + "/" + preset
  let f = TempFolder("glm5-family")
  for name in try FileManager.default.contentsOfDirectory(atPath: src) where name != "config.json" {
    try FileManager.default.createSymbolicLink(atPath: f.file(name), withDestinationPath: src + "/" + name)
  }
  let text = try String(contentsOfFile: src + "/config.json", encoding: .utf8)
  var o = try #require(try JSON.parse(text).object)
  edit(&o)
  f.write("config.json", text: JSON.object(o).serialized)
  return f
}

@Suite("DSA family")
struct FamilyTests {
  // MARK: - DeepSeek-V3.2 configuration

  @Test("a deepseek_v32 config gets DeepseekV32Config's defaults and the half-split indexer layout")
  func v32Defaults() throws {
    let c = try parseConfig(minimalV32)
    #expect(c.family == .deepseekV32 && c.modelType == "deepseek_v32")
    #expect(c.indexerRopeInterleaved == false)
    #expect(c.qLoraRank == 1536 && c.rmsNormEps == 1e-6 && c.maxPositionEmbeddings == 163840)
    #expect(c.intermediateSize == 18432 && c.indexNHeads == 64 && c.nGroup == 8 && c.topkGroup == 4)
    // the same as GlmMoeDsaConfig's
    #expect(c.indexTopK == 2048 && c.indexHeadDim == 128 && c.moeIntermediateSize == 2048 && c.firstKDenseReplace == 3)
    #expect(c.numExpertsPerTok == 8 && c.routedScalingFactor == 2.5 && c.normTopkProb)
    #expect(c.indexerTypes == Array(repeating: .full, count: 5))
    let g = try parseConfig(ConfigTests.minimal)
    #expect(g.family == .glmMoeDsa && g.indexerRopeInterleaved)
    #expect(g.fingerprint != c.fingerprint)
  }

  @Test("the DeepSeek-V3.2 release config (legacy rope_scaling, FP8) parses: YaRN factor 40, mscale² in the softmax scale")
  func v32ReleaseConfig() throws {
    var o = minimalV32
    for (k, v) in [("architectures", JSON.array([.string("DeepseekV32ForCausalLM")])), ("scoring_func", .string("sigmoid")),
                   ("topk_method", .string("noaux_tc")), ("num_key_value_heads", .number(2)), ("rope_theta", .number(10000)),
                   ("num_nextn_predict_layers", .number(1)), ("ep_size", .number(1)), ("moe_layer_freq", .number(1))] {
      o[k] = v
    }
    o["rope_scaling"] = .object(["type": .string("yarn"), "factor": .number(40), "original_max_position_embeddings": .number(4096),
                                 "beta_fast": .number(32), "beta_slow": .number(1), "mscale": .number(1), "mscale_all_dim": .number(1)])
    o["quantization_config"] = .object(["quant_method": .string("fp8"), "fmt": .string("e4m3"), "activation_scheme": .string("dynamic"),
                                        "weight_block_size": .array([.number(128), .number(128)])])
    let c = try parseConfig(o)
    #expect(c.rope.type == "yarn" && c.rope.factor == 40 && c.rope.originalMaxPositionEmbeddings == 4096)
    let m = 0.1 * log(40.0) + 1
    #expect(abs(c.softmaxScale - m * m / 6.0.squareRoot()) < 1e-12)
    #expect(RoPE(config: c).attentionScaling == 1)  // mscale / mscale_all_dim = 1
  }

  @Test("YaRN keys as transformers reads them: absent mscale is 0, original_max_position_embeddings defaults to max_position_embeddings")
  func yarnKeySemantics() throws {
    var o = minimalV32
    o["max_position_embeddings"] = .number(512)
    o["rope_parameters"] = .object(["rope_type": .string("yarn"), "factor": .number(4), "mscale_all_dim": .number(0.5)])
    let c = try parseConfig(o)
    #expect(c.rope.originalMaxPositionEmbeddings == 512 && c.rope.mscale == 0)
    // `mscale and mscale_all_dim` is falsy ⇒ attention_factor = get_mscale(factor) = 0.1 ln 4 + 1
    #expect(RoPE(config: c).attentionScaling == Float(0.1 * log(4.0) + 1))
    o["rope_parameters"] = .object(["rope_type": .string("yarn"), "mscale_all_dim": .number(1)])
    expectFailure(.badFormat, ["yarn", "\"factor\""]) { () throws(GLM5Error) in _ = try parseConfig(o) }
  }

  @Test(arguments: [
    (["indexer_types": JSON.array(["full", "shared", "full", "full", "full"].map { .string($0) })], ["indexer_types", "deepseek_v32", "no shared indexer"]),
    (["index_topk_freq": .number(2)], ["index_topk_freq", "deepseek_v32"]),
    (["index_topk_pattern": .string("FSFFF")], ["index_topk_pattern", "deepseek_v32"]),
    (["architectures": .array([.string("GlmMoeDsaForCausalLM")])], ["architectures", "DeepseekV32ForCausalLM"]),
    (["num_key_value_heads": .number(1)], ["num_key_value_heads (1)", "num_attention_heads (2)"]),
    (["qk_head_dim": .number(7)], ["qk_head_dim (7)", "(6)"]),
    (["rope_parameters": .object(["rope_type": .string("yarn"), "factor": .number(0.5)])], ["factor is 0.5", "≥ 1"]),
  ] as [([String: JSON], [String])])
  func v32InconsistentKeys(_ change: [String: JSON], _ needles: [String]) {
    var o = minimalV32
    for (k, v) in change { o[k] = v }
    expectFailure(.badFormat, ["config.json"] + needles) { () throws(GLM5Error) in _ = try parseConfig(o) }
  }

  @Test(arguments: [
    ("deepseek_v32", ["indexer_rope_interleave": JSON.bool(true)], ["indexer_rope_interleave = true", "two halves"]),
    ("glm_moe_dsa", ["indexer_rope_interleave": .bool(false)], ["indexer_rope_interleave = false", "interleaved pairs"]),
    ("deepseek_v32", ["rope_interleave": .bool(false)], ["rope_interleave = false"]),
    ("deepseek_v32", ["scoring_func": .string("softmax")], ["scoring_func \"softmax\"", "sigmoid"]),
    ("glm_moe_dsa", ["topk_method": .string("greedy")], ["topk_method \"greedy\"", "noaux_tc"]),
  ] as [(String, [String: JSON], [String])])
  func keysThatWouldComputeOtherwise(_ type: String, _ change: [String: JSON], _ needles: [String]) {
    var o = type == "deepseek_v32" ? minimalV32 : ConfigTests.minimal
    for (k, v) in change { o[k] = v }
    expectFailure(.unsupported, ["config.json"] + needles) { () throws(GLM5Error) in _ = try parseConfig(o) }
  }

  @Test("keys that agree with the family are accepted (GLM-5's indexer_rope_interleave: true, V3.2's all-full indexer_types)")
  func agreeingKeys() throws {
    var g = ConfigTests.minimal
    g["indexer_rope_interleave"] = .bool(true)
    g["rope_interleave"] = .bool(true)
    g["architectures"] = .array([.string("GlmMoeDsaForCausalLM")])
    _ = try parseConfig(g)
    var v = minimalV32
    v["indexer_rope_interleave"] = .bool(false)
    v["indexer_types"] = .array(Array(repeating: .string("full"), count: 5))
    _ = try parseConfig(v)
  }

  @Test("loading a V3.2 fixture whose config contradicts itself fails with a status and a message")
  func v32LoadFailures() throws {
    let a = try editedFixture("tiny-v32") { $0["indexer_types"] = .array(["full", "shared", "full"].map { .string($0) }) }
    expectLoadFailure(a.path, .badFormat, ["config.json", "indexer_types", "deepseek_v32"])
    let b = try editedFixture("tiny-v32") { $0["indexer_rope_interleave"] = .bool(true) }
    expectLoadFailure(b.path, .unsupported, ["indexer_rope_interleave"])
    let c = try editedFixture("tiny-v32") { $0["model_type"] = .string("glm_moe_dsa") }
    expectLoadFailure(c.path, .badFormat, ["architectures", "DeepseekV32ForCausalLM", "GlmMoeDsaForCausalLM"])
    // a glm_moe_dsa config on the shared fixture that says every layer is full: the shared layers' indexers are missing
    let d = try editedFixture("tiny-dsa-shared") { $0["indexer_types"] = .array(Array(repeating: .string("full"), count: 5)) }
    expectLoadFailure(d.path, .badFormat, ["model.layers.1.self_attn.indexer"])
  }

  @Test("sessions of different lengths appended and decoded in one batch equal each alone, records included",
        arguments: ["tiny-v32", "tiny-dsa-shared"])
  func batchedEqualsAlone(preset: String) throws {
    let g = try Golden(preset: preset)
    let m = try Model(path: modelFolder(preset), threads: 2)
    let t = g.ints("seq2.tokens")
    let chunks = [Array(t.prefix(9)), Array(t.prefix(2)), Array(t.suffix(20)), [5]]
    let alone = try chunks.map { c throws -> (Session, [Float]) in
      let s = try Session(model: m, recordBytes: 0); let lp = try s.append(c, logits: .last, logprobs: true); return (s, lp)
    }
    let batch = try chunks.map { _ in try Session(model: m, recordBytes: 0) }
    for step in 0..<2 {
      let rs = try m.appendBatch(zip(batch, chunks).map { AppendRequest(session: $0, tokens: step == 0 ? $1 : [7], keep: .last, logprobs: true) })
      for i in chunks.indices {
        if step == 0 {
          #expect(rs[i].logprobs.elementsEqual(alone[i].1) { $0.bitPattern == $1.bitPattern }, "\(preset) session \(i)")
        } else {
          try alone[i].0.append([7], logits: .last)
        }
        #expect(batch[i].keptLogits == alone[i].0.keptLogits, "\(preset) session \(i) step \(step)")
        let n = alone[i].0.count
        #expect(Array(batch[i].record!.topk(first: 0, count: n)) == Array(alone[i].0.record!.topk(first: 0, count: n)))
        #expect(Array(batch[i].record!.routes(first: 0, count: n).ids) == Array(alone[i].0.record!.routes(first: 0, count: n).ids))
      }
    }
  }

  // MARK: - GLM-5.2 shared indexer layers

  @Test(arguments: [
    (["index_topk_freq": JSON.number(2)], 6, ["full", "full", "shared", "full", "shared", "full"]),
    (["index_topk_freq": .number(3), "index_skip_topk_offset": .number(1)], 6, ["full", "shared", "shared", "full", "shared", "shared"]),
    (["index_topk_pattern": .string("FSSFS")], 5, ["full", "shared", "shared", "full", "shared"]),
    (["index_topk_pattern": .array(["full", "shared", "full"].map { .string($0) })], 3, ["full", "shared", "full"]),
    (["index_topk_pattern": .string("FS"), "indexer_types": .array(["full", "full"].map { .string($0) })], 2, ["full", "full"]),
  ] as [([String: JSON], Int, [String])])
  func sharedScheduleSpellings(_ keys: [String: JSON], _ layers: Int, _ want: [String]) throws {
    // expected values: transformers 5.24 GlmMoeDsaConfig(num_hidden_layers=layers, **keys).indexer_types
    var o = ConfigTests.minimal
    o["num_hidden_layers"] = .number(Double(layers))
    o["first_k_dense_replace"] = .number(1)
    for (k, v) in keys { o[k] = v }
    #expect(try parseConfig(o).indexerTypes.map(\.rawValue) == want)
  }

  @Test func sharedPatternWithABadLetter() {
    var o = ConfigTests.minimal
    o["index_topk_pattern"] = .string("FSXFS")
    expectFailure(.badFormat, ["index_topk_pattern", "\"X\""]) { () throws(GLM5Error) in _ = try parseConfig(o) }
  }

  @Test("R3 on tiny-dsa-shared: each shared layer records the nearest full layer's selection, the golden's (transformers'), prefill or one token at a time")
  func sharedLayersRecordReusedSelections() throws {
    let g = try Golden(preset: "tiny-dsa-shared")
    let m = try Model(path: modelFolder("tiny-dsa-shared"), threads: 2)
    let c = m.config
    #expect(c.indexerTypes == [.full, .shared, .shared, .full, .shared])
    #expect(m.transformer.layersWithIndexer == [true, false, false, true, false])
    let nearest = [0, 0, 0, 3, 3]
    var sparseRows = 0, layer4DiffersFromLayer0 = 0
    for s in 0..<g.sequenceCount {
      let tokens = g.ints("seq\(s).tokens")
      let whole = try Session(model: m, recordBytes: 0)
      try whole.append(tokens, logits: .none)
      let stepped = try Session(model: m, recordBytes: 0)
      for t in tokens { try stepped.append([t], logits: .none) }
      for rec in [whole.record!, stepped.record!] {
        for l in 0..<c.numHiddenLayers {
          let k = g.shape("seq\(s).topk.layer\(l)")[1]
          let gold = g.ints("seq\(s).topk.layer\(l)")
          for t in 0..<tokens.count {
            let sel = rec.selection(position: t, layer: l)
            #expect(sel == rec.selection(position: t, layer: nearest[l]), "seq\(s) layer \(l) pos \(t)")
            #expect(sel == Array(gold[(t * k)..<((t + 1) * k)].filter { $0 >= 0 }), "seq\(s) layer \(l) pos \(t): golden")
            if l == 4 && sel.count < t + 1 { sparseRows += 1 }
            if l == 4 && sel != rec.selection(position: t, layer: 0) { layer4DiffersFromLayer0 += 1 }
          }
        }
      }
    }
    // the fixture can tell "nearest full layer" from "first full layer", and its shared layers are sparse
    #expect(sparseRows > 0 && layer4DiffersFromLayer0 > 0)
  }

  @Test("R3 replay on a shared layer: a replayed selection there is used and recorded, the full layers keep their indexer's")
  func sharedLayerReplay() throws {
    let g = try Golden(preset: "tiny-dsa-shared")
    let m = try Model(path: modelFolder("tiny-dsa-shared"), threads: 2)
    let c = m.config
    let tokens = g.ints("seq2.tokens")
    let n = tokens.count, L = c.numHiddenLayers, K = c.indexTopK
    let base = try Session(model: m, recordBytes: 0)
    let plain = try base.append(tokens, logits: .none, logprobs: true)
    let recorded = Array(base.record!.topk(first: 0, count: n))
    // Replaying the record as it is gives the same bits.
    let same = try recorded.withUnsafeBufferPointer { tb in
      try Session(model: m).append(tokens, logits: .none, logprobs: true, replay: RoutingReplay(topk: tb.baseAddress))
    }
    #expect(bitsEqual(same, plain))
    // Layer 4 (shared) given the first K keys past position K; every other layer as recorded.
    var topk = recorded
    var changed = 0
    for t in K..<n {
      let row = (t * L + 4) * K
      let first = (0..<K).map { Int32($0) }
      if Array(topk[row..<(row + K)]) != first { changed += 1 }
      for i in 0..<K { topk[row + i] = Int32(i) }
    }
    #expect(changed > 0)
    let x = try Session(model: m, recordBytes: 0)
    let got = try topk.withUnsafeBufferPointer { tb in
      try x.append(tokens, logits: .none, logprobs: true, replay: RoutingReplay(topk: tb.baseAddress))
    }
    #expect(!bitsEqual(got, plain))
    #expect(Array(x.record!.topk(first: 0, count: n)) == topk)
  }
}
