// Sessions: incremental decoding and chunked prefill agree with the full forward (bitwise),
// logprobs and greedy continuations match transformers, sparse attention reads exactly k keys,
// and bad input leaves a session exactly as it was.

import Testing
import GLM5Core
@testable import GLM5Model
import GLM5Engine

private func loadModel(_ preset: String, threads: Int = 2) throws -> Model {
  try Model(path: modelFolder(preset), threads: threads)
}

@Suite("Sessions")
struct SessionTests {
  @Test("logprobs of a whole sequence match transformers", arguments: goldenPresets)
  func scoreMatchesGolden(preset: String) throws {
    let g = try Golden(preset: preset)
    let m = try loadModel(preset)
    var worst: Float = 0
    for s in 0..<g.sequenceCount {
      let lp = try m.score(g.ints("seq\(s).tokens"))
      let want = g.floats("seq\(s).logprobs")
      #expect(lp[0].isNaN && want[0].isNaN)
      let d = maxAbsDiff(lp, want)
      worst = max(worst, d)
      #expect(d <= 1e-4, "\(preset) seq\(s): max |Δlogprob| = \(d)")
    }
    print("[golden] \(preset): max |Δlogprob| = \(worst)")
  }

  @Test("greedy continuation and its logprobs match transformers", arguments: goldenPresets)
  func greedyMatchesGolden(preset: String) throws {
    let g = try Golden(preset: preset)
    let m = try loadModel(preset)
    let s = try Session(model: m)
    try s.append(g.ints("greedy.prompt"), logits: .last)
    let want = g.ints("greedy.tokens")
    let (ids, lps) = try s.generate(want.count)
    #expect(ids == want)
    let d = maxAbsDiff(lps, g.floats("greedy.logprobs"))
    #expect(d <= 1e-4, "\(preset): greedy max |Δlogprob| = \(d)")
    #expect(s.count == g.ints("greedy.prompt").count + want.count)
  }

  @Test("prefill then one-token decode, and uneven chunks, equal the full forward bitwise", arguments: goldenPresets)
  func incrementalEqualsFull(preset: String) throws {
    let g = try Golden(preset: preset)
    let m = try loadModel(preset)
    let v = m.config.vocabSize
    let c = m.config
    let s = g.sequenceCount - 1  // the longest
    let tokens = g.ints("seq\(s).tokens")
    let fullRec = try RoutingRecord(config: c)
    let full = try m.fullForwardLogits(tokens, record: fullRec)

    // prefill of n then decode one at a time, and a few uneven chunkings
    let splits: [[Int]] = [[3] + Array(repeating: 1, count: tokens.count - 3), [1, 6, 2, tokens.count - 9], [tokens.count]]
    for split in splits {
      let sess = try Session(model: m, recordBytes: 0)
      let rec = sess.record!
      var got: [Float] = []
      var i = 0
      for n in split {
        try sess.append(Array(tokens[i..<(i + n)]), logits: .all)
        got += sess.keptLogits
        i += n
      }
      #expect(got == full, "split \(split): logits differ from the full forward (max \(maxAbsDiff(got, full)))")
      #expect(maxAbsDiff(got, g.floats("seq\(s).logits")) <= logitTolerance(preset))
      for l in 0..<c.numHiddenLayers {
        #expect(Array(rec.topk(first: 0, count: tokens.count)) == Array(fullRec.topk(first: 0, count: tokens.count)), "split \(split): top-k records differ")
        #expect(rec.routes(first: 0, count: tokens.count).ids.elementsEqual(fullRec.routes(first: 0, count: tokens.count).ids), "split \(split): routes differ")
        #expect(rec.routes(first: 0, count: tokens.count).weights.elementsEqual(fullRec.routes(first: 0, count: tokens.count).weights))
      }
      _ = v
    }
  }

  @Test("results do not depend on the thread count")
  func threadInvariance() throws {
    let g = try Golden(preset: "tiny-dsa")
    let tokens = g.ints("seq2.tokens")
    let a = try loadModel("tiny-dsa", threads: 1).fullForwardLogits(tokens)
    let b = try loadModel("tiny-dsa", threads: 2).fullForwardLogits(tokens)
    let c = try loadModel("tiny-dsa", threads: 3).fullForwardLogits(tokens)
    #expect(a == b && b == c)
  }

  @Test("decode steps, one session and batched (the grouped experts: row slices on 3 threads, whole matrices on 1), do not depend on the thread count")
  func decodeThreadInvariance() throws {
    let g = try Golden(preset: "tiny-dsa")
    let tokens = Array(g.ints("seq2.tokens").prefix(24))
    // 4 routed + 1 shared expert of 18 rows per token: one thread takes them whole, 3 threads in
    // 16-row items (rows 0-15 and 16-17 of each: a short last slice).
    #expect(MoE.groupedItemRows(tasks: 5, width: 18, threads: 1) == 512)
    #expect(MoE.groupedItemRows(tasks: 5, width: 18, threads: 3) == 16)
    var runs: [[UInt32]] = []
    for threads in [1, 2, 3] {
      let m = try loadModel("tiny-dsa", threads: threads)
      var bits: [UInt32] = []
      let s = try Session(model: m, recordBytes: 0)
      for t in tokens { bits += try s.append([t], logits: .none, logprobs: true).map(\.bitPattern) }  // the first NaN
      // Four sessions decoding together: rows of different sessions share the step's experts.
      let batch = try (0..<4).map { _ in try Session(model: m, recordBytes: 0) }
      for (i, b) in batch.enumerated() { try b.append(Array(tokens.prefix(4 + i)), logits: .none) }
      for step in 0..<6 {
        let r = try m.appendBatch(batch.enumerated().map { i, b in
          AppendRequest(session: b, tokens: [tokens[(8 + 3 * i + step) % tokens.count]], keep: .none, logprobs: true)
        })
        bits += r.flatMap { $0.logprobs.map(\.bitPattern) }
      }
      runs.append(bits)
    }
    #expect(runs[0].count == 24 + 24)
    #expect(runs[0] == runs[1] && runs[1] == runs[2])
  }

