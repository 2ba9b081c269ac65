// glm5 serve: the request and response schema, SGLang's native /generate (GenerateReqInput in
// sglang/srt/managers/io_struct.py, the meta_info its tokenizer manager writes). Parsing turns a
// body into checked GenerateJobs (a 400 names the field); rendering turns a finished or running
// job into SGLang's JSON. JSON goes through GLM5Core's parser and a writer here that prints every
// float32 exactly (Double(f).description: parsing it and rounding to float32 gives f bit for bit).

import GLM5Core
import GLM5Engine

/// A client error: HTTP status and a message naming the field.
public struct ServeError: Error, Sendable {
  public var status: Int
  public var message: String
  public var param: String? = nil
  public init(_ status: Int, _ message: String, param: String? = nil) {
    self.status = status
    self.message = message
    self.param = param
  }
  public static func bad(_ field: String, _ m: String) -> ServeError { ServeError(400, "\(field): \(m)", param: field) }

  /// SGLang's error body: {"error": {"message": ...}} (plus the status and the field).
  public var json: String {
    var w = JSONWriter()
    w.object {
      $0.key("error")
      $0.object {
        $0.field("message", message)
        $0.field("code", status)
        if let param { $0.field("param", param) }
      }
    }
    return w.text
  }
}

// MARK: - Writing

/// A small streaming JSON writer (insertion-ordered keys, exact floats).
public struct JSONWriter {
  public var text = ""
  /// Items written in each open container; `afterKey`: a value completes a key just written.
  private var counts = [0]
  private var afterKey = false

  public init() {}

  private mutating func sep() {
    if counts[counts.count - 1] > 0 { text += "," }
    counts[counts.count - 1] += 1
  }
  public mutating func key(_ k: String) {
    sep()
    text += JSON.string(k).serialized + ":"
    afterKey = true
  }
  private mutating func beginValue() {
    if afterKey { afterKey = false } else { sep() }
  }
  public mutating func raw(_ s: String) { beginValue(); text += s }
  public mutating func value(_ s: String) { raw(JSON.string(s).serialized) }
  public mutating func value(_ i: Int) { raw(String(i)) }
  public mutating func value(_ b: Bool) { raw(b ? "true" : "false") }
  public mutating func null() { raw("null") }
  /// A float32, exactly (null when not finite: JSON has no NaN).
  public mutating func value(_ f: Float) {
    guard f.isFinite else { return null() }
    raw(JSONWriter.exact(f))
  }
  public mutating func value(_ d: Double) { d.isFinite ? raw("\(d)") : null() }
  public static func exact(_ f: Float) -> String {
    if f == 0 { return f.sign == .minus ? "-0.0" : "0.0" }
    return "\(Double(f))"
  }
  public mutating func object(_ body: (inout JSONWriter) -> Void) { container("{", "}", body) }
  public mutating func array(_ body: (inout JSONWriter) -> Void) { container("[", "]", body) }
  private mutating func container(_ open: String, _ close: String, _ body: (inout JSONWriter) -> Void) {
    beginValue()
    text += open
    counts.append(0)
    body(&self)
    counts.removeLast()
    text += close
  }
  public mutating func field(_ k: String, _ v: String) { key(k); value(v) }
  public mutating func field(_ k: String, _ v: Int) { key(k); value(v) }
  public mutating func field(_ k: String, _ v: Bool) { key(k); value(v) }
  public mutating func field(_ k: String, _ v: Double) { key(k); value(v) }
  /// Any parsed JSON value, as it came.
  public mutating func value(_ j: JSON) {
    switch j {
    case .null: null()
    case .bool(let b): value(b)
    case .number(let d): d.rounded() == d && abs(d) < 9.0e15 ? value(Int(d)) : value(d)
    case .string(let s): value(s)
    case .array(let a): array { w in for x in a { w.value(x) } }
    case .object(let o): object { w in for k in o.keys.sorted() { w.key(k); w.value(o[k]!) } }
    }
  }
}

// MARK: - Requests

/// How a job finished, as SGLang writes finish_reason.
public enum Finish: Sendable, Equatable {
  case length(Int)
  case stop(Int32)
  case abort(String)

  public func write(_ w: inout JSONWriter) {
    w.object {
      switch self {
      case .length(let n): $0.field("type", "length"); $0.field("length", n)
      case .stop(let id): $0.field("type", "stop"); $0.field("matched", Int(id))
      case .abort(let m): $0.field("type", "abort"); $0.field("message", m)
      }
    }
  }
}

