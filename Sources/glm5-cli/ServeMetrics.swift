// glm5 serve: GET /metrics in Prometheus' text format, through swift-prometheus (its collector
// registry writes the exposition format). The names follow SGLang's metrics under a glm5_ prefix:
//
//   glm5_num_requests_total{finish="length|stop|abort|error"}  counter  requests answered
//   glm5_prompt_tokens_total                                 counter  prompt tokens of answered requests
//   glm5_generation_tokens_total                             counter  tokens generated
//   glm5_cached_tokens_total                                 counter  prompt tokens served from reuse
//   glm5_num_running_reqs, glm5_num_queue_reqs               gauges   set when scraped
//   glm5_time_to_first_token_seconds                         histogram  arrival to first token
//   glm5_time_per_output_token_seconds                       histogram  between consecutive tokens
//   glm5_e2e_request_latency_seconds                         histogram  arrival to answer
//
// The scheduler thread records; the HTTP side only renders (the registry is thread-safe).

import Prometheus

final class ServeMetrics: Sendable {
  let registry = PrometheusCollectorRegistry()
  let promptTokens: Counter
  let generationTokens: Counter
  let cachedTokens: Counter
  let running: Gauge
  let queued: Gauge
  let timeToFirstToken: ValueHistogram
  let timePerOutputToken: ValueHistogram
  let e2eLatency: ValueHistogram
  private let requests: [String: Counter]

  static let latencyBuckets: [Double] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60]
  static let e2eBuckets: [Double] = [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600]

  init() {
    func name(_ m: String, _ unit: String, _ help: String) -> MetricNameDescriptor {
      MetricNameDescriptor(namespace: "glm5", metricName: m, unitName: unit, helpText: help)
    }
    promptTokens = registry.makeCounter(descriptor: name("prompt_tokens", "total", "Prompt tokens of answered requests."))
    generationTokens = registry.makeCounter(descriptor: name("generation_tokens", "total", "Tokens generated."))
    cachedTokens = registry.makeCounter(descriptor: name("cached_tokens", "total", "Prompt tokens whose caches were reused."))
    var r: [String: Counter] = [:]
    for f in ["length", "stop", "abort", "error"] {
      r[f] = registry.makeCounter(descriptor: name("num_requests", "total", "Requests answered, by finish reason."), labels: [("finish", f)])
    }
    requests = r
    running = registry.makeGauge(descriptor: name("num_running_reqs", "", "Requests decoding."))
    queued = registry.makeGauge(descriptor: name("num_queue_reqs", "", "Requests waiting to be admitted."))
    timeToFirstToken = registry.makeValueHistogram(
      descriptor: name("time_to_first_token", "seconds", "From a request's arrival to its first token."), buckets: ServeMetrics.latencyBuckets)
    timePerOutputToken = registry.makeValueHistogram(
      descriptor: name("time_per_output_token", "seconds", "Between consecutive tokens of a request."), buckets: ServeMetrics.latencyBuckets)
    e2eLatency = registry.makeValueHistogram(
      descriptor: name("e2e_request_latency", "seconds", "From a request's arrival to its answer."), buckets: ServeMetrics.e2eBuckets)
  }

  /// A request answered (finish "length", "stop", "abort") or failed ("error").
  func answered(finish: String, prompt: Int, generated: Int, cached: Int, latency: Double) {
    requests[finish]?.increment()
    promptTokens.increment(by: Int64(prompt))
    generationTokens.increment(by: Int64(generated))
    cachedTokens.increment(by: Int64(cached))
    e2eLatency.record(latency)
  }

  /// The exposition text, with the gauges set from the scheduler's counters.
  func render(running r: Int, queued q: Int) -> String {
    running.set(Double(r))
    queued.set(Double(q))
    return registry.emitToString()
  }
}
