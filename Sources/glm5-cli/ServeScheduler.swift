// glm5 serve: the scheduler. One thread owns the engine. HTTP handlers post commands to its
// inbox (submit, abort, weight update, pause, ...) and get events back through callbacks.
//
// Continuous batching: every step samples one token for every running job with one
// Model.sampleBatch call (max_new_tokens 1 each); jobs join (after a batched prefill,
// Model.appendBatch) and leave between steps, and max_new_tokens and stop ids are applied here
// exactly as the engine applies them (length first, then stop ids). The engine's draw is a pure
// function of (seed, position, logits) and its kernels are row-invariant, so each job gets bitwise
// what one Session.sample call on it alone would give, whatever else runs beside it.
//
// Prefix reuse (ServePrefixCache.swift): an admitted job starts from a fork of the kept, running
// or just-admitted session sharing the longest prefix with its prompt, truncated to it, and
// prefills only the rest; meta_info.cached_tokens says how many tokens it did not prefill.
//
// A request pinned to a weight version (weight_version {exact_version | min_required_version})
// is checked when admitted and refused with 400 naming weight_version when the live version does
// not satisfy it.
//
// Weight updates wait until no job is running (every answer comes from one weight version, as
// SGLang's update lock does), unless generation is paused, and hold new jobs back meanwhile.

import Dispatch
import GLM5Core
import GLM5Engine
import GLM5Serve
import GLM5Model
import Synchronization

enum JobEvent: Sendable {
  /// A token was added (streaming jobs only): the output so far.
  case progress(JobOutput)
  /// Finished (length, stop or abort).
  case done(JobOutput)
  /// The engine failed on this job.
  case failed(ServeError)
}

/// A job as the scheduler thread sees it (only that thread touches it after submission).
final class Job: @unchecked Sendable {
  let spec: GenerateJobSpec
  let streaming: Bool
  let sink: @Sendable (JobEvent) -> Void
  let started: Double
  var session: Session? = nil
  var out: JobOutput
  var stops: Set<Int32> = []
  /// Prompt tokens whose caches came from another session (kept, running or admitted with it).
  var cached = 0
  /// When its last token was drawn (metrics: time per output token).
  var lastToken = 0.0
  /// The scheduler's weight generation when the job was admitted.
  var generation = 0
  /// Whether its session must record routes and selections.
  var records: Bool { spec.returnRoutedExperts || spec.returnDSATopk }
  /// Whether input_top_logprobs are asked (top_logprobs_num with return_logprob).
  var inputTop: Bool { spec.returnLogprob && spec.params.topLogprobs > 0 }
  /// At most this many prompt tokens may come from another session: at least one token is
  /// prefilled (its logits start the decode, as SGLang keeps one), and the logprobs asked for
  /// come from this job's own append.
  var reuseLimit: Int {
    var n = spec.inputIds.count - 1
    if spec.returnLogprob { n = min(n, spec.logprobStart) }
    if inputTop { n = min(n, max(spec.logprobStart, 1) - 1) }  // the logits row before logprobStart
    return max(0, n)
  }

  init(spec: GenerateJobSpec, streaming: Bool, started: Double, sink: @escaping @Sendable (JobEvent) -> Void) {
    self.spec = spec
    self.streaming = streaming
    self.sink = sink
    self.started = started
    out = JobOutput(rid: spec.rid, promptTokens: spec.inputIds.count, topN: spec.params.topLogprobs, returnLogprob: spec.returnLogprob)
  }
}

enum WeightUpdateKind: Sendable {
  case folder(String, version: String?)
  case delta(String, version: String?)
}

struct UpdateReply: Sendable {
  var success: Bool
  var message: String
  var abortedRequests: Int
}

enum Command: Sendable {
  case submit(Job)
  case abort(rid: String?, all: Bool)
  case update(WeightUpdateKind, abortAll: Bool, reply: @Sendable (UpdateReply) -> Void)
  case pause(abort: Bool, reply: @Sendable () -> Void)
  case resume(reply: @Sendable () -> Void)
  /// Empty the prefix cache; the reply gets how many sessions it held.
  case flushCache(reply: @Sendable (Int) -> Void)
  /// Stop taking jobs (new ones get 503); answer when every running and queued job has
  /// finished (paused ones are aborted: nothing would run them).
  case drain(reply: @Sendable () -> Void)
  case shutdown
}

