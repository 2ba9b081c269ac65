// glm5_session_* and glm5_model_score: sessions, appends, logits, generation.

import CGLM5
import GLM5Core
import GLM5Engine
import Synchronization

/// A session behind a handle, with the flag that turns concurrent use into GLM5_ERR_BUSY.
final class SessionBox: Sendable {
  nonisolated(unsafe) let session: Session
  let inUse = Atomic<Bool>(false)
  init(_ s: Session) { session = s }
}

/// Run body with exclusive use of the session behind `handle`.
func withSession(_ function: String, _ handle: OpaquePointer?, allocates: Bool = true,
                 _ body: (Session) throws(GLM5Error) -> Void) -> glm5_status {
  guarded(function, allocates: allocates) { () throws(GLM5Error) in
    let box = try object(handle, SessionBox.self, kind: "session", param: "session")
    guard box.inUse.compareExchange(expected: false, desired: true, ordering: .acquiring).exchanged else {
      throw GLM5Error(.busy, "the session is in use by another call")
    }
    defer { box.inUse.store(false, ordering: .releasing) }
    try body(box.session)
  }
}

/// Copy `n` C ints into an array, or fail naming the parameter.
func tokenArray(_ p: UnsafePointer<Int32>?, _ n: Int, param: String) throws(GLM5Error) -> [Int32] {
  guard n > 0 else { throw .invalidArgument("n_tokens is 0; there is nothing to process") }
  guard let p else { throw .invalidArgument("\(param) is NULL") }
  return Array(UnsafeBufferPointer(start: p, count: n))
}

/// The ids of a sequence to score from an empty context: count checked against the model.
func scoredTokens(_ m: Model, _ tokens: UnsafePointer<Int32>?, _ n: Int) throws(GLM5Error) -> [Int32] {
  try checkCount(n, "n_tokens")
  guard n <= m.config.maxPositionEmbeddings else {
    throw GLM5Error(.contextFull, "\(n) tokens exceed the model's maximum, max_position_embeddings = \(m.config.maxPositionEmbeddings)")
  }
  return try tokenArray(tokens, n, param: "tokens")
}

/// The ids of an append: count checked against the session's room before they are copied.
func appendedTokens(_ s: Session, _ tokens: UnsafePointer<Int32>?, _ n: Int) throws(GLM5Error) -> [Int32] {
  try checkCount(n, "n_tokens")
  guard n <= s.maxTokens - s.count else {  // before copying the ids: n may be absurd
    throw GLM5Error(.contextFull, "appending \(n) token(s) to \(s.count) exceeds the session's maximum of \(s.maxTokens)")
  }
  return try tokenArray(tokens, n, param: "tokens")
}

func checkCount(_ n: Int, _ what: String) throws(GLM5Error) {
  guard n >= 0 && n <= 1 << 40 else { throw .invalidArgument("\(what) is \(UInt(bitPattern: n)), which is not a plausible count") }
}

@c @implementation
public func glm5_model_score(_ model: OpaquePointer?, _ tokens: UnsafePointer<Int32>?, _ nTokens: Int,
                             _ logprobs: UnsafeMutablePointer<Float>?) -> glm5_status {
  guarded("glm5_model_score") { () throws(GLM5Error) in
    let m = try object(model, Model.self, kind: "model", param: "model")
    let ids = try scoredTokens(m, tokens, nTokens)
    guard let logprobs else { throw .invalidArgument("logprobs is NULL") }
    let lp = try m.score(ids)
    lp.withUnsafeBufferPointer { logprobs.update(from: $0.baseAddress!, count: lp.count) }
  }
}

@c @implementation
public func glm5_session_new(_ model: OpaquePointer?, _ params: UnsafePointer<glm5_session_params>?,
                             _ outSession: UnsafeMutablePointer<OpaquePointer?>?) -> glm5_status {
  guarded("glm5_session_new") { () throws(GLM5Error) in
    let m = try object(model, Model.self, kind: "model", param: "model")
    guard let outSession else { throw .invalidArgument("out_session is NULL") }
    var maxTokens = 0
    var recordBytes: Int? = nil
    var mtp: Bool? = nil
    if let params {
      let size = Int(params.pointee.struct_size)
      try checkStructSize("glm5_session_new", "glm5_session_params", params.pointee.struct_size, minimum: 8)
      maxTokens = Int(params.pointee.max_tokens)
      if size >= MemoryLayout<glm5_session_params>.size {
        switch params.pointee.record {
        case 0: break
        case 1:
          let b = params.pointee.record_max_bytes
          guard b <= UInt64(Int.max / 2) else { throw .invalidArgument("record_max_bytes is \(b), which is not a plausible size") }
          recordBytes = Int(b)
        default: throw .invalidArgument("record is \(params.pointee.record), must be 0 or 1")
        }
        switch params.pointee.no_mtp {
        case 0: break
        case 1: mtp = false
        default: throw .invalidArgument("no_mtp is \(params.pointee.no_mtp), must be 0 or 1")
        }
      }
    }
    let s = try Session(model: m, maxTokens: maxTokens, recordBytes: recordBytes, mtp: mtp)
    outSession.pointee = makeHandle(SessionBox(s), kind: "session")
  }
}

