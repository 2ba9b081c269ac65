// glm5_session_sample, glm5_sample_batch, glm5_append_batch, fork, cancel, scaled scoring and
// the model's eos ids: the rollout engine's C surface (include/glm5.h "Sampling").

import CGLM5
import GLM5Core
import GLM5Engine

/// The first versions' sizes (the structs only grow by appending). 0.4's speculative took the
/// padding at the end of glm5_sampling_params, so its first version ends where it starts.
let samplingParamsV1 = MemoryLayout<glm5_sampling_params>.offset(of: \glm5_sampling_params.speculative)!
let samplingParamsV4 = MemoryLayout<glm5_sampling_params>.offset(of: \glm5_sampling_params.speculative)! + 4
let sampleOutputV1 = MemoryLayout<glm5_sample_output>.offset(of: \glm5_sample_output.weight_version)!
/// Where 0.2's weight_version starts, and the size that holds it; then 0.4's size.
let sampleOutputV2 = MemoryLayout<glm5_sample_output>.offset(of: \glm5_sample_output.accepted)!
let sampleOutputV4 = MemoryLayout<glm5_sample_output>.size
/// Most sessions in one batched call (include/glm5.h "Limits").
let maxBatch = Int(GLM5_MAX_BATCH)

/// glm5_sampling_params → SamplingParams (NULL = defaults), checked for NULL arrays.
func samplingParams(_ p: UnsafePointer<glm5_sampling_params>?, context: String) throws(GLM5Error) -> SamplingParams {
  guard let p else { return SamplingParams() }
  let v = p.pointee
  guard Int(v.struct_size) >= samplingParamsV1 else {
    throw .invalidArgument("\(context)glm5_sampling_params.struct_size is \(v.struct_size), smaller than the \(samplingParamsV1) bytes of its first version; initialise it with glm5_sampling_params_init")
  }
  var s = SamplingParams()
  s.temperature = v.temperature
  s.topK = Int(v.top_k)
  s.topP = v.top_p
  s.minP = v.min_p
  s.maxNewTokens = Int(v.max_new_tokens)
  s.seed = v.seed
  s.ignoreEOS = v.ignore_eos != 0
  s.topLogprobs = Int(v.n_top_logprobs)
  if Int(v.struct_size) >= samplingParamsV4 {
    guard v.speculative <= UInt32(SamplingParams.maxSpeculative) else {
      throw .invalidArgument("\(context)speculative is \(v.speculative), must be in [0, \(SamplingParams.maxSpeculative)] (0 = off)")
    }
    s.speculative = Int(v.speculative)
  }
  let n = v.n_stop_token_ids  // size_t: (size_t)-1 arrives as -1
  guard n >= 0 && n <= SamplingParams.maxStopTokenIds else {
    throw .invalidArgument("\(context)n_stop_token_ids is \(UInt(bitPattern: n)), must be at most \(SamplingParams.maxStopTokenIds)")
  }
  if n > 0 {
    guard let ids = v.stop_token_ids else { throw .invalidArgument("\(context)stop_token_ids is NULL but n_stop_token_ids is \(n)") }
    s.stopTokenIds = Array(UnsafeBufferPointer(start: ids, count: n))
  }
  return s
}

/// Check an output struct against the parameters it will receive.
func checkOutput(_ o: UnsafeMutablePointer<glm5_sample_output>?, _ p: SamplingParams, context: String) throws(GLM5Error) -> UnsafeMutablePointer<glm5_sample_output> {
  guard let o else { throw .invalidArgument("\(context)out is NULL") }
  // Field by field, not the whole struct: an older host's struct ends before the newer fields.
  let size = o.pointee.struct_size
  guard Int(size) >= sampleOutputV1 else {
    throw .invalidArgument("\(context)glm5_sample_output.struct_size is \(size), smaller than the \(sampleOutputV1) bytes of its first version; initialise it with glm5_sample_output_init")
  }
  guard o.pointee.tokens != nil else { throw .invalidArgument("\(context)out->tokens is NULL") }
  let capacity = o.pointee.capacity
  guard capacity >= p.maxNewTokens else {
    throw .invalidArgument("\(context)out->capacity is \(capacity), smaller than max_new_tokens = \(p.maxNewTokens)")
  }
  return o
}

