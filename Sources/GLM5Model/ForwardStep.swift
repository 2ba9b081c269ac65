// One forward step over many rows of (session, position): the unit every caller runs, whether it
// is one session's prefill, one decode token, or a batch of sessions each advancing by a chunk.
//
//   segments  s = 0..<S, each a session's cache and the tokens appended to it this step
//   rows      r = 0..<R, the segments' tokens one after another; row r is (segment, position)
//
// Linear layers and experts see all R rows at once (the weights are read once per step); each
// query attends to its own segment's cache only. Every row is computed with row-invariant
// kernels, so a row's result is bitwise the same whatever else is in the step.
//
// The step's scratch (StepBuffers) is carved from a ScratchArena sized before the step starts
// (StepPlan.bytes): no allocation per layer or per token, and out-of-memory is detected before
// any cache changes.

import GLM5Core
import GLM5Kernels

/// A session's part of a step.
public struct ForwardSegment {
  public let cache: LatentKVCache
  /// A slice of the caller's ids (no copy per step).
  public let tokens: ArraySlice<Int32>
  /// Where to record the step's selections and routes (rows at the tokens' positions; reserved
  /// by the caller), or nil.
  public let record: RoutingRecord?
  /// Selections and routes to use instead of computing them, from this segment's first token
  /// (checked by the caller with RoutingReplay.validate), or nil.
  public let replay: RoutingReplay?
  /// Absolute position of the first token (the cache's count when the step starts).
  public let start: Int

  public init(cache: LatentKVCache, tokens: ArraySlice<Int32>, record: RoutingRecord? = nil, replay: RoutingReplay? = nil) {
    self.cache = cache
    self.tokens = tokens
    self.record = record
    self.replay = replay.flatMap { $0.isEmpty ? nil : $0 }
    start = cache.count
  }

  /// A segment at an explicit position, replaying nothing (the MTP block's rows, which lag the
  /// main cache's count).
  init(cache: LatentKVCache, tokens: ArraySlice<Int32>, start: Int, record: RoutingRecord?) {
    self.cache = cache
    self.tokens = tokens
    self.record = record
    replay = nil
    self.start = start
  }
}

/// The sizes a step's scratch depends on.
public struct StepPlan: Equatable, Sendable {
  /// Rows in the step (Σ tokens of the segments).
  public var rows: Int
  /// Most keys any row can see (max position + 1).
  public var maxKeys: Int

  public init(rows: Int, maxKeys: Int) {
    self.rows = rows
    self.maxKeys = maxKeys
  }

  /// Query chunks for attention and indexer scoring (fixed, independent of the thread count).
  public var chunks: Int { min(rows, 64) }
}

/// Widths the scratch needs, read once from the model.
public struct ModelWidths: Sendable {
  let hidden: Int, rq: Int, rkv: Int, dr: Int, nh: Int, dqk: Int, dv: Int
  let ih: Int, id: Int, topK: Int
  let experts: Int, perToken: Int, groups: Int
  let denseWidth: Int, expertWidth: Int, sharedWidth: Int
  let ropePairs: Int
  /// Whether the MTP block runs (its eh_proj input needs [R, 2H]).
  let mtp: Bool

  init(_ c: ModelConfig, layers: [Transformer.DecoderLayer], mtp: Bool) {
    self.mtp = mtp
    hidden = c.hiddenSize; rq = c.qLoraRank; rkv = c.kvLoraRank; dr = c.qkRopeHeadDim
    nh = c.numAttentionHeads; dqk = c.qkNopeHeadDim + c.qkRopeHeadDim; dv = c.vHeadDim
    ih = c.indexNHeads; id = c.indexHeadDim; topK = c.indexTopK
    var e = 0, k = 0, g = 1, dw = 0, ew = 0, sw = 0
    for l in layers {
      if let d = l.dense { dw = max(dw, d.gate.outFeatures) }
      if let m = l.moe {
        e = max(e, m.router.experts); k = max(k, m.router.perToken); g = max(g, m.router.groups)
        for x in m.weights.experts { ew = max(ew, x.gate.outFeatures) }
        if let s = m.weights.shared { sw = max(sw, s.gate.outFeatures) }
      }
    }
    experts = e; perToken = k; groups = g
    denseWidth = dw; expertWidth = ew; sharedWidth = sw
    ropePairs = c.qkRopeHeadDim / 2
  }
}

