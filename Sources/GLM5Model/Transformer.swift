// GLM-5 top to bottom (transformers `GlmMoeDsaForCausalLM`, DeepSeek `Transformer`):
//   x = embed_tokens[ids]                                  [T, H]
//   for each layer:  x += MLA(RMSNorm(x));  x += MLP_or_MoE(RMSNorm(x))
//   h = RMSNorm(x; model.norm)                             [T, H]   (kept per session for logits)
//   logits = h · lm_headᵀ                                  [T, V]   only for the rows asked for
// Eps: rms_norm_eps for the layer and final norms; 1e-6 inside MLA and for the indexer k_norm.

import GLM5Core
import GLM5Kernels

/// What a forward pass may record: DSA selections, MoE routes, attended key counts. Tests compare
/// them with the reference; later, RL hosts record and replay them.
public final class ForwardRecorder: @unchecked Sendable {
  /// [layer][position] → ascending key indices.
  public var selections: [Int: [Int: [Int32]]] = [:]
  /// [layer][position] → ascending expert ids and their weights.
  public var routes: [Int: [Int: (experts: [Int32], weights: [Float])]] = [:]
  /// [layer][position] → keys the attention actually read.
  public var attended: [Int: [Int: Int]] = [:]

  public init() {}

  func recordSelections(layer: Int, start: Int, _ s: [[Int32]]) {
    for (t, v) in s.enumerated() { selections[layer, default: [:]][start + t] = v }
  }
  func recordRoutes(layer: Int, start: Int, _ ids: [[Int32]], _ w: [[Float]]) {
    for t in ids.indices { routes[layer, default: [:]][start + t] = (ids[t], w[t]) }
  }
  func recordAttended(layer: Int, start: Int, _ n: [Int]) {
    for (t, v) in n.enumerated() { attended[layer, default: [:]][start + t] = v }
  }
}

/// Per-call state shared by the layers.
struct ForwardContext {
  let config: ModelConfig
  let pool: ThreadPool
  let recorder: ForwardRecorder?

  /// Queries are split into this many fixed chunks (independent of the thread count).
  func chunks(_ T: Int) -> Int { min(T, 64) }

  /// Run body(t, chunk) for t in 0..<T; chunk < chunks(T) identifies the scratch a worker may use.
  func parallelQueries(_ T: Int, _ body: (Int, Int) -> Void) {
    let n = chunks(T)
    pool.parallelFor(n) { c in
      var t = c
      while t < T { body(t, c); t += n }
    }
  }
}

public final class Transformer: @unchecked Sendable {
  public let config: ModelConfig
  public let weights: ModelWeights
  let rope: RoPE
  let layers: [DecoderLayer]
  let finalNorm: [Float]

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
    layers = weights.layers.map { lw in
      var dense: SwiGLUWeights? = nil
      var moe: MoE? = nil
      switch lw.mlp {
      case .dense(let d): dense = d
      case .moe(let m): moe = MoE(m, config: c)
      }
      return DecoderLayer(inputNorm: lw.inputNorm.floats(), postNorm: lw.postAttentionNorm.floats(),
                          attention: MLA(lw.attention, config: c), dense: dense, moe: moe)
    }
    finalNorm = weights.norm.floats()
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
    return 4 * n
  }

  /// Which layers keep indexer keys (for sizing a cache).
  public var layersWithIndexer: [Bool] { layers.map { $0.attention.indexer != nil } }

  /// Run T new tokens at positions cache.count ..< cache.count + T, append their cache entries,
  /// and write the final-normed hidden states into `hidden` [T, H]. On error the cache's count is
  /// unchanged (entries past it may have been written; they are not valid).
  public func forward(tokens: [Int32], cache: LatentKVCache, hidden: UnsafeMutablePointer<Float>,
                      pool: ThreadPool, recorder: ForwardRecorder? = nil) throws(GLM5Error) {
    let c = config
    let T = tokens.count
    let h = c.hiddenSize
    let start = cache.count
    guard T > 0 else { return }
    try cache.reserve(start + T)
    let ctx = ForwardContext(config: c, pool: pool, recorder: recorder)
    let rt = try RopeTables(rope: rope, start: start, tokens: T)

    // MARK: - Embedding
    let x = try FloatBuffer(count: T * h, what: "residual stream")
    let embed = WeightMatrix(dtype: weights.embedTokens.dtype, data: weights.embedTokens.data!, rows: c.vocabSize, cols: h)
    for t in 0..<T {
      let id = Int(tokens[t])
      guard id >= 0 && id < c.vocabSize else { throw .invalidArgument("token id \(id) at index \(t) is outside [0, \(c.vocabSize))") }
      embed.copyRow(id, to: x.pointer + t * h)
    }

    // MARK: - Decoder layers
    let a = try FloatBuffer(count: T * h, what: "normed hidden")
    let d = try FloatBuffer(count: T * h, what: "layer output")
    var shared: [[Int32]] = []
    let eps = Float(c.rmsNormEps)
    for (l, layer) in layers.enumerated() {
      layer.inputNorm.withUnsafeBufferPointer { w in
        for t in 0..<T { Kernels.rmsNorm(a.pointer + t * h, x.pointer + t * h, w.baseAddress!, h, eps: eps) }
      }
      try layer.attention.forward(layer: l, a: a.pointer, out: d.pointer, tokens: T, start: start, rope: rt,
                                  cache: cache.layers[l], shared: &shared, ctx: ctx)
      for i in 0..<(T * h) { x[i] += d[i] }
      layer.postNorm.withUnsafeBufferPointer { w in
        for t in 0..<T { Kernels.rmsNorm(a.pointer + t * h, x.pointer + t * h, w.baseAddress!, h, eps: eps) }
      }
      if let moe = layer.moe {
        try moe.forward(layer: l, x: a.pointer, y: d.pointer, tokens: T, start: start, ctx: ctx)
      } else if let dense = layer.dense {
        try swiGLU(dense, x: a.pointer, ldx: h, y: d.pointer, ldy: h, tokens: T, pool: pool)
      }
      for i in 0..<(T * h) { x[i] += d[i] }
    }

    // MARK: - Final norm
    finalNorm.withUnsafeBufferPointer { w in
      for t in 0..<T { Kernels.rmsNorm(hidden + t * h, x.pointer + t * h, w.baseAddress!, h, eps: eps) }
    }
    cache.count = start + T
  }

  /// logits [rows, V] = hidden [rows, H] · lm_headᵀ
  public func logits(hidden: UnsafePointer<Float>, rows: Int, into out: UnsafeMutablePointer<Float>, pool: ThreadPool) {
    Kernels.linear(out, ldy: config.vocabSize, hidden, ldx: config.hiddenSize, tokens: rows, weights.lmHead.kernel, pool: pool)
  }
}
