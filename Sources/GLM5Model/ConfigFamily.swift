// The two configuration classes this library reads, and everything that differs between them
// (docs/architecture.md, "DeepSeek-V3.2"): transformers 5.24 `GlmMoeDsaConfig` (`glm_moe_dsa`,
// GLM-5 / GLM-5.2) and `DeepseekV32Config` (`deepseek_v32`, DeepSeek-V3.2, where DSA comes from).
// The forward pass is the same except for the indexer's RoPE layout; the configuration classes
// differ in their defaults, and only GLM-5.2 has "shared" indexer layers. Keys that transformers
// does not read but that would say another model computes differently are refused here, each
// with its keys named, rather than silently computed the transformers way.

import GLM5Core

extension ModelConfig {
  public enum Family: String, Sendable, CaseIterable {
    case glmMoeDsa = "glm_moe_dsa"
    case deepseekV32 = "deepseek_v32"

    /// The transformers class a checkpoint of this family names in `architectures`.
    public var architecture: String {
      switch self {
      case .glmMoeDsa: "GlmMoeDsaForCausalLM"
      case .deepseekV32: "DeepseekV32ForCausalLM"
      }
    }

    /// Whether the indexer rotates interleaved pairs (x[2i], x[2i+1]) (GLM, transformers ≥ 5.13)
    /// or the two halves (x[i], x[i + Dr/2]) (DeepSeek-V3.2, `apply_rotary_pos_emb`). The main
    /// MLA rotates interleaved pairs in both.
    public var indexerRopeInterleaved: Bool { self == .glmMoeDsa }

    /// Whether `indexer_types` (and its pattern / frequency spellings) may mark layers "shared".
    public var hasSharedIndexers: Bool { self == .glmMoeDsa }
  }

  /// The transformers 5.24 defaults of the optional keys whose defaults differ between the two
  /// classes (the required keys have none here; every other default is the same).
  struct FamilyDefaults {
    var qLoraRank: Int, maxPositionEmbeddings: Int, rmsNormEps: Double, intermediateSize: Int
    var indexNHeads: Int, nGroup: Int, topkGroup: Int

    static func of(_ f: Family) -> FamilyDefaults {
      switch f {
      case .glmMoeDsa:
        FamilyDefaults(qLoraRank: 2048, maxPositionEmbeddings: 202752, rmsNormEps: 1e-5, intermediateSize: 12288,
                       indexNHeads: 32, nGroup: 1, topkGroup: 1)
      case .deepseekV32:
        FamilyDefaults(qLoraRank: 1536, maxPositionEmbeddings: 163840, rmsNormEps: 1e-6, intermediateSize: 18432,
                       indexNHeads: 64, nGroup: 8, topkGroup: 4)
      }
    }
  }

