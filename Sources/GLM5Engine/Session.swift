// A session: one token sequence and its caches. Appending runs prefill (many tokens) or decode
// (one); the result never depends on how the tokens were split into calls, because every query
// is computed on its own with row-invariant kernels.
//
// Logprob semantics: for a token x_i at position i, log p(x_i | x_<i) under the model's raw
// distribution at temperature 1 (log-softmax of the unprocessed logits, log-sum-exp in Double).
// The first token of a session has none (NaN).

import GLM5Core
import GLM5Kernels
import GLM5Model

public final class Session: @unchecked Sendable {
  public enum LogitsMode: Int32, Sendable { case none = 0, last = 1, all = 2 }

  public let model: Model
  public let maxTokens: Int
  let cache: LatentKVCache
  public private(set) var tokens: [Int32] = []
  /// Final-normed hidden state of the last token [H]; nil when empty.
  var lastHidden: [Float]? = nil
  /// Logits kept by the last append: keptRows × vocab, row-major.
  public private(set) var kept: FloatBuffer? = nil
  public private(set) var keptRows: Int = 0
  /// A copy of the kept logits (tests, small hosts; the C API copies from `kept` directly).
  public var keptLogits: [Float] {
    guard let kept, keptRows > 0 else { return [] }
    return Array(UnsafeBufferPointer(start: kept.pointer, count: keptRows * vocab))
  }
  /// Optional recorder of DSA selections / routes / attended keys for every forward.
  public var recorder: ForwardRecorder? = nil

  /// - Parameter maxTokens: 0 means the model's max_position_embeddings.
  public init(model: Model, maxTokens: Int = 0) throws(GLM5Error) {
    let limit = model.config.maxPositionEmbeddings
    guard maxTokens >= 0 && maxTokens <= limit else {
      throw .invalidArgument("max_tokens is \(maxTokens), must be in [0, max_position_embeddings = \(limit)] (0 = the maximum)")
    }
    self.model = model
    self.maxTokens = maxTokens == 0 ? limit : maxTokens
    cache = try LatentKVCache(config: model.config, hasIndexer: model.transformer.layersWithIndexer, maxTokens: self.maxTokens)
  }

  public var count: Int { tokens.count }
  /// Bytes the session's caches hold now (they grow with use up to maxTokens).
  public var cacheBytes: Int { cache.capacity * cache.bytesPerToken }
  var vocab: Int { model.config.vocabSize }
  var hiddenSize: Int { model.config.hiddenSize }

  /// Check new tokens against the vocabulary and the session's room, before anything changes.
  func validate(_ ids: [Int32], extra: Int = 0) throws(GLM5Error) {
    for (i, id) in ids.enumerated() where id < 0 || Int(id) >= vocab {
      throw .invalidArgument("token id \(id) at index \(i) is outside [0, \(vocab))")
    }
    let need = count + ids.count + extra
    guard need <= maxTokens else {
      throw .init(.contextFull, "appending \(ids.count + extra) token(s) to \(count) exceeds the session's maximum of \(maxTokens)")
    }
  }

