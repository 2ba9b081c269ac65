// The rollout engine: the documented generator and sampler (against a plain reference and a
// chi-square test), the three logprobs against the goldens and the scoring path (bitwise), and
// batched / forked / cancelled sampling bitwise equal to sampling each session alone.

import Testing
import GLM5Core
import GLM5Kernels
import Dispatch
@testable import GLM5Model
@testable import GLM5Engine
#if canImport(Glibc)
import Glibc
#endif

private func loadModel(_ preset: String = "tiny-dsa", threads: Int = 2) throws -> Model {
  try Model(path: modelFolder(preset), threads: threads)
}

/// The plain reference of steps 1-7 of include/glm5.h "Sampling": a full sort of the vocabulary.
/// Returns the kept ids ascending and their weights w (exp(s - m)), and Z.
func referenceKept(_ l: [Float], _ p: SamplingParams) -> (ids: [Int], w: [Double], z: Double) {
  let t = Double(p.temperature)
  let m = l.filter { !$0.isNaN }.map { Double($0) / t }.max() ?? -.infinity
  let w = l.map { $0.isNaN ? 0 : exp(Double($0) / t - m) }
  var z = 0.0
  for x in w { z += x }
  let rank = l.indices.sorted { precedes(l[$0], $0, l[$1], $1) }
  var n = p.topK > 0 ? min(p.topK, l.count) : l.count
  if p.topP < 1 {
    var cum = 0.0, keep = 0
    for i in rank.prefix(n) {
      if !(cum < Double(p.topP)) { break }
      cum += w[i] / z
      keep += 1
    }
    n = keep
  }
  if p.minP > 0 {
    var keep = 0
    for (k, i) in rank.prefix(n).enumerated() where w[i] >= Double(p.minP) { keep = k + 1 }
    n = keep
  }
  return (Array(rank.prefix(max(n, 1))).sorted(), w, z)
}

/// Regularized upper incomplete gamma Q(a, x) (Numerical Recipes' series / continued fraction).
func gammaQ(_ a: Double, _ x: Double) -> Double {
  if x <= 0 { return 1 }
  var sign: Int32 = 0
  let gln = lgamma_r(a, &sign)
  if x < a + 1 {
    var sum = 1 / a, del = sum, ap = a
    for _ in 0..<10_000 { ap += 1; del *= x / ap; sum += del; if abs(del) < abs(sum) * 1e-15 { break } }
    return 1 - sum * exp(-x + a * log(x) - gln)
  }
  var b = x + 1 - a, c = 1 / 1e-300, d = 1 / b, h = d
  for i in 1..<10_000 {
    let an = -Double(i) * (Double(i) - a)
    b += 2
    d = an * d + b; if abs(d) < 1e-300 { d = 1e-300 }
    c = b + an / c; if abs(c) < 1e-300 { c = 1e-300 }
    d = 1 / d
    let del = d * c
    h *= del
    if abs(del - 1) < 1e-15 { break }
  }
  return exp(-x + a * log(x) - gln) * h
}

/// Logits of the next token after `prefix`.
func nextLogits(_ m: Model, _ prefix: [Int32]) throws -> [Float] {
  let s = try Session(model: m)
  try s.append(prefix, logits: .last)
  return s.keptLogits
}

func draw(_ logits: [Float], _ p: SamplingParams, position: Int) -> SampledToken {
  let V = logits.count
  let arena = ScratchArena()
  try! arena.reserve(SamplerScratch.bytes(vocab: V))
  var cv = Carver(arena: arena)
  let sc = SamplerScratch(&cv, vocab: V)
  return logits.withUnsafeBufferPointer { Sampler.sample($0.baseAddress!, vocab: V, params: p, position: position, scratch: sc, topIds: nil, topLogprobs: nil) }
}

