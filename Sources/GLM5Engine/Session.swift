// A session: one token sequence and its caches. Appending runs prefill (many tokens) or decode
// (one); the result never depends on how the tokens were split into calls, nor on which other
// sessions share a step, because every row is computed on its own with row-invariant kernels.
//
// Logprob semantics: for a token x_i at position i, log p(x_i | x_<i) under the model's raw
// distribution at temperature 1 (Kernels.logSumExp, in Double); the scaled variant divides the
// logits by a temperature first. The first token of a session has none (NaN).

import GLM5Core
import GLM5Kernels
import GLM5Model
import Synchronization

public final class Session: @unchecked Sendable {
  public enum LogitsMode: Int32, Sendable { case none = 0, last = 1, all = 2 }

  public let model: Model
  public let maxTokens: Int
  let cache: LatentKVCache
  public internal(set) var tokens: [Int32] = []
  /// Final-normed hidden rows of the last append (its last `hiddenRows` rows, at most
  /// keptHiddenRows): [keptHiddenRows, H]. The logits of the next token come from the last one,
  /// and truncating back into them needs no forward.
  let hidden: FloatBuffer
  var hiddenRows = 0
  static let keptHiddenRows = 16
  /// Logits kept by the last append: keptRows × vocab, row-major.
  public internal(set) var kept: FloatBuffer? = nil
  public internal(set) var keptRows: Int = 0
  /// A copy of the kept logits (tests, small hosts; the C API copies from `kept` directly).
  public var keptLogits: [Float] {
    guard let kept, keptRows > 0 else { return [] }
    return Array(UnsafeBufferPointer(start: kept.pointer, count: keptRows * vocab))
  }
  /// The DSA selections and MoE routes of every token (RoutingRecord), when the session records.
  public internal(set) var record: RoutingRecord?
  /// Set by `cancel()` (any thread); consumed by the sampling call that observes it.
  let cancelRequested = Atomic<Bool>(false)

  /// - Parameter maxTokens: 0 means the model's max_position_embeddings.
  /// Whether the session keeps the MTP layer's cache current (MultiTokenPrediction.swift), so
  /// that sampling can speculate (SamplingParams.speculative). It costs one more layer per token.
  public let keepsMTP: Bool

  /// - Parameter recordBytes: non-nil: record routes and selections (RoutingRecord), holding at
  ///   most this many bytes (0 = RoutingRecord.defaultMaxBytes).
  /// - Parameter mtp: keep the MTP layer's cache; nil (default) = when the model has an MTP
  ///   layer; true on a model without one is an error.
  public init(model: Model, maxTokens: Int = 0, recordBytes: Int? = nil, mtp: Bool? = nil) throws(GLM5Error) {
    let limit = model.config.maxPositionEmbeddings
    guard maxTokens >= 0 && maxTokens <= limit else {
      throw .invalidArgument("max_tokens is \(maxTokens), must be in [0, max_position_embeddings = \(limit)] (0 = the maximum)")
    }
    self.model = model
    self.maxTokens = maxTokens == 0 ? limit : maxTokens
    let transformer = model.transformer
    if mtp == true && !transformer.hasMTP {
      throw .invalidArgument("the model has no MTP layer (model.layers.\(model.config.numHiddenLayers).*): a session cannot keep one")
    }
    keepsMTP = (mtp ?? true) && transformer.hasMTP
    cache = try LatentKVCache(config: model.config, hasIndexer: transformer.cacheLayers(mtp: keepsMTP), maxTokens: self.maxTokens)
    hidden = try FloatBuffer(count: Session.keptHiddenRows * model.config.hiddenSize, what: "session hidden rows")
    if let rb = recordBytes {
      guard rb >= 0 else { throw .invalidArgument("record_max_bytes is \(rb), must be >= 0 (0 = the default)") }
      record = try RoutingRecord(config: model.config, maxBytes: rb == 0 ? RoutingRecord.defaultMaxBytes : rb)
    } else {
      record = nil
    }
  }

