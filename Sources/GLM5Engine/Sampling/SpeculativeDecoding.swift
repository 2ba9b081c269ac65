// Sampling on many sessions, with or without MTP speculation, one loop for both.
//
// Plain decoding, per step:  draw t_N from h_{N-1};  append t_N (one row).
// Speculative, per step (k drafts, GLM5Model/MultiTokenPrediction.swift):
//   1. draft d_1..d_k with the MTP layer: d_s at position N+s, each drawn with the session's own
//      sampler at that position from the draft logits (the same (seed, position) draw, so a good
//      draft distribution gives the same token);
//   2. verify: append [t_N, d_1..d_k] in one forward (k + 1 rows), then draw at N+1, N+2, ... from
//      those rows exactly as plain decoding would (same logits bits: row-invariant kernels), and
//      keep each d_s while it equals the draw at its position;
//   3. the first draw that differs (or the one after the last draft) is the next t_N; rejected
//      rows are dropped by count (their hidden rows and cache entries are never read again).
// Every reported token and logprob is therefore the one plain decoding reports, bit for bit,
// whatever k, the batch, or how well the MTP layer drafts. Sessions that keep the MTP layer also
// get its entries for every appended position (mtpCount = count - 1 when the call ends), plain or
// not, so a later call can speculate.

import GLM5Core
import GLM5Kernels
import GLM5Model