/// Every buffer a step uses, carved from one arena. Shapes in the field comments (R rows,
/// C query chunks, S = min(index_topk, maxKeys) selected keys at most).
struct StepBuffers {
  let plan: StepPlan
  // rows
  let rowSegment: UnsafeMutablePointer<Int32>   // [R]
  let rowPosition: UnsafeMutablePointer<Int>    // [R]
  let ropeCos: UnsafeMutablePointer<Float>      // [R, Dr/2]
  let ropeSin: UnsafeMutablePointer<Float>      // [R, Dr/2]
  // residual stream
  let x: UnsafeMutablePointer<Float>            // [R, H]
  let a: UnsafeMutablePointer<Float>            // [R, H]
  let d: UnsafeMutablePointer<Float>            // [R, H]
  let cat: UnsafeMutablePointer<Float>          // [R, 2H] the MTP's [enorm(e) | hnorm(h)] (0 rows without MTP)
  // MLA
  let qLat: UnsafeMutablePointer<Float>         // [R, Rq]
  let q: UnsafeMutablePointer<Float>            // [R, Nh, Dn+Dr]
  let ckv: UnsafeMutablePointer<Float>          // [R, Rkv+Dr]
  let qAbsorbed: UnsafeMutablePointer<Float>    // [R, Nh, Rkv]
  let oLatent: UnsafeMutablePointer<Float>      // [R, Nh, Rkv]
  let oHeads: UnsafeMutablePointer<Float>       // [R, Nh, Dv]
  let probs: UnsafeMutablePointer<Float>        // [64, mlaHeadsPerItem, S] one block of heads per worker
  let qPacked: UnsafeMutablePointer<Float>      // [R, Rkv+Dr, Nh] (few rows) or [64, Rkv+Dr, ≤ mlaHeadsPerItem] (one per worker)
  let maxSelected: Int                          // S
  // DSA selections (kept across layers for "shared" indexer layers)
  let selected: UnsafeMutablePointer<Int32>     // [R, S] ascending key positions
  let selectedCount: UnsafeMutablePointer<Int32> // [R]
  // indexer
  let iq: UnsafeMutablePointer<Float>           // [R, Hi, Di]
  let ik: UnsafeMutablePointer<Float>           // [R, Di]
  let iw: UnsafeMutablePointer<Float>           // [R, Hi]
  let scores: UnsafeMutablePointer<Float>       // [C, maxKeys]
  // MoE
  let routerLogits: UnsafeMutablePointer<Float> // [R, E]
  let routeIds: UnsafeMutablePointer<Int32>     // [R, k] ascending expert ids
  let routeWeights: UnsafeMutablePointer<Float> // [R, k]
  let routeSlot: UnsafeMutablePointer<Int32>    // [R, k] index of (row, slot) in the packed expert rows
  let routerScratch: UnsafeMutablePointer<Float> // [2E + G]
  let routerHeap: UnsafeMutablePointer<Int32>   // [E]
  let expertCount: UnsafeMutablePointer<Int32>  // [E]
  let expertOffset: UnsafeMutablePointer<Int32> // [E]
  let usedExperts: UnsafeMutablePointer<Int32>  // [E]
  let packedRow: UnsafeMutablePointer<Int32>    // [R * k] row of each packed expert row
  let xe: UnsafeMutablePointer<Float>           // [R * k, H]
  let ye: UnsafeMutablePointer<Float>           // [R * k, H]
  let eg: UnsafeMutablePointer<Float>           // [R * k, We]
  let eu: UnsafeMutablePointer<Float>           // [R * k, We]
  let sharedOut: UnsafeMutablePointer<Float>    // [R, H]
  let sg: UnsafeMutablePointer<Float>           // [R, Ws]
  let su: UnsafeMutablePointer<Float>           // [R, Ws]
  // dense MLP
  let dg: UnsafeMutablePointer<Float>           // [R, Wd]
  let du: UnsafeMutablePointer<Float>           // [R, Wd]

