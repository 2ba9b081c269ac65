// The multi-token-prediction (MTP) module, stored as layer num_hidden_layers
// (glm5-architecture.md §6; DeepSeek-V3 §2.2, as vLLM and SGLang run it). A draft row for
// position i reads the token that follows i and a hidden state for i:
//   e = embed_tokens[t_{i+1}]                              [H]   (the main table unless the layer has its own)
//   z = eh_proj([RMSNorm(e; enorm) | RMSNorm(h_i; hnorm)]) [H]   embedding first, hidden second
//   z = DecoderBlock(z) at RoPE position i                 [H]   its own MLA, indexer, experts and cache
//   g = RMSNorm(z; shared_head.norm)                       [H]
//   logits(t_{i+2}) = g · lm_headᵀ                         [V]   (shared_head.head when present)
// h_i is the main model's final-normed hidden state at i for the first draft step, and the
// previous step's g for further steps. The block's cache entries live in the session cache as
// its layer num_hidden_layers; an entry at i is valid while it was computed from the main
// model's h_i (LatentKVCache.mtpCount), and entries past that are rewritten before they are read.

import GLM5Core
import GLM5Kernels

struct MTPLayer {
  let enorm: [Float], hnorm: [Float], sharedHeadNorm: [Float]
  let ehProj: Linear
  let block: Transformer.DecoderLayer
  /// The block's layer index (num_hidden_layers): its entries in the session caches.
  let layerIndex: Int
  let embedTokens: TensorView?
  let sharedHead: Linear?

  init(_ w: MTPWeights, config c: ModelConfig) {
    enorm = w.enorm.floats()
    hnorm = w.hnorm.floats()
    sharedHeadNorm = w.sharedHeadNorm.floats()
    ehProj = w.ehProj
    layerIndex = w.layerIndex
    var dense: SwiGLUWeights? = nil
    var moe: MoE? = nil
    switch w.block.mlp {
    case .dense(let d): dense = d
    case .moe(let m): moe = MoE(m, layer: w.layerIndex, config: c)
    }
    block = Transformer.DecoderLayer(inputNorm: w.block.inputNorm.floats(), postNorm: w.block.postAttentionNorm.floats(),
                                     attention: MLA(w.block.attention, config: c), dense: dense, moe: moe)
    embedTokens = w.embedTokens
    sharedHead = w.sharedHead
  }
}

/// One session's part of an MTP step: rows at positions start..<start+n of its cache's MTP layer.
public struct DraftSegment {
  public let cache: LatentKVCache
  /// Position of the first row.
  public let start: Int
  /// For each row i, the token that follows position start+i (t_{i+1}).
  public let tokens: ArraySlice<Int32>
  /// Where to record the block's selections and routes (a Transformer.draftRecord, reserved for
  /// the positions), or nil.
  public let record: RoutingRecord?

  public init(cache: LatentKVCache, start: Int, tokens: ArraySlice<Int32>, record: RoutingRecord? = nil) {
    self.cache = cache
    self.start = start
    self.tokens = tokens
    self.record = record
  }
}

extension Transformer {
  /// Whether the checkpoint has an MTP layer that can draft.
  public var hasMTP: Bool { mtp != nil }

  /// A record for DraftSegment.record: the layout of RoutingRecord for num_hidden_layers + 1
  /// layers, the MTP block being the last layer and the last MoE layer.
  public func draftRecord(maxBytes: Int = RoutingRecord.defaultMaxBytes) throws(GLM5Error) -> RoutingRecord {
    var c = config
    c.numHiddenLayers += 1
    c.mlpLayerTypes.append(mtp?.block.moe == nil ? .dense : .sparse)
    c.indexerTypes.append(.full)
    return try RoutingRecord(config: c, maxBytes: maxBytes)
  }

  /// The plan of an MTP step over these segments (its scratch is `scratchBytes(plan)`).
  public static func plan(_ segments: [DraftSegment]) -> StepPlan {
    var rows = 0, keys = 1
    for s in segments { rows += s.tokens.count; keys = max(keys, s.start + s.tokens.count) }
    return StepPlan(rows: rows, maxKeys: keys)
  }

