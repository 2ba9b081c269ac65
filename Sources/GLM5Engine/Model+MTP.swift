// The MTP layer's draft step, teacher-forced over a whole sequence (a host checking or training
// against our drafts; the tests check it against the reference tool's MTP module).

import GLM5Core
import GLM5Model

extension Model {
  /// Rows of `mtpDraftLogits(_:into:)` for n ids.
  public static func mtpDraftRows(_ n: Int) -> Int { max(n - 1, 0) }

  /// The first draft step at every position but the last, teacher-forced: row i reads the main
  /// model's final-normed hidden state at i and ids[i+1] (RoPE position i) and predicts ids[i+2].
  /// Writes [n - 1, V] floats into `out`. From a fresh cache; nothing else changes. With
  /// `record` (from Transformer.draftRecord), the MTP block's selections and routes of the rows.
  public func mtpDraftLogits(_ ids: [Int32], into out: UnsafeMutablePointer<Float>, record: RoutingRecord? = nil) throws(GLM5Error) {
    let snapshot = weights
    let tr = snapshot.transformer
    let h = config.hiddenSize
    guard tr.hasMTP else {
      throw .invalidArgument("the model has no MTP layer (model.layers.\(config.numHiddenLayers).*) to draft with")
    }
    guard ids.count >= 2 else { throw .invalidArgument("draft logits need at least 2 tokens (n_tokens is \(ids.count))") }
    guard ids.count <= config.maxPositionEmbeddings else {
      throw .init(.contextFull, "\(ids.count) tokens exceed the model's maximum, max_position_embeddings = \(config.maxPositionEmbeddings)")
    }
    for (i, id) in ids.enumerated() where id < 0 || Int(id) >= config.vocabSize {
      throw .invalidArgument("token id \(id) at index \(i) is outside [0, \(config.vocabSize))")
    }
    let n = ids.count
    let cache = try LatentKVCache(config: config, hasIndexer: tr.cacheLayers(mtp: true), maxTokens: n)
    try cache.reserve(n)
    try record?.reserve(n)
    let hidden = try FloatBuffer(count: n * h, what: "hidden rows")
    let drafted = try FloatBuffer(count: (n - 1) * h, what: "MTP output rows")
    // The main model, then the MTP layer, in steps of at most maxStepRows rows (split-invariant).
    try withArena(bytes: tr.scratchBytes(StepPlan(rows: min(n, Model.maxStepRows), maxKeys: n))) { (arena) throws(GLM5Error) in
      var start = 0
      while start < n {
        let m = min(Model.maxStepRows, n - start)
        try tr.forward([ForwardSegment(cache: cache, tokens: ids[start..<(start + m)])], hidden: hidden.pointer + start * h, arena: arena, pool: pool)
        start += m
      }
      start = 0
      while start < n - 1 {
        let m = min(Model.maxStepRows, n - 1 - start)
        let seg = DraftSegment(cache: cache, start: start, tokens: ids[(start + 1)...(start + m)], record: record)
        try tr.draft([seg], hidden: hidden.pointer + start * h, out: drafted.pointer + start * h, arena: arena, pool: pool)
        start += m
      }
    }
    tr.draftLogits(hidden: drafted.pointer, rows: n - 1, into: out, pool: pool)
  }

  /// The same as an array [n - 1, V] (tests, small hosts).
  public func mtpDraftLogits(_ ids: [Int32]) throws(GLM5Error) -> [Float] {
    let buf = try FloatBuffer(count: max(ids.count - 1, 1) * config.vocabSize, what: "draft logits")
    try mtpDraftLogits(ids, into: buf.pointer)
    return Array(UnsafeBufferPointer(start: buf.pointer, count: Model.mtpDraftRows(ids.count) * config.vocabSize))
  }
}