/// One member of a /generate request, checked.
public struct GenerateJobSpec: Sendable {
  public var rid: String
  public var inputIds: [Int32]
  public var params: SamplingParams
  public var returnLogprob: Bool
  /// First prompt position whose logprob is reported (SGLang's logprob_start_len; -1 = the last).
  public var logprobStart: Int
  public var returnRoutedExperts: Bool
  /// dsa_topk (glm5's extra; SGLang's return_indexer_topk is read as the same request).
  public var returnDSATopk = false
  /// The weights the request must run on (weight_version {exact_version, min_required_version}).
  public var pin = VersionPin()

  public init(rid: String, inputIds: [Int32], params: SamplingParams, returnLogprob: Bool, logprobStart: Int,
              returnRoutedExperts: Bool, returnDSATopk: Bool = false, pin: VersionPin = VersionPin()) {
    self.rid = rid
    self.inputIds = inputIds
    self.params = params
    self.returnLogprob = returnLogprob
    self.logprobStart = logprobStart
    self.returnRoutedExperts = returnRoutedExperts
    self.returnDSATopk = returnDSATopk
    self.pin = pin
  }
}

/// A request's weight-version constraint, checked when the scheduler admits it (a weight update
/// never happens while a job runs, so the whole answer comes from the version checked).
public struct VersionPin: Sendable {
  public var exact: String? = nil
  /// Integer versions only (slime numbers its versions): live >= min.
  public var minimum: Int? = nil

  public init(exact: String? = nil, minimum: Int? = nil) {
    self.exact = exact
    self.minimum = minimum
  }

  /// Why `live` does not satisfy the pin (nil when it does).
  public func refusal(live: String) -> String? {
    if let exact, exact != live {
      return "weight_version: the request needs exact_version \(exact), the live version is \(live)"
    }
    if let minimum {
      guard let v = Int(live) else {
        return "weight_version: min_required_version \(minimum) needs an integer live version, the live version is \(live)"
      }
      if v < minimum { return "weight_version: the request needs min_required_version \(minimum), the live version is \(live)" }
    }
    return nil
  }
}

/// Model facts the parser checks against.
public struct ModelLimits: Sendable {
  public var vocab: Int
  public var contextLength: Int

  public init(vocab: Int, contextLength: Int) {
    self.vocab = vocab
    self.contextLength = contextLength
  }
}

/// A /generate body: members (one for a single request) and whether the answer is a list.
public struct GenerateRequest: Sendable {
  public var jobs: [GenerateJobSpec]
  public var batch: Bool
  public var stream: Bool
}

public enum Schema {
  public static let defaultMaxNewTokens = 128

  public static func parseBody(_ bytes: [UInt8]) throws(ServeError) -> JSON {
    guard !bytes.isEmpty else { throw ServeError(400, "the request body is empty: expected a JSON object") }
    do {
      return try withBytes(bytes) { (b) throws(GLM5Error) -> JSON in try JSON.parse(b) }
    } catch {
      throw ServeError(400, "malformed JSON: \(error.message)")
    }
  }

  public static func object(_ j: JSON) throws(ServeError) -> [String: JSON] {
    guard let o = j.object else { throw ServeError(400, "the request body is \(j.kind), expected a JSON object") }
    return o
  }

  // Typed readers: nil when absent or null; a 400 naming the field on the wrong type.
  public static func bool(_ o: [String: JSON], _ k: String, _ path: String) throws(ServeError) -> Bool? {
    guard let v = o[k], !v.isNull else { return nil }
    guard let b = v.bool else { throw .bad(path + k, "expected a boolean, got \(v.kind)") }
    return b
  }
  public static func int(_ o: [String: JSON], _ k: String, _ path: String) throws(ServeError) -> Int? {
    guard let v = o[k], !v.isNull else { return nil }
    guard let i = v.int else {
      throw .bad(path + k, v.double != nil ? "expected an integer, got \(v.double!)" : "expected an integer, got \(v.kind)")
    }
    return i
  }
  public static func number(_ o: [String: JSON], _ k: String, _ path: String) throws(ServeError) -> Double? {
    guard let v = o[k], !v.isNull else { return nil }
    guard let d = v.double, d.isFinite else { throw .bad(path + k, "expected a finite number, got \(v.kind)") }
    return d
  }
  public static func string(_ o: [String: JSON], _ k: String, _ path: String) throws(ServeError) -> String? {
    guard let v = o[k], !v.isNull else { return nil }
    guard let s = v.string else { throw .bad(path + k, "expected a string, got \(v.kind)") }
    return s
  }
  public static func ids(_ v: JSON, _ field: String, vocab: Int) throws(ServeError) -> [Int32] {
    guard let a = v.array else { throw .bad(field, "expected a list of token ids, got \(v.kind)") }
    var out: [Int32] = []
    out.reserveCapacity(a.count)
    for (i, x) in a.enumerated() {
      guard let id = x.int else { throw .bad("\(field)[\(i)]", "expected an integer token id, got \(x.kind == "a number" ? "\(x.double!)" : x.kind)") }
      guard id >= 0 && id < vocab else { throw .bad("\(field)[\(i)]", "token id \(id) is outside the vocabulary [0, \(vocab))") }
      out.append(Int32(id))
    }
    return out
  }