  /// One MTP step (the formulas above) over every segment's rows, in segment order.
  ///   hidden [R, H]  h_i of every row (final-normed main rows, or the previous step's output)
  ///   out    [R, H]  g of every row (may not alias hidden); logits(hidden: out) gives the drafts
  /// Writes the MTP layer's cache entries at the rows' positions; no count changes (the caller
  /// keeps LatentKVCache.mtpCount). `arena` must hold scratchBytes(plan), each cache must have
  /// the MTP layer and room for the positions (both checked). Nothing here allocates.
  public func draft(_ segments: [DraftSegment], hidden: UnsafePointer<Float>, out: UnsafeMutablePointer<Float>,
                    arena: ScratchArena, pool: ThreadPool) throws(GLM5Error) {
    guard let m = mtp else { throw .invalidArgument("the model has no MTP layer (model.layers.\(config.numHiddenLayers).*)") }
    let c = config
    let h = c.hiddenSize
    let plan = Transformer.plan(segments)
    let R = plan.rows
    guard R > 0 else { return }
    let w = widths
    guard arena.capacity >= StepBuffers.bytes(plan, w) else { throw .internal("draft: the step arena was not reserved") }
    for s in segments {
      guard s.cache.layers.count > m.layerIndex else { throw .internal("draft: the cache keeps no MTP entries") }
      guard s.start >= 0, s.cache.capacity >= s.start + s.tokens.count else { throw .internal("draft: a cache was not reserved") }
      if let rec = s.record, rec.capacity < s.start + s.tokens.count || rec.layers != m.layerIndex + 1 {
        throw .internal("draft: the record was not reserved, or is not a draftRecord")
      }
      for (i, id) in s.tokens.enumerated() where id < 0 || Int(id) >= c.vocabSize {
        throw .invalidArgument("token id \(id) at index \(i) is outside [0, \(c.vocabSize))")
      }
    }
    var cv = Carver(arena: arena)
    let b = StepBuffers(plan, w, &cv)
    var forward: [ForwardSegment] = []
    forward.reserveCapacity(segments.count)
    for s in segments { forward.append(ForwardSegment(cache: s.cache, tokens: s.tokens, start: s.start, record: s.record)) }
    placeRows(forward, b)
    let ctx = ForwardContext(config: c, pool: pool, segments: forward, buf: b, recording: segments.contains { $0.record != nil },
                             replaying: false, profile: profile)

    // cat [R, 2H] = [RMSNorm(e; enorm) | RMSNorm(h; hnorm)], then z = eh_proj(cat) into x.
    let eps = Float(c.rmsNormEps)
    let table = m.embedTokens ?? weights.embedTokens
    let embed = WeightMatrix(dtype: table.dtype, data: table.data!, rows: c.vocabSize, cols: h)
    var r = 0
    for s in segments {
      for id in s.tokens { embed.copyRow(Int(id), to: b.d + r * h); r += 1 }
    }
    m.enorm.withUnsafeBufferPointer { en in
      m.hnorm.withUnsafeBufferPointer { hn in
        for t in 0..<R {
          Kernels.rmsNorm(b.cat + t * 2 * h, b.d + t * h, en.baseAddress!, h, eps: eps)
          Kernels.rmsNorm(b.cat + t * 2 * h + h, hidden + t * h, hn.baseAddress!, h, eps: eps)
        }
      }
    }
    Kernels.linear(b.x, ldy: h, b.cat, ldx: 2 * h, tokens: R, m.ehProj.kernel, pool: pool)
    var haveSelections = false
    try run(m.block, index: m.layerIndex, x: b.x, haveSelections: &haveSelections, ctx: ctx)
    m.sharedHeadNorm.withUnsafeBufferPointer { nw in
      for t in 0..<R { Kernels.rmsNorm(out + t * h, b.x + t * h, nw.baseAddress!, h, eps: eps) }
    }
    for s in segments { if let rec = s.record { rec.count = max(rec.count, s.start + s.tokens.count) } }
  }

  /// Draft logits [rows, V] = g [rows, H] · headᵀ (the MTP layer's shared_head.head when the
  /// checkpoint has one, else lm_head).
  public func draftLogits(hidden: UnsafePointer<Float>, rows: Int, into out: UnsafeMutablePointer<Float>, pool: ThreadPool) {
    guard let head = mtp?.sharedHead else { return logits(hidden: hidden, rows: rows, into: out, pool: pool) }
    Kernels.linear(out, ldy: config.vocabSize, hidden, ldx: config.hiddenSize, tokens: rows, head.kernel, pool: pool)
  }
}