final class Scheduler: @unchecked Sendable {
  let model: Model
  let maxRunning: Int
  let log: @Sendable (String) -> Void
  let logRequests: Bool
  private let inbox = Mutex<[Command]>([])
  private let wake = DispatchSemaphore(value: 0)
  private let stopped = DispatchSemaphore(value: 0)
  /// Counters the HTTP side reads (server_info, health).
  let runningCount = Atomic<Int>(0)
  let queuedCount = Atomic<Int>(0)
  let isPaused = Atomic<Bool>(false)
  /// The prefix cache's sessions and bytes (server_info).
  let cachedSessions = Atomic<Int>(0)
  let cachedBytes = Atomic<Int>(0)
  let metrics = ServeMetrics()

  // Scheduler-thread state.
  private var queue: [Job] = []
  private var running: [Job] = []
  private var updates: [(WeightUpdateKind, @Sendable (UpdateReply) -> Void)] = []
  private var paused = false
  private var shuttingDown = false
  private var drained: (@Sendable () -> Void)? = nil
  private var draining = false
  private var cache: PrefixCache
  /// Counts weight updates: a job admitted under an earlier generation (generation paused while
  /// an update applied) does not enter the cache, its prefix having run on other weights.
  private var generation = 0

  init(model: Model, maxRunning: Int, cacheBudget: Int, logRequests: Bool, log: @escaping @Sendable (String) -> Void) {
    self.model = model
    cache = PrefixCache(budget: cacheBudget)
    self.maxRunning = max(1, maxRunning)
    self.logRequests = logRequests
    self.log = log
  }

  func start() {
    DispatchQueue(label: "glm5.scheduler").async { [self] in
      loop()
      stopped.signal()
    }
  }

  func post(_ c: Command) {
    inbox.withLock { $0.append(c) }
    wake.signal()
  }

  /// Abort everything and stop the thread (after in-flight HTTP requests got their answers).
  func shutdown() {
    post(.shutdown)
    stopped.wait()
  }

  // MARK: the loop

  private func loop() {
    while true {
      let cmds = inbox.withLock { (b: inout [Command]) -> [Command] in let c = b; b = []; return c }
      for c in cmds { handle(c) }
      if shuttingDown {
        for j in queue + running { finish(j, .abort("the server is shutting down")) }
        queue = []; running = []
        for (_, reply) in updates { reply(UpdateReply(success: false, message: "the server is shutting down", abortedRequests: 0)) }
        return
      }
      if draining, let reply = drained, queue.isEmpty, running.isEmpty {
        drained = nil
        reply()
      }
      if !updates.isEmpty && (running.isEmpty || paused) { applyUpdates() }
      if !paused && updates.isEmpty && running.count < maxRunning && !queue.isEmpty {
        let n = min(maxRunning - running.count, queue.count)
        let admitted = Array(queue.prefix(n))
        queue.removeFirst(n)
        prefill(admitted)
      }
      runningCount.store(running.count, ordering: .relaxed)
      queuedCount.store(queue.count, ordering: .relaxed)
      if !paused && !running.isEmpty {
        step()
        runningCount.store(running.count, ordering: .relaxed)
        continue
      }
      wake.wait()
    }
  }

  private func handle(_ c: Command) {
    switch c {
    case .submit(let j):
      if draining {
        j.sink(.failed(ServeError(503, "the server is shutting down")))
      } else {
        queue.append(j)
      }
    case .drain(let reply):
      draining = true
      drained = reply
      if paused {
        for j in queue + running { finish(j, .abort("the server is shutting down")) }
        queue = []; running = []
      }
    case .abort(let rid, let all):
      let hit = { (j: Job) in all || j.spec.rid == rid }
      for j in queue where hit(j) { finish(j, .abort("aborted in the waiting queue")) }
      for j in running where hit(j) { finish(j, .abort("aborted while running")) }
      queue.removeAll(where: hit)
      running.removeAll(where: hit)
    case .update(let kind, let abortAll, let reply):
      if abortAll {
        for j in queue + running { finish(j, .abort("aborted for a weight update")) }
        queue = []; running = []
      }
      updates.append((kind, reply))
    case .pause(let abort, let reply):
      paused = true
      isPaused.store(true, ordering: .relaxed)
      if abort {
        for j in queue + running { finish(j, .abort("generation paused")) }
        queue = []; running = []
      }
      reply()
    case .resume(let reply):
      paused = false
      isPaused.store(false, ordering: .relaxed)
      reply()
    case .flushCache(let reply):
      let n = cache.entries.count
      cache.flush()
      publishCacheStats()
      reply(n)
    case .shutdown: shuttingDown = true
    }
  }

