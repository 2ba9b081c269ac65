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
// Weight updates wait until no job is running (every answer comes from one weight version, as
// SGLang's update lock does), unless generation is paused, and hold new jobs back meanwhile.

import Dispatch
import GLM5Core
import GLM5Engine
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

  // Scheduler-thread state.
  private var queue: [Job] = []
  private var running: [Job] = []
  private var updates: [(WeightUpdateKind, @Sendable (UpdateReply) -> Void)] = []
  private var paused = false
  private var shuttingDown = false
  private var drained: (@Sendable () -> Void)? = nil
  private var draining = false

  init(model: Model, maxRunning: Int, logRequests: Bool, log: @escaping @Sendable (String) -> Void) {
    self.model = model
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
    case .shutdown: shuttingDown = true
    }
  }

  private func applyUpdates() {
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

  /// Create the admitted jobs' sessions and append their prompts, in one batched call.
  private func prefill(_ jobs: [Job]) {
    var ok: [Job] = []
    for j in jobs {
      do {
        let s = try Session(model: model, maxTokens: j.spec.inputIds.count + j.spec.params.maxNewTokens,
                            recordBytes: j.spec.returnRoutedExperts ? 0 : nil)
        j.session = s
        var stops = Set(j.spec.params.stopTokenIds)
        if !j.spec.params.ignoreEOS { stops.formUnion(model.eosTokenIds) }
        j.stops = stops
        ok.append(j)
      } catch {
        fail(j, error)
      }
    }
    guard !ok.isEmpty else { return }
    func request(_ j: Job) -> AppendRequest {
      AppendRequest(session: j.session!, tokens: j.spec.inputIds, keep: .none, logprobs: j.spec.returnLogprob,
                    temperature: j.spec.returnLogprob ? j.spec.params.temperature : nil)
    }
    var results: [AppendResult?]
    do {
      results = try model.appendBatch(ok.map(request))
    } catch {
      // Find the job at fault: each alone.
      results = []
      for j in ok {
        do { results.append(try model.appendBatch([request(j)])[0]) } catch {
          fail(j, error)
          results.append(nil)
        }
      }
    }
    for (j, r) in zip(ok, results) {
      guard let r else { continue }
      if j.spec.returnLogprob {
        let a = j.spec.logprobStart
        j.out.inputLogprobs = Array(r.scaledLogprobs[a...])
        j.out.inputIds = Array(j.spec.inputIds[a...])
      }
      j.out.weightVersion = r.weightVersion
      if j.spec.params.maxNewTokens == 0 {
        finish(j, .length(0))
      } else {
        running.append(j)
      }
    }
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
    for (j, r) in zip(running, results) {
      guard let t = r.tokens.first else { fail(j, GLM5Error.internal("the engine returned no token")); continue }
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
    if j.spec.returnRoutedExperts, let rec = j.session?.record {
      j.out.routedExperts = routedExperts(rec, tokens: j.session!.count)
    }
    j.session = nil
    let why: String
    switch f {
    case .length: why = "length"
    case .stop(let id): why = "stop(\(id))"
    case .abort(let m): why = "abort(\(m))"
    }
    log("request \(j.spec.rid): \(j.out.promptTokens) tokens in, \(j.out.tokens.count) out, \(fmt(j.out.latency * 1000, 1)) ms, \(why), weights \(j.out.weightVersion)"
        + (logRequests ? ", input_ids \(j.spec.inputIds), output_ids \(j.out.tokens), \(j.spec.params)" : ""))
    j.sink(.done(j.out))
  }

  private func fail(_ j: Job, _ e: any Error) {
    j.session = nil
    log("request \(j.spec.rid): failed: \(e)")
    var status = 500
    if let g = e as? GLM5Error, g.status == .invalidArgument || g.status == .contextFull { status = 400 }
    j.sink(.failed(ServeError(status, "\(e)")))
  }

  /// The routed experts of every token but the last (the last was never run through the model
  /// in SGLang), int32 [tokens - 1, layers, experts_per_tok], -1 rows for dense layers.
  private func routedExperts(_ rec: RoutingRecord, tokens: Int) -> [Int32] {
    let n = max(0, min(tokens - 1, rec.count))
    let L = rec.layers, k = rec.perToken
    var out = [Int32](repeating: -1, count: n * L * k)
    let ids = rec.routes(first: 0, count: n).ids
    for t in 0..<n {
      for l in 0..<L {
        let m = rec.moeIndex[l]
        guard m >= 0 else { continue }
        for e in 0..<k { out[(t * L + l) * k + e] = ids[(t * rec.moeLayers + m) * k + e] }
      }
    }
    return out
  }
}