/// Copy a result into the host's arrays and OUT fields.
func write(_ r: SampleResult, to o: UnsafeMutablePointer<glm5_sample_output>) {
  let n = r.tokens.count
  func put<T>(_ a: [T], _ dst: UnsafeMutablePointer<T>?) {
    guard let dst, !a.isEmpty else { return }
    a.withUnsafeBufferPointer { dst.update(from: $0.baseAddress!, count: a.count) }
  }
  put(r.tokens, o.pointee.tokens)
  put(r.logprobs, o.pointee.logprobs)
  put(r.scaledLogprobs, o.pointee.scaled_logprobs)
  put(r.processedLogprobs, o.pointee.processed_logprobs)
  if r.topN > 0 {
    put(r.topIds, o.pointee.top_ids)
    put(r.topLogprobs, o.pointee.top_logprobs)
  }
  o.pointee.n_tokens = n
  o.pointee.finish_reason = r.finishReason.rawValue
  o.pointee.stop_token_id = r.stopTokenId ?? -1
  o.pointee.status = 0
  if Int(o.pointee.struct_size) >= sampleOutputV2 {
    writeCString(r.weightVersion, into: UnsafeMutableRawPointer(o) + sampleOutputV1, capacity: Int(GLM5_WEIGHT_VERSION_SIZE))
  }
  if Int(o.pointee.struct_size) >= sampleOutputV4 {
    put(r.accepted, o.pointee.accepted)
    o.pointee.n_steps = r.accepted.count
  }
}

/// A string into a fixed char array, NUL-terminated (cut at a UTF-8 boundary if too long).
func writeCString(_ s: String, into p: UnsafeMutableRawPointer, capacity: Int) {
  var b = Array(s.utf8)
  if b.count > capacity - 1 {
    b = Array(b.prefix(capacity - 1))
    while let last = b.last, last & 0xC0 == 0x80 { b.removeLast() }
    if let last = b.last, last >= 0xC0 { b.removeLast() }
  }
  p.initializeMemory(as: UInt8.self, repeating: 0, count: capacity)
  b.withUnsafeBytes { if let base = $0.baseAddress { p.copyMemory(from: base, byteCount: b.count) } }
}

@c @implementation
public func glm5_session_sample(_ session: OpaquePointer?, _ params: UnsafePointer<glm5_sampling_params>?,
                                _ out: UnsafeMutablePointer<glm5_sample_output>?) -> glm5_status {
  withSession("glm5_session_sample", session) { (s) throws(GLM5Error) in
    let p = try samplingParams(params, context: "")
    let o = try checkOutput(out, p, context: "")
    let r = try s.sample(p)
    write(r, to: o)
  }
}

/// Claimed sessions of a batched call: the boxes whose in-use flags this call holds.
struct Claim {
  var boxes: [SessionBox] = []
  func release() { for b in boxes { b.inUse.store(false, ordering: .releasing) } }
}

/// Look up and claim n sessions (BUSY / INVALID_ARGUMENT naming the index); on failure nothing
/// stays claimed. `failed` receives the failing index.
func claimSessions(_ sessions: UnsafePointer<OpaquePointer?>, _ n: Int, failed: inout Int) throws(GLM5Error) -> Claim {
  var claim = Claim()
  for i in 0..<n {
    failed = i
    let box: SessionBox
    do throws(GLM5Error) { box = try object(sessions[i], SessionBox.self, kind: "session", param: "sessions[\(i)]") } catch {
      claim.release(); throw error
    }
    if claim.boxes.contains(where: { $0 === box }) {
      claim.release()
      throw .invalidArgument("sessions[\(i)] appears twice in the batch")
    }
    guard box.inUse.compareExchange(expected: false, desired: true, ordering: .acquiring).exchanged else {
      claim.release()
      throw GLM5Error(.busy, "sessions[\(i)] is in use by another call")
    }
    claim.boxes.append(box)
  }
  failed = -1
  guard let first = claim.boxes.first else { return claim }
  for (i, b) in claim.boxes.enumerated() where b.session.model !== first.session.model {
    failed = i
    claim.release()
    throw .invalidArgument("sessions[\(i)] belongs to another model than sessions[0]")
  }
  return claim
}

func checkBatchCount(_ n: Int) throws(GLM5Error) {
  guard n >= 1 && n <= maxBatch else { throw .invalidArgument("n is \(n), must be in [1, \(maxBatch)]") }
}

