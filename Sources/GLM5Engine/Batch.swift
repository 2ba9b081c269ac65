// Many sessions in one forward pass: batched appends (prefill chunks) and batched sampling
// (decode), both built on Transformer.forward over segments (GLM5Model/ForwardStep.swift).
//
// A call validates everything, then reserves everything it can run out of (cache room, the step
// arena, output buffers) before the first forward, so a failure leaves every session as it was.
// Long calls run in steps of at most maxStepRows rows (the split changes no bit: rows are
// independent and appends are split-invariant), which bounds the scratch whatever the prompt.

import GLM5Core
import GLM5Kernels
import GLM5Model

/// One session's part of a batched append.
public struct AppendRequest {
  public let session: Session
  public let tokens: [Int32]
  public let keep: Session.LogitsMode
  /// Report raw logprobs of the appended tokens.
  public let logprobs: Bool
  /// Also report logprobs scaled by this temperature (0 = the raw ones).
  public let temperature: Float?
  /// Selections and routes to use instead of computing them (RoutingReplay), or nil.
  public let replay: RoutingReplay?

  public init(session: Session, tokens: [Int32], keep: Session.LogitsMode = .none, logprobs: Bool = false, temperature: Float? = nil,
              replay: RoutingReplay? = nil) {
    self.session = session
    self.tokens = tokens
    self.keep = keep
    self.logprobs = logprobs
    self.temperature = temperature
    self.replay = replay
  }
}

public struct AppendResult: Sendable {
  /// The version of the weights the append ran on.
  public var weightVersion = ""
  /// Raw logprobs [T] (NaN for the session's first token); empty unless asked.
  public var logprobs: [Float] = []
  /// Scaled logprobs [T]; empty unless a temperature was given.
  public var scaledLogprobs: [Float] = []
}

extension Model {
  /// Rows per forward step at most.
  static let maxStepRows = 256
  /// Rows of logits computed at a time.
  static let logitRows = 32

  /// Check that the sessions belong to this model and are distinct; `context(i)` names one.
  func checkSessions(_ sessions: [Session]) throws(GLM5Error) {
    var seen = Set<ObjectIdentifier>()
    for (i, s) in sessions.enumerated() {
      guard s.model === self else { throw .invalidArgument("session \(i) belongs to another model") }
      guard seen.insert(ObjectIdentifier(s)).inserted else { throw .invalidArgument("session \(i) appears twice in the batch") }
    }
  }

  /// Everything appendBatch checks of one request (the message starts with `context`).
  public func checkAppend(_ r: AppendRequest, context ctx: String) throws(GLM5Error) {
    guard !r.tokens.isEmpty else { throw .invalidArgument("\(ctx)no tokens to append (n_tokens is 0)") }
    try r.session.validate(r.tokens, context: ctx)
    if let t = r.temperature, !(t.isFinite && t >= 0) {
      throw .invalidArgument("\(ctx)temperature is \(t), must be finite and >= 0")
    }
    try r.replay?.validate(config, start: r.session.count, tokens: r.tokens.count, context: ctx)
  }

  /// Everything sampleBatch checks of one session and its parameters.
  public func checkSample(_ s: Session, _ p: SamplingParams, context ctx: String) throws(GLM5Error) {
    try p.validate(vocab: config.vocabSize, context: ctx)
    guard s.lastHidden != nil else { throw .invalidArgument("\(ctx)sampling needs at least one token in the session") }
    try s.validate([], extra: p.maxNewTokens, context: ctx)
    if p.speculative > 0 {
      let pre = "\(ctx)speculative is \(p.speculative), but "
      guard weights.transformer.hasMTP else {
        throw .invalidArgument(pre + "the model has no MTP layer (model.layers.\(config.numHiddenLayers).*) to draft with")
      }
      guard s.keepsMTP else { throw .invalidArgument(pre + "the session was created without the MTP layer (mtp off)") }
      guard s.mtpCurrent else {
        throw .invalidArgument(pre + "the session's MTP entries are out of date (it was restored or forked without them): start a new session")
      }
    }
  }