  public var count: Int { tokens.count }
  /// Bytes the session's caches hold now (they grow with use up to maxTokens).
  public var cacheBytes: Int { cache.capacity * cache.bytesPerToken }
  var vocab: Int { model.config.vocabSize }
  var hiddenSize: Int { model.config.hiddenSize }
  /// The hidden row whose logits predict the next token (nil when empty).
  var lastHidden: UnsafeMutablePointer<Float>? { hiddenRows > 0 ? hidden.pointer + (hiddenRows - 1) * hiddenSize : nil }
  /// The kept hidden row of position p (nil when it is not kept).
  func hiddenRow(_ p: Int) -> UnsafeMutablePointer<Float>? {
    let i = p - (count - hiddenRows)
    return i >= 0 && i < hiddenRows ? hidden.pointer + i * hiddenSize : nil
  }
  /// Whether the MTP entries can be brought up to date from the kept hidden rows (every position
  /// from mtpCount to count - 2 has its row kept).
  var mtpCurrent: Bool { keepsMTP && (count == 0 || cache.mtpCount >= count - hiddenRows) }

  /// Check new tokens against the vocabulary and the session's room, before anything changes.
  func validate(_ ids: [Int32], extra: Int = 0, context: String = "") throws(GLM5Error) {
    for (i, id) in ids.enumerated() where id < 0 || Int(id) >= vocab {
      throw .invalidArgument("\(context)token id \(id) at index \(i) is outside [0, \(vocab))")
    }
    let need = count + ids.count + extra
    guard need <= maxTokens else {
      throw .init(.contextFull, "\(context)appending \(ids.count + extra) token(s) to \(count) exceeds the session's maximum of \(maxTokens)")
    }
    if let record, need * record.bytesPerToken > record.maxBytes {
      throw .init(.recordFull, "\(context)recording \(need) tokens needs \(need * record.bytesPerToken) bytes, above the session's record bound of \(record.maxBytes) bytes (\(record.maxBytes / max(record.bytesPerToken, 1)) tokens)")
    }
  }

  /// Reserve cache (and record) room for `tokens` tokens in all.
  func reserve(_ tokens: Int) throws(GLM5Error) {
    try cache.reserve(tokens)
    try record?.reserve(tokens)
  }

  /// Append tokens. Returns log p(token | previous tokens) for each appended token when asked
  /// (NaN for the first token of the session). Keeps logits per `logits`. On failure nothing
  /// changes.
  /// With `replay`, the given selections and routes are used instead of computing them.
  @discardableResult
  public func append(_ ids: [Int32], logits mode: LogitsMode, logprobs wantLogprobs: Bool = false,
                     replay: RoutingReplay? = nil) throws(GLM5Error) -> [Float] {
    let r = try model.appendBatch([AppendRequest(session: self, tokens: ids, keep: mode, logprobs: wantLogprobs, replay: replay)])
    return r[0].logprobs
  }

  /// Append tokens and report raw and temperature-scaled logprobs of each (NaN first).
  public func appendScaled(_ ids: [Int32], logits mode: LogitsMode = .none, temperature: Float,
                           replay: RoutingReplay? = nil) throws(GLM5Error) -> (raw: [Float], scaled: [Float]) {
    let r = try model.appendBatch([AppendRequest(session: self, tokens: ids, keep: mode, logprobs: true, temperature: temperature, replay: replay)])
    return (r[0].logprobs, r[0].scaledLogprobs)
  }

  /// Sample up to params.maxNewTokens tokens (include/glm5.h "Sampling"), appending each.
  public func sample(_ params: SamplingParams) throws(GLM5Error) -> SampleResult {
    try model.sampleBatch([self], [params])[0]
  }