  private func publishCacheStats() {
    cachedSessions.store(cache.entries.count, ordering: .relaxed)
    cachedBytes.store(cache.bytes, ordering: .relaxed)
  }

  private func applyUpdates() {
    // The kept caches were computed with the weights being replaced.
    cache.flush()
    publishCacheStats()
    generation += 1
    for (kind, reply) in updates {
      let t0 = now()
      do {
        switch kind {
        case .folder(let path, let version):
          try model.updateWeights(folder: path, version: version ?? model.weightVersion)
        case .delta(let path, let version):
          try model.updateWeights(delta: path, version: version)
        }
        log("weights updated to version \(model.weightVersion) in \(fmt(now() - t0, 3)) s")
        reply(UpdateReply(success: true, message: "Succeeded to update model weights.", abortedRequests: 0))
      } catch {
        log("weight update failed: \(error)")
        reply(UpdateReply(success: false, message: "Failed to update weights: \(error)", abortedRequests: 0))
      }
    }
    updates = []
  }

  /// Give the admitted jobs their sessions and append their prompts. A job starts from the kept
  /// or running session sharing the longest prefix with its prompt (forked, truncated to it), or
  /// from a job admitted before it in this round when that one shares more (a GRPO group sent at
  /// once: the first member prefills the prompt, the others fork it): those "followers" append
  /// in a second batched call, after their leaders.
  private func prefill(_ jobs: [Job]) {
    var leaders: [Job] = []
    var followers: [(job: Job, leader: Job, common: Int)] = []
    for j in jobs {
      if let why = j.spec.pin.refusal(live: model.weightVersion) {
        refuse(j, ServeError(400, why, param: "weight_version"))
        continue
      }
      var stops = Set(j.spec.params.stopTokenIds)
      if !j.spec.params.ignoreEOS { stops.formUnion(model.eosTokenIds) }
      j.stops = stops
      j.generation = generation
      let limit = j.reuseLimit
      // A kept session, or a running job's (its state between steps is whole), or a leader.
      var hit = cache.lookup(j.spec.inputIds, limit: limit, records: j.records).map { (session: $0.entry.session, common: $0.common) }
      for r in running where r.records == j.records && r.generation == generation {  // not one that began on older weights
        guard let rs = r.session else { continue }
        let c = min(PrefixCache.common(rs.tokens, j.spec.inputIds), limit)
        if c > (hit?.common ?? 0) { hit = (rs, c) }
      }
      var best: (Job, Int)? = nil
      for l in leaders where l.records == j.records {
        let c = min(PrefixCache.common(l.spec.inputIds, j.spec.inputIds), limit)
        if c > (best?.1 ?? 0) { best = (l, c) }
      }
      if let best, best.1 > (hit?.common ?? 0) {
        followers.append((j, best.0, best.1))
        continue
      }
      do {
        if let hit {
          let s = try hit.session.fork()
          try s.truncate(hit.common)
          j.session = s
          j.cached = hit.common
        } else {
          j.session = try Session(model: model, maxTokens: 0, recordBytes: j.records ? 0 : nil, mtp: false)
        }
        leaders.append(j)
      } catch {
        fail(j, error)
      }
    }
    let led = appendPrompts(leaders)
    var second: [Job] = []
    for (j, leader, c) in followers {
      guard led.contains(where: { $0 === leader }), let ls = leader.session else {
        // The leader failed: start afresh.
        do { j.session = try Session(model: model, maxTokens: 0, recordBytes: j.records ? 0 : nil, mtp: false) } catch { fail(j, error); continue }
        second.append(j)
        continue
      }
      do {
        let s = try ls.fork()
        try s.truncate(c)
        j.session = s
        j.cached = c
        second.append(j)
      } catch {
        fail(j, error)
      }
    }
    let followed = appendPrompts(second)
    for j in led + followed {
      if j.spec.params.maxNewTokens == 0 {
        finish(j, .length(0))
      } else {
        running.append(j)
      }
    }
  }

