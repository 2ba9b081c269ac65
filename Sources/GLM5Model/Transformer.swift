// GLM-5 top to bottom (transformers `GlmMoeDsaForCausalLM`, DeepSeek `Transformer`):
//   x = embed_tokens[ids]                                  [T, H]
//   for each layer:  x += MLA(RMSNorm(x));  x += MLP_or_MoE(RMSNorm(x))
//   h = RMSNorm(x; model.norm)                             [T, H]   (kept per session for logits)
//   logits = h · lm_headᵀ                                  [T, V]   only for the rows asked for
// Eps: rms_norm_eps for the layer and final norms; 1e-6 inside MLA and for the indexer k_norm.

import GLM5Core
import GLM5Kernels

/// Per-step state shared by the layers.
struct ForwardContext {
  let config: ModelConfig
  let pool: ThreadPool
  let segments: [ForwardSegment]
  let buf: StepBuffers
  /// Whether any segment records or replays (so that both cost nothing when off).
  let recording: Bool
  let replaying: Bool
  /// Bench-only phase timing (nil: one nil check per phase).
  let profile: PhaseProfile?

  /// Start of a profiled phase (0 when not profiling).
  @inline(__always) func phaseStart() -> UInt64 { profile == nil ? 0 : PhaseProfile.now() }

  var rows: Int { buf.plan.rows }
  func segment(_ r: Int) -> ForwardSegment { segments[Int(buf.rowSegment[r])] }
  func position(_ r: Int) -> Int { buf.rowPosition[r] }

  /// Run body(r, chunk) for every row r; chunk < plan.chunks identifies the scratch a worker may
  /// use. The split is fixed by the row count, never by the thread count.
  func parallelRows(_ body: (Int, Int) -> Void) {
    let R = rows
    let n = buf.plan.chunks
    pool.parallelFor(n) { c in
      var r = c
      while r < R { body(r, c); r += n }
    }
  }
}

public final class Transformer: @unchecked Sendable {
  public let config: ModelConfig
  public let weights: ModelWeights
  let rope: RoPE
  let layers: [DecoderLayer]
  let finalNorm: [Float]
  /// The multi-token-prediction module (MultiTokenPrediction.swift): the first MTP layer of the
  /// checkpoint, nil when it has none.
  let mtp: MTPLayer?
  /// Bench-only: when set, forward and logits add the time of their phases to it
  /// (PhaseProfile.swift). One step at a time.
  @_spi(Bench) public var profile: PhaseProfile? = nil

  struct DecoderLayer {
    let inputNorm: [Float], postNorm: [Float]
    let attention: MLA
    let dense: SwiGLUWeights?
    let moe: MoE?
  }

  public init(checkpoint: Checkpoint) {
    config = checkpoint.config
    weights = checkpoint.weights
    rope = RoPE(config: config)
    let c = config
    layers = weights.layers.enumerated().map { l, lw in
      var dense: SwiGLUWeights? = nil
      var moe: MoE? = nil
      switch lw.mlp {
      case .dense(let d): dense = d
      case .moe(let m): moe = MoE(m, layer: l, config: c)
      }
      return DecoderLayer(inputNorm: lw.inputNorm.floats(), postNorm: lw.postAttentionNorm.floats(),
                          attention: MLA(lw.attention, config: c), dense: dense, moe: moe)
    }
    finalNorm = weights.norm.floats()
    mtp = weights.mtp.first.map { MTPLayer($0, config: c) }
  }

  /// Bytes of weight data copied at load (fp32 norm vectors, biases): what the model holds
  /// beyond the mapped files.
  public var ownedBytes: Int {
    var n = finalNorm.count
    for l in layers {
      n += l.inputNorm.count + l.postNorm.count + l.attention.qANorm.count + l.attention.kvANorm.count
      if let i = l.attention.indexer { n += i.kNormW.count + i.kNormB.count }
      if let m = l.moe { n += m.router.bias.count }
    }
    if let m = mtp {
      let b = m.block
      n += m.enorm.count + m.hnorm.count + m.sharedHeadNorm.count + b.inputNorm.count + b.postNorm.count
      n += b.attention.qANorm.count + b.attention.kvANorm.count
      if let i = b.attention.indexer { n += i.kNormW.count + i.kNormB.count }
      if let r = b.moe { n += r.router.bias.count }
    }
    return 4 * n
  }

