// glm5 generate: sample (or, at temperature 0, greedily pick) a continuation of a prompt given as
// text (--prompt, through the model folder's tokenizer.json) or as token ids (--ids, or ids after
// MODEL as before), printed as it is drawn:
//
//   text          the continuation's text, token by token (the streaming detokenizer holds back
//                 an incomplete UTF-8 sequence until the token that completes it)
//   --show-logprobs  one line per token: id, piece, raw / scaled / processed logprob
//                 (include/glm5.h "Sampling")
//   --json        one JSON object at the end (ids, text, the three logprobs, finish, timings)
//   no tokenizer  one line per token id with its logprobs (the format before text existed)
//
// Tokens are streamed as each step ends (Session.sampleStreaming), bitwise what one
// Session.sample call gives (--speculative included). Prefill and decode tokens/s go to stderr.

import ArgumentParser
import GLM5Core
import GLM5Engine
import GLM5Serve
import GLM5Tokenizer

struct Generate: ParsableCommand {
  static let configuration = CommandConfiguration(
    abstract: "Sample a continuation of a text or token-id prompt, printed as it is generated.",
    discussion: """
      MODEL defaults to the bundled models/glm5-tiny. Token ids may also follow MODEL directly
      (glm5 generate MODEL 11 42 7), as before --ids (so a MODEL folder named by a number is
      written ./42). Stops at max -n tokens or at the model's
      end-of-sequence ids (generation_config.json, else config.json) unless --ignore-eos.
      Timings (prefill and decode tokens/s) go to stderr; with --json they are in the object.
      """)

  @Argument(help: ArgumentHelp("Model folder (config.json, safetensors, tokenizer.json), then optionally prompt token ids.",
                               valueName: "model"))
  var positional: [String] = []

  @Option(help: "Prompt text (needs the folder's tokenizer.json).")
  var prompt: String?

  @Option(parsing: .upToNextOption, help: "Prompt token ids.")
  var ids: [Int32] = []

  @OptionGroup var sampling: SamplingOptions

  @Flag(help: "Print one JSON object: prompt and output ids, text, logprobs, finish reason, timings.")
  var json = false

  @Flag(help: "Print each token's id, piece and raw / scaled / processed logprobs instead of the text.")
  var showLogprobs = false

  static let defaultN = 64

  func run() throws {
    // MODEL, then ids (the old positional form).
    var given: String? = nil
    var promptIds = ids
    var rest = positional[...]
    if let first = rest.first, Int32(first) == nil { given = first; rest = rest.dropFirst() }
    for s in rest {
      guard let id = Int32(s) else { throw ValidationError("'\(s)' is not a token id (the model folder comes first)") }
      promptIds.append(id)
    }
    if prompt != nil && !promptIds.isEmpty { throw ValidationError("give either --prompt or token ids, not both") }
    if prompt == nil && promptIds.isEmpty { throw ValidationError("no prompt: give --prompt TEXT or --ids ID...") }
    let folder = try ModelFolder.resolve(given)
    let params = sampling.params(defaultN: Generate.defaultN)

    let (m, loadSeconds) = try ModelFolder.load(folder, threads: sampling.threads, lazy: sampling.lazyLoad)
    let tok = try orFail { () throws(GLM5Error) -> Tokenizer? in try m.tokenizer() }
    if let text = prompt {
      guard let tok else {
        throw CLIFailure("\(folder) has no tokenizer.json, so --prompt cannot be encoded; give token ids with --ids")
      }
      promptIds = try orFail { () throws(GLM5Error) -> [Int32] in try tok.encode(text) }
      guard !promptIds.isEmpty else { throw CLIFailure("the prompt encodes to no tokens") }
    }

    let s = try orFail { () throws(GLM5Error) -> Session in try Session(model: m, mtp: sampling.speculative > 0 ? nil : false) }
    let t0 = now()
    try orFail { () throws(GLM5Error) in try s.append(promptIds, logits: .none) }
    let prefillSeconds = now() - t0

    enum Mode { case json, logprobs, text, ids }
    let mode: Mode = json ? .json : (showLogprobs ? .logprobs : (tok != nil ? .text : .ids))
    if mode == .ids {
      print("prompt  \(promptIds.map(String.init).joined(separator: " "))")
      print("sampling: \(sampling.summary)")
    }
    let stream = tok.map { StreamingDetokenizer($0, skipSpecialTokens: false) }
    var endsWithNewline = true
    let t1 = now()
    let r = try orFail { () throws(GLM5Error) -> SampleResult in
      try s.sampleStreaming(params) { (r) throws(GLM5Error) -> Bool in
        let i = r.tokens.count - 1
        let id = r.tokens[i]
        switch mode {
        case .json: break
        case .text:
          let b = try stream!.push([id])
          if let last = b.last { endsWithNewline = last == UInt8(ascii: "\n") }
          Out.bytes(b)
        case .logprobs:
          let piece = try tok.map { (t) throws(GLM5Error) -> String in quotedPiece(try t.piece(id)) } ?? "-"
          Out.text("\(id)\t\(piece)\tlogprob \(fmt(Double(r.logprobs[i]), 4))  scaled \(fmt(Double(r.scaledLogprobs[i]), 4))  processed \(fmt(Double(r.processedLogprobs[i]), 4))\n")
        case .ids:
          Out.text("token \(id)  logprob \(fmt(Double(r.logprobs[i]), 4))  scaled \(fmt(Double(r.scaledLogprobs[i]), 4))  processed \(fmt(Double(r.processedLogprobs[i]), 4))\n")
        }
        return true
      }
    }
    let decodeSeconds = now() - t1
    if mode == .text, let stream {
      let tail = stream.finish()
      Out.bytes(tail)
      if let last = tail.last { endsWithNewline = last == UInt8(ascii: "\n") }
      if !endsWithNewline && Out.stdoutIsTerminal { Out.text("\n") }
    }

    let why = r.finishReason == .stop ? "stop (token \(r.stopTokenId ?? -1))" : r.finishReason.name
    let timing = Timing(load: loadSeconds, prefill: prefillSeconds, prefillTokens: promptIds.count,
                        decode: decodeSeconds, decodeTokens: r.tokens.count, accepted: r.accepted)
    if mode == .json {
      let text = try tok.map { (t) throws(GLM5Error) -> String in try t.decode(r.tokens) }
      Out.text(report(folder: folder, promptIds: promptIds, params: params, r: r, text: text, timing: timing) + "\n")
    } else {
      if mode == .ids { print("\(r.tokens.count) tokens in \(fmt(prefillSeconds + decodeSeconds, 3)) s, finished: \(why)") }
      // When stdout is not a terminal the text keeps its exact bytes; end its line on stderr instead.
      let breakLine = mode == .text && !endsWithNewline && !Out.stdoutIsTerminal
      Out.err((breakLine ? "\n" : "") + "finished: \(why)")
      Out.err(timing.summary)
    }
  }

