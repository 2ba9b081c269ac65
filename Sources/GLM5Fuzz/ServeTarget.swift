// The body of a `glm5 serve` request: Schema.parseBody, then every route's reader over the same
// object (/generate's Schema.parseGenerate, and the management routes' fields), then the error's
// JSON as the server would answer it.

import GLM5Core
import GLM5Serve

/// tiny-dsa's vocabulary and context length.
let fuzzServeLimits = ModelLimits(vocab: 320, contextLength: 256)

@Sendable func fuzzServe(_ bytes: UnsafeRawBufferPointer) {
  do throws(ServeError) {
    let body = try Schema.parseBody(Array(bytes))
    do throws(ServeError) {
      var n = 0
      let req = try Schema.parseGenerate(body, limits: fuzzServeLimits, newRid: { n += 1; return "rid\(n)" })
      precondition(!req.jobs.isEmpty)
      for j in req.jobs { precondition(!j.inputIds.isEmpty && j.logprobStart >= 0 && j.logprobStart < j.inputIds.count) }
    } catch {
      _ = error.json
    }
    // /update_weights_from_disk, /abort_request, /pause_generation.
    let o = try Schema.object(body)
    _ = try Schema.string(o, "model_path", "")
    _ = try Schema.string(o, "weight_version", "")
    _ = try Schema.string(o, "load_format", "")
    _ = try Schema.bool(o, "abort_all_requests", "")
    _ = try Schema.string(o, "rid", "")
    _ = try Schema.bool(o, "abort_all", "")
    _ = try Schema.string(o, "mode", "")
    // Echoing any parsed value (the writer behind every answer).
    var w = JSONWriter()
    w.value(body)
    _ = w.text
  } catch {
    _ = error.json
  }
}