  /// Which layers keep indexer keys (for sizing a cache).
  public var layersWithIndexer: [Bool] { layers.map { $0.attention.indexer != nil } }

  /// The same for a cache that also keeps the MTP block's entries (layer num_hidden_layers).
  public func cacheLayers(mtp withMTP: Bool) -> [Bool] {
    guard withMTP, let m = mtp else { return layersWithIndexer }
    return layersWithIndexer + [m.block.attention.indexer != nil]
  }

  /// Widths the step scratch is carved with.
  public var widths: ModelWidths { ModelWidths(config, layers: layers + (mtp.map { [$0.block] } ?? []), mtp: mtp != nil) }

  /// Bytes of scratch a step of this plan needs (reserve them in an arena before `forward`).
  public func scratchBytes(_ plan: StepPlan) -> Int { StepBuffers.bytes(plan, widths) }

  /// The plan of a step over these segments.
  public static func plan(_ segments: [ForwardSegment]) -> StepPlan {
    var rows = 0, keys = 1
    for s in segments { rows += s.tokens.count; keys = max(keys, s.start + s.tokens.count) }
    return StepPlan(rows: rows, maxKeys: keys)
  }

  /// One step (ForwardStep.swift): run every segment's tokens at positions start..<start+T of its
  /// cache, append their cache entries, and write the final-normed hidden states of all rows, in
  /// segment order, into `hidden` [R, H]. `arena` must hold scratchBytes(plan) (checked), and
  /// each cache must have room (LatentKVCache.reserve). The segments' caches must be distinct.
  /// On error no cache's count changes (entries past it may have been written; they are not
  /// valid). Nothing here allocates (records are reserved by the caller, as caches are).
  public func forward(_ segments: [ForwardSegment], hidden: UnsafeMutablePointer<Float>, arena: ScratchArena,
                      pool: ThreadPool) throws(GLM5Error) {
    let c = config
    let h = c.hiddenSize
    let plan = Transformer.plan(segments)
    let R = plan.rows
    guard R > 0 else { return }
    let w = widths
    guard arena.capacity >= StepBuffers.bytes(plan, w) else { throw .internal("forward: the step arena was not reserved") }
    for s in segments {
      guard s.cache.capacity >= s.start + s.tokens.count else { throw .internal("forward: a cache was not reserved") }
      if let rec = s.record, rec.capacity < s.start + s.tokens.count { throw .internal("forward: a record was not reserved") }
      for (i, id) in s.tokens.enumerated() where id < 0 || Int(id) >= c.vocabSize {
        throw .invalidArgument("token id \(id) at index \(i) is outside [0, \(c.vocabSize))")
      }
    }
    var cv = Carver(arena: arena)
    let b = StepBuffers(plan, w, &cv)
    placeRows(segments, b)
    let ctx = ForwardContext(config: c, pool: pool, segments: segments, buf: b,
                             recording: segments.contains { $0.record != nil }, replaying: segments.contains { $0.replay != nil },
                             profile: profile)

    // MARK: - Embedding
    let x = b.x
    let embed = WeightMatrix(dtype: weights.embedTokens.dtype, data: weights.embedTokens.data!, rows: c.vocabSize, cols: h)
    var r = 0
    for s in segments {
      for id in s.tokens { embed.copyRow(Int(id), to: x + r * h); r += 1 }
    }

    // MARK: - Decoder layers
    var haveSelections = false
    for (l, layer) in layers.enumerated() {
      try run(layer, index: l, x: b.x, haveSelections: &haveSelections, ctx: ctx)
    }

    // MARK: - Final norm
    let eps = Float(c.rmsNormEps)
    finalNorm.withUnsafeBufferPointer { nw in
      for t in 0..<R { Kernels.rmsNorm(hidden + t * h, x + t * h, nw.baseAddress!, h, eps: eps) }
    }
    for s in segments {
      s.cache.count = s.start + s.tokens.count
      s.record?.count = s.start + s.tokens.count
    }
  }

