// Helpers for the loading tests: temp folders, a tiny config, a safetensors writer that can also
// write broken files, and the list of tensors a tiny config needs (following
// Sources/GLM5Model/Weights/WeightMap.swift, written out independently here).

import Foundation
import GLM5Core
@testable import GLM5Model
import Testing

// MARK: - Temp folders

/// A fresh folder under the system temp directory, removed when the object goes away.
final class TempFolder {
  let path: String

  init(_ tag: String = "glm5-loading") {
    let base = FileManager.default.temporaryDirectory.path
    path = base + "/" + tag + "-" + UUID().uuidString
    try! FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
  }

  deinit { try? FileManager.default.removeItem(atPath: path) }

  func file(_ name: String) -> String { path + "/" + name }

  func write(_ name: String, _ bytes: [UInt8]) {
    try! Data(bytes).write(to: URL(fileURLWithPath: file(name)))
  }

  func write(_ name: String, text: String) { write(name, Array(text.utf8)) }

  func remove(_ name: String) { try! FileManager.default.removeItem(atPath: file(name)) }
}

// MARK: - A tiny configuration

/// Every dimension small and, where it matters for shape messages, different from the others.
struct TinyDims {
  var vocab = 16        // V
  var hidden = 8        // H
  var layers = 2
  var firstDense = 1
  var heads = 2         // Nh
  var qLoraRank = 9     // Rq
  var kvLoraRank = 5    // Rkv
  var qkNope = 3        // Dn
  var qkRope = 4        // Dr
  var vHead = 7         // Dv
  var indexHeads = 3    // Hi
  var indexHeadDim = 6  // Di
  var indexTopK = 4
  var intermediate = 12 // I
  var moeIntermediate = 11  // Im
  var experts = 10      // E
  var expertsPerTok = 3
  var sharedExperts = 1
  var nGroup = 2
  var topkGroup = 1
  var nextn = 1         // MTP layers (stored as layers `layers ..< layers + nextn`)
  /// nil: derived by the config reader; otherwise written out.
  var indexerTypes: [String]? = nil

  var configObject: [String: JSON] {
    var o: [String: JSON] = [
      "architectures": .array([.string("GlmMoeDsaForCausalLM")]),
      "model_type": .string("glm_moe_dsa"),
      "vocab_size": .number(Double(vocab)),
      "hidden_size": .number(Double(hidden)),
      "num_hidden_layers": .number(Double(layers)),
      "first_k_dense_replace": .number(Double(firstDense)),
      "num_attention_heads": .number(Double(heads)),
      "num_key_value_heads": .number(Double(heads)),
      "q_lora_rank": .number(Double(qLoraRank)),
      "kv_lora_rank": .number(Double(kvLoraRank)),
      "qk_nope_head_dim": .number(Double(qkNope)),
      "qk_rope_head_dim": .number(Double(qkRope)),
      "v_head_dim": .number(Double(vHead)),
      "index_n_heads": .number(Double(indexHeads)),
      "index_head_dim": .number(Double(indexHeadDim)),
      "index_topk": .number(Double(indexTopK)),
      "intermediate_size": .number(Double(intermediate)),
      "moe_intermediate_size": .number(Double(moeIntermediate)),
      "n_routed_experts": .number(Double(experts)),
      "num_experts_per_tok": .number(Double(expertsPerTok)),
      "n_shared_experts": .number(Double(sharedExperts)),
      "n_group": .number(Double(nGroup)),
      "topk_group": .number(Double(topkGroup)),
      "num_nextn_predict_layers": .number(Double(nextn)),
      "rms_norm_eps": .number(1e-5),
      "rope_parameters": .object(["rope_theta": .number(10000), "rope_type": .string("default")]),
      "eos_token_id": .array([.number(1), .number(2)]),
      "bos_token_id": .number(0),
      "pad_token_id": .null,
      "hidden_act": .string("silu"),
      "attention_bias": .bool(false),
      "tie_word_embeddings": .bool(false),
      "torch_dtype": .string("float32"),
    ]
    if let t = indexerTypes { o["indexer_types"] = .array(t.map { .string($0) }) }
    return o
  }

  var configJSON: String { JSON.object(configObject).serialized }