@Suite("Sampling")
struct SamplingTests {
  @Test("Philox4x32-10 gives the Random123 known answers")
  func philoxKnownAnswers() {
    let a = Philox.block(counter: (0, 0, 0, 0), key: (0, 0))
    #expect([a.0, a.1, a.2, a.3] == [0x6627_e8d5, 0xe169_c58d, 0xbc57_ac4c, 0x9b00_dbd8])
    let f: UInt32 = 0xffff_ffff
    let b = Philox.block(counter: (f, f, f, f), key: (f, f))
    #expect([b.0, b.1, b.2, b.3] == [0x408f_276d, 0x41c8_3b0e, 0xa20b_c7c6, 0x6d54_51fd])
    let c = Philox.block(counter: (0x243f_6a88, 0x85a3_08d3, 0x1319_8a2e, 0x0370_7344), key: (0xa409_3822, 0x299f_31d0))
    #expect([c.0, c.1, c.2, c.3] == [0xd16c_fe09, 0x94fd_cceb, 0x5001_e420, 0x2412_6ea1])
    let u = Philox.uniform(seed: 0x1234_5678_9abc_def0, position: 77)
    #expect(u >= 0 && u < 1)
  }

  @Test("the kept set and the draw equal the plain full-sort reference on random rows with ties and NaN")
  func samplerMatchesReference() {
    var rng = KernelRNG(seed: 0x5A)
    let cases: [SamplingParams] = [
      SamplingParams(temperature: 0.7, topP: 0.9), SamplingParams(temperature: 1, topK: 5),
      SamplingParams(temperature: 1.3, topK: 40, topP: 0.5, minP: 0.05), SamplingParams(temperature: 0.5, minP: 0.2),
      SamplingParams(temperature: 2, topP: 0.999), SamplingParams(temperature: 1), SamplingParams(temperature: 0.05, topP: 0.3),
      SamplingParams(temperature: 1, topK: 1000, topP: 0.95),
    ]
    for trial in 0..<60 {
      let V = [7, 64, 320, 5000][trial % 4]
      var l = (0..<V).map { _ in rng.uniform() * 6 }
      if trial % 3 == 0 { for i in stride(from: 0, to: V, by: 5) { l[i] = l[0] } }  // ties
      if trial % 5 == 1 { l[V / 2] = .nan; l[1] = -.infinity }
      for var p in cases {
        p.seed = UInt64(trial * 31 + 7)
        let ref = referenceKept(l, p)
        let t = draw(l, p, position: trial)
        // The reference draw.
        var wk = 0.0
        for i in ref.ids { wk += ref.w[i] }
        let target = Philox.uniform(seed: p.seed, position: trial) * wk
        var c = 0.0, want = -1
        for i in ref.ids { c += ref.w[i]; if c > target { want = i; break } }
        #expect(Int(t.id) == want, "trial \(trial) V \(V) \(p): got \(t.id), reference \(want)")
        let m = l.filter { !$0.isNaN }.map { Double($0) / Double(p.temperature) }.max()!
        let wantProcessed = Float((Double(l[want]) / Double(p.temperature) - m) - log(wk))
        #expect(t.processed == wantProcessed)
      }
    }
  }

  @Test("greedy (temperature 0) takes the best finite logit: NaN ranks last, ties to the lower id")
  func greedyNaNLast() {
    let l: [Float] = [.nan, 1, 3, 3, .nan, -2]
    let t = draw(l, SamplingParams(temperature: 0), position: 0)
    #expect(t.id == 2)
    #expect(t.processed == 0)
    #expect(t.raw.isNaN && t.scaled.isNaN)  // a NaN logit makes the distribution NaN
    let allNaN: [Float] = [.nan, .nan, .nan]
    #expect(draw(allNaN, SamplingParams(temperature: 0), position: 0).id == 0)
    #expect(draw(allNaN, SamplingParams(temperature: 1), position: 0).id == 0)
  }

  @Test("temperature 0 reproduces the greedy goldens, scaled == raw, processed == 0", arguments: goldenPresets)
  func temperatureZeroIsGreedy(preset: String) throws {
    let g = try Golden(preset: preset)
    let m = try loadModel(preset)
    let s = try Session(model: m)
    try s.append(g.ints("greedy.prompt"), logits: .none)
    let want = g.ints("greedy.tokens")
    let r = try s.sample(SamplingParams(temperature: 0, maxNewTokens: want.count, ignoreEOS: true))
    #expect(r.tokens == want)
    #expect(r.finishReason == .length)
    #expect(maxAbsDiff(r.logprobs, g.floats("greedy.logprobs")) <= 1e-4)
    #expect(r.scaledLogprobs == r.logprobs)
    #expect(r.processedLogprobs.allSatisfy { $0 == 0 })
  }