@c @implementation
public func glm5_session_free(_ session: OpaquePointer?) {
  release(session, SessionBox.self, kind: "session")
}

@c @implementation
public func glm5_session_append(_ session: OpaquePointer?, _ tokens: UnsafePointer<Int32>?, _ nTokens: Int,
                                _ keep: glm5_logits, _ logprobs: UnsafeMutablePointer<Float>?) -> glm5_status {
  withSession("glm5_session_append", session) { (s) throws(GLM5Error) in
    let ids = try appendedTokens(s, tokens, nTokens)
    guard let mode = Session.LogitsMode(rawValue: Int32(truncatingIfNeeded: keep.rawValue)) else {
      throw .invalidArgument("keep is \(keep.rawValue), not a glm5_logits value")
    }
    let lp = try s.append(ids, logits: mode, logprobs: logprobs != nil)
    if let logprobs { lp.withUnsafeBufferPointer { logprobs.update(from: $0.baseAddress!, count: lp.count) } }
  }
}

@c @implementation
public func glm5_session_get_logits(_ session: OpaquePointer?, _ out: UnsafeMutablePointer<Float>?, _ capacity: Int,
                                    _ nRows: UnsafeMutablePointer<Int>?, _ nFloats: UnsafeMutablePointer<Int>?) -> glm5_status {
  withSession("glm5_session_get_logits", session) { (s) throws(GLM5Error) in
    try checkCount(capacity, "capacity")
    guard out != nil || capacity == 0 else { throw .invalidArgument("out is NULL but capacity is \(capacity)") }
    let need = s.keptRows * s.model.config.vocabSize
    nRows?.pointee = s.keptRows
    nFloats?.pointee = need
    guard capacity >= need else {
      throw GLM5Error(.bufferTooSmall, "capacity is \(capacity) floats, the kept logits need \(need) (\(s.keptRows) x \(s.model.config.vocabSize))")
    }
    if need == 0 { return }
    guard let out, let kept = s.kept else { throw .invalidArgument("out is NULL") }
    out.update(from: kept.pointer, count: need)
  }
}

@c @implementation
public func glm5_session_generate(_ session: OpaquePointer?, _ nNew: Int, _ tokensOut: UnsafeMutablePointer<Int32>?,
                                  _ logprobsOut: UnsafeMutablePointer<Float>?) -> glm5_status {
  withSession("glm5_session_generate", session) { (s) throws(GLM5Error) in
    try checkCount(nNew, "n_new")
    guard tokensOut != nil || nNew == 0 else { throw .invalidArgument("tokens_out is NULL") }
    let (ids, lps) = try s.generate(nNew)
    if let tokensOut, !ids.isEmpty { ids.withUnsafeBufferPointer { tokensOut.update(from: $0.baseAddress!, count: ids.count) } }
    if let logprobsOut, !lps.isEmpty { lps.withUnsafeBufferPointer { logprobsOut.update(from: $0.baseAddress!, count: lps.count) } }
  }
}

@c @implementation
public func glm5_session_n_tokens(_ session: OpaquePointer?, _ out: UnsafeMutablePointer<Int>?) -> glm5_status {
  withSession("glm5_session_n_tokens", session, allocates: false) { (s) throws(GLM5Error) in
    guard let out else { throw .invalidArgument("out is NULL") }
    out.pointee = s.count
  }
}

@c @implementation
public func glm5_session_max_tokens(_ session: OpaquePointer?, _ out: UnsafeMutablePointer<Int>?) -> glm5_status {
  withSession("glm5_session_max_tokens", session, allocates: false) { (s) throws(GLM5Error) in
    guard let out else { throw .invalidArgument("out is NULL") }
    out.pointee = s.maxTokens
  }
}

@c @implementation
public func glm5_session_get_tokens(_ session: OpaquePointer?, _ out: UnsafeMutablePointer<Int32>?, _ capacity: Int,
                                    _ nOut: UnsafeMutablePointer<Int>?) -> glm5_status {
  withSession("glm5_session_get_tokens", session) { (s) throws(GLM5Error) in
    try checkCount(capacity, "capacity")
    guard out != nil || capacity == 0 else { throw .invalidArgument("out is NULL but capacity is \(capacity)") }
    nOut?.pointee = s.count
    guard capacity >= s.count else {
      throw GLM5Error(.bufferTooSmall, "capacity is \(capacity) ids, the session holds \(s.count)")
    }
    if s.count == 0 { return }
    guard let out else { throw .invalidArgument("out is NULL") }
    s.tokens.withUnsafeBufferPointer { out.update(from: $0.baseAddress!, count: s.count) }
  }
}

@c @implementation
public func glm5_session_truncate(_ session: OpaquePointer?, _ nTokens: Int) -> glm5_status {
  withSession("glm5_session_truncate", session) { (s) throws(GLM5Error) in
    try checkCount(nTokens, "n_tokens")
    try s.truncate(nTokens)
  }
}