  /// Rows of logits kept per append while computing input_top_logprobs (the kept logits are
  /// rows × vocab floats: chunks bound them whatever the prompt's length).
  static let topRowsPerAppend = 64

  /// A job's prompt past its cached prefix, split where input_top_logprobs need kept logits: the
  /// head is appended in the batched call, the tail (from the row before logprob_start_len on)
  /// in chunks that keep their logits. Split-invariance makes the split change no bit.
  private func promptParts(_ j: Job) -> (head: [Int32], tail: [Int32]) {
    let toks = Array(j.spec.inputIds[j.cached...])
    guard j.inputTop else { return (toks, []) }
    let h = max(j.spec.logprobStart, 1) - 1 - j.cached  // >= 0: reuseLimit stops before that row
    return (Array(toks[..<h]), Array(toks[h...]))
  }

  /// Append each job's prompt past its cached prefix (the heads in one batched call); returns
  /// the jobs that succeeded (the others got their error).
  private func appendPrompts(_ jobs: [Job]) -> [Job] {
    guard !jobs.isEmpty else { return [] }
    let parts = jobs.map(promptParts)
    func request(_ i: Int) -> AppendRequest {
      let j = jobs[i]
      return AppendRequest(session: j.session!, tokens: parts[i].head, keep: .none, logprobs: j.spec.returnLogprob,
                           temperature: j.spec.returnLogprob ? j.spec.params.temperature : nil)
    }
    let withHead = jobs.indices.filter { !parts[$0].head.isEmpty }
    var heads = [AppendResult?](repeating: nil, count: jobs.count)
    var failed = Set<Int>()
    do {
      for (i, r) in zip(withHead, try model.appendBatch(withHead.map(request))) { heads[i] = r }
    } catch {
      // Find the job at fault: each alone.
      for i in withHead {
        do { heads[i] = try model.appendBatch([request(i)])[0] } catch {
          fail(jobs[i], error)
          failed.insert(i)
        }
      }
    }
    var ok: [Job] = []
    for (i, j) in jobs.enumerated() where !failed.contains(i) {
      var scaled = heads[i]?.scaledLogprobs ?? []  // [k] = the logprob of prompt token cached + k
      var version = heads[i]?.weightVersion ?? model.weightVersion
      if j.inputTop {
        do {
          let t = try appendKeepingTop(j, parts[i].tail)
          scaled += t.scaled
          version = t.version
          let N = j.spec.params.topLogprobs
          // Position 0 has no logits before it: null, as SGLang.
          let none = j.spec.logprobStart == 0 ? N : 0
          j.out.inputTopIds = [Int32](repeating: -1, count: none) + t.ids
          j.out.inputTopLogprobs = [Float](repeating: -.infinity, count: none) + t.logprobs
          j.out.inputTop = true
        } catch {
          fail(j, error)
          continue
        }
      }
      let a = j.spec.logprobStart, c = j.cached
      if j.spec.returnLogprob {
        j.out.inputLogprobs = Array(scaled[(a - c)...])
        j.out.inputIds = Array(j.spec.inputIds[a...])
      }
      j.out.cachedTokens = c
      j.out.weightVersion = version
      ok.append(j)
    }
    return ok
  }

  /// Append `tail` (the prompt from the row before max(logprob_start_len, 1) on) in chunks that
  /// keep their logits, ranking the top-N of each next position as the sampler does.
  private func appendKeepingTop(_ j: Job, _ tail: [Int32]) throws(GLM5Error)
    -> (scaled: [Float], ids: [Int32], logprobs: [Float], version: String) {
    let s = j.session!, N = j.spec.params.topLogprobs, V = model.config.vocabSize, tau = j.spec.params.temperature
    var scaled: [Float] = [], ids: [Int32] = [], lps: [Float] = [], version = model.weightVersion
    var k = 0
    while k < tail.count {
      let chunk = Array(tail[k..<min(k + Scheduler.topRowsPerAppend, tail.count)])
      let r = try model.appendBatch([AppendRequest(session: s, tokens: chunk, keep: .all, logprobs: true, temperature: tau)])[0]
      scaled += r.scaledLogprobs
      version = r.weightVersion
      // Kept row i holds the logits after chunk[i], which rank the position after it.
      let t = s.keptLogits.withUnsafeBufferPointer {
        ServeExtras.topLogprobs($0.baseAddress!, rows: chunk.count, vocab: V, n: N, temperature: tau)
      }
      ids += t.ids
      lps += t.logprobs
      k += chunk.count
    }
    // The last row ranks the first generated token, not a prompt position (tail is never empty:
    // it holds at least the last prompt token).
    guard ids.count >= N else { throw .internal("input_top_logprobs: no prompt row was appended") }
    ids.removeLast(N)
    lps.removeLast(N)
    return (scaled, ids, lps, version)
  }