  /// The --json object.
  func report(folder: String, promptIds: [Int32], params: SamplingParams, r: SampleResult, text: String?, timing: Timing) -> String {
    var w = JSONWriter()
    w.object { o in
      o.field("model", folder)
      o.key("prompt"); if let prompt { o.value(prompt) } else { o.null() }
      o.key("prompt_ids"); o.array { a in for id in promptIds { a.value(Int(id)) } }
      o.key("output_ids"); o.array { a in for id in r.tokens { a.value(Int(id)) } }
      o.key("text"); if let text { o.value(text) } else { o.null() }
      o.key("logprobs"); o.array { a in for x in r.logprobs { a.value(x) } }
      o.key("scaled_logprobs"); o.array { a in for x in r.scaledLogprobs { a.value(x) } }
      o.key("processed_logprobs"); o.array { a in for x in r.processedLogprobs { a.value(x) } }
      o.field("finish_reason", r.finishReason.name)
      o.key("stop_token_id"); if let id = r.stopTokenId { o.value(Int(id)) } else { o.null() }
      o.key("sampling")
      o.object { p in
        p.key("temperature"); p.value(params.temperature)
        p.field("top_k", params.topK)
        p.key("top_p"); p.value(params.topP)
        p.key("min_p"); p.value(params.minP)
        p.key("seed"); p.raw(String(params.seed))
        p.field("max_new_tokens", params.maxNewTokens)
        p.field("ignore_eos", params.ignoreEOS)
      }
      o.key("timings")
      o.object { t in
        t.field("load_s", timing.load)
        t.field("prefill_s", timing.prefill)
        t.field("decode_s", timing.decode)
        t.field("prefill_tokens_per_s", timing.prefillRate)
        t.field("decode_tokens_per_s", timing.decodeRate)
      }
      if params.speculative > 0 {
        o.key("speculative")
        o.object { sp in
          sp.field("drafts_per_step", params.speculative)
          sp.field("steps", timing.accepted.count)
          sp.field("mean_accepted_length", timing.acceptedLength)
        }
      }
      o.field("weight_version", r.weightVersion)
    }
    return w.text
  }
}

/// Seconds and tokens of a generation's phases.
struct Timing {
  var load: Double, prefill: Double, prefillTokens: Int, decode: Double, decodeTokens: Int
  /// Drafts accepted per verification step (speculative decoding), else empty.
  var accepted: [Int32] = []
  var prefillRate: Double { prefill > 0 ? Double(prefillTokens) / prefill : 0 }
  var decodeRate: Double { decode > 0 ? Double(decodeTokens) / decode : 0 }
  /// Mean tokens per verification step (accepted drafts + 1).
  var acceptedLength: Double { accepted.isEmpty ? 0 : 1 + Double(accepted.reduce(0) { $0 + Int($1) }) / Double(accepted.count) }
  var summary: String {
    "load \(fmt(load, 3)) s; prefill \(prefillTokens) tokens in \(fmt(prefill, 3)) s (\(fmt(prefillRate, 1)) tokens/s); decode \(decodeTokens) tokens in \(fmt(decode, 3)) s (\(fmt(decodeRate, 1)) tokens/s)"
      + (accepted.isEmpty ? "" : "; speculative: \(accepted.count) steps, mean accepted length \(fmt(acceptedLength, 2))")
  }
}

/// Seconds from a monotonic clock.
func now() -> Double {
  let d = ContinuousClock.now - ContinuousClock.Instant.zeroReference
  return Double(d.components.seconds) + Double(d.components.attoseconds) * 1e-18
}

extension ContinuousClock.Instant {
  static let zeroReference = ContinuousClock.now
}

/// Fixed-point text without Foundation.
func fmt(_ x: Double, _ digits: Int) -> String {
  if x.isNaN { return "nan" }
  var p = 1.0
  for _ in 0..<digits { p *= 10 }
  let r = (abs(x) * p).rounded()
  let whole = Int(r / p)
  var frac = String(Int(r.truncatingRemainder(dividingBy: p)))
  while frac.count < digits { frac = "0" + frac }
  return (x < 0 && r != 0 ? "-" : "") + "\(whole)" + (digits > 0 ? "." + frac : "")
}