  /// Greedy generation of n tokens: each step takes the most likely token (ties to the lower id,
  /// NaN last), reports its logprob, and appends it. Needs at least one token in the session.
  public func generate(_ n: Int) throws(GLM5Error) -> (tokens: [Int32], logprobs: [Float]) {
    guard n >= 0 else { throw .invalidArgument("n is \(n), must be >= 0") }
    let r = try sample(.greedy(n))
    return (r.tokens, r.logprobs)
  }

  /// Ask a running (or the next) sampling call to stop at the next token boundary. Any thread.
  public func cancel() { cancelRequested.store(true, ordering: .releasing) }

  /// A new session with the same tokens, caches, hidden rows and record (kept logits are not
  /// copied).
  public func fork() throws(GLM5Error) -> Session {
    let s = try Session(model: model, maxTokens: maxTokens, recordBytes: record?.maxBytes,
                        mtp: keepsMTP && model.transformer.hasMTP ? true : false)
    try s.cache.copy(from: cache)
    if let record { try s.record!.copy(from: record) }
    s.hidden.pointer.update(from: hidden.pointer, count: hiddenRows * hiddenSize)
    s.hiddenRows = hiddenRows
    s.tokens = tokens
    return s
  }

  /// Drop tokens past `n` (a speculative or agentic host rolling back).
  public func truncate(_ n: Int) throws(GLM5Error) {
    guard n >= 0 && n <= count else { throw .invalidArgument("cannot truncate to \(n) tokens: the session holds \(count)") }
    if n == count { kept = nil; keptRows = 0; return }
    // An MTP entry at p was computed from the token after p.
    cache.mtpCount = min(cache.mtpCount, max(n - 1, 0))
    if n == 0 {
      tokens = []; cache.count = 0; hiddenRows = 0
      record?.truncate(0)
      kept = nil; keptRows = 0
      return
    }
    let h = hiddenSize
    let dropped = count - n
    if dropped < hiddenRows {
      // The hidden row of token n-1 is still held: nothing to recompute.
      hiddenRows -= dropped
    } else {
      // Recompute the hidden state of token n-1 by running it again at its position; the kernels
      // are row-invariant, so its cache rows come out bitwise identical.
      let last = tokens[n - 1]
      let transformer = model.transformer
      let row = try FloatBuffer(count: h, what: "hidden state")
      let oldCount = cache.count
      cache.count = n - 1
      do {
        try transformer.forward(tokens: [last], cache: cache, hidden: row.pointer, pool: model.pool)
      } catch {
        cache.count = oldCount  // rows up to n-2 are untouched and row n-1 is rewritten identically
        throw error
      }
      hidden.pointer.update(from: row.pointer, count: h)
      hiddenRows = 1
    }
    cache.count = n
    record?.truncate(n)
    tokens.removeLast(dropped)
    kept = nil; keptRows = 0
  }
}

extension Model {
  /// log p(x_i | x_<i) for every position of `tokens` (the first is NaN), from a fresh cache.
  public func score(_ tokens: [Int32]) throws(GLM5Error) -> [Float] {
    try scoreScaled(tokens, temperature: 1).raw
  }

  /// Raw and temperature-scaled logprobs of every position (NaN first), from a fresh cache; with
  /// `replay`, under the given selections and routes.
  public func scoreScaled(_ tokens: [Int32], temperature: Float, replay: RoutingReplay? = nil) throws(GLM5Error) -> (raw: [Float], scaled: [Float]) {
    guard !tokens.isEmpty else { throw .invalidArgument("no tokens to score (n_tokens is 0)") }
    guard tokens.count <= config.maxPositionEmbeddings else {
      throw .init(.contextFull, "\(tokens.count) tokens exceed the model's maximum, max_position_embeddings = \(config.maxPositionEmbeddings)")
    }
    let s = try Session(model: self, maxTokens: tokens.count, mtp: false)
    return try s.appendScaled(tokens, temperature: temperature, replay: replay)
  }
}
