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
      if r.logprobs || r.temperature != nil { results[i].logprobs = [Float](repeating: .nan, count: r.tokens.count) }
      if r.temperature != nil { results[i].scaledLogprobs = [Float](repeating: .nan, count: r.tokens.count) }
      let keepRows = r.keep == .none ? 0 : (r.keep == .all ? r.tokens.count : 1)
      kept.append(keepRows > 0 ? try FloatBuffer(count: keepRows * V, what: "kept logits") : nil)
      newHidden.append(try FloatBuffer(count: min(r.tokens.count, Session.keptHiddenRows) * h, what: "hidden rows"))
      try r.session.reserve(r.session.count + r.tokens.count)
    }
    let totalRows = reqs.reduce(0) { $0 + $1.tokens.count }
    let maxKeys = reqs.reduce(1) { max($0, $1.session.count + $1.tokens.count) }
    let stepRows = min(totalRows, Model.maxStepRows)
    let plan = StepPlan(rows: stepRows, maxKeys: maxKeys)
    let hiddenOut = try FloatBuffer(count: stepRows * h, what: "step hidden rows")
    let logits = try LogitRows(model: self, transformer: transformer, rows: Model.logitRows)

    let oldCounts = reqs.map { $0.session.cache.count }
    do {
      try withArena(bytes: transformer.scratchBytes(plan)) { (arena) throws(GLM5Error) in
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
      for (r, c) in zip(reqs, oldCounts) { r.session.cache.count = c; r.session.record?.truncate(c) }
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

  /// Sample on every session with its parameters, one forward per step for all running
  /// sessions. Every session gets bitwise what sampling it alone gives.
  public func sampleBatch(_ sessions: [Session], _ params: [SamplingParams]) throws(GLM5Error) -> [SampleResult] {
    let V = config.vocabSize, h = config.hiddenSize
    let snapshot = weights  // the whole call runs on these weights
    let transformer = snapshot.transformer
    guard sessions.count == params.count else { throw .internal("sampleBatch: \(sessions.count) sessions, \(params.count) params") }
    try checkSessions(sessions)
    for (i, (s, p)) in zip(sessions, params).enumerated() { try checkSample(s, p, context: sessions.count > 1 ? "session \(i): " : "") }
    // Reserve everything before the first token.
    var results = [SampleResult](repeating: SampleResult(), count: sessions.count)
    for i in results.indices { results[i].weightVersion = snapshot.version }
    var stopSets: [Set<Int32>] = []
    for (i, (s, p)) in zip(sessions, params).enumerated() {
      results[i].tokens.reserveCapacity(p.maxNewTokens)
      results[i].logprobs.reserveCapacity(p.maxNewTokens)
      results[i].scaledLogprobs.reserveCapacity(p.maxNewTokens)
      results[i].processedLogprobs.reserveCapacity(p.maxNewTokens)
      results[i].topN = p.topLogprobs
      results[i].topIds.reserveCapacity(p.maxNewTokens * p.topLogprobs)
      results[i].topLogprobs.reserveCapacity(p.maxNewTokens * p.topLogprobs)
      try s.reserve(s.count + p.maxNewTokens)
      var stops = Set(p.stopTokenIds)
      if !p.ignoreEOS { stops.formUnion(eosTokenIds) }
      stopSets.append(stops)
    }
    let maxKeys = zip(sessions, params).reduce(1) { max($0, $1.0.count + $1.1.maxNewTokens) }
    let stepRows = max(1, min(sessions.count, Model.maxStepRows))
    let plan = StepPlan(rows: stepRows, maxKeys: maxKeys)
    let hiddenOut = try FloatBuffer(count: stepRows * h, what: "step hidden rows")
    let group = min(sessions.count, Model.logitRows)
    let lg = try FloatBuffer(count: group * V, what: "logits")
    let hs = try FloatBuffer(count: group * h, what: "hidden rows")
    let workers = min(group, 8)
    // Sampler scratch per worker and the step's top-N rows [group, maxTop], in one arena.
    let maxTop = params.reduce(0) { max($0, $1.topLogprobs) }
    let topStride = max(maxTop, 1)
    let samplerArena = ScratchArena()
    try samplerArena.reserve(workers * SamplerScratch.bytes(vocab: V) + group * topStride * 8 + 256, what: "sampler scratch")
    var cv = Carver(arena: samplerArena)
    var scratch: [SamplerScratch] = []
    for _ in 0..<workers { scratch.append(SamplerScratch(&cv, vocab: V)) }
    let tids = cv.ints(group * topStride)
    let tlps = cv.floats(group * topStride)
    var drawn = [SampledToken](repeating: SampledToken(), count: group)

    defer { for s in sessions { s.kept = nil; s.keptRows = 0 } }
    var active: [Int] = []
    for i in sessions.indices {
      if params[i].maxNewTokens == 0 { results[i].finishReason = .length } else { active.append(i) }
    }
    try withArena(bytes: transformer.scratchBytes(plan)) { (arena) throws(GLM5Error) in
      while !active.isEmpty {
        // Cancellation, at the token boundary.
        active.removeAll { i in
          guard sessions[i].cancelRequested.exchange(false, ordering: .acquiringAndReleasing) else { return false }
          results[i].finishReason = .cancelled
          return true
        }
        if active.isEmpty { break }
        // 1. Logits of every running session's last row, and its draw.
        var stepTokens: [Int32] = []
        var g0 = 0
        while g0 < active.count {
          let n = min(group, active.count - g0)
          for j in 0..<n { (hs.pointer + j * h).update(from: sessions[active[g0 + j]].lastHidden!, count: h) }
          transformer.logits(hidden: hs.pointer, rows: n, into: lg.pointer, pool: pool)
          drawn.withUnsafeMutableBufferPointer { d in
            let db = d.baseAddress!
            scratch.withUnsafeBufferPointer { sc in
              pool.parallelFor(min(n, workers)) { w in
                var j = w
                while j < n {
                  let i = active[g0 + j]
                  let p = params[i]
                  db[j] = Sampler.sample(lg.pointer + j * V, vocab: V, params: p, position: sessions[i].count,
                                         scratch: sc[w], topIds: tids + j * topStride, topLogprobs: tlps + j * topStride)
                  j += workers
                }
              }
            }
          }
          for j in 0..<n {
            let i = active[g0 + j]
            let t = drawn[j]
            results[i].tokens.append(t.id)
            results[i].logprobs.append(t.raw)
            results[i].scaledLogprobs.append(t.scaled)
            results[i].processedLogprobs.append(t.processed)
            let N = params[i].topLogprobs
            for a in 0..<N {
              results[i].topIds.append(tids[j * topStride + a])
              results[i].topLogprobs.append(tlps[j * topStride + a])
            }
            stepTokens.append(t.id)
            if results[i].tokens.count == params[i].maxNewTokens {
              results[i].finishReason = .length  // first, as SGLang's check_finished
            } else if stopSets[i].contains(t.id) {
              results[i].finishReason = .stop
              results[i].stopTokenId = t.id
            }
          }
          g0 += n
        }
        // 2. Append every drawn token (the last one too), in steps of at most stepRows rows.
        var s0 = 0
        while s0 < active.count {
          let n = min(stepRows, active.count - s0)
          var segments: [ForwardSegment] = []
          segments.reserveCapacity(n)
          for j in 0..<n {
            let s = sessions[active[s0 + j]]
            segments.append(ForwardSegment(cache: s.cache, tokens: stepTokens[(s0 + j)...(s0 + j)], record: s.record))
          }
          try transformer.forward(segments, hidden: hiddenOut.pointer, arena: arena, pool: pool)
          for j in 0..<n {
            let s = sessions[active[s0 + j]]
            s.hidden.pointer.update(from: hiddenOut.pointer + j * h, count: h)
            s.hiddenRows = 1
            s.tokens.append(stepTokens[s0 + j])
          }
          s0 += n
        }
        active.removeAll { results[$0].finishReason != .none }
      }
    }
    // A cancel that arrived after the last boundary is left for the next call (documented).
    return results
  }
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