  /// Append each request's tokens to its session, all in shared forward steps. Every session
  /// ends bitwise as an append of its tokens alone would leave it. On failure none changes.
  public func appendBatch(_ reqs: [AppendRequest]) throws(GLM5Error) -> [AppendResult] {
    let V = config.vocabSize, h = config.hiddenSize
    let snapshot = weights  // the whole call runs on these weights
    let transformer = snapshot.transformer
    try checkSessions(reqs.map(\.session))
    for (i, r) in reqs.enumerated() { try checkAppend(r, context: reqs.count > 1 ? "session \(i): " : "") }
    // Everything that can fail, before the first forward.
    var results = [AppendResult](repeating: AppendResult(weightVersion: snapshot.version), count: reqs.count)
    var kept: [FloatBuffer?] = []
    var newHidden: [FloatBuffer] = []
    for (i, r) in reqs.enumerated() {
      if r.logprobs || r.temperature != nil { results[i].logprobs = try nanArray(r.tokens.count) }
      if r.temperature != nil { results[i].scaledLogprobs = try nanArray(r.tokens.count) }
      let keepRows = r.keep == .none ? 0 : (r.keep == .all ? r.tokens.count : 1)
      kept.append(keepRows > 0 ? try FloatBuffer(count: keepRows * V, what: "kept logits") : nil)
      newHidden.append(try FloatBuffer(count: min(r.tokens.count, Session.keptHiddenRows) * h, what: "hidden rows"))
      try r.session.reserve(r.session.count + r.tokens.count)
      try r.session.tokens.reserveFallibly(r.session.count + r.tokens.count, what: "session tokens")  // the commit appends
    }
    let totalRows = reqs.reduce(0) { $0 + $1.tokens.count }
    let maxKeys = reqs.reduce(1) { max($0, $1.session.count + $1.tokens.count) }
    let stepRows = min(totalRows, Model.maxStepRows)
    let plan = StepPlan(rows: stepRows, maxKeys: maxKeys)
    let hiddenOut = try FloatBuffer(count: stepRows * h, what: "step hidden rows")
    let logits = try LogitRows(model: self, transformer: transformer, rows: Model.logitRows)
    // Sessions that keep the MTP layer get its entries for the new positions too (each row
    // reads the main hidden state at p and the token at p + 1), one MTP step per main step.
    let mtpOn = reqs.map { transformer.hasMTP && $0.session.mtpCurrent }
    let draft = mtpOn.contains(true) ? try DraftRows(model: self, rows: stepRows + reqs.count, segments: reqs.count) : nil
    let draftPlan = StepPlan(rows: draft?.capacity ?? 0, maxKeys: maxKeys)

    let oldCounts = reqs.map { $0.session.cache.count }
    let oldMTP = reqs.map { $0.session.cache.mtpCount }
    do {
      try withArena(bytes: max(transformer.scratchBytes(plan), draft == nil ? 0 : transformer.scratchBytes(draftPlan))) { (arena) throws(GLM5Error) in
        // The first token of each chunk is scored by the logits of the session's last row.
        for (i, r) in reqs.enumerated() where !results[i].logprobs.isEmpty {
          if let last = r.session.lastHidden { logits.add(last, request: i, token: 0, keptRow: -1) }
        }
        // Steps of at most stepRows rows, the requests' tokens in order.
        var ri = 0, off = 0  // the request being cut into steps, and its tokens already run
        while ri < reqs.count {
          var segments: [ForwardSegment] = []
          var owners: [(request: Int, first: Int)] = []
          var rows = 0
          while ri < reqs.count && rows < stepRows {
            let r = reqs[ri]
            let n = min(r.tokens.count - off, stepRows - rows)
            segments.append(ForwardSegment(cache: r.session.cache, tokens: r.tokens[off..<(off + n)], record: r.session.record,
                                           replay: r.replay?.advanced(by: off, config)))
            owners.append((ri, off))
            rows += n
            off += n
            if off == r.tokens.count { ri += 1; off = 0 }
          }
          try transformer.forward(segments, hidden: hiddenOut.pointer, arena: arena, pool: pool)
          if let draft {
            try appendDraftStep(draft, reqs, mtpOn, segments, owners, hiddenOut.pointer, transformer, arena)
          }
          var row = 0
          for (s, o) in zip(segments, owners) {
            let r = reqs[o.request]
            let T = r.tokens.count
            let keepFirst = r.keep == .all ? 0 : T - 1
            for j in 0..<s.tokens.count {
              let k = o.first + j  // index of this token within the request
              let src = hiddenOut.pointer + (row + j) * h
              let scoreNext = !results[o.request].logprobs.isEmpty && k + 1 < T
              let keepRow = r.keep != .none && k >= keepFirst ? k - keepFirst : -1
              if scoreNext || keepRow >= 0 { logits.add(src, request: o.request, token: scoreNext ? k + 1 : -1, keptRow: keepRow) }
              let hr = min(T, Session.keptHiddenRows)
              if k >= T - hr { (newHidden[o.request].pointer + (k - (T - hr)) * h).update(from: src, count: h) }
            }
            row += s.tokens.count
          }
          // Logit rows point into hiddenOut: finish them before the next step overwrites it.
          logits.flush { i, token, keptRow, row in
            let r = reqs[i]
            if token >= 0 {
              let (raw, scaled) = Sampler.logprobs(row, vocab: V, id: Int(r.tokens[token]), temperature: r.temperature ?? 1)
              results[i].logprobs[token] = raw
              if r.temperature != nil { results[i].scaledLogprobs[token] = scaled }
            }
            if keptRow >= 0, let kb = kept[i] { (kb.pointer + keptRow * V).update(from: row, count: V) }
          }
        }
      }
    } catch {
      for (i, r) in reqs.enumerated() {
        r.session.cache.count = oldCounts[i]
        r.session.cache.mtpCount = oldMTP[i]
        r.session.record?.truncate(oldCounts[i])
      }
      throw error
    }
    // Commit (nothing below fails).
    for (i, r) in reqs.enumerated() {
      let s = r.session
      let hr = min(r.tokens.count, Session.keptHiddenRows)
      s.hidden.pointer.update(from: newHidden[i].pointer, count: hr * h)
      s.hiddenRows = hr
      s.tokens.append(contentsOf: r.tokens)
      s.kept = kept[i]
      s.keptRows = r.keep == .none ? 0 : (r.keep == .all ? r.tokens.count : 1)
    }
    return results
  }

