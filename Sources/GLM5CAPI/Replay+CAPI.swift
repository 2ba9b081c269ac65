// glm5_session_get_record_info, glm5_session_get_recorded_*, glm5_session_append_replay,
// glm5_model_score_replay, glm5_session_recompute (include/glm5.h "Routing record and replay").
//
// glm5_record_info_init and glm5_replay_init are `static inline` in include/glm5.h, not exported
// (as the other *_init functions): the host fills struct_size with the size it was compiled with,
// and the functions here accept any size from the first version's up.

import CGLM5
import GLM5Core
import GLM5Engine
import GLM5Model

@c @implementation
public func glm5_session_get_record_info(_ session: OpaquePointer?, _ info: UnsafeMutablePointer<glm5_record_info>?) -> glm5_status {
  withSession("glm5_session_get_record_info", session, allocates: false) { (s) throws(GLM5Error) in
    guard let info else { throw .invalidArgument("info is NULL") }
    try checkStructSize("glm5_session_get_record_info", "glm5_record_info", info.pointee.struct_size,
                        minimum: MemoryLayout<glm5_record_info>.size)
    var v = glm5_record_info()
    v.struct_size = info.pointee.struct_size
    if let r = s.record {
      v.recording = 1
      v.n_tokens = UInt64(r.count)
      v.n_layers = UInt32(r.layers)
      v.index_topk = UInt32(r.topK)
      v.n_moe_layers = UInt32(r.moeLayers)
      v.n_experts_per_tok = UInt32(r.perToken)
      v.bytes_per_token = UInt64(r.bytesPerToken)
      v.bytes = UInt64(r.bytes)
      v.max_bytes = UInt64(r.maxBytes)
    }
    withUnsafeBytes(of: &v) { src in
      UnsafeMutableRawPointer(info).copyMemory(from: src.baseAddress!, byteCount: min(src.count, Int(info.pointee.struct_size)))
    }
  }
}

/// The record of a session and a checked token range of it.
private func recordRange(_ s: Session, _ first: Int, _ n: Int) throws(GLM5Error) -> RoutingRecord {
  guard let r = s.record else { throw .invalidArgument("the session does not record (create it with glm5_session_params.record = 1)") }
  try checkCount(first, "first")
  try checkCount(n, "n_tokens")
  guard first + n <= r.count else { throw .invalidArgument("tokens [\(first), \(first + n)) are beyond the \(r.count) recorded") }
  return r
}

@c @implementation
public func glm5_session_get_recorded_topk(_ session: OpaquePointer?, _ first: Int, _ nTokens: Int, _ out: UnsafeMutablePointer<Int32>?,
                                           _ capacity: Int, _ nOut: UnsafeMutablePointer<Int>?) -> glm5_status {
  withSession("glm5_session_get_recorded_topk", session) { (s) throws(GLM5Error) in
    let r = try recordRange(s, first, nTokens)
    try checkCount(capacity, "capacity")
    guard out != nil || capacity == 0 else { throw .invalidArgument("out is NULL but capacity is \(capacity)") }
    let need = nTokens * r.topkStride
    nOut?.pointee = need
    guard capacity >= need else { throw GLM5Error(.bufferTooSmall, "capacity is \(capacity) ints, \(nTokens) tokens of top-k need \(need)") }
    let src = r.topk(first: first, count: nTokens)
    if let out, let b = src.baseAddress, need > 0 { out.update(from: b, count: need) }
  }
}

@c @implementation
public func glm5_session_get_recorded_routes(_ session: OpaquePointer?, _ first: Int, _ nTokens: Int, _ ids: UnsafeMutablePointer<Int32>?,
                                             _ weights: UnsafeMutablePointer<Float>?, _ capacity: Int,
                                             _ nOut: UnsafeMutablePointer<Int>?) -> glm5_status {
  withSession("glm5_session_get_recorded_routes", session) { (s) throws(GLM5Error) in
    let r = try recordRange(s, first, nTokens)
    try checkCount(capacity, "capacity")
    guard ids != nil || weights != nil || capacity == 0 else { throw .invalidArgument("expert_ids and expert_weights are both NULL but capacity is \(capacity)") }
    let need = nTokens * r.routeStride
    nOut?.pointee = need
    guard capacity >= need else { throw GLM5Error(.bufferTooSmall, "capacity is \(capacity) entries, \(nTokens) tokens of routes need \(need)") }
    let (i, w) = r.routes(first: first, count: nTokens)
    if let ids, let b = i.baseAddress, need > 0 { ids.update(from: b, count: need) }
    if let weights, let b = w.baseAddress, need > 0 { weights.update(from: b, count: need) }
  }
}

/// glm5_replay → RoutingReplay (NULL = none).
func replayArg(_ p: UnsafePointer<glm5_replay>?) throws(GLM5Error) -> RoutingReplay? {
  guard let p else { return nil }
  try checkStructSize("replay", "glm5_replay", p.pointee.struct_size, minimum: MemoryLayout<glm5_replay>.size)
  let v = p.pointee
  let r = RoutingReplay(topk: v.topk, expertIds: v.expert_ids, expertWeights: v.expert_weights)
  if v.expert_weights != nil && v.expert_ids == nil { throw .invalidArgument("replay->expert_weights is set but replay->expert_ids is NULL") }
  return r.isEmpty ? nil : r
}

@c @implementation
public func glm5_session_append_replay(_ session: OpaquePointer?, _ tokens: UnsafePointer<Int32>?, _ nTokens: Int, _ keep: glm5_logits,
                                       _ replay: UnsafePointer<glm5_replay>?, _ temperature: Float, _ logprobs: UnsafeMutablePointer<Float>?,
                                       _ scaledLogprobs: UnsafeMutablePointer<Float>?) -> glm5_status {
  appendScaled("glm5_session_append_replay", session, tokens, nTokens, keep, replay, temperature, logprobs, scaledLogprobs)
}

@c @implementation
public func glm5_model_score_replay(_ model: OpaquePointer?, _ tokens: UnsafePointer<Int32>?, _ nTokens: Int, _ replay: UnsafePointer<glm5_replay>?,
                                    _ temperature: Float, _ logprobs: UnsafeMutablePointer<Float>?,
                                    _ scaledLogprobs: UnsafeMutablePointer<Float>?) -> glm5_status {
  guarded("glm5_model_score_replay") { () throws(GLM5Error) in
    let m = try object(model, Model.self, kind: "model", param: "model")
    let ids = try scoredTokens(m, tokens, nTokens)
    guard logprobs != nil || scaledLogprobs != nil else { throw .invalidArgument("logprobs and scaled_logprobs are both NULL") }
    guard temperature.isFinite && temperature >= 0 else { throw .invalidArgument("temperature is \(temperature), must be finite and >= 0") }
    let (raw, scaled) = try m.scoreScaled(ids, temperature: temperature, replay: try replayArg(replay))
    if let logprobs { raw.withUnsafeBufferPointer { logprobs.update(from: $0.baseAddress!, count: raw.count) } }
    if let scaledLogprobs { scaled.withUnsafeBufferPointer { scaledLogprobs.update(from: $0.baseAddress!, count: scaled.count) } }
  }
}

@c @implementation
public func glm5_session_recompute(_ session: OpaquePointer?) -> glm5_status {
  withSession("glm5_session_recompute", session) { (s) throws(GLM5Error) in try s.recompute() }
}
