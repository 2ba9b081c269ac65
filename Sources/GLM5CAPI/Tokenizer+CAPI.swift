// glm5_tokenizer_*, glm5_tokenize, glm5_detokenize, glm5_detokenizer_*: HF tokenizer.json.
//
// Every handle is its own box (a model's tokenizer handed out twice is two handles on one
// Tokenizer), so freeing one never invalidates another.

import CGLM5
import GLM5Core
import GLM5Engine
import GLM5Tokenizer
import Synchronization

final class TokenizerBox: Sendable {
  let tokenizer: Tokenizer
  init(_ t: Tokenizer) { tokenizer = t }
}

/// A detokenizer behind a handle, with the flag that turns concurrent use into GLM5_ERR_BUSY.
final class DetokenizerBox: Sendable {
  nonisolated(unsafe) let stream: StreamingDetokenizer
  let inUse = Atomic<Bool>(false)
  init(_ s: StreamingDetokenizer) { stream = s }
}

/// The most bytes one glm5_tokenize call takes (the work arrays need ~10 bytes per input byte).
private let maxTextBytes = Int(GLM5_MAX_TEXT_BYTES)
/// The most ids one glm5_detokenize / glm5_detokenizer_push call takes.
private let maxDetokenizeIds = Int(GLM5_MAX_DETOKENIZE_IDS)

private func tokenizerObject(_ p: OpaquePointer?) throws(GLM5Error) -> Tokenizer {
  try object(p, TokenizerBox.self, kind: "tokenizer", param: "tokenizer").tokenizer
}

private func checkFlags(_ flags: UInt32, allowed: UInt32, _ name: String) throws(GLM5Error) {
  guard flags & ~allowed == 0 else {
    throw .invalidArgument("flags has unknown bits 0x\(String(flags & ~allowed, radix: 16)) (only \(name) is defined)")
  }
}

/// Copy bytes plus a terminating NUL into a C buffer (two-call pattern: n_bytes always written).
private func copyText(_ bytes: [UInt8], _ out: UnsafeMutablePointer<CChar>?, _ capacity: Int,
                      _ nBytes: UnsafeMutablePointer<Int>?, nul: Bool, what: String) throws(GLM5Error) {
  try checkCount(capacity, "capacity")
  guard out != nil || capacity == 0 else { throw .invalidArgument("the output buffer is NULL but capacity is \(capacity)") }
  let need = bytes.count + (nul ? 1 : 0)
  nBytes?.pointee = bytes.count
  guard capacity >= need else {
    throw GLM5Error(.bufferTooSmall, "capacity is \(capacity) bytes, \(what) needs \(need)\(nul ? " (with the NUL)" : "")")
  }
  guard let out, need > 0 else { return }
  bytes.withUnsafeBufferPointer { b in
    if let base = b.baseAddress { UnsafeMutableRawPointer(out).copyMemory(from: base, byteCount: b.count) }
  }
  if nul { out[bytes.count] = 0 }
}

private func idArray(_ p: UnsafePointer<Int32>?, _ n: Int, _ param: String) throws(GLM5Error) -> [Int32] {
  try checkCount(n, "n_ids")
  // Before the copy: an absurd n would be an allocation that traps.
  guard n <= maxDetokenizeIds else {
    throw .invalidArgument("n_ids is \(n), more than the \(maxDetokenizeIds) one call decodes; split the ids")
  }
  if n == 0 { return [] }
  guard let p else { throw .invalidArgument("\(param) is NULL but n_ids is \(n)") }
  return Array(UnsafeBufferPointer(start: p, count: n))
}

@c @implementation
public func glm5_tokenizer_load(_ path: UnsafePointer<CChar>?, _ outTokenizer: UnsafeMutablePointer<OpaquePointer?>?) -> glm5_status {
  guarded("glm5_tokenizer_load") { () throws(GLM5Error) in
    guard let path else { throw .invalidArgument("path is NULL") }
    guard let outTokenizer else { throw .invalidArgument("out_tokenizer is NULL") }
    let t = try Tokenizer.load(path: String(cString: path))
    outTokenizer.pointee = makeHandle(TokenizerBox(t), kind: "tokenizer")
  }
}

@c @implementation
public func glm5_model_tokenizer(_ model: OpaquePointer?, _ outTokenizer: UnsafeMutablePointer<OpaquePointer?>?) -> glm5_status {
  guarded("glm5_model_tokenizer") { () throws(GLM5Error) in
    let m = try object(model, Model.self, kind: "model", param: "model")
    guard let outTokenizer else { throw .invalidArgument("out_tokenizer is NULL") }
    if let t = try m.tokenizer() {
      outTokenizer.pointee = makeHandle(TokenizerBox(t), kind: "tokenizer")
    } else {
      outTokenizer.pointee = nil
    }
  }
}