  /// A per-member value: a scalar for all members, or a list with one per member.
  public static func member(_ o: [String: JSON], _ k: String, _ i: Int, _ n: Int) throws(ServeError) -> [String: JSON] {
    guard let v = o[k], !v.isNull else { return [:] }
    if let a = v.array {
      guard a.count == n else { throw .bad(k, "a list of \(a.count) values for a batch of \(n)") }
      return [k: a[i]]
    }
    return [k: v]
  }

  public static func parseGenerate(_ body: JSON, limits: ModelLimits, newRid: () -> String) throws(ServeError) -> GenerateRequest {
    let o = try object(body)
    if let t = o["text"], !t.isNull {
      throw .bad("text", "glm5 serve has no tokenizer yet (the model folder carries none): send token ids in input_ids")
    }
    for k in ["input_embeds", "image_data", "audio_data", "video_data"] where o[k] != nil && !o[k]!.isNull {
      throw .bad(k, "not supported by glm5 serve: send token ids in input_ids")
    }
    guard let ids = o["input_ids"], !ids.isNull else { throw .bad("input_ids", "required (a list of token ids, or a list of lists for a batch)") }
    guard let arr = ids.array else { throw .bad("input_ids", "expected a list of token ids, got \(ids.kind)") }
    let batch = arr.first?.array != nil
    let prompts: [[Int32]]
    if batch {
      var ps: [[Int32]] = []
      for (i, p) in arr.enumerated() { ps.append(try Schema.ids(p, "input_ids[\(i)]", vocab: limits.vocab)) }
      prompts = ps
    } else {
      prompts = [try Schema.ids(ids, "input_ids", vocab: limits.vocab)]
    }
    guard !prompts.isEmpty else { throw .bad("input_ids", "an empty batch") }
    for (i, p) in prompts.enumerated() where p.isEmpty { throw .bad(batch ? "input_ids[\(i)]" : "input_ids", "no tokens (at least one is needed)") }
    let n = prompts.count
    let stream = try bool(o, "stream", "") ?? false
    // rid: a string, or a list of strings for a batch.
    var rids: [String] = []
    if let r = o["rid"], !r.isNull {
      if let s = r.string {
        rids = n == 1 ? [s] : (0..<n).map { "\(s)_\($0)" }
      } else if let a = r.array {
        guard a.count == n else { throw .bad("rid", "a list of \(a.count) ids for a batch of \(n)") }
        for (i, x) in a.enumerated() {
          guard let s = x.string else { throw .bad("rid[\(i)]", "expected a string, got \(x.kind)") }
          rids.append(s)
        }
      } else {
        throw .bad("rid", "expected a string or a list of strings, got \(r.kind)")
      }
    } else {
      rids = (0..<n).map { _ in newRid() }
    }
    var pin = VersionPin()
    if let w = o["weight_version"], !w.isNull {
      // An object pins ({exact_version}, {min_required_version}); a bare string is accepted and
      // ignored, as before.
      if let wo = w.object {
        if let v = wo["exact_version"], !v.isNull {
          if let s = v.string { pin.exact = s } else if let i = v.int { pin.exact = String(i) } else {
            throw .bad("weight_version.exact_version", "expected a string or an integer, got \(v.kind)")
          }
        }
        if let v = wo["min_required_version"], !v.isNull {
          if let i = v.int { pin.minimum = i } else if let s = v.string, let i = Int(s) { pin.minimum = i } else {
            throw .bad("weight_version.min_required_version", "expected an integer, got \(v.kind)")
          }
        }
      } else if w.string == nil {
        throw .bad("weight_version", "expected an object or a string, got \(w.kind)")
      }
    }
    var jobs: [GenerateJobSpec] = []
    for i in 0..<n {
      let sp: [String: JSON]
      if let v = o["sampling_params"], !v.isNull {
        if let a = v.array {
          guard a.count == n else { throw .bad("sampling_params", "a list of \(a.count) objects for a batch of \(n)") }
          guard let x = a[i].object else { throw .bad("sampling_params[\(i)]", "expected an object, got \(a[i].kind)") }
          sp = x
        } else if let x = v.object {
          sp = x
        } else {
          throw .bad("sampling_params", "expected an object, got \(v.kind)")
        }
      } else {
        sp = [:]
      }
      let params = try samplingParams(sp, prompt: prompts[i].count, limits: limits)
      let rl = try bool(try member(o, "return_logprob", i, n), "return_logprob", "") ?? false
      let start = try int(try member(o, "logprob_start_len", i, n), "logprob_start_len", "") ?? -1
      guard start >= -1 && start < prompts[i].count else {
        throw .bad("logprob_start_len", "\(start) must be -1 (the last prompt token) or in [0, \(prompts[i].count)) (the prompt's length)")
      }
      let top = try int(try member(o, "top_logprobs_num", i, n), "top_logprobs_num", "") ?? 0
      guard top >= 0 && top <= SamplingParams.maxTopLogprobs else {
        throw .bad("top_logprobs_num", "\(top) must be in [0, \(SamplingParams.maxTopLogprobs)]")
      }
      let routed = try bool(try member(o, "return_routed_experts", i, n), "return_routed_experts", "") ?? false
      let dsa = try bool(try member(o, "return_dsa_topk", i, n), "return_dsa_topk", "") ?? false
      let indexer = try bool(try member(o, "return_indexer_topk", i, n), "return_indexer_topk", "") ?? false
      // The router's extra fields: accepted (and checked for type when they matter), ignored.
      for k in ["log_metrics", "return_hidden_states", "background", "no_logs", "return_bytes", "return_entropy", "return_text_in_logprobs"] {
        _ = try bool(o, k, "")
      }
      var p = params
      p.topLogprobs = rl ? top : 0
      jobs.append(GenerateJobSpec(rid: rids[i], inputIds: prompts[i], params: p, returnLogprob: rl,
                                  logprobStart: start == -1 ? prompts[i].count - 1 : start, returnRoutedExperts: routed,
                                  returnDSATopk: dsa || indexer, pin: pin))
    }
    return GenerateRequest(jobs: jobs, batch: batch, stream: stream)
  }

