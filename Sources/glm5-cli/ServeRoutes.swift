// glm5 serve: the HTTP routes, as SGLang names them (sglang/srt/entrypoints/http_server.py), on
// Hummingbird 2. Every error is JSON ({"error": {"message", "code", "param"}}) with its status;
// the middleware turns whatever a route throws (HTTPError, ServeError, anything) into one. The
// request context is ServeContext (ServeDisconnect.swift), which keeps the connection.

import GLM5Core
import GLM5Engine
import GLM5Serve
import Hummingbird
import Synchronization

/// Turns every thrown error into a JSON error response, and checks the API key.
struct ServeMiddleware<Context: RequestContext>: RouterMiddleware {
  let apiKey: String?
  let log: @Sendable (String) -> Void

  func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
    if let apiKey, request.uri.path != "/health" {
      let auth = request.headers[.authorization] ?? ""
      guard auth == "Bearer \(apiKey)" else {
        return refused(request, ServeError(401, auth.isEmpty ? "missing Authorization: Bearer <api key>" : "invalid API key"))
      }
    }
    do {
      return try await next(request, context)
    } catch let e as ServeError {
      return refused(request, e)
    } catch let e as any HTTPResponseError {
      let m: String
      switch e.status.code {
      case 404: m = "no route \(request.method) \(request.uri.path)"
      case 413: m = "the request body is larger than \(ServeRoutes.maxBody) bytes"
      default: m = (e as? HTTPError)?.body ?? e.status.reasonPhrase
      }
      return refused(request, ServeError(e.status.code, m))
    } catch {
      return refused(request, ServeError(500, "internal error: \(error)"))
    }
  }

  /// The error as JSON, and its log line.
  func refused(_ request: Request, _ e: ServeError) -> Response {
    log("request \(request.method) \(request.uri.path): \(e.status) \(e.message)")
    return jsonError(e)
  }
}

func jsonResponse(_ text: String, status: HTTPResponse.Status = .ok) -> Response {
  Response(status: status, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(string: text)))
}

func jsonError(_ e: ServeError) -> Response {
  jsonResponse(e.json, status: HTTPResponse.Status(code: e.status))
}

/// What the management routes report.
struct ServeInfo: Sendable {
  var modelPath: String
  var host: String
  var port: Int
  var maxRunning: Int
  var cacheBudget: Int
  var threads: Int
  var contextLength: Int
  var vocab: Int
  var modelType: String
}

/// Numbers request ids the client did not give.
final class RidCounter: Sendable {
  let n = Atomic<Int>(0)
}

enum ServeRoutes {
  static let maxBody = 64 << 20

  static func body(_ request: inout Request) async throws -> JSON {
    let buf = try await request.collectBody(upTo: maxBody)
    return try Schema.parseBody(Array(buf.readableBytesView))
  }