  /// (name, shape) of every tensor a checkpoint for these dimensions holds, in table order.
  var tensorSpecs: [(name: String, shape: [Int])] {
    let h = hidden
    var out: [(name: String, shape: [Int])] = [("model.embed_tokens.weight", [vocab, h])]
    func swiglu(_ p: String, _ w: Int) {
      out.append(("\(p).gate_proj.weight", [w, h]))
      out.append(("\(p).up_proj.weight", [w, h]))
      out.append(("\(p).down_proj.weight", [h, w]))
    }
    func layer(_ l: Int, sparse: Bool, fullIndexer: Bool) {
      let p = "model.layers.\(l)"
      let a = "\(p).self_attn"
      out.append(("\(p).input_layernorm.weight", [h]))
      out.append(("\(p).post_attention_layernorm.weight", [h]))
      out.append(("\(a).q_a_proj.weight", [qLoraRank, h]))
      out.append(("\(a).q_a_layernorm.weight", [qLoraRank]))
      out.append(("\(a).q_b_proj.weight", [heads * (qkNope + qkRope), qLoraRank]))
      out.append(("\(a).kv_a_proj_with_mqa.weight", [kvLoraRank + qkRope, h]))
      out.append(("\(a).kv_a_layernorm.weight", [kvLoraRank]))
      out.append(("\(a).kv_b_proj.weight", [heads * (qkNope + vHead), kvLoraRank]))
      out.append(("\(a).o_proj.weight", [h, heads * vHead]))
      if fullIndexer {
        out.append(("\(a).indexer.wq_b.weight", [indexHeads * indexHeadDim, qLoraRank]))
        out.append(("\(a).indexer.wk.weight", [indexHeadDim, h]))
        out.append(("\(a).indexer.k_norm.weight", [indexHeadDim]))
        out.append(("\(a).indexer.k_norm.bias", [indexHeadDim]))
        out.append(("\(a).indexer.weights_proj.weight", [indexHeads, h]))
      }
      if sparse {
        out.append(("\(p).mlp.gate.weight", [experts, h]))
        out.append(("\(p).mlp.gate.e_score_correction_bias", [experts]))
        for e in 0..<experts { swiglu("\(p).mlp.experts.\(e)", moeIntermediate) }
        if sharedExperts > 0 { swiglu("\(p).mlp.shared_experts", moeIntermediate * sharedExperts) }
      } else {
        swiglu("\(p).mlp", intermediate)
      }
    }
    for l in 0..<layers {
      let full = indexerTypes.map { $0[l] == "full" } ?? true
      layer(l, sparse: l >= firstDense, fullIndexer: full)
    }
    for m in 0..<nextn {
      let l = layers + m
      let p = "model.layers.\(l)"
      out.append(("\(p).enorm.weight", [h]))
      out.append(("\(p).hnorm.weight", [h]))
      out.append(("\(p).eh_proj.weight", [h, 2 * h]))
      out.append(("\(p).shared_head.norm.weight", [h]))
      layer(l, sparse: true, fullIndexer: true)
    }
    out.append(("model.norm.weight", [h]))
    out.append(("lm_head.weight", [vocab, h]))
    return out
  }

  /// Tensors for `tensorSpecs` with deterministic F32 contents.
  func tensors(dtype: String = "F32") -> [STTensor] {
    tensorSpecs.enumerated().map { (k, s) in STTensor(s.name, dtype, s.shape, seed: k) }
  }
}

// MARK: - safetensors writer

/// One entry of a safetensors file. `offsets` overrides the data_offsets written in the header
/// (the data is still appended in order); `rawEntry` replaces the whole header entry.
struct STTensor {
  var name: String
  var dtype: String
  var shape: [Int]
  var bytes: [UInt8]
  var offsets: (Int, Int)? = nil
  var rawEntry: JSON? = nil

  init(_ name: String, _ dtype: String, _ shape: [Int], bytes: [UInt8]) {
    self.name = name
    self.dtype = dtype
    self.shape = shape
    self.bytes = bytes
  }

  /// Deterministic contents of the right size for `dtype` (1 byte per element if unknown).
  init(_ name: String, _ dtype: String, _ shape: [Int], seed: Int = 0) {
    let n = shape.reduce(1, *)
    let size = DType(safetensorsName: dtype)?.byteSize ?? 1
    var b: [UInt8] = []
    b.reserveCapacity(n * size)
    for i in 0..<n {
      switch dtype {
      case "F32":
        let v = Float((i * 7 + seed * 13) % 17 - 8) / 64
        withUnsafeBytes(of: v.bitPattern.littleEndian) { b.append(contentsOf: $0) }
      case "BF16":
        let v = Float((i * 7 + seed * 13) % 17 - 8) / 64
        withUnsafeBytes(of: floatToBF16(v).littleEndian) { b.append(contentsOf: $0) }
      default:
        for k in 0..<size { b.append(UInt8(truncatingIfNeeded: i &+ k &+ seed)) }
      }
    }
    self.init(name, dtype, shape, bytes: b)
  }
}