@c @implementation
public func glm5_sample_batch(_ sessions: UnsafePointer<OpaquePointer?>?, _ n: Int,
                              _ params: UnsafePointer<UnsafePointer<glm5_sampling_params>?>?,
                              _ outs: UnsafePointer<UnsafeMutablePointer<glm5_sample_output>?>?) -> glm5_status {
  guarded("glm5_sample_batch") { () throws(GLM5Error) in
    try checkBatchCount(n)
    guard let sessions else { throw .invalidArgument("sessions is NULL") }
    guard let outs else { throw .invalidArgument("outs is NULL") }
    // Per-session statuses: set where the output struct is usable.
    func setStatus(_ failed: Int, _ e: GLM5Error) {
      for i in 0..<n {
        guard let o = outs[i], Int(o.pointee.struct_size) >= sampleOutputV1 else { continue }
        o.pointee.status = Int32(failed < 0 || failed == i ? e.status.rawValue : 0)
        o.pointee.n_tokens = 0
        o.pointee.finish_reason = FinishReason.none.rawValue
        o.pointee.stop_token_id = -1
      }
    }
    var failed = -1
    let claim: Claim
    do throws(GLM5Error) { claim = try claimSessions(sessions, n, failed: &failed) } catch { setStatus(failed, error); throw error }
    defer { claim.release() }
    var ps: [SamplingParams] = []
    var os: [UnsafeMutablePointer<glm5_sample_output>] = []
    let model = claim.boxes[0].session.model
    do throws(GLM5Error) {
      for i in 0..<n {
        failed = i
        let ctx = "session \(i): "
        let p = try samplingParams(params?[i], context: ctx)
        os.append(try checkOutput(outs[i], p, context: ctx))
        try model.checkSample(claim.boxes[i].session, p, context: ctx)
        ps.append(p)
      }
      failed = -1
      let results = try model.sampleBatch(claim.boxes.map(\.session), ps)
      for (r, o) in zip(results, os) { write(r, to: o) }
    } catch {
      setStatus(failed, error)
      throw error
    }
  }
}

@c @implementation
public func glm5_append_batch(_ sessions: UnsafePointer<OpaquePointer?>?, _ n: Int, _ tokens: UnsafePointer<UnsafePointer<Int32>?>?,
                              _ nTokens: UnsafePointer<Int>?, _ keep: glm5_logits,
                              _ logprobs: UnsafePointer<UnsafeMutablePointer<Float>?>?) -> glm5_status {
  guarded("glm5_append_batch") { () throws(GLM5Error) in
    try checkBatchCount(n)
    guard let sessions else { throw .invalidArgument("sessions is NULL") }
    guard let tokens else { throw .invalidArgument("tokens is NULL") }
    guard let nTokens else { throw .invalidArgument("n_tokens is NULL") }
    guard let mode = Session.LogitsMode(rawValue: Int32(truncatingIfNeeded: keep.rawValue)) else {
      throw .invalidArgument("keep is \(keep.rawValue), not a glm5_logits value")
    }
    var failed = -1
    let claim = try claimSessions(sessions, n, failed: &failed)
    defer { claim.release() }
    let model = claim.boxes[0].session.model
    var reqs: [AppendRequest] = []
    for i in 0..<n {
      let s = claim.boxes[i].session
      let count = nTokens[i]
      try checkCount(count, "n_tokens[\(i)]")
      guard count <= s.maxTokens - s.count else {
        throw GLM5Error(.contextFull, "session \(i): appending \(count) token(s) to \(s.count) exceeds the session's maximum of \(s.maxTokens)")
      }
      guard count > 0 else { throw .invalidArgument("session \(i): n_tokens[\(i)] is 0") }
      guard let t = tokens[i] else { throw .invalidArgument("session \(i): tokens[\(i)] is NULL") }
      let r = AppendRequest(session: s, tokens: Array(UnsafeBufferPointer(start: t, count: count)), keep: mode,
                            logprobs: logprobs?[i] != nil)
      try model.checkAppend(r, context: "session \(i): ")
      reqs.append(r)
    }
    let results = try model.appendBatch(reqs)
    for i in 0..<n {
      if let dst = logprobs?[i] { results[i].logprobs.withUnsafeBufferPointer { dst.update(from: $0.baseAddress!, count: $0.count) } }
    }
  }
}

@c @implementation
public func glm5_session_append_scaled(_ session: OpaquePointer?, _ tokens: UnsafePointer<Int32>?, _ nTokens: Int,
                                       _ keep: glm5_logits, _ temperature: Float, _ logprobs: UnsafeMutablePointer<Float>?,
                                       _ scaledLogprobs: UnsafeMutablePointer<Float>?) -> glm5_status {
  appendScaled("glm5_session_append_scaled", session, tokens, nTokens, keep, nil, temperature, logprobs, scaledLogprobs)
}

