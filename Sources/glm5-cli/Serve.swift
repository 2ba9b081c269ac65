// glm5 serve: an HTTP rollout server speaking SGLang's native API (POST /generate with token ids,
// weight updates, management routes), computing through GLM5Engine. Split by concept:
//   Serve.swift           the command: options, loading, the application's lifecycle
//   ServeRoutes.swift     the HTTP routes and the error/auth middleware
//   ../GLM5Serve/ServeSchema.swift  the request and response schema (GenerateReqInput, meta_info), JSON
//                         (a library module, so that Sources/GLM5Fuzz can fuzz the body parser)
//   ServeResponse.swift   the response schema (SGLang's answer object, glm5's extras)
//   ServeExtras.swift     routed_experts, dsa_topk, input_top_logprobs from what the engine keeps
//   ServeScheduler.swift  the scheduler thread: continuous batching over the batched engine
//   ServePrefixCache.swift prefix reuse: finished sessions kept within --cache-budget (LRU)
//   ServeMetrics.swift    GET /metrics (Prometheus text, swift-prometheus)
//   ServeWeightsWatch.swift --weights-watch DIR: publish-only weight sync
//   ServeDisconnect.swift a client that goes away aborts its request (ServeContext)
//
// Binds 127.0.0.1 unless told otherwise; SIGINT/SIGTERM shut down gracefully (requests in flight
// finish, then the scheduler stops).

import ArgumentParser
import GLM5Core
import GLM5Engine
import Hummingbird
import Logging
import ServiceLifecycle

#if canImport(Glibc)
import Glibc
#endif

struct Serve: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    abstract: "Serve a model over HTTP in SGLang's native API (POST /generate with input_ids; weight updates; management routes).")

  @Argument(help: "Folder with config.json and safetensors weights.")
  var model: String

  @Option(help: "Address to bind (127.0.0.1: this machine only).")
  var host: String = "127.0.0.1"

  @Option(help: "Port to listen on.")
  var port: Int = 30000

  @Option(help: "Compute threads (0 = one per CPU).")
  var threads: Int = 0

  @Option(help: "Require `Authorization: Bearer KEY` on every route but /health.")
  var apiKey: String? = nil

  @Option(help: "Most requests decoding together; more wait in a queue.")
  var maxRunningRequests: Int = 32

  @Option(help: "Bytes of finished requests' caches kept for prefix reuse (least recently used evicted first; 0 = no reuse).")
  var cacheBudget: Int = 1 << 30

  @Option(help: "Apply each new complete weight_vNNNNNN folder (slime delta or full checkpoint) that appears in this folder, in version order.")
  var weightsWatch: String? = nil

  @Option(help: "Seconds between two looks at --weights-watch's folder.")
  var weightsWatchInterval: Double = 1.0

  @Flag(help: "Also log each request's input and output ids and sampling parameters.")
  var logRequests = false

  func validate() throws {
    guard port >= 0 && port <= 65535 else { throw ValidationError("--port \(port) is outside [0, 65535]") }
    guard maxRunningRequests >= 1 else { throw ValidationError("--max-running-requests must be at least 1") }
    guard weightsWatchInterval > 0 && weightsWatchInterval <= 3600 else { throw ValidationError("--weights-watch-interval must be in (0, 3600] seconds") }
    if let w = weightsWatch, fileKind(w) != .directory { throw ValidationError("--weights-watch \(w) is not a folder") }
    guard cacheBudget >= 0 else { throw ValidationError("--cache-budget must be >= 0") }
    if let apiKey, apiKey.isEmpty { throw ValidationError("--api-key is empty") }
  }

  func run() async throws {
    let t0 = now()
    let m = try runOrExit { () throws(GLM5Error) in try Model(path: model, threads: threads) }
    let log: @Sendable (String) -> Void = { line in
      var s = "[glm5 serve] " + line + "\n"
      s.withUTF8 { b in _ = write(2, b.baseAddress, b.count) }
    }
    log("loaded \(model) in \(fmt(now() - t0, 2)) s (\(m.pool.threads) threads)")
    let scheduler = Scheduler(model: m, maxRunning: maxRunningRequests, cacheBudget: cacheBudget, logRequests: logRequests, log: log)
    scheduler.start()
    let info = ServeInfo(modelPath: model, host: host, port: port, maxRunning: maxRunningRequests, cacheBudget: cacheBudget, threads: m.pool.threads,
                         contextLength: m.config.maxPositionEmbeddings, vocab: m.config.vocabSize, modelType: m.config.modelType)
    let router = ServeRoutes.build(scheduler: scheduler, info: info, apiKey: apiKey)
    var logger = Logger(label: "glm5-serve")
    logger.logLevel = .warning
    let host = host, port = port
    let app = Application(
      router: router,
      configuration: .init(address: .hostname(host, port: port), serverName: "glm5"),
      onServerRunning: { _ in log("listening on http://\(host):\(port)") },
      logger: logger)
    // On SIGINT/SIGTERM the group shuts its services down in reverse order: first the
    // scheduler drains (requests in flight finish, new ones get 503), then the HTTP server.
    var services: [ServiceGroupConfiguration.ServiceConfiguration] =
      [.init(service: app), .init(service: SchedulerService(scheduler: scheduler, log: log))]
    if let dir = weightsWatch {  // last: the first to stop
      services.append(.init(service: WeightsWatcher(dir: dir, interval: weightsWatchInterval, scheduler: scheduler, log: log)))
    }
    let group = ServiceGroup(configuration: .init(
      services: services,
      gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
    do {
      try await group.run()
    } catch {
      scheduler.shutdown()
      throw error
    }
    scheduler.shutdown()
    log("shut down")
  }
}

/// Drains the scheduler when the service group shuts down.
struct SchedulerService: Service {
  let scheduler: Scheduler
  let log: @Sendable (String) -> Void

  func run() async throws {
    try? await gracefulShutdown()
    log("shutting down: finishing requests in flight")
    await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
      scheduler.post(.drain(reply: { c.resume() }))
    }
  }
}