/// The bytes of a safetensors file: 8-byte little-endian header length, the JSON header, data.
/// - rawHeader: written instead of the generated header.
/// - headerLength: written instead of the real header length.
/// - metadata: the `__metadata__` entry.
func safetensorsBytes(_ tensors: [STTensor], metadata: [String: String]? = ["format": "pt"],
                      rawHeader: String? = nil, headerLength: UInt64? = nil) -> [UInt8] {
  var entries: [String: JSON] = [:]
  var data: [UInt8] = []
  for t in tensors {
    let begin = data.count
    data.append(contentsOf: t.bytes)
    let (b, e) = t.offsets ?? (begin, data.count)
    entries[t.name] = t.rawEntry ?? .object([
      "dtype": .string(t.dtype),
      "shape": .array(t.shape.map { .number(Double($0)) }),
      "data_offsets": .array([.number(Double(b)), .number(Double(e))]),
    ])
  }
  if let m = metadata { entries["__metadata__"] = .object(m.mapValues { .string($0) }) }
  let header = Array((rawHeader ?? JSON.object(entries).serialized).utf8)
  var out: [UInt8] = []
  withUnsafeBytes(of: (headerLength ?? UInt64(header.count)).littleEndian) { out.append(contentsOf: $0) }
  out += header
  out += data
  return out
}

/// A folder with config.json for `dims` and a single model.safetensors holding `tensors`
/// (default: every tensor the configuration needs).
func makeCheckpoint(_ dims: TinyDims = TinyDims(), config: String? = nil,
                    tensors: [STTensor]? = nil) -> TempFolder {
  let f = TempFolder()
  f.write("config.json", text: config ?? dims.configJSON)
  f.write("model.safetensors", safetensorsBytes(tensors ?? dims.tensors()))
  return f
}

/// A folder whose model is split over shards with a model.safetensors.index.json.
/// `indexExtra` adds weight_map entries that no shard holds.
func makeShardedCheckpoint(_ dims: TinyDims = TinyDims(), shards: Int = 3,
                           indexExtra: [String: String] = [:]) -> TempFolder {
  let f = TempFolder()
  f.write("config.json", text: dims.configJSON)
  let all = dims.tensors()
  var map: [String: JSON] = [:]
  for s in 0..<shards {
    let name = shardName(s, of: shards)
    let part = all.enumerated().filter { $0.offset % shards == s }.map(\.element)
    for t in part { map[t.name] = .string(name) }
    f.write(name, safetensorsBytes(part))
  }
  for (k, v) in indexExtra { map[k] = .string(v) }
  let total = all.reduce(0) { $0 + $1.bytes.count }
  let index = JSON.object(["metadata": .object(["total_size": .number(Double(total))]), "weight_map": .object(map)])
  f.write("model.safetensors.index.json", text: index.serialized)
  return f
}

func shardName(_ s: Int, of n: Int) -> String {
  func pad(_ i: Int) -> String { let t = String(i); return String(repeating: "0", count: max(0, 5 - t.count)) + t }
  return "model-\(pad(s + 1))-of-\(pad(n)).safetensors"
}

// MARK: - Expecting failures

/// Runs `body`, expects it to throw a GLM5Error with `status` whose message contains every one
/// of `needles`; returns the error.
@discardableResult
func expectFailure(_ status: Status, _ needles: [String],
                   sourceLocation: SourceLocation = #_sourceLocation,
                   _ body: () throws(GLM5Error) -> Void) -> GLM5Error? {
  do {
    try body()
  } catch {
    #expect(error.status == status, "status \(error.status), expected \(status); message: \(error.message)",
            sourceLocation: sourceLocation)
    for n in needles {
      #expect(error.message.contains(n), "message does not contain \"\(n)\": \(error.message)",
              sourceLocation: sourceLocation)
    }
    return error
  }
  Issue.record("expected a \(status) error mentioning \(needles), but nothing was thrown", sourceLocation: sourceLocation)
  return nil
}

/// Loading `folder` must fail with `status` and a message containing `needles`.
@discardableResult
func expectLoadFailure(_ folder: String, _ status: Status, _ needles: [String],
                       sourceLocation: SourceLocation = #_sourceLocation) -> GLM5Error? {
  expectFailure(status, needles, sourceLocation: sourceLocation) { () throws(GLM5Error) in
    _ = try Checkpoint(folder: folder)
  }
}

/// Parse a config given as a JSON object.
func parseConfig(_ o: [String: JSON]) throws(GLM5Error) -> ModelConfig {
  try ModelConfig(json: .object(o))
}

/// The folder of the test fixtures, found from this file's path.
func fixturesFolder(_ filePath: String = #filePath) -> String {
  URL(fileURLWithPath: filePath).deletingLastPathComponent().deletingLastPathComponent()
    .appendingPathComponent("Fixtures").path
}