  init(_ p: StepPlan, _ w: ModelWidths, _ cv: inout Carver) {
    plan = p
    let R = p.rows, C = p.chunks
    let S = max(1, min(w.topK, p.maxKeys))
    maxSelected = S
    rowSegment = cv.ints(R)
    rowPosition = cv.take(R, Int.self)
    ropeCos = cv.floats(R * w.ropePairs)
    ropeSin = cv.floats(R * w.ropePairs)
    x = cv.floats(R * w.hidden); a = cv.floats(R * w.hidden); d = cv.floats(R * w.hidden)
    cat = cv.floats(w.mtp ? R * 2 * w.hidden : 0)
    qLat = cv.floats(R * w.rq)
    q = cv.floats(R * w.nh * w.dqk)
    ckv = cv.floats(R * (w.rkv + w.dr))
    qAbsorbed = cv.floats(R * w.nh * w.rkv)
    oLatent = cv.floats(R * w.nh * w.rkv)
    oHeads = cv.floats(R * w.nh * w.dv)
    probs = cv.floats(min(64, R * ((w.nh + MLA.headsPerItem - 1) / MLA.headsPerItem)) * MLA.headsPerItem * S)
    // Few rows (R · hb ≤ 64 blocks of heads): R · Nh ≤ that many blocks' heads; many: 64 workers' blocks.
    qPacked = cv.floats(min(64, R * ((w.nh + MLA.headsPerItem - 1) / MLA.headsPerItem)) * MLA.headsPerItem * (w.rkv + w.dr))
    selected = cv.ints(R * S)
    selectedCount = cv.ints(R)
    iq = cv.floats(R * w.ih * w.id)
    ik = cv.floats(R * w.id)
    iw = cv.floats(R * w.ih)
    scores = cv.floats(C * p.maxKeys)
    let k = max(w.perToken, 1), e = max(w.experts, 1)
    routerLogits = cv.floats(R * e)
    routeIds = cv.ints(R * k)
    routeWeights = cv.floats(R * k)
    routeSlot = cv.ints(R * k)
    routerScratch = cv.floats(2 * e + w.groups)
    routerHeap = cv.ints(e)
    expertCount = cv.ints(e)
    expertOffset = cv.ints(e)
    usedExperts = cv.ints(e)
    packedRow = cv.ints(R * k)
    let moe = w.experts > 0
    xe = cv.floats(moe ? R * k * w.hidden : 0)
    ye = cv.floats(moe ? R * k * w.hidden : 0)
    eg = cv.floats(moe ? R * k * w.expertWidth : 0)
    eu = cv.floats(moe ? R * k * w.expertWidth : 0)
    sharedOut = cv.floats(w.sharedWidth > 0 ? R * w.hidden : 0)
    sg = cv.floats(R * w.sharedWidth)
    su = cv.floats(R * w.sharedWidth)
    dg = cv.floats(R * w.denseWidth)
    du = cv.floats(R * w.denseWidth)
  }

  static func bytes(_ p: StepPlan, _ w: ModelWidths) -> Int {
    var cv = Carver.measuring()
    _ = StepBuffers(p, w, &cv)
    return cv.used
  }

  @inline(__always) func cos(_ r: Int, _ pairs: Int) -> UnsafePointer<Float> { UnsafePointer(ropeCos + r * pairs) }
  @inline(__always) func sin(_ r: Int, _ pairs: Int) -> UnsafePointer<Float> { UnsafePointer(ropeSin + r * pairs) }
}
