// Token-by-token sampling (Session.sampleStreaming, what `glm5 generate` and `glm5 chat` print
// from) gives bitwise what one Session.sample call gives: tokens, the three logprobs, top
// alternatives, finish reason and the session left behind. And GLM's chat turns (ChatFormat)
// are the ids the tokenizer gives the rendered template.

import Testing
import GLM5Core
import GLM5Engine
import GLM5Tokenizer

private func bits(_ a: [Float]) -> [UInt32] { a.map(\.bitPattern) }

private let repo = fixturesRoot + "/../.."

@Suite("Streaming sampling and chat turns")
struct StreamingTests {
  static let prompt: [Int32] = [11, 42, 7, 199, 3]

  static func oneShot(_ m: Model, _ p: SamplingParams) throws -> (SampleResult, [Int32]) {
    let s = try Session(model: m)
    try s.append(prompt, logits: .none)
    return (try s.sample(p), s.tokens)
  }

  @Test("streamed tokens equal one sample call, bit for bit")
  func streamedEqualsOneShot() throws {
    let m = try Model(path: fixturesRoot + "/tiny-dsa", threads: 2)
    var cases: [SamplingParams] = [
      .greedy(12),
      SamplingParams(temperature: 0, maxNewTokens: 12),  // stops at eos if drawn
      SamplingParams(temperature: 0.8, topP: 0.9, seed: 7, maxNewTokens: 16, ignoreEOS: true, topLogprobs: 3),
      SamplingParams(temperature: 1.3, topK: 20, minP: 0.01, seed: 123, maxNewTokens: 16, ignoreEOS: true),
      SamplingParams(temperature: 1, seed: 5, maxNewTokens: 0),
    ]
    // A stop id drawn mid-way: the fourth token of an unstopped run.
    let (free, _) = try StreamingTests.oneShot(m, cases[3])
    var stopped = cases[3]
    stopped.stopTokenIds = [free.tokens[3]]
    cases.append(stopped)
    for p in cases {
      let (want, wantTokens) = try StreamingTests.oneShot(m, p)
      let s = try Session(model: m)
      try s.append(StreamingTests.prompt, logits: .none)
      var seen: [Int] = []
      let got = try s.sampleStreaming(p) { (r) throws(GLM5Error) -> Bool in
        seen.append(r.tokens.count)
        return true
      }
      #expect(got.tokens == want.tokens, "\(p)")
      #expect(bits(got.logprobs) == bits(want.logprobs), "\(p)")
      #expect(bits(got.scaledLogprobs) == bits(want.scaledLogprobs), "\(p)")
      #expect(bits(got.processedLogprobs) == bits(want.processedLogprobs), "\(p)")
      #expect(got.topIds == want.topIds && bits(got.topLogprobs) == bits(want.topLogprobs) && got.topN == want.topN, "\(p)")
      #expect(got.finishReason == want.finishReason && got.stopTokenId == want.stopTokenId, "\(p)")
      #expect(s.tokens == wantTokens, "\(p)")
      #expect(seen == (0..<want.tokens.count).map { $0 + 1 }, "\(p): one callback per token")
    }
    #expect(try StreamingTests.oneShot(m, stopped).0.finishReason == .stop)
  }

  @Test("returning false stops after that token; the session keeps it")
  func callbackStops() throws {
    let m = try Model(path: fixturesRoot + "/tiny-dsa", threads: 2)
    let s = try Session(model: m)
    try s.append(StreamingTests.prompt, logits: .none)
    let r = try s.sampleStreaming(.greedy(10)) { (r) throws(GLM5Error) -> Bool in r.tokens.count < 3 }
    #expect(r.tokens.count == 3 && r.finishReason == .cancelled)
    #expect(s.count == StreamingTests.prompt.count + 3)
    let (want, _) = try StreamingTests.oneShot(m, .greedy(3))
    #expect(r.tokens == want.tokens)
    // A request the session cannot hold fails before any token, as sample does.
    #expect(throws: GLM5Error.self) { try s.sampleStreaming(.greedy(s.maxTokens)) { _ in true } }
    #expect(s.count == StreamingTests.prompt.count + 3)
  }

  @Test("GLM chat turns are the tokenizer's ids of the rendered template")
  func chatTurns() throws {
    let folder = repo + "/models/glm5-tiny"
    let tok = try Tokenizer.load(path: folder)
    let f = try ChatFormat(folder: folder, tokenizer: tok)
    let first = try f.turn("def add(a, b):", system: "You write Python.", first: true, afterUser: false, tokenizer: tok)
    #expect(first == (try tok.encode("[gMASK]<sop><|system|>\nYou write Python.<|user|>\ndef add(a, b):<|assistant|>\n")))
    let next = try f.turn("and <|user|> too", first: false, afterUser: false, tokenizer: tok)
    #expect(next == (try tok.encode("<|user|>", parseSpecial: true)) + (try tok.encode("\nand <|user|> too", parseSpecial: false))
                    + (try tok.encode("<|assistant|>\n")))
    let after = try f.turn("x", first: false, afterUser: true, tokenizer: tok)
    #expect(after == (try tok.encode("\nx<|assistant|>\n")))
    #expect(f.stopTokenIds == [tok.id(of: "<|user|>")!, tok.id(of: "<|observation|>")!, tok.id(of: "<|endoftext|>")!])
    // A folder whose tokenizer_config.json has no chat_template is refused, saying so.
    let plain = repo + "/Tests/Fixtures/tokenizers/glm5-like-32k"
    do {
      _ = try ChatFormat(folder: plain, tokenizer: try Tokenizer.load(path: plain))
      Issue.record("expected a refusal")
    } catch {
      #expect(error.status == .unsupported && error.message.contains("no chat_template"))
    }
  }
}