extension Model {
  /// Sample on every session with its parameters, one forward per step for all running
  /// sessions. Every session gets bitwise what sampling it alone, without speculation, gives.
  /// `onTokens(i, result, c)`, when given, hears of each new token of session i as soon as its
  /// step ends (c: the tokens of `result` to report, which may hold more); returning false stops
  /// that session right after token c (finish reason cancelled; later tokens of the step are
  /// dropped from the result and the session), exactly where a call of c tokens would end.
  public func sampleBatch(_ sessions: [Session], _ params: [SamplingParams],
                          onTokens: ((Int, SampleResult, Int) -> Bool)? = nil) throws(GLM5Error) -> [SampleResult] {
    let V = config.vocabSize, h = config.hiddenSize
    let snapshot = weights  // the whole call runs on these weights
    let transformer = snapshot.transformer
    guard sessions.count == params.count else { throw .internal("sampleBatch: \(sessions.count) sessions, \(params.count) params") }
    try checkSessions(sessions)
    for (i, (s, p)) in zip(sessions, params).enumerated() { try checkSample(s, p, context: sessions.count > 1 ? "session \(i): " : "") }
    let n = sessions.count
    // Reserve everything before the first token.
    var results = [SampleResult](repeating: SampleResult(), count: n)
    for i in results.indices { results[i].weightVersion = snapshot.version }
    var stopSets: [Set<Int32>] = []
    for (i, (s, p)) in zip(sessions, params).enumerated() {
      // The cache first (the largest), then the arrays the steps append to, each reserved
      // fallibly: running out is a status here, never a trap between tokens. (Capacity only: no
      // session changes.)
      try s.reserve(s.count + p.maxNewTokens)
      try s.tokens.reserveFallibly(s.count + p.maxNewTokens + p.speculative + 1, what: "session tokens")
      let m = p.maxNewTokens, what = "the sampled tokens"
      try results[i].tokens.reserveFallibly(m, what: what)
      try results[i].logprobs.reserveFallibly(m, what: what)
      try results[i].scaledLogprobs.reserveFallibly(m, what: what)
      try results[i].processedLogprobs.reserveFallibly(m, what: what)
      results[i].topN = p.topLogprobs
      try results[i].topIds.reserveFallibly(m * p.topLogprobs, what: what)
      try results[i].topLogprobs.reserveFallibly(m * p.topLogprobs, what: what)
      if p.speculative > 0 { try results[i].accepted.reserveFallibly(m, what: what) }
      var stops = Set(p.stopTokenIds)
      if !p.ignoreEOS { stops.formUnion(eosTokenIds) }
      stopSets.append(stops)
    }
    let K = params.reduce(0) { max($0, $1.speculative) }
    let mtpOn = sessions.map { transformer.hasMTP && $0.mtpCurrent }
    let maxKeys = zip(sessions, params).reduce(1) { max($0, $1.0.count + $1.1.maxNewTokens) }
    let stepRows = max(K + 1, min(n * (K + 1), Model.maxStepRows))
    let plan = StepPlan(rows: stepRows, maxKeys: maxKeys)
    let hiddenOut = try FloatBuffer(count: stepRows * h, what: "step hidden rows")
    let draft = mtpOn.contains(true)
      ? try DraftRows(model: self, rows: max(Session.keptHiddenRows, min(n * Session.keptHiddenRows, Model.maxStepRows)), segments: n) : nil
    let draftPlan = StepPlan(rows: draft?.capacity ?? 0, maxKeys: maxKeys)
    let draws = try DrawRows(model: self, transformer: transformer, params: params, rows: min(n * (K + 1), Model.logitRows))
    var drafts = [Int32](repeating: 0, count: n * max(K, 1))  // [n, K] this step's drafts
    var pending = [Int32?](repeating: nil, count: n)         // drawn at position count, not yet appended
    var k = [Int](repeating: 0, count: n)
    let starts = sessions.map(\.count)
    var heard = [Int](repeating: 0, count: n)   // tokens onTokens was told of
    var keep = [Int?](repeating: nil, count: n)  // where onTokens stopped a session
    var walked = [Int](repeating: 0, count: n)   // step 6: rows of the session handled so far
    var accepted = [Int](repeating: 0, count: n)
    var open = [Bool](repeating: true, count: n)

    /// Report a drawn token; sets the finish reason when it ends the session's call.
    func record(_ i: Int, _ t: SampledToken, _ tids: UnsafePointer<Int32>, _ tlps: UnsafePointer<Float>) {
      results[i].tokens.append(t.id)
      results[i].logprobs.append(t.raw)
      results[i].scaledLogprobs.append(t.scaled)
      results[i].processedLogprobs.append(t.processed)
      for a in 0..<params[i].topLogprobs {
        results[i].topIds.append(tids[a])
        results[i].topLogprobs.append(tlps[a])
      }
      if results[i].tokens.count == params[i].maxNewTokens {
        results[i].finishReason = .length  // first, as SGLang's check_finished
      } else if stopSets[i].contains(t.id) {
        results[i].finishReason = .stop
        results[i].stopTokenId = t.id
      }
    }
    func running(_ i: Int) -> Bool { results[i].finishReason == .none }

    defer { for s in sessions { s.kept = nil; s.keptRows = 0 } }
    var active: [Int] = []
    for i in 0..<n {
      if params[i].maxNewTokens == 0 { results[i].finishReason = .length } else { active.append(i) }
    }
    let arenaBytes = max(transformer.scratchBytes(plan), draft == nil ? 0 : transformer.scratchBytes(draftPlan))
    try withArena(bytes: arenaBytes) { (arena) throws(GLM5Error) in
      while !active.isEmpty {
        // 1. Cancellation, at the token boundary (a drawn token still gets appended).
        for i in active where running(i) && sessions[i].cancelRequested.exchange(false, ordering: .acquiringAndReleasing) {
          results[i].finishReason = .cancelled
        }
        // 2. Draw t_N from the last hidden row where no token is pending.
        draws.begin()
        for i in active where running(i) && pending[i] == nil {
          let s = sessions[i]
          guard let last = s.lastHidden else { throw .internal("sampleBatch: session \(i) has no hidden row") }
          try draws.add(i, last, position: s.count)
        }
        draws.run(draft: false) { i, t, tids, tlps in record(i, t, tids, tlps); pending[i] = t.id }
        // 3. Drafts this step: never past max_new_tokens.
        for i in active {
          k[i] = running(i) ? min(params[i].speculative, params[i].maxNewTokens - results[i].tokens.count) : 0
        }
        // 4. MTP entries up to the pending token (the last row drafts d_1), then d_2..d_k.
        if let draft {
          try draftSteps(draft, sessions, active, mtpOn, pending, k, &drafts, K, draws, transformer, arena)
        }
        // 5. Append [t_N, d_1..d_k] for every session with a pending token.
        var a0 = 0
        while a0 < active.count {
          var segments: [ForwardSegment] = []
          var owners: [Int] = []
          var rows = 0
          while a0 < active.count {
            let i = active[a0]
            guard let t = pending[i] else { a0 += 1; continue }
            if rows + k[i] + 1 > stepRows { break }
            let s = sessions[i]
            let c = s.count
            s.tokens.append(t)
            for j in 0..<k[i] { s.tokens.append(drafts[i * max(K, 1) + j]) }
            segments.append(ForwardSegment(cache: s.cache, tokens: s.tokens[c...], record: s.record))
            owners.append(i)
            rows += k[i] + 1
            a0 += 1
          }
          if segments.isEmpty { break }
          do throws(GLM5Error) {
            try transformer.forward(segments, hidden: hiddenOut.pointer, arena: arena, pool: pool)
          } catch {
            for i in owners { sessions[i].tokens.removeLast(k[i] + 1) }
            throw error
          }
          var row = 0
          for i in owners {
            let s = sessions[i]
            s.hidden.pointer.update(from: hiddenOut.pointer + row * h, count: (k[i] + 1) * h)
            s.hiddenRows = k[i] + 1
            pending[i] = nil
            row += k[i] + 1
          }
        }
        // 6. Verify: draw at every appended row where drafts ran, keep drafts while they match.
        draws.begin()
        for i in active where k[i] > 0 {
          let s = sessions[i]
          let base = s.count - k[i] - 1  // position of t_N
          for j in 0...k[i] { try draws.add(i, s.hidden.pointer + j * h, position: base + 1 + j) }
        }
        for i in active { walked[i] = 0; accepted[i] = 0; open[i] = true }
        draws.run(draft: false) { i, t, tids, tlps in
          let j = walked[i]
          walked[i] += 1
          guard open[i] else { return }
          record(i, t, tids, tlps)
          if j < k[i] && t.id == drafts[i * max(K, 1) + j] {
            accepted[i] += 1
            if !running(i) { open[i] = false }  // the accepted draft ends the call: nothing pending
          } else {
            pending[i] = t.id
            open[i] = false
          }
        }
        for i in active where k[i] > 0 {
          let s = sessions[i]
          let drop = k[i] - accepted[i]
          s.tokens.removeLast(drop)
          s.cache.count = s.count
          s.record?.truncate(s.count)
          s.hiddenRows = accepted[i] + 1
          results[i].accepted.append(Int32(accepted[i]))
        }
        // 7. Tell the host; then sessions leave when they are done, nothing is pending and their MTP entries are current.
        if let onTokens {
          for i in active where keep[i] == nil && results[i].tokens.count > heard[i] {
            let total = results[i].tokens.count
            for c in (heard[i] + 1)...total where !onTokens(i, results[i], c) {
              if c < total || running(i) { keep[i] = c; results[i].finishReason = .cancelled }
              break
            }
            heard[i] = total
          }
        }
        active.removeAll { i in
          !running(i) && pending[i] == nil && (!mtpOn[i] || sessions[i].cache.mtpCount >= sessions[i].count - 1)
        }
      }
    }
    // Where onTokens stopped a session inside a step: drop what came after (kept hidden rows
    // make the truncation free).
    for i in 0..<n {
      guard let c = keep[i], c < results[i].tokens.count else { continue }
      let N = results[i].topN
      results[i].tokens.removeLast(results[i].tokens.count - c)
      results[i].logprobs.removeLast(results[i].logprobs.count - c)
      results[i].scaledLogprobs.removeLast(results[i].scaledLogprobs.count - c)
      results[i].processedLogprobs.removeLast(results[i].processedLogprobs.count - c)
      results[i].topIds.removeLast(results[i].topIds.count - c * N)
      results[i].topLogprobs.removeLast(results[i].topLogprobs.count - c * N)
      results[i].stopTokenId = nil
      try sessions[i].truncate(starts[i] + c)
    }
    // A cancel that arrived after the last boundary is left for the next call (documented).
    return results
  }