  /// One token for every running job.
  private func step() {
    let sessions = running.map { $0.session! }
    let params = running.map { j -> SamplingParams in
      var p = j.spec.params
      p.maxNewTokens = 1
      p.stopTokenIds = []
      p.ignoreEOS = true
      return p
    }
    let results: [SampleResult]
    do {
      results = try model.sampleBatch(sessions, params)
    } catch {
      for j in running { fail(j, error) }
      running = []
      return
    }
    var left: [Job] = []
    let drawn = now()
    for (j, r) in zip(running, results) {
      guard let t = r.tokens.first else { fail(j, GLM5Error.internal("the engine returned no token")); continue }
      if j.out.tokens.isEmpty {
        metrics.timeToFirstToken.record(drawn - j.started)
      } else {
        metrics.timePerOutputToken.record(drawn - j.lastToken)
      }
      j.lastToken = drawn
      j.out.tokens.append(t)
      j.out.raw.append(r.logprobs[0])
      j.out.scaled.append(r.scaledLogprobs[0])
      j.out.processed.append(r.processedLogprobs[0])
      j.out.topIds += r.topIds
      j.out.topLogprobs += r.topLogprobs
      j.out.weightVersion = r.weightVersion
      var f: Finish? = nil
      if j.out.tokens.count == j.spec.params.maxNewTokens {
        f = .length(j.out.tokens.count)  // first, as SGLang's check_finished and the engine
      } else if j.stops.contains(t) {
        f = .stop(t)
      }
      if let f {
        finish(j, f)
      } else {
        if j.streaming {
          var o = j.out
          o.latency = now() - j.started
          j.sink(.progress(o))
        }
        left.append(j)
      }
    }
    running = left
  }

  private func finish(_ j: Job, _ f: Finish) {
    j.out.finish = f
    j.out.latency = now() - j.started
    if let s = j.session {
      if j.spec.returnRoutedExperts, let rec = s.record { j.out.routedExperts = ServeExtras.routedExperts(rec, tokens: s.count) }
      if j.spec.returnDSATopk, let rec = s.record { j.out.dsaTopk = ServeExtras.dsaTopk(rec, tokens: s.count) }
      // Its caches may serve a later request (prefix reuse); an aborted job's are as valid.
      if j.generation == generation {
        cache.insert(s, records: j.records)
        publishCacheStats()  // before the answer: a client reading server_info next sees it
      }
    }
    j.session = nil
    let why: String, kind: String
    switch f {
    case .length: why = "length"; kind = "length"
    case .stop(let id): why = "stop(\(id))"; kind = "stop"
    case .abort(let m): why = "abort(\(m))"; kind = "abort"
    }
    metrics.answered(finish: kind, prompt: j.out.promptTokens, generated: j.out.tokens.count, cached: j.cached, latency: j.out.latency)
    log("request \(j.spec.rid): \(j.out.promptTokens) tokens in (\(j.cached) cached), \(j.out.tokens.count) out, \(fmt(j.out.latency * 1000, 1)) ms, \(why), weights \(j.out.weightVersion)"
        + (logRequests ? ", input_ids \(j.spec.inputIds), output_ids \(j.out.tokens), \(j.spec.params)" : ""))
    j.sink(.done(j.out))
  }

  private func fail(_ j: Job, _ e: any Error) {
    var status = 500
    if let g = e as? GLM5Error, g.status == .invalidArgument || g.status == .contextFull { status = 400 }
    refuse(j, ServeError(status, "\(e)"))
  }

  private func refuse(_ j: Job, _ e: ServeError) {
    j.session = nil
    log("request \(j.spec.rid): failed: \(e.status) \(e.message)")
    metrics.answered(finish: "error", prompt: j.out.promptTokens, generated: j.out.tokens.count, cached: j.cached, latency: now() - j.started)
    j.sink(.failed(e))
  }
}