  /// Append tokens. Returns log p(token | previous tokens) for each appended token when asked
  /// (NaN for the first token of the session). Keeps logits per `logits`. On failure nothing
  /// changes: every buffer is allocated before the forward pass, the only step that touches the
  /// cache, and nothing after it can fail.
  @discardableResult
  public func append(_ ids: [Int32], logits mode: LogitsMode, logprobs wantLogprobs: Bool = false) throws(GLM5Error) -> [Float] {
    guard !ids.isEmpty else { throw .invalidArgument("no tokens to append (n_tokens is 0)") }
    try validate(ids)
    let T = ids.count, h = hiddenSize, V = vocab
    let start = count
    // Positions whose logits are needed: for logprobs, every position before an appended token
    // (the previous last token's included); for `mode`, the kept ones.
    let keepFirst = mode == .all ? start : start + T - 1
    let keepRows = mode == .none ? 0 : (mode == .all ? T : 1)
    let needFirst = wantLogprobs ? max(start - 1, 0) : keepFirst
    let needEnd = mode == .none ? start + T - 1 : start + T  // exclusive
    let hidden = try FloatBuffer(count: T * h, what: "hidden states")
    let kept = keepRows > 0 ? try FloatBuffer(count: keepRows * V, what: "kept logits") : nil
    let chunk = 32  // logits rows computed at a time, so scoring a long sequence needs little memory
    let rowsNeeded = max(0, needEnd - needFirst)
    let chunkRows = min(chunk, rowsNeeded)
    let hs = try FloatBuffer(count: chunkRows * h, what: "hidden rows")
    let lg = try FloatBuffer(count: chunkRows * V, what: "logits")
    var logprobs = [Float]()
    if wantLogprobs { logprobs = [Float](repeating: .nan, count: T) }
    let prev = lastHidden

    try model.transformer.forward(tokens: ids, cache: cache, hidden: hidden.pointer, pool: model.pool, recorder: recorder)

    var p0 = needFirst
    while p0 < needEnd {
      let n = min(chunkRows, needEnd - p0)
      for i in 0..<n {
        let p = p0 + i
        let dst = hs.pointer + i * h
        if p < start {
          prev?.withUnsafeBufferPointer { dst.update(from: $0.baseAddress!, count: h) }
        } else {
          dst.update(from: hidden.pointer + (p - start) * h, count: h)
        }
      }
      model.transformer.logits(hidden: hs.pointer, rows: n, into: lg.pointer, pool: model.pool)
      for i in 0..<n {
        let p = p0 + i
        let row = lg.pointer + i * V
        // logits at position p score the token at position p + 1
        if wantLogprobs && p + 1 >= start && p + 1 < start + T {
          logprobs[p + 1 - start] = Float(Double(row[Int(ids[p + 1 - start])]) - Kernels.logSumExp(row, V))
        }
        if let kept, p >= keepFirst && p < keepFirst + keepRows {
          (kept.pointer + (p - keepFirst) * V).update(from: row, count: V)
        }
      }
      p0 += n
    }
    self.kept = kept
    keptRows = keepRows
    tokens.append(contentsOf: ids)
    lastHidden = Array(UnsafeBufferPointer(start: hidden.pointer + (T - 1) * h, count: h))
    return logprobs
  }

  /// Greedy generation of n tokens: each step takes the most likely token (ties to the lower id),
  /// reports its logprob, and appends it. Needs at least one token in the session.
  public func generate(_ n: Int) throws(GLM5Error) -> (tokens: [Int32], logprobs: [Float]) {
    guard n >= 0 else { throw .invalidArgument("n is \(n), must be >= 0") }
    guard let _ = lastHidden else { throw .invalidArgument("generation needs at least one token in the session") }
    try validate([], extra: n)
    var out: [Int32] = [], lps: [Float] = []
    let logits = try FloatBuffer(count: vocab, what: "logits")
    for _ in 0..<n {
      guard let prev = lastHidden else { break }
      prev.withUnsafeBufferPointer { hb in
        model.transformer.logits(hidden: hb.baseAddress!, rows: 1, into: logits.pointer, pool: model.pool)
      }
      var best = 0
      for v in 1..<vocab where logits[v] > logits[best] { best = v }
      let lp = Float(Double(logits[best]) - Kernels.logSumExp(logits.pointer, vocab))
      try append([Int32(best)], logits: .none)
      out.append(Int32(best))
      lps.append(lp)
    }
    kept = nil; keptRows = 0
    return (out, lps)
  }

  /// Drop tokens past `n` (a speculative or agentic host rolling back).
  public func truncate(_ n: Int) throws(GLM5Error) {
    guard n >= 0 && n <= count else { throw .invalidArgument("cannot truncate to \(n) tokens: the session holds \(count)") }
    if n == count { kept = nil; keptRows = 0; return }
    if n == 0 {
      tokens = []; cache.count = 0; lastHidden = nil
      kept = nil; keptRows = 0
      return
    }
    // The hidden state of token n-1 is recomputed by running it again at its position; the
    // kernels are row-invariant, so its cache rows come out bitwise identical.
    let last = tokens[n - 1]
    let hidden = try FloatBuffer(count: hiddenSize, what: "hidden state")
    let oldCount = cache.count
    cache.count = n - 1
    do {
      try model.transformer.forward(tokens: [last], cache: cache, hidden: hidden.pointer, pool: model.pool, recorder: nil)
    } catch {
      cache.count = oldCount  // rows up to n-2 are untouched and row n-1 is rewritten identically
      throw error
    }
    tokens.removeLast(count - n)
    kept = nil; keptRows = 0
    lastHidden = Array(UnsafeBufferPointer(start: hidden.pointer, count: hiddenSize))
  }
}

extension Model {
  /// log p(x_i | x_<i) for every position of `tokens` (the first is NaN), from a fresh cache.
  public func score(_ tokens: [Int32]) throws(GLM5Error) -> [Float] {
    guard !tokens.isEmpty else { throw .invalidArgument("no tokens to score (n_tokens is 0)") }
    let s = try Session(model: self, maxTokens: min(config.maxPositionEmbeddings, max(tokens.count, 1)))
    return try s.append(tokens, logits: .none, logprobs: true)
  }
}