/// glm5_session_append_scaled and glm5_session_append_replay.
func appendScaled(_ function: String, _ session: OpaquePointer?, _ tokens: UnsafePointer<Int32>?, _ nTokens: Int, _ keep: glm5_logits,
                  _ replay: UnsafePointer<glm5_replay>?, _ temperature: Float, _ logprobs: UnsafeMutablePointer<Float>?,
                  _ scaledLogprobs: UnsafeMutablePointer<Float>?) -> glm5_status {
  withSession(function, session) { (s) throws(GLM5Error) in
    let ids = try appendedTokens(s, tokens, nTokens)
    guard let mode = Session.LogitsMode(rawValue: Int32(truncatingIfNeeded: keep.rawValue)) else {
      throw .invalidArgument("keep is \(keep.rawValue), not a glm5_logits value")
    }
    guard temperature.isFinite && temperature >= 0 else { throw .invalidArgument("temperature is \(temperature), must be finite and >= 0") }
    let (raw, scaled) = try s.appendScaled(ids, logits: mode, temperature: temperature, replay: try replayArg(replay))
    if let logprobs { raw.withUnsafeBufferPointer { logprobs.update(from: $0.baseAddress!, count: raw.count) } }
    if let scaledLogprobs { scaled.withUnsafeBufferPointer { scaledLogprobs.update(from: $0.baseAddress!, count: scaled.count) } }
  }
}

@c @implementation
public func glm5_session_fork(_ session: OpaquePointer?, _ outSession: UnsafeMutablePointer<OpaquePointer?>?) -> glm5_status {
  withSession("glm5_session_fork", session) { (s) throws(GLM5Error) in
    guard let outSession else { throw .invalidArgument("out_session is NULL") }
    let f = try s.fork()
    outSession.pointee = makeHandle(SessionBox(f), kind: "session")
  }
}

@c @implementation
public func glm5_session_cancel(_ session: OpaquePointer?) -> glm5_status {
  guarded("glm5_session_cancel") { () throws(GLM5Error) in
    let box = try object(session, SessionBox.self, kind: "session", param: "session")
    box.session.cancel()
  }
}

@c @implementation
public func glm5_model_score_scaled(_ model: OpaquePointer?, _ tokens: UnsafePointer<Int32>?, _ nTokens: Int, _ temperature: Float,
                                    _ logprobs: UnsafeMutablePointer<Float>?, _ scaledLogprobs: UnsafeMutablePointer<Float>?) -> glm5_status {
  guarded("glm5_model_score_scaled") { () throws(GLM5Error) in
    let m = try object(model, Model.self, kind: "model", param: "model")
    let ids = try scoredTokens(m, tokens, nTokens)
    guard logprobs != nil || scaledLogprobs != nil else { throw .invalidArgument("logprobs and scaled_logprobs are both NULL") }
    guard temperature.isFinite && temperature >= 0 else { throw .invalidArgument("temperature is \(temperature), must be finite and >= 0") }
    let (raw, scaled) = try m.scoreScaled(ids, temperature: temperature)
    if let logprobs { raw.withUnsafeBufferPointer { logprobs.update(from: $0.baseAddress!, count: raw.count) } }
    if let scaledLogprobs { scaled.withUnsafeBufferPointer { scaledLogprobs.update(from: $0.baseAddress!, count: scaled.count) } }
  }
}

@c @implementation
public func glm5_model_eos_token_ids(_ model: OpaquePointer?, _ out: UnsafeMutablePointer<Int32>?, _ capacity: Int,
                                     _ nOut: UnsafeMutablePointer<Int>?) -> glm5_status {
  guarded("glm5_model_eos_token_ids") { () throws(GLM5Error) in
    let m = try object(model, Model.self, kind: "model", param: "model")
    try checkCount(capacity, "capacity")
    guard out != nil || capacity == 0 else { throw .invalidArgument("out is NULL but capacity is \(capacity)") }
    let ids = m.eosTokenIds
    nOut?.pointee = ids.count
    guard capacity >= ids.count else {
      throw GLM5Error(.bufferTooSmall, "capacity is \(capacity) ids, the model has \(ids.count) end-of-sequence ids")
    }
    if let out, !ids.isEmpty { ids.withUnsafeBufferPointer { out.update(from: $0.baseAddress!, count: ids.count) } }
  }
}