@c @implementation
public func glm5_tokenizer_free(_ tokenizer: OpaquePointer?) {
  release(tokenizer, TokenizerBox.self, kind: "tokenizer")
}

/// Fills a `glm5_tokenizer_info` that the header's inline glm5_tokenizer_info_init prepared:
/// struct_size must be at least this version's; a larger (newer) struct gets this version's fields.
@c @implementation
public func glm5_tokenizer_get_info(_ tokenizer: OpaquePointer?, _ info: UnsafeMutablePointer<glm5_tokenizer_info>?) -> glm5_status {
  guarded("glm5_tokenizer_get_info") { () throws(GLM5Error) in
    let t = try tokenizerObject(tokenizer)
    guard let info else { throw .invalidArgument("info is NULL") }
    try checkStructSize("glm5_tokenizer_get_info", "glm5_tokenizer_info", info.pointee.struct_size,
                        minimum: MemoryLayout<glm5_tokenizer_info>.size)
    var v = glm5_tokenizer_info()
    v.struct_size = info.pointee.struct_size
    v.n_ids = UInt32(t.idCount)
    v.n_vocab = UInt32(t.vocabularySize)
    v.n_added = UInt32(t.addedTokenCount)
    v.eos_id = t.eosId ?? -1
    v.bos_id = t.bosId ?? -1
    v.pad_id = t.padId ?? -1
    v.unk_id = t.unkId ?? -1
    v.byte_level = t.isByteLevel ? 1 : 0
    withUnsafeBytes(of: &v) { src in
      if let base = src.baseAddress {
        UnsafeMutableRawPointer(info).copyMemory(from: base, byteCount: min(src.count, Int(info.pointee.struct_size)))
      }
    }
  }
}

@c @implementation
public func glm5_tokenize(_ tokenizer: OpaquePointer?, _ text: UnsafePointer<CChar>?, _ textLen: Int, _ flags: UInt32,
                          _ ids: UnsafeMutablePointer<Int32>?, _ capacity: Int, _ nIds: UnsafeMutablePointer<Int>?) -> glm5_status {
  guarded("glm5_tokenize") { () throws(GLM5Error) in
    let t = try tokenizerObject(tokenizer)
    try checkCount(textLen, "text_len")
    try checkCount(capacity, "capacity")
    try checkFlags(flags, allowed: GLM5_TOKENIZE_PARSE_SPECIAL, "GLM5_TOKENIZE_PARSE_SPECIAL")
    guard text != nil || textLen == 0 else { throw .invalidArgument("text is NULL but text_len is \(textLen)") }
    guard textLen <= maxTextBytes else {
      throw .invalidArgument("text_len is \(textLen) bytes, more than the \(maxTextBytes) one call encodes; split the text")
    }
    guard ids != nil || capacity == 0 else { throw .invalidArgument("ids is NULL but capacity is \(capacity)") }
    let out = try t.encode(UnsafeRawBufferPointer(start: text, count: textLen), parseSpecial: flags & GLM5_TOKENIZE_PARSE_SPECIAL != 0)
    nIds?.pointee = out.count
    guard capacity >= out.count else {
      throw GLM5Error(.bufferTooSmall, "capacity is \(capacity) ids, the text has \(out.count)")
    }
    guard let ids else { return }
    out.withUnsafeBufferPointer { b in
      if let base = b.baseAddress { ids.update(from: base, count: b.count) }
    }
  }
}

@c @implementation
public func glm5_detokenize(_ tokenizer: OpaquePointer?, _ ids: UnsafePointer<Int32>?, _ nIds: Int, _ flags: UInt32,
                            _ text: UnsafeMutablePointer<CChar>?, _ capacity: Int, _ nBytes: UnsafeMutablePointer<Int>?) -> glm5_status {
  guarded("glm5_detokenize") { () throws(GLM5Error) in
    let t = try tokenizerObject(tokenizer)
    try checkFlags(flags, allowed: GLM5_DETOKENIZE_SKIP_SPECIAL, "GLM5_DETOKENIZE_SKIP_SPECIAL")
    let list = try idArray(ids, nIds, "ids")
    let s = try t.decode(list, skipSpecialTokens: flags & GLM5_DETOKENIZE_SKIP_SPECIAL != 0)
    try copyText(Array(s.utf8), text, capacity, nBytes, nul: true, what: "the text")
  }
}

@c @implementation
public func glm5_token_to_piece(_ tokenizer: OpaquePointer?, _ id: Int32, _ piece: UnsafeMutablePointer<CChar>?, _ capacity: Int,
                                _ nBytes: UnsafeMutablePointer<Int>?) -> glm5_status {
  guarded("glm5_token_to_piece") { () throws(GLM5Error) in
    let t = try tokenizerObject(tokenizer)
    try copyText(try t.piece(id), piece, capacity, nBytes, nul: false, what: "the piece of id \(id)")
  }
}