  @Test("chi-square: 2000 seeded draws at temperature 0.7, top-p 0.9 follow the processed distribution (p > 1e-3)")
  func chiSquare() throws {
    let m = try loadModel()
    let g = try Golden(preset: "tiny-dsa")
    // A flat-ish context so that many tokens are in play: the logits / 0.7 of the golden prompt.
    let logits = try nextLogits(m, g.ints("greedy.prompt"))
    var p = SamplingParams(temperature: 0.7, topP: 0.9)
    let ref = referenceKept(logits, p)
    var wk = 0.0
    for i in ref.ids { wk += ref.w[i] }
    var counts = [Int: Int]()
    let n = 2000
    for seed in 0..<n {
      p.seed = UInt64(seed)
      counts[Int(draw(logits, p, position: 11).id), default: 0] += 1
    }
    #expect(counts.keys.allSatisfy { ref.ids.contains($0) }, "a draw outside the kept set")
    // Bins with expected count >= 5; the rest merged into one.
    var chi = 0.0, bins = 0, restE = 0.0, restO = 0
    for i in ref.ids {
      let e = Double(n) * ref.w[i] / wk
      let o = counts[i] ?? 0
      if e >= 5 { chi += (Double(o) - e) * (Double(o) - e) / e; bins += 1 } else { restE += e; restO += o }
    }
    if restE > 0 { chi += (Double(restO) - restE) * (Double(restO) - restE) / max(restE, 1e-9); bins += 1 }
    let pValue = gammaQ(Double(bins - 1) / 2, chi / 2)
    print("[chi-square] \(ref.ids.count) kept tokens, \(bins) bins, chi2 = \(chi), p = \(pValue)")
    #expect(bins >= 5, "too few bins (\(bins)) for the test to mean anything")
    #expect(pValue > 1e-3)
    // And the test can fail: the same draws against the distribution without top-p are rejected.
    var chiWrong = 0.0
    var binsWrong = 0
    for i in logits.indices {
      let e = Double(n) * ref.w[i] / ref.z
      if e >= 5 { let o = Double(counts[i] ?? 0); chiWrong += (o - e) * (o - e) / e; binsWrong += 1 }
    }
    #expect(gammaQ(Double(binsWrong - 1) / 2, chiWrong / 2) < 1e-3)
  }

  @Test("raw / scaled / processed logprobs equal the same quantities from the golden logits within 1e-4")
  func logprobsMatchGoldenLogits() throws {
    let g = try Golden(preset: "tiny-dsa")
    let m = try loadModel()
    let V = m.config.vocabSize
    let tokens = g.ints("seq2.tokens")
    let gl = g.floats("seq2.logits")
    let params = SamplingParams(temperature: 0.8, topK: 60, topP: 0.9, seed: 3)
    var worst: Float = 0
    for k in [1, 4, 9, 17, tokens.count - 1] {
      let s = try Session(model: m)
      try s.append(Array(tokens.prefix(k)), logits: .none)
      var p = params
      p.maxNewTokens = 1
      p.seed = UInt64(k)
      let r = try s.sample(p)
      let x = Int(r.tokens[0])
      let row = Array(gl[((k - 1) * V)..<(k * V)])
      let t = Double(p.temperature)
      let lse = row.map { Double($0) }.reduce(-Double.infinity, max)
      let rawWant = Double(row[x]) - (lse + log(row.reduce(0.0) { $0 + exp(Double($1) - lse) }))
      let mT = lse / t
      let zT = row.reduce(0.0) { $0 + exp(Double($1) / t - mT) }
      let scaledWant = Double(row[x]) / t - (mT + log(zT))
      let ref = referenceKept(row, p)
      #expect(ref.ids.contains(x))
      let wk = ref.ids.reduce(0.0) { $0 + ref.w[$1] }
      let processedWant = (Double(row[x]) / t - mT) - log(wk)
      for (got, want) in [(r.logprobs[0], rawWant), (r.scaledLogprobs[0], scaledWant), (r.processedLogprobs[0], processedWant)] {
        worst = max(worst, abs(got - Float(want)))
        #expect(abs(got - Float(want)) <= 1e-4, "position \(k): \(got) vs \(want)")
      }
    }
    print("[golden] sampled raw/scaled/processed logprobs: max |Δ| = \(worst)")
  }