  @Test("a decode step past index_topk attends exactly k keys in every layer")
  func sparseAttentionIsSparse() throws {
    let m = try loadModel("tiny-dsa")
    let c = m.config
    let k = c.indexTopK
    let g = try Golden(preset: "tiny-dsa")
    let tokens = g.ints("seq2.tokens")
    #expect(tokens.count > 3 * k)
    let s = try Session(model: m, recordBytes: 0)
    try s.append(Array(tokens.prefix(tokens.count - 1)), logits: .none)
    let rec = s.record!
    try s.append([tokens.last!], logits: .last)
    let p = tokens.count - 1
    for l in 0..<c.numHiddenLayers {
      let sel = rec.selection(position: p, layer: l)
      #expect(sel.count == k, "layer \(l) attended \(sel.count) keys, expected \(k)")
      #expect(Set(sel).count == k && sel.allSatisfy { $0 >= 0 && Int($0) <= p })
    }
    // Below index_topk the selection is every earlier key (dense).
    let s2 = try Session(model: m, recordBytes: 0)
    try s2.append(Array(tokens.prefix(k)), logits: .none)
    for t in 0..<k { #expect(s2.record!.selection(position: t, layer: 0) == (0...t).map { Int32($0) }) }
  }

  @Test("logprobs of appends equal a whole-sequence score; the first token has none")
  func appendLogprobs() throws {
    let m = try loadModel("tiny-dsa")
    let g = try Golden(preset: "tiny-dsa")
    let tokens = g.ints("seq1.tokens")
    let whole = try m.score(tokens)
    let s = try Session(model: m)
    var got = try s.append(Array(tokens.prefix(4)), logits: .none, logprobs: true)
    got += try s.append(Array(tokens[4..<5]), logits: .none, logprobs: true)
    got += try s.append(Array(tokens[5...]), logits: .last, logprobs: true)
    #expect(got.count == whole.count)
    #expect(got[0].isNaN)
    #expect(Array(got.dropFirst()) == Array(whole.dropFirst()))
  }

  @Test("truncate then re-append reproduces the same logits")
  func truncateRollsBack() throws {
    let m = try loadModel("tiny-dsa")
    let g = try Golden(preset: "tiny-dsa")
    let tokens = g.ints("seq2.tokens")
    let s = try Session(model: m)
    try s.append(tokens, logits: .all)
    let all = s.keptLogits
    let v = m.config.vocabSize
    try s.truncate(10)
    #expect(s.count == 10 && s.tokens == Array(tokens.prefix(10)))
    #expect(s.keptRows == 0)
    let lp = try s.append(Array(tokens[10...]), logits: .all, logprobs: true)
    #expect(s.keptLogits == Array(all[(10 * v)...]))
    #expect(Array(lp) == Array(try m.score(tokens)[10...]))
    try s.truncate(0)
    #expect(s.count == 0)
    #expect(throws: GLM5Error.self) { try s.generate(1) }
  }

  @Test("bad input returns its status and leaves the session intact")
  func badInputLeavesSessionIntact() throws {
    let m = try loadModel("tiny-dsa")
    let v = m.config.vocabSize
    let s = try Session(model: m, maxTokens: 12)
    try s.append([1, 2, 3], logits: .last)
    let kept = s.keptLogits
    func expectStatus(_ st: Status, _ contains: String, _ body: () throws(GLM5Error) -> Void) {
      do { try body(); Issue.record("expected \(st)") } catch {
        #expect(error.status == st)
        #expect(error.message.contains(contains), "message: \(error.message)")
      }
    }
    expectStatus(.invalidArgument, "\(v)") { () throws(GLM5Error) in try s.append([4, Int32(v)], logits: .last) }
    expectStatus(.invalidArgument, "-1") { () throws(GLM5Error) in try s.append([-1], logits: .last) }
    expectStatus(.invalidArgument, "no tokens") { () throws(GLM5Error) in try s.append([], logits: .last) }
    expectStatus(.contextFull, "12") { () throws(GLM5Error) in try s.append(Array(repeating: 5, count: 10), logits: .last) }
    expectStatus(.contextFull, "12") { () throws(GLM5Error) in _ = try s.generate(10) }
    expectStatus(.invalidArgument, "holds 3") { () throws(GLM5Error) in try s.truncate(4) }
    expectStatus(.invalidArgument, "max_tokens") { () throws(GLM5Error) in _ = try Session(model: m, maxTokens: m.config.maxPositionEmbeddings + 1) }
    #expect(s.count == 3 && s.tokens == [1, 2, 3])
    #expect(s.keptLogits == kept)
    // still usable, and as if nothing had happened
    try s.append([4], logits: .last)
    let fresh = try Session(model: m)
    try fresh.append([1, 2, 3, 4], logits: .last)
    #expect(s.keptLogits == fresh.keptLogits)
    // filling exactly to the maximum works
    try s.append(Array(repeating: 7, count: 8), logits: .none)
    #expect(s.count == 12)
  }
}