@c @implementation
public func glm5_tokenizer_token_text(_ tokenizer: OpaquePointer?, _ id: Int32, _ text: UnsafeMutablePointer<CChar>?, _ capacity: Int,
                                      _ nBytes: UnsafeMutablePointer<Int>?, _ isSpecial: UnsafeMutablePointer<Int32>?) -> glm5_status {
  guarded("glm5_tokenizer_token_text") { () throws(GLM5Error) in
    let t = try tokenizerObject(tokenizer)
    guard let s = t.tokenString(id) else { throw .invalidArgument("id \(id) is not a token of this tokenizer") }
    try copyText(Array(s.utf8), text, capacity, nBytes, nul: true, what: "the token text of id \(id)")
    isSpecial?.pointee = t.isSpecial(id) ? 1 : 0
  }
}

@c @implementation
public func glm5_tokenizer_token_id(_ tokenizer: OpaquePointer?, _ text: UnsafePointer<CChar>?, _ textLen: Int,
                                    _ id: UnsafeMutablePointer<Int32>?) -> glm5_status {
  guarded("glm5_tokenizer_token_id") { () throws(GLM5Error) in
    let t = try tokenizerObject(tokenizer)
    try checkCount(textLen, "text_len")
    guard text != nil || textLen == 0 else { throw .invalidArgument("text is NULL but text_len is \(textLen)") }
    guard let id else { throw .invalidArgument("id is NULL") }
    // Before the copy: an absurd text_len would be an allocation that traps.
    guard textLen <= maxTextBytes else {
      throw .invalidArgument("text_len is \(textLen) bytes, more than the \(maxTextBytes) one call takes")
    }
    let bytes = textLen == 0 ? [] : Array(UnsafeRawBufferPointer(start: text, count: textLen))
    guard let s = String(validating: bytes, as: UTF8.self) else { throw .invalidArgument("text is not valid UTF-8") }
    id.pointee = t.id(of: s) ?? -1
  }
}

// MARK: - Streaming

@c @implementation
public func glm5_detokenizer_new(_ tokenizer: OpaquePointer?, _ flags: UInt32, _ outDetokenizer: UnsafeMutablePointer<OpaquePointer?>?) -> glm5_status {
  guarded("glm5_detokenizer_new") { () throws(GLM5Error) in
    let t = try tokenizerObject(tokenizer)
    try checkFlags(flags, allowed: GLM5_DETOKENIZE_SKIP_SPECIAL, "GLM5_DETOKENIZE_SKIP_SPECIAL")
    guard let outDetokenizer else { throw .invalidArgument("out_detokenizer is NULL") }
    let s = StreamingDetokenizer(t, skipSpecialTokens: flags & GLM5_DETOKENIZE_SKIP_SPECIAL != 0)
    outDetokenizer.pointee = makeHandle(DetokenizerBox(s), kind: "detokenizer")
  }
}

private func withDetokenizer(_ function: String, _ handle: OpaquePointer?,
                             _ body: (StreamingDetokenizer) throws(GLM5Error) -> Void) -> glm5_status {
  guarded(function) { () throws(GLM5Error) in
    let box = try object(handle, DetokenizerBox.self, kind: "detokenizer", param: "detokenizer")
    guard box.inUse.compareExchange(expected: false, desired: true, ordering: .acquiring).exchanged else {
      throw GLM5Error(.busy, "the detokenizer is in use by another call")
    }
    defer { box.inUse.store(false, ordering: .releasing) }
    try body(box.stream)
  }
}

@c @implementation
public func glm5_detokenizer_push(_ detokenizer: OpaquePointer?, _ ids: UnsafePointer<Int32>?, _ nIds: Int,
                                  _ text: UnsafeMutablePointer<CChar>?, _ capacity: Int, _ nBytes: UnsafeMutablePointer<Int>?) -> glm5_status {
  withDetokenizer("glm5_detokenizer_push", detokenizer) { (d) throws(GLM5Error) in
    let list = try idArray(ids, nIds, "ids")
    let (bytes, state) = try d.preview(list)
    try copyText(bytes, text, capacity, nBytes, nul: true, what: "the text")
    d.commit(state)
  }
}

@c @implementation
public func glm5_detokenizer_finish(_ detokenizer: OpaquePointer?, _ text: UnsafeMutablePointer<CChar>?, _ capacity: Int,
                                    _ nBytes: UnsafeMutablePointer<Int>?) -> glm5_status {
  withDetokenizer("glm5_detokenizer_finish", detokenizer) { (d) throws(GLM5Error) in
    try copyText(d.remainder, text, capacity, nBytes, nul: true, what: "the rest of the stream")
    _ = d.finish()
  }
}

@c @implementation
public func glm5_detokenizer_free(_ detokenizer: OpaquePointer?) {
  release(detokenizer, DetokenizerBox.self, kind: "detokenizer")
}