  @Test("scaled and raw logprobs of a sampled trajectory equal scoring it afterwards, bit for bit")
  func samplingEqualsScoring() throws {
    let m = try loadModel()
    for (temp, topK, topP) in [(Float(0.7), 0, Float(0.9)), (1, 20, 1), (1.5, 0, 1), (0, 0, 1)] {
      let prompt: [Int32] = [11, 42, 7, 199, 3]
      let s = try Session(model: m)
      try s.append(prompt, logits: .none)
      let r = try s.sample(SamplingParams(temperature: temp, topK: topK, topP: topP, seed: 99, maxNewTokens: 20, ignoreEOS: true))
      let (raw, scaled) = try m.scoreScaled(prompt + r.tokens, temperature: temp)
      #expect(Array(raw[prompt.count...]) == r.logprobs, "T \(temp): raw differs from scoring")
      #expect(Array(scaled[prompt.count...]) == r.scaledLogprobs, "T \(temp): scaled differs from scoring")
      #expect(Array(try m.score(prompt + r.tokens)[prompt.count...]) == r.logprobs)
      if temp == 1 { #expect(r.scaledLogprobs == r.logprobs) }
      // Prompt logprobs through a session (split differently) are the same bits too.
      let s2 = try Session(model: m)
      let a = try s2.appendScaled(Array((prompt + r.tokens).prefix(8)), temperature: temp)
      let b = try s2.appendScaled(Array((prompt + r.tokens).dropFirst(8)), temperature: temp)
      #expect(Array((a.scaled + b.scaled).dropFirst()) == Array(scaled.dropFirst()))
    }
  }

  /// Eight sessions of different lengths, seeds and parameters.
  func batchCase(_ m: Model) throws -> ([Session], [SamplingParams]) {
    let g = try Golden(preset: "tiny-dsa")
    let base = g.ints("seq2.tokens")
    var sessions: [Session] = [], params: [SamplingParams] = []
    let kinds: [SamplingParams] = [
      SamplingParams(temperature: 0.7, topP: 0.9), SamplingParams(temperature: 0), SamplingParams(temperature: 1, topK: 10),
      SamplingParams(temperature: 1.2, minP: 0.1, topLogprobs: 3), SamplingParams(temperature: 0.9, topK: 50, topP: 0.8),
      SamplingParams(temperature: 1), SamplingParams(temperature: 0.3, stopTokenIds: [5, 9]), SamplingParams(temperature: 2, topLogprobs: 5),
    ]
    for i in 0..<8 {
      let s = try Session(model: m)
      try s.append(Array(base.prefix(1 + 3 * i)), logits: .none)
      sessions.append(s)
      var p = kinds[i]
      p.seed = UInt64(1000 + i)
      p.maxNewTokens = 6 + i
      p.ignoreEOS = i % 2 == 0
      params.append(p)
    }
    return (sessions, params)
  }

  func same(_ a: SampleResult, _ b: SampleResult) -> Bool {
    a.tokens == b.tokens && a.logprobs == b.logprobs && a.scaledLogprobs == b.scaledLogprobs
      && a.processedLogprobs == b.processedLogprobs && a.topIds == b.topIds && a.topLogprobs == b.topLogprobs
      && a.finishReason == b.finishReason && a.stopTokenId == b.stopTokenId
  }

  @Test("8 sessions sampled in one batch equal each sampled alone, bit for bit, in any order, with 1 and 3 threads")
  func batchEqualsAlone() throws {
    var reference: [SampleResult]? = nil
    for threads in [1, 3] {
      let m = try loadModel(threads: threads)
      let (alone, ps) = try batchCase(m)
      let want = try zip(alone, ps).map { (s, p) throws -> SampleResult in try s.sample(p) }
      if let reference { #expect(zip(reference, want).allSatisfy(same), "\(threads) threads change results") }
      reference = want
      for order in [Array(0..<8), [7, 2, 5, 0, 3, 6, 1, 4]] {
        let (sessions, _) = try batchCase(m)
        let got = try m.sampleBatch(order.map { sessions[$0] }, order.map { ps[$0] })
        for (k, i) in order.enumerated() {
          #expect(same(got[k], want[i]), "threads \(threads), session \(i) in batch position \(k) differs from alone")
          #expect(sessions[i].tokens == alone[i].tokens)
          #expect(sessions[i].cache.count == alone[i].cache.count)
        }
        // The caches too: the next logits are the same bits.
        let a = try nextAfter(alone[3]), b = try nextAfter(sessions[3])
        #expect(a == b)
      }
    }
  }

  func nextAfter(_ s: Session) throws -> [Float] {
    let f = try s.fork()
    try f.append([17], logits: .last)
    return f.keptLogits
  }

  @Test("a batched append equals appending each chunk alone; a fork continues exactly as the original")
  func appendBatchAndFork() throws {
    let m = try loadModel()
    let g = try Golden(preset: "tiny-dsa")
    let t = g.ints("seq2.tokens")
    let chunks = [Array(t.prefix(9)), Array(t.prefix(2)), Array(t.suffix(20)), [5]]
    let alone = try chunks.map { c throws -> (Session, [Float]) in
      let s = try Session(model: m); let lp = try s.append(c, logits: .last, logprobs: true); return (s, lp)
    }
    let batch = try chunks.map { _ in try Session(model: m) }
    let rs = try m.appendBatch(zip(batch, chunks).map { AppendRequest(session: $0, tokens: $1, keep: .last, logprobs: true) })
    for i in chunks.indices {
      #expect(rs[i].logprobs.elementsEqual(alone[i].1) { $0 == $1 || ($0.isNaN && $1.isNaN) })
      #expect(batch[i].keptLogits == alone[i].0.keptLogits)
    }
    let p = SamplingParams(temperature: 0.9, topP: 0.95, seed: 5, maxNewTokens: 12, ignoreEOS: true)
    let f = try batch[0].fork()
    #expect(f.tokens == batch[0].tokens && f.keptRows == 0)
    let a = try batch[0].sample(p), b = try f.sample(p)
    #expect(same(a, b))
    let c = try alone[0].0.sample(p)
    #expect(c.tokens == a.tokens)
  }

  @Test("stop ids end generation with the stop token kept; max_new_tokens 0; eos ids from generation_config")
  func stopping() throws {
    let m = try loadModel()
    #expect(m.eosTokenIds == [1])
    let s = try Session(model: m)
    try s.append([11, 42, 7], logits: .none)
    let free = try s.fork().sample(SamplingParams(temperature: 1, seed: 4, maxNewTokens: 10, ignoreEOS: true))
    let stopAt = free.tokens[3]
    let firstIndex = free.tokens.firstIndex(of: stopAt)!
    let r = try s.sample(SamplingParams(temperature: 1, seed: 4, maxNewTokens: 10, stopTokenIds: [stopAt], ignoreEOS: true))
    #expect(r.finishReason == .stop && r.stopTokenId == stopAt)
    #expect(r.tokens == Array(free.tokens.prefix(firstIndex + 1)))
    #expect(s.count == 3 + r.tokens.count)
    let z = try s.sample(SamplingParams(maxNewTokens: 0))
    #expect(z.tokens.isEmpty && z.finishReason == .length)
  }

  @Test("cancel: before a call it stops the next one at 0 tokens; from another thread it stops between tokens")
  func cancellation() throws {
    let m = try loadModel()
    let s = try Session(model: m)
    try s.append([11, 42, 7], logits: .none)
    s.cancel()
    let r0 = try s.sample(SamplingParams(maxNewTokens: 5))
    #expect(r0.tokens.isEmpty && r0.finishReason == .cancelled && s.count == 3)
    let r1 = try s.sample(SamplingParams(maxNewTokens: 5, ignoreEOS: true))
    #expect(r1.tokens.count == 5 && r1.finishReason == .length)
    let done = DispatchGroup()
    DispatchQueue.global().async(group: done) { usleep(20_000); s.cancel() }
    let r2 = try s.sample(SamplingParams(maxNewTokens: 240, ignoreEOS: true))
    done.wait()
    #expect(s.count == 8 + r2.tokens.count)
    if r2.finishReason == .cancelled { #expect(r2.tokens.count < 240) } else { #expect(r2.tokens.count == 240) }
  }

  @Test("bad sampling input names the field (and the session index in a batch) and changes nothing")
  func badInput() throws {
    let m = try loadModel()
    let s = try Session(model: m, maxTokens: 20)
    try s.append([1, 2, 3], logits: .last)
    let other = try Session(model: m)
    try other.append([4], logits: .none)
    func expectError(_ field: String, _ status: Status = .invalidArgument, _ body: () throws(GLM5Error) -> Void) {
      do { try body(); Issue.record("expected an error naming \(field)") } catch {
        #expect(error.status == status, "\(field): \(error.message)")
        #expect(error.message.contains(field), "message: \(error.message)")
      }
    }
    expectError("temperature") { () throws(GLM5Error) in _ = try s.sample(SamplingParams(temperature: -1)) }
    expectError("temperature") { () throws(GLM5Error) in _ = try s.sample(SamplingParams(temperature: .nan)) }
    expectError("top_p") { () throws(GLM5Error) in _ = try s.sample(SamplingParams(topP: 0)) }
    expectError("top_p") { () throws(GLM5Error) in _ = try s.sample(SamplingParams(topP: 1.5)) }
    expectError("top_k") { () throws(GLM5Error) in _ = try s.sample(SamplingParams(topK: -1)) }
    expectError("min_p") { () throws(GLM5Error) in _ = try s.sample(SamplingParams(minP: 1)) }
    expectError("n_top_logprobs") { () throws(GLM5Error) in _ = try s.sample(SamplingParams(topLogprobs: 65)) }
    expectError("stop_token_ids[1]") { () throws(GLM5Error) in _ = try s.sample(SamplingParams(stopTokenIds: [3, 320])) }
    expectError("maximum", .contextFull) { () throws(GLM5Error) in _ = try s.sample(SamplingParams(maxNewTokens: 18)) }
    expectError("session 1: top_p") { () throws(GLM5Error) in
      _ = try m.sampleBatch([other, s], [SamplingParams(), SamplingParams(topP: 2)])
    }
    expectError("session 1 appears twice") { () throws(GLM5Error) in _ = try m.sampleBatch([s, s], [SamplingParams(), SamplingParams()]) }
    let m2 = try loadModel()
    let foreign = try Session(model: m2)
    try foreign.append([1], logits: .none)
    expectError("another model") { () throws(GLM5Error) in _ = try m.sampleBatch([s, foreign], [SamplingParams(), SamplingParams()]) }
    expectError("at least one token") { () throws(GLM5Error) in _ = try Session(model: m).sample(SamplingParams()) }
    #expect(s.count == 3 && other.count == 1)
    #expect(s.keptRows == 1)
    // Unchanged: it samples exactly as an untouched copy does.
    let fresh = try Session(model: m)
    try fresh.append([1, 2, 3], logits: .none)
    let p = SamplingParams(seed: 8, maxNewTokens: 6)
    let rs = try s.sample(p), rf = try fresh.sample(p)
    #expect(same(rs, rf))
  }

  @Test("truncating back into the last append's hidden rows needs no forward and equals recomputing")
  func truncateWithinHeldRows() throws {
    let m = try loadModel()
    let g = try Golden(preset: "tiny-dsa")
    let t = g.ints("seq2.tokens")
    let a = try Session(model: m), b = try Session(model: m)
    try a.append(Array(t.prefix(20)), logits: .none)
    try a.append(Array(t[20..<24]), logits: .none)  // 4 rows held
    try a.truncate(21)  // within them
    #expect(a.hiddenRows == 1)
    try b.append(Array(t.prefix(24)), logits: .none)
    try b.truncate(21)  // 24 - 21 = 3 < 16 held as well
    let c = try Session(model: m)
    try c.append(Array(t.prefix(21)), logits: .none)
    let p = SamplingParams(temperature: 0.8, seed: 2, maxNewTokens: 5, ignoreEOS: true)
    let rc = try c.sample(p)
    let ra = try a.sample(p), rb = try b.sample(p)
    #expect(same(ra, rc) && same(rb, rc))
  }
}
