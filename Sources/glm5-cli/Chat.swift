// glm5 chat: an interactive loop over one session. Each line read from stdin is a user turn in
// GLM's format (ChatFormat.swift: `[gMASK]<sop><|user|>\n{message}<|assistant|>\n` first, then
// `<|user|>\n{message}<|assistant|>\n`); the reply is printed as it is drawn and stays in the
// session, so the KV cache holds the whole conversation and a turn costs only its new tokens.
//
// What the session holds is what GLM's template renders for the conversation: a reply that ends
// by writing `<|user|>` keeps it (the next turn starts after it); one that ends at another stop
// id (`<|observation|>`, `<|endoftext|>`, an eos id) has that id dropped (Session.truncate keeps
// the hidden row, nothing is recomputed). End of input ends the loop (exit status 0).

import ArgumentParser
import GLM5Core
import GLM5Engine
import GLM5Tokenizer

struct Chat: ParsableCommand {
  static let configuration = CommandConfiguration(
    abstract: "Chat with a model whose folder carries a (GLM-style) chat template, one line per turn.",
    discussion: """
      MODEL defaults to the bundled models/glm5-tiny. The folder needs a tokenizer.json and a
      tokenizer_config.json with a chat_template naming <|user|> and <|assistant|>; its turns
      are GLM's fixed format (the template itself is not run). A reply ends at <|user|>,
      <|observation|>, <|endoftext|> or the model's eos ids, or after -n tokens (256 by default).
      End of input (Ctrl-D) ends the chat.
      """)

  @Argument(help: "Model folder (config.json, safetensors, tokenizer.json with a chat template).")
  var model: String?

  @Option(help: "System prompt (a <|system|> turn before the first user turn).")
  var system: String?

  @OptionGroup var sampling: SamplingOptions

  @Flag(help: "Print each reply's decode tokens/s to stderr.")
  var showStats = false

  static let defaultN = 256

  func run() throws {
    let folder = try ModelFolder.resolve(model)
    let (m, _) = try ModelFolder.load(folder, threads: sampling.threads, lazy: sampling.lazyLoad)
    guard let tok = try orFail({ () throws(GLM5Error) -> Tokenizer? in try m.tokenizer() }) else {
      throw CLIFailure("\(folder) has no tokenizer.json: glm5 chat needs a tokenizer and a chat template")
    }
    let format = try orFail { () throws(GLM5Error) -> ChatFormat in try ChatFormat(folder: m.checkpoint.path, tokenizer: tok) }
    if system != nil && format.system == nil { throw CLIFailure("\(folder)'s tokenizer has no <|system|> token: --system cannot be used") }
    let s = try orFail { () throws(GLM5Error) -> Session in try Session(model: m, mtp: sampling.speculative > 0 ? nil : false) }
    let interactive = Out.stdinIsTerminal
    var afterUser = false  // the session ends with <|user|>, written by the last reply

    while true {
      if interactive { Out.bytes(Array("> ".utf8)) }
      guard let line = readLine(strippingNewline: true) else { break }
      if line.isEmpty { continue }
      let turn = try orFail { () throws(GLM5Error) -> [Int32] in
        try format.turn(line, system: system, first: s.count == 0, afterUser: afterUser, tokenizer: tok)
      }
      let room = s.maxTokens - s.count - turn.count
      guard room >= 1 else {
        throw CLIFailure("the conversation is full: \(s.count) tokens held, this turn needs \(turn.count) more and the model's maximum is \(s.maxTokens)")
      }
      try orFail { () throws(GLM5Error) in try s.append(turn, logits: .none) }
      var params = sampling.params(defaultN: Chat.defaultN, stopTokenIds: format.stopTokenIds)
      params.maxNewTokens = min(params.maxNewTokens, room)
      let stream = StreamingDetokenizer(tok, skipSpecialTokens: true)
      let t0 = now()
      let r = try orFail { () throws(GLM5Error) -> SampleResult in
        try s.sampleStreaming(params) { (r) throws(GLM5Error) -> Bool in
          Out.bytes(try stream.push([r.tokens[r.tokens.count - 1]]))
          return true
        }
      }
      let seconds = now() - t0
      Out.bytes(stream.finish() + Array("\n".utf8))
      afterUser = false
      if r.finishReason == .stop, let id = r.stopTokenId {
        if id == format.user {
          afterUser = true
        } else {
          try orFail { () throws(GLM5Error) in try s.truncate(s.count - 1) }
        }
      }
      if showStats {
        Out.err("[\(r.tokens.count) tokens, \(fmt(seconds > 0 ? Double(r.tokens.count) / seconds : 0, 1)) tokens/s, finished: \(r.finishReason.name); \(s.count) tokens in the session]")
      }
    }
    if interactive { Out.text("\n") }
  }
}