  /// SGLang's SamplingParams, checked (its other keys are accepted and ignored).
  public static func samplingParams(_ sp: [String: JSON], prompt: Int, limits: ModelLimits) throws(ServeError) -> SamplingParams {
    let path = "sampling_params."
    var p = SamplingParams()
    if let t = try number(sp, "temperature", path) {
      guard t >= 0 else { throw .bad(path + "temperature", "\(t) is negative (0 = greedy)") }
      p.temperature = Float(t)
      guard p.temperature.isFinite else { throw .bad(path + "temperature", "\(t) overflows float32") }
    }
    if let t = try number(sp, "top_p", path) {
      guard t > 0 && t <= 1 else { throw .bad(path + "top_p", "\(t) must be in (0, 1]") }
      p.topP = Float(t)
    }
    if let k = try int(sp, "top_k", path) {
      guard k == -1 || k >= 1 else { throw .bad(path + "top_k", "\(k) must be -1 (off) or at least 1") }
      p.topK = k == -1 || k >= limits.vocab ? 0 : k
    }
    if let m = try number(sp, "min_p", path) {
      guard m >= 0 && m < 1 else { throw .bad(path + "min_p", "\(m) must be in [0, 1)") }
      p.minP = Float(m)
    }
    let room = limits.contextLength - prompt
    guard room >= 0 else { throw .bad("input_ids", "\(prompt) tokens exceed the model's context length of \(limits.contextLength)") }
    if let m = try int(sp, "max_new_tokens", path) {
      guard m >= 0 else { throw .bad(path + "max_new_tokens", "\(m) is negative") }
      guard m <= room else {
        throw .bad(path + "max_new_tokens", "\(m) new tokens after \(prompt) prompt tokens exceed the context length of \(limits.contextLength)")
      }
      p.maxNewTokens = m
    } else {
      p.maxNewTokens = min(defaultMaxNewTokens, room)
    }
    if let v = sp["stop_token_ids"], !v.isNull {
      let ids = try Schema.ids(v, path + "stop_token_ids", vocab: limits.vocab)
      guard ids.count <= SamplingParams.maxStopTokenIds else {
        throw .bad(path + "stop_token_ids", "\(ids.count) ids, at most \(SamplingParams.maxStopTokenIds)")
      }
      p.stopTokenIds = ids
    }
    p.ignoreEOS = try bool(sp, "ignore_eos", path) ?? false
    _ = try bool(sp, "no_stop_trim", path)  // stop ids are always kept in output_ids
    _ = try bool(sp, "skip_special_tokens", path)
    _ = try bool(sp, "spaces_between_special_tokens", path)
    if let s = try int(sp, "sampling_seed", path) {
      guard s >= 0 else { throw .bad(path + "sampling_seed", "\(s) is negative") }
      p.seed = UInt64(s)
    }
    return p
  }
}