  static func build(scheduler: Scheduler, info: ServeInfo, apiKey: String?) -> Router<ServeContext> {
    let router = Router(context: ServeContext.self)
    router.add(middleware: ServeMiddleware(apiKey: apiKey, log: scheduler.log))
    let model = scheduler.model
    let limits = ModelLimits(vocab: info.vocab, contextLength: info.contextLength)
    let counter = RidCounter()
    let prefix = String(UInt64(now() * 1e6) & 0xffff_ffff, radix: 16)
    let newRid: @Sendable () -> String = { "\(prefix)\(String(counter.n.add(1, ordering: .relaxed).newValue, radix: 16))" }

    router.get("/health") { _, _ in Response(status: .ok) }
    router.get("/health_generate") { _, _ -> Response in
      // Paused (a weight sync in progress), a generation would wait: the server is alive.
      if scheduler.isPaused.load(ordering: .relaxed) { return Response(status: .ok) }
      let spec = GenerateJobSpec(rid: "health_generate_\(newRid())", inputIds: [0], params: .greedy(1), returnLogprob: false,
                                 logprobStart: 0, returnRoutedExperts: false)
      let events = submit([spec], streaming: false, scheduler: scheduler)
      for await e in events {
        if case .failed(let err) = e.event { throw ServeError(503, "health_generate failed: \(err.message)") }
        if case .done = e.event { return Response(status: .ok) }
      }
      throw ServeError(503, "health_generate got no answer")
    }
    let modelInfo: @Sendable (Request, ServeContext) async throws -> Response = { _, _ in
      var w = JSONWriter()
      w.object {
        $0.field("model_path", info.modelPath)
        $0.field("tokenizer_path", info.modelPath)
        $0.field("is_generation", true)
        $0.key("preferred_sampling_params"); $0.null()
        $0.field("weight_version", model.weightVersion)
        $0.field("has_image_understanding", false)
        $0.field("has_audio_understanding", false)
        $0.field("model_type", info.modelType)
        $0.key("architectures"); $0.array { $0.value(model.config.family.architecture) }
      }
      return jsonResponse(w.text)
    }
    router.get("/model_info", use: modelInfo)
    router.get("/get_model_info", use: modelInfo)
    let serverInfo: @Sendable (Request, ServeContext) async throws -> Response = { _, _ in
      var w = JSONWriter()
      w.object {
        $0.field("model_path", info.modelPath)
        $0.field("tokenizer_path", info.modelPath)
        $0.field("served_model_name", info.modelPath)
        $0.field("host", info.host)
        $0.field("port", info.port)
        $0.field("tp_size", 1)
        $0.field("dp_size", 1)
        $0.field("pp_size", 1)
        $0.field("ep_size", 1)
        $0.field("nnodes", 1)
        $0.field("node_rank", 0)
        $0.field("disaggregation_mode", "null")
        $0.field("worker_type", "regular")
        $0.field("is_embedding", false)
        $0.field("skip_tokenizer_init", true)
        $0.field("context_length", info.contextLength)
        $0.field("max_running_requests", info.maxRunning)
        $0.field("max_total_num_tokens", info.maxRunning * info.contextLength)
        $0.field("threads", info.threads)
        $0.field("device", "cpu")
        $0.field("weight_version", model.weightVersion)
        $0.field("num_running_reqs", scheduler.runningCount.load(ordering: .relaxed))
        $0.field("num_queue_reqs", scheduler.queuedCount.load(ordering: .relaxed))
        $0.field("paused", scheduler.isPaused.load(ordering: .relaxed))
        $0.field("cache_budget", info.cacheBudget)
        $0.field("cached_sessions", scheduler.cachedSessions.load(ordering: .relaxed))
        $0.field("cached_bytes", scheduler.cachedBytes.load(ordering: .relaxed))
        $0.field("version", "glm5-0.2.0")
        $0.key("internal_states")
        $0.array { $0.object { $0.field("last_gen_throughput", 0.0) } }
      }
      return jsonResponse(w.text)
    }
    router.get("/server_info", use: serverInfo)
    router.get("/get_server_info", use: serverInfo)
    router.get("/metrics") { _, _ in
      let text = scheduler.metrics.render(running: scheduler.runningCount.load(ordering: .relaxed),
                                          queued: scheduler.queuedCount.load(ordering: .relaxed))
      return Response(status: .ok, headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8"],
                      body: .init(byteBuffer: ByteBuffer(string: text)))
    }
    router.get("/get_weight_version") { _, _ in
      var w = JSONWriter()
      w.object { $0.field("weight_version", model.weightVersion) }
      return jsonResponse(w.text)
    }

    router.post("/update_weights_from_disk") { request, _ -> Response in
      var request = request
      let o = try Schema.object(try await body(&request))
      guard let path = try Schema.string(o, "model_path", ""), !path.isEmpty else { throw ServeError.bad("model_path", "required (a folder)") }
      let version = try Schema.string(o, "weight_version", "")
      let format = try Schema.string(o, "load_format", "") ?? "auto"
      let abortAll = try Schema.bool(o, "abort_all_requests", "") ?? false
      let kind: WeightUpdateKind
      switch format {
      case "delta": kind = .delta(path, version: version)
      case "auto", "safetensors", "": kind = .folder(path, version: version)
      default: throw ServeError.bad("load_format", "\"\(format)\" is not supported (auto, safetensors or delta)")
      }
      let r = await withCheckedContinuation { (c: CheckedContinuation<UpdateReply, Never>) in
        scheduler.post(.update(kind, abortAll: abortAll, reply: { c.resume(returning: $0) }))
      }
      var w = JSONWriter()
      w.object {
        $0.field("success", r.success)
        $0.field("message", r.message)
        $0.field("num_paused_requests", r.abortedRequests)
      }
      return jsonResponse(w.text, status: r.success ? .ok : .badRequest)
    }
    router.post("/flush_cache") { _, _ -> Response in
      // Empties the prefix cache (running requests keep their own sessions).
      let n = await withCheckedContinuation { (c: CheckedContinuation<Int, Never>) in
        scheduler.post(.flushCache(reply: { c.resume(returning: $0) }))
      }
      scheduler.log("flushed the prefix cache (\(n) sessions)")
      return Response(status: .ok, body: .init(byteBuffer: ByteBuffer(string: "Cache flushed.\n")))
    }
    router.post("/abort_request") { request, _ -> Response in
      var request = request
      let o = try Schema.object(try await body(&request))
      let rid = try Schema.string(o, "rid", "")
      let all = try Schema.bool(o, "abort_all", "") ?? false
      guard all || rid != nil else { throw ServeError.bad("rid", "required unless abort_all is true") }
      scheduler.post(.abort(rid: rid, all: all))
      return Response(status: .ok)
    }
    router.post("/pause_generation") { request, _ -> Response in
      var request = request
      let buf = try await request.collectBody(upTo: maxBody)
      var mode = "abort"
      if buf.readableBytes > 0 {
        let o = try Schema.object(try Schema.parseBody(Array(buf.readableBytesView)))
        mode = try Schema.string(o, "mode", "") ?? "abort"
      }
      guard ["abort", "in_place", "retract"].contains(mode) else {
        throw ServeError.bad("mode", "\"\(mode)\" is not one of abort, in_place, retract")
      }
      await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
        scheduler.post(.pause(abort: mode == "abort", reply: { c.resume() }))
      }
      return jsonResponse("{\"message\":\"Generation paused successfully.\",\"status\":\"ok\"}")
    }
    router.post("/continue_generation") { _, _ -> Response in
      await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
        scheduler.post(.resume(reply: { c.resume() }))
      }
      return jsonResponse("{\"message\":\"Generation continued successfully.\",\"status\":\"ok\"}")
    }

    router.post("/generate") { request, context -> Response in
      var request = request
      let started = now()
      let req = try Schema.parseGenerate(try await body(&request), limits: limits, newRid: newRid)
      let rids = req.jobs.map(\.rid)
      if req.stream {
        let events = submit(req.jobs, streaming: true, scheduler: scheduler, started: started)
        let batch = req.batch
        return Response(status: .ok, headers: [.contentType: "text/event-stream", .cacheControl: "no-cache"],
                        body: ResponseBody { writer in
          var left = rids.count
          do {
            for await e in events {
              var w = JSONWriter()
              switch e.event {
              case .progress(let o): o.write(&w, index: batch ? e.index : nil)
              case .done(let o): o.write(&w, index: batch ? e.index : nil); left -= 1
              case .failed(let err): w = JSONWriter(); w.raw(err.json); left -= 1
              }
              try await writer.write(ByteBuffer(string: "data: " + w.text + "\n\n"))
              if left == 0 { break }
            }
            try await writer.write(ByteBuffer(string: "data: [DONE]\n\n"))
            try await writer.finish(nil)
          } catch {
            // The client went away: free its sessions.
            for rid in rids { scheduler.post(.abort(rid: rid, all: false)) }
            throw error
          }
        })
      }
      let events = submit(req.jobs, streaming: false, scheduler: scheduler, started: started)
      var outs = [JobOutput?](repeating: nil, count: rids.count)
      var left = rids.count
      var failure: ServeError? = nil
      // A client that goes away (ServeDisconnect.swift) or a cancelled handler aborts the jobs.
      let abort: @Sendable () -> Void = { for rid in rids { scheduler.post(.abort(rid: rid, all: false)) } }
      try await DisconnectWatch.watching(context.channel, onGone: {
        scheduler.log("request \(rids.joined(separator: ",")): the client went away")
        abort()
      }) {
        await withTaskCancellationHandler {
          for await e in events {
            switch e.event {
            case .progress: continue
            case .done(let o): outs[e.index] = o
            case .failed(let err): failure = failure ?? err
            }
            left -= 1
            if left == 0 { break }
          }
        } onCancel: {
          abort()
        }
      }
      if let failure { throw failure }
      var w = JSONWriter()
      if req.batch {
        w.array { w in for o in outs { o!.write(&w, index: nil) } }
      } else {
        outs[0]!.write(&w, index: nil)
      }
      return jsonResponse(w.text)
    }
    return router
  }

  /// Submit jobs; their events arrive on one stream, tagged with the job's index.
  static func submit(_ specs: [GenerateJobSpec], streaming: Bool, scheduler: Scheduler, started: Double = now())
    -> AsyncStream<(index: Int, event: JobEvent)> {
    let (stream, cont) = AsyncStream<(index: Int, event: JobEvent)>.makeStream()
    for (i, s) in specs.enumerated() {
      scheduler.post(.submit(Job(spec: s, streaming: streaming, started: started, sink: { cont.yield((i, $0)) })))
    }
    return stream
  }
}