  /// MTP rows of one sampling step (step 4 above): for each session that keeps the MTP layer, its
  /// missing entries mtpCount ..< count - 1 and, with a pending token, count - 1 (these read the
  /// main model's kept hidden rows and become valid), whose last output drafts d_1; then d_2..d_k,
  /// one row per session and step, each reading the previous output (these entries are rewritten
  /// from the main model's rows in a later step before they count).
  private func draftSteps(_ draft: DraftRows, _ sessions: [Session], _ active: [Int], _ mtpOn: [Bool], _ pending: [Int32?],
                          _ k: [Int], _ drafts: inout [Int32], _ K: Int, _ draws: DrawRows, _ transformer: Transformer,
                          _ arena: ScratchArena) throws(GLM5Error) {
    let stride = max(K, 1)
    var lastRow = [Int](repeating: -1, count: sessions.count)
    var i0 = 0
    while i0 < active.count {
      // Catch-up rows, as many sessions as fit in one MTP step.
      draft.reset()
      var members: [(Int, Int)] = []  // (session, new mtpCount)
      while i0 < active.count {
        let i = active[i0]
        let s = sessions[i]
        let lo = s.cache.mtpCount, hi = s.count - (pending[i] == nil ? 1 : 0)
        guard mtpOn[i], hi > lo else { i0 += 1; continue }
        if draft.rows + (hi - lo) > draft.capacity { break }
        // The kept hidden rows are contiguous: the first and last being kept is enough.
        guard let rows = s.hiddenRow(lo), s.hiddenRow(hi - 1) != nil else {
          throw .internal("sampleBatch: the hidden rows of positions \(lo)..<\(hi) are not kept")
        }
        let h = config.hiddenSize
        let first = try draft.add(cache: s.cache, start: lo, count: hi - lo,
                                  token: { lo + 1 + $0 < s.count ? s.tokens[lo + 1 + $0] : pending[i] ?? 0 },
                                  hidden: { UnsafePointer(rows + $0 * h) })
        lastRow[i] = first + hi - lo - 1
        members.append((i, hi))
        i0 += 1
      }
      try draft.run(transformer, arena: arena, pool: pool)
      for (i, hi) in members { sessions[i].cache.mtpCount = hi }
      // d_1 for the members that speculate.
      draws.begin()
      for (i, _) in members where k[i] > 0 { try draws.add(i, draft.out(lastRow[i]), position: sessions[i].count + 1) }
      draws.run(draft: true) { i, t, _, _ in drafts[i * stride] = t.id }
      // d_2..d_k: one row per session that still drafts, reading its previous output.
      var s = 2
      while true {
        let chain = members.map(\.0).filter { k[$0] >= s }
        if chain.isEmpty { break }
        let prev = chain.map { draft.out(lastRow[$0]) }
        // Copy the previous outputs out first: the next run overwrites the output rows.
        draft.reset()
        for (c, i) in chain.enumerated() {
          let ss = sessions[i]
          lastRow[i] = try draft.add(cache: ss.cache, start: ss.count + s - 2, count: 1, token: { _ in drafts[i * stride + s - 2] },
                                     hidden: { _ in UnsafePointer(prev[c]) })
        }
        try draft.run(transformer, arena: arena, pool: pool)
        draws.begin()
        for i in chain { try draws.add(i, draft.out(lastRow[i]), position: sessions[i].count + s) }
        draws.run(draft: true) { i, t, _, _ in drafts[i * stride + s - 1] = t.id }
        s += 1
      }
    }
  }
}