  /// Row r of a step is (segment, position): fill the step's row tables and each row's RoPE.
  func placeRows(_ segments: [ForwardSegment], _ b: StepBuffers) {
    let pairs = widths.ropePairs
    var r = 0
    for (si, s) in segments.enumerated() {
      for i in 0..<s.tokens.count {
        b.rowSegment[r] = Int32(si)
        b.rowPosition[r] = s.start + i
        rope.table(position: s.start + i, cos: b.ropeCos + r * pairs, sin: b.ropeSin + r * pairs)
        r += 1
      }
    }
  }

  /// One decoder layer over the step's rows: x += MLA(RMSNorm(x)); x += MLP_or_MoE(RMSNorm(x)).
  /// `l` indexes the caches' layers (the main stack, then the MTP block's).   x [R, H]
  func run(_ layer: DecoderLayer, index l: Int, x: UnsafeMutablePointer<Float>, haveSelections: inout Bool,
           ctx: ForwardContext) throws(GLM5Error) {
    let h = config.hiddenSize
    let R = ctx.rows
    let b = ctx.buf
    let a = b.a, d = b.d
    let eps = Float(config.rmsNormEps)
    layer.inputNorm.withUnsafeBufferPointer { nw in
      for t in 0..<R { Kernels.rmsNorm(a + t * h, x + t * h, nw.baseAddress!, h, eps: eps) }
    }
    try layer.attention.forward(layer: l, a: a, out: d, haveSelections: &haveSelections, ctx: ctx)
    for i in 0..<(R * h) { x[i] += d[i] }
    layer.postNorm.withUnsafeBufferPointer { nw in
      for t in 0..<R { Kernels.rmsNorm(a + t * h, x + t * h, nw.baseAddress!, h, eps: eps) }
    }
    if let moe = layer.moe {
      moe.forward(layer: l, x: a, y: d, ctx: ctx)
    } else if let dense = layer.dense {
      var t = ctx.phaseStart()
      swiGLU(dense, x: a, ldx: h, y: d, ldy: h, tokens: R, gate: b.dg, up: b.du, pool: ctx.pool)
      profile?.lap(.denseMLP, &t)
    }
    for i in 0..<(R * h) { x[i] += d[i] }
  }

  /// One segment from an empty-or-not cache, with its own arena (tests and simple callers).
  public func forward(tokens: [Int32], cache: LatentKVCache, hidden: UnsafeMutablePointer<Float>,
                      pool: ThreadPool, record: RoutingRecord? = nil) throws(GLM5Error) {
    guard !tokens.isEmpty else { return }
    try cache.reserve(cache.count + tokens.count)
    try record?.reserve(cache.count + tokens.count)
    let seg = ForwardSegment(cache: cache, tokens: tokens[...], record: record)
    let arena = ScratchArena()
    try arena.reserve(scratchBytes(Transformer.plan([seg])), what: "forward scratch")
    try forward([seg], hidden: hidden, arena: arena, pool: pool)
  }

  /// logits [rows, V] = hidden [rows, H] · lm_headᵀ
  public func logits(hidden: UnsafePointer<Float>, rows: Int, into out: UnsafeMutablePointer<Float>, pool: ThreadPool) {
    var t = profile == nil ? 0 : PhaseProfile.now()
    Kernels.linear(out, ldy: config.vocabSize, hidden, ldx: config.hiddenSize, tokens: rows, weights.lmHead.kernel, pool: pool)
    profile?.lap(.lmHead, &t)
  }
}