  /// The MTP entries of one appendBatch step: for each segment of a session that keeps them,
  /// positions mtpCount ..< min(end of the segment, last token - 1) (the token after each is
  /// known), reading the step's hidden rows (and, for the session's previous last position, its
  /// kept row).
  private func appendDraftStep(_ draft: DraftRows, _ reqs: [AppendRequest], _ mtpOn: [Bool], _ segments: [ForwardSegment],
                               _ owners: [(request: Int, first: Int)], _ hiddenOut: UnsafeMutablePointer<Float>,
                               _ transformer: Transformer, _ arena: ScratchArena) throws(GLM5Error) {
    let h = config.hiddenSize
    draft.reset()
    var done: [(LatentKVCache, Int)] = []
    var row = 0
    for (seg, o) in zip(segments, owners) {
      let base = row
      row += seg.tokens.count
      guard mtpOn[o.request] else { continue }
      let r = reqs[o.request], s = r.session
      let c0 = s.count, p0 = c0 + o.first
      let lo = s.cache.mtpCount, hi = min(p0 + seg.tokens.count, c0 + r.tokens.count - 1)
      guard hi > lo, lo >= p0 - 1 else { continue }
      var prev = UnsafePointer(hiddenOut)  // the kept row of position p0 - 1, when the rows start there
      if lo < p0 {
        guard let kept = s.hiddenRow(lo) else { continue }
        prev = UnsafePointer(kept)
      }
      try draft.add(cache: s.cache, start: lo, count: hi - lo, token: { r.tokens[lo + 1 + $0 - c0] },
                    hidden: { lo + $0 < p0 ? prev : UnsafePointer(hiddenOut + (base + lo + $0 - p0) * h) })
      done.append((s.cache, hi))
    }
    try draft.run(transformer, arena: arena, pool: pool)
    for (c, hi) in done { c.mtpCount = hi }
  }
}

/// n NaNs, allocated fallibly (logprobs not yet computed).
func nanArray(_ n: Int) throws(GLM5Error) -> [Float] {
  var a: [Float] = []
  try a.reserveFallibly(n, what: "logprobs")
  a.append(contentsOf: repeatElement(.nan, count: n))
  return a
}

/// Rows of logits computed `rows` at a time from hidden rows that stay valid until `flush`.
final class LogitRows {
  let model: Model
  let transformer: Transformer
  let rows: Int
  let hs: FloatBuffer, lg: FloatBuffer
  var pending: [(src: UnsafePointer<Float>, request: Int, token: Int, keptRow: Int)] = []

  init(model: Model, transformer: Transformer, rows: Int) throws(GLM5Error) {
    self.model = model
    self.transformer = transformer
    self.rows = rows
    hs = try FloatBuffer(count: rows * model.config.hiddenSize, what: "hidden rows")
    lg = try FloatBuffer(count: rows * model.config.vocabSize, what: "logits")
    pending.reserveCapacity(rows)
  }

  func add(_ src: UnsafePointer<Float>, request: Int, token: Int, keptRow: Int) {
    pending.append((src, request, token, keptRow))
  }

  /// Compute every pending row's logits and hand each to body(request, token, keptRow, logits).
  func flush(_ body: (Int, Int, Int, UnsafePointer<Float>) -> Void) {
    let h = model.config.hiddenSize, V = model.config.vocabSize
    var i = 0
    while i < pending.count {
      let n = min(rows, pending.count - i)
      for j in 0..<n { (hs.pointer + j * h).update(from: pending[i + j].src, count: h) }
      transformer.logits(hidden: hs.pointer, rows: n, into: lg.pointer, pool: model.pool)
      for j in 0..<n {
        let p = pending[i + j]
        body(p.request, p.token, p.keptRow, lg.pointer + j * V)
      }
      i += n
    }
    pending.removeAll(keepingCapacity: true)
  }
}