  /// Keys transformers ignores whose values would contradict what it computes for this family.
  static func checkFamilyKeys(_ json: JSON, family f: Family, numAttentionHeads: Int, qkHeadDim: Int,
                              source: String) throws(GLM5Error) {
    func unsupported(_ m: String) -> GLM5Error { .unsupported("\(source): \(m)") }
    func bad(_ m: String) -> GLM5Error { .badFormat("\(source): \(m)") }
    if let a = json["architectures"], !a.isNull {
      guard let list = a.array, list.allSatisfy({ $0.string != nil }) else {
        throw bad("\"architectures\" is \(a.kind), expected a list of strings")
      }
      let names = list.compactMap(\.string)
      if !names.isEmpty && !names.contains(f.architecture) {
        throw bad("architectures \(names) does not name \(f.architecture), the class of model_type \"\(f.rawValue)\"")
      }
    }
    if let v = json["indexer_rope_interleave"], !v.isNull {
      guard let b = v.bool else { throw bad("\"indexer_rope_interleave\" is \(v.kind), expected a boolean") }
      if b != f.indexerRopeInterleaved {
        throw unsupported("indexer_rope_interleave = \(b), but transformers' \(f.architecture) rotates the indexer "
                          + (f.indexerRopeInterleaved ? "in interleaved pairs" : "in two halves (not interleaved)"))
      }
    }
    if let v = json["rope_interleave"], !v.isNull {
      guard let b = v.bool else { throw bad("\"rope_interleave\" is \(v.kind), expected a boolean") }
      if !b { throw unsupported("rope_interleave = false, but transformers' \(f.architecture) always rotates the MLA rope slice in interleaved pairs") }
    }
    for (key, want) in [("scoring_func", "sigmoid"), ("topk_method", "noaux_tc")] {
      if let v = json[key], !v.isNull {
        guard let s = v.string else { throw bad("\"\(key)\" is \(v.kind), expected a string") }
        if s != want { throw unsupported("\(key) \"\(s)\" is not supported (transformers' router is \(want))") }
      }
    }
    if let v = json["num_key_value_heads"], !v.isNull {
      guard let n = v.int else { throw bad("\"num_key_value_heads\" is \(v.kind), expected an integer") }
      if n != numAttentionHeads {
        throw bad("num_key_value_heads (\(n)) differs from num_attention_heads (\(numAttentionHeads)); MLA expands one latent to every head")
      }
    }
    if let v = json["qk_head_dim"], !v.isNull {
      guard let n = v.int else { throw bad("\"qk_head_dim\" is \(v.kind), expected an integer") }
      if n != qkHeadDim { throw bad("qk_head_dim (\(n)) is not qk_nope_head_dim + qk_rope_head_dim (\(qkHeadDim))") }
    }
    if !f.hasSharedIndexers {
      for key in ["indexer_types", "index_topk_pattern", "index_topk_freq", "index_skip_topk_offset"] {
        guard let v = json[key], !v.isNull else { continue }
        if key == "indexer_types", let a = v.array, a.allSatisfy({ $0.string == "full" }) { continue }
        throw bad("\(key) is set, but model_type \"\(f.rawValue)\" has no shared indexer layers (every layer runs its own indexer in transformers' \(f.architecture))")
      }
    }
  }

  /// GLM-5.2's indexer schedule when `indexer_types` is absent, as `GlmMoeDsaConfig` derives it:
  /// `index_topk_pattern` ("F"/"S" per layer, or a list), else layer i is full when
  /// max(i − index_skip_topk_offset + 1, 0) is a multiple of index_topk_freq (defaults 1 and 2:
  /// every layer full).
  static func derivedIndexerTypes(_ json: JSON, layers: Int, source: String) throws(GLM5Error) -> [IndexerKind] {
    func bad(_ m: String) -> GLM5Error { .badFormat("\(source): \(m)") }
    if let p = json["index_topk_pattern"], !p.isNull {
      var names: [String] = []
      if let s = p.string {
        for ch in s {
          switch ch {
          case "F": names.append("full")
          case "S": names.append("shared")
          default: throw bad("index_topk_pattern has \"\(ch)\", expected \"F\" (full) or \"S\" (shared)")
          }
        }
      } else if let a = p.array, a.allSatisfy({ $0.string != nil }) {
        names = a.compactMap(\.string)
      } else {
        throw bad("\"index_topk_pattern\" is \(p.kind), expected a string of F/S or a list of strings")
      }
      return try names.map { (s) throws(GLM5Error) -> IndexerKind in
        guard let k = IndexerKind(rawValue: s) else { throw bad("index_topk_pattern has \"\(s)\", expected \"full\" or \"shared\"") }
        return k
      }
    }
    func int(_ key: String, _ d: Int) throws(GLM5Error) -> Int {
      guard let v = json[key], !v.isNull else { return d }
      guard let i = v.int else { throw bad("\"\(key)\" is \(v.kind), expected an integer") }
      return i
    }
    let freq = max(try int("index_topk_freq", 1), 1)
    let offset = try int("index_skip_topk_offset", 2)
    return (0..<max(0, layers)).map { i in max(i - offset + 1, 0) % freq == 0 ? .full : .shared }
  }
}
