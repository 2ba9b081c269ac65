// Rollout Routing Replay (R3): recorded selections and routes against the goldens, replay
// reproducing logprobs bit for bit, validation, the record's bound.

import Testing
import GLM5Core
@testable import GLM5Model
@testable import GLM5Engine

private func model(_ preset: String, threads: Int = 2) throws -> Model {
  try Model(path: modelFolder(preset), threads: threads)
}

/// Run body with the record's rows [0, n) as replay pointers (ids and, if asked, weights).
private func withReplay<R>(_ rec: RoutingRecord, _ n: Int, topk: Bool = true, routes: Bool = true, weights: Bool = true,
                           _ body: (RoutingReplay) throws -> R) rethrows -> R {
  let t = Array(rec.topk(first: 0, count: n))
  let (ids, w) = rec.routes(first: 0, count: n)
  let i = Array(ids), wf = Array(w)
  return try t.withUnsafeBufferPointer { tb in
    try i.withUnsafeBufferPointer { ib in
      try wf.withUnsafeBufferPointer { wb in
        try body(RoutingReplay(topk: topk ? tb.baseAddress : nil, expertIds: routes ? ib.baseAddress : nil,
                               expertWeights: routes && weights ? wb.baseAddress : nil))
      }
    }
  }
}

@Suite("Routing replay")
struct RoutingReplayTests {
  @Test("a recording session's selections and routes equal the goldens", arguments: goldenPresets)
  func recordMatchesGolden(preset: String) throws {
    let g = try Golden(preset: preset)
    let m = try model(preset)
    let c = m.config
    for s in 0..<g.sequenceCount {
      let tokens = g.ints("seq\(s).tokens")
      let sess = try Session(model: m, recordBytes: 0)
      try sess.append(Array(tokens.prefix(3)), logits: .none)  // split: the record must not depend on it
      try sess.append(Array(tokens.dropFirst(3)), logits: .none)
      let rec = sess.record!
      #expect(rec.count == tokens.count)
      for l in 0..<c.numHiddenLayers {
        if g.has("seq\(s).topk.layer\(l)") {
          let k = g.shape("seq\(s).topk.layer\(l)")[1]
          let gold = g.ints("seq\(s).topk.layer\(l)")
          for t in 0..<tokens.count {
            let row = Array(rec.topk(first: t, count: 1)[(l * c.indexTopK)..<((l + 1) * c.indexTopK)])
            var want = Array(gold[(t * k)..<((t + 1) * k)])
            want += Array(repeating: -1, count: c.indexTopK - k)
            #expect(row == want, "\(preset) seq\(s) layer \(l) pos \(t): recorded top-k \(row), golden \(want)")
          }
        }
        if g.has("seq\(s).experts.layer\(l)") {
          let k = g.shape("seq\(s).experts.layer\(l)")[1]
          let gold = g.ints("seq\(s).experts.layer\(l)")
          let goldW = g.floats("seq\(s).expert_weights.layer\(l)")
          for t in 0..<tokens.count {
            let r = rec.route(position: t, layer: l)!
            #expect(r.experts == Array(gold[(t * k)..<((t + 1) * k)]), "\(preset) seq\(s) layer \(l) pos \(t): experts")
            #expect(maxAbsDiff(r.weights, Array(goldW[(t * k)..<((t + 1) * k)])) <= 1e-5)
          }
        }
      }
    }
  }

  @Test("sampling records what scoring the trajectory records; replaying it reproduces the logprobs bit for bit",
        arguments: ["tiny-dsa", "tiny-int4-g32", "tiny-fp8-block", "tiny-dsa-bf16-sharded", "tiny-v32", "tiny-dsa-shared"])
  func replayReproduces(preset: String) throws {
    let g = try Golden(preset: preset)
    let m = try model(preset)
    let prompt = Array(g.ints("seq1.tokens").prefix(5))
    let s = try Session(model: m, recordBytes: 0)
    try s.append(prompt, logits: .none)
    let r = try s.sample(SamplingParams(temperature: 1, seed: 7, maxNewTokens: 12, ignoreEOS: true))
    let tokens = prompt + r.tokens
    let n = tokens.count
    #expect(s.record!.count == n)
    // Scoring the trajectory from scratch records the same choices and weights, bitwise.
    let scorer = try Session(model: m, recordBytes: 0)
    let plain = try scorer.appendScaled(tokens, temperature: 1)
    #expect(Array(scorer.record!.topk(first: 0, count: n)) == Array(s.record!.topk(first: 0, count: n)))
    #expect(Array(scorer.record!.routes(first: 0, count: n).ids) == Array(s.record!.routes(first: 0, count: n).ids))
    #expect(Array(scorer.record!.routes(first: 0, count: n).weights) == Array(s.record!.routes(first: 0, count: n).weights))
    #expect(Array(plain.raw.dropFirst(prompt.count)) == r.logprobs)
    // Replay: selections and routes with weights, routes without weights (computed), selections
    // only, routes only; every one gives the same bits, in one call and split.
    for (tk, rt, wt) in [(true, true, true), (true, true, false), (true, false, false), (false, true, true)] {
      let got = try withReplay(s.record!, n, topk: tk, routes: rt, weights: wt) { (rp) throws -> [Float] in
        try m.scoreScaled(tokens, temperature: 1, replay: rp).raw
      }
      #expect(bitsEqual(got, plain.raw), "\(preset) replay topk \(tk) routes \(rt) weights \(wt)")
      let split = try withReplay(s.record!, n, topk: tk, routes: rt, weights: wt) { (rp) throws -> [Float] in
        let x = try Session(model: m)
        var lp = try x.append(Array(tokens.prefix(4)), logits: .none, logprobs: true, replay: rp)
        lp += try x.append(Array(tokens.dropFirst(4)), logits: .none, logprobs: true, replay: rp.advanced(by: 4, m.config))
        return lp
      }
      #expect(bitsEqual(split, plain.raw))
    }
  }

  @Test("a different replayed selection and route change the logprobs, and the record holds what was replayed")
  func replayIsUsed() throws {
    let m = try model("tiny-dsa")
    let c = m.config
    let g = try Golden(preset: "tiny-dsa")
    let tokens = g.ints("seq2.tokens")
    let n = tokens.count
    #expect(n > c.indexTopK + 2)
    let base = try Session(model: m, recordBytes: 0)
    let plain = try base.append(tokens, logits: .none, logprobs: true)
    // The first K keys for every query past K (the indexer never picks exactly those here), and
    // the lowest k experts everywhere.
    let K = c.indexTopK, k = c.numExpertsPerTok
    let rs = base.record!.routeStride
    var topk = Array(base.record!.topk(first: 0, count: n))
    var ids = [Int32](repeating: 0, count: n * rs)
    for t in 0..<n {
      for l in 0..<c.numHiddenLayers where t >= K {
        for i in 0..<K { topk[(t * c.numHiddenLayers + l) * K + i] = Int32(i) }
      }
      for j in 0..<(rs / k) { for i in 0..<k { ids[t * rs + j * k + i] = Int32(i) } }
    }
    let x = try Session(model: m, recordBytes: 0)
    let got = try topk.withUnsafeBufferPointer { tb in
      try ids.withUnsafeBufferPointer { ib in
        try x.append(tokens, logits: .none, logprobs: true, replay: RoutingReplay(topk: tb.baseAddress, expertIds: ib.baseAddress))
      }
    }
    #expect(!bitsEqual(got, plain))
    #expect(Array(x.record!.topk(first: 0, count: n)) == topk)
    #expect(Array(x.record!.routes(first: 0, count: n).ids) == ids)
  }

  @Test("replay data that is out of range or unordered is refused and changes nothing")
  func replayValidation() throws {
    let m = try model("tiny-dsa")
    let c = m.config
    let tokens: [Int32] = [3, 1, 4, 1, 5]
    let s = try Session(model: m, recordBytes: 0)
    try s.append([7, 8], logits: .last)
    let kept = s.keptLogits
    let L = c.numHiddenLayers, K = c.indexTopK
    func good() -> [Int32] {
      var t = [Int32](repeating: -1, count: tokens.count * L * K)
      for i in 0..<tokens.count { for l in 0..<L { t[(i * L + l) * K] = 0 } }
      return t
    }
    var cases: [([Int32], String)] = []
    var a = good(); a[(1 * L + 1) * K + 1] = Int32(2 + 1 + 1); cases.append((a, "is key 4, but token 1 is at position 3"))
    a = good(); a[(0 * L) * K] = -1; cases.append((a, "selects no key"))
    a = good(); a[(2 * L) * K + 1] = 0; cases.append((a, "strictly ascending"))
    a = good(); a[(2 * L) * K + 2] = 1; cases.append((a, "after -1 padding"))
    a = good(); a[(3 * L) * K + 1] = -2; cases.append((a, "is -2"))
    for (t, needle) in cases {
      expectFailure(.invalidArgument, ["replay_topk", needle]) { () throws(GLM5Error) in
        try t.withUnsafeBufferPointer { (tb) throws(GLM5Error) in
          _ = try s.append(tokens, logits: .none, replay: RoutingReplay(topk: tb.baseAddress))
        }
      }
    }
    let rs = RoutingReplay.strides(c).routes, k = c.numExpertsPerTok
    var ids = [Int32](repeating: 0, count: tokens.count * rs)
    for i in 0..<(tokens.count * rs / k) { for j in 0..<k { ids[i * k + j] = Int32(j) } }
    var bad = ids; bad[k + 1] = Int32(c.nRoutedExperts)
    expectFailure(.invalidArgument, ["replay_routes", "outside [0, \(c.nRoutedExperts))"]) { () throws(GLM5Error) in
      try bad.withUnsafeBufferPointer { (ib) throws(GLM5Error) in _ = try s.append(tokens, logits: .none, replay: RoutingReplay(expertIds: ib.baseAddress)) }
    }
    bad = ids; bad[0] = bad[1]
    expectFailure(.invalidArgument, ["replay_routes", "strictly ascending"]) { () throws(GLM5Error) in
      try bad.withUnsafeBufferPointer { (ib) throws(GLM5Error) in _ = try s.append(tokens, logits: .none, replay: RoutingReplay(expertIds: ib.baseAddress)) }
    }
    let w = [Float](repeating: .nan, count: ids.count)
    expectFailure(.invalidArgument, ["replay_route_weights", "finite"]) { () throws(GLM5Error) in
      try ids.withUnsafeBufferPointer { (ib) throws(GLM5Error) in
        try w.withUnsafeBufferPointer { (wb) throws(GLM5Error) in
          _ = try s.append(tokens, logits: .none, replay: RoutingReplay(expertIds: ib.baseAddress, expertWeights: wb.baseAddress))
        }
      }
    }
    expectFailure(.invalidArgument, ["need replayed expert ids"]) { () throws(GLM5Error) in
      try w.withUnsafeBufferPointer { (wb) throws(GLM5Error) in _ = try s.append(tokens, logits: .none, replay: RoutingReplay(expertWeights: wb.baseAddress)) }
    }
    #expect(s.count == 2 && s.record!.count == 2 && s.keptLogits == kept)
  }

  @Test("the record is bounded: past its bytes an append is refused with recordFull and changes nothing; truncate and fork follow the tokens")
  func recordBound() throws {
    let m = try model("tiny-dsa")
    let probe = try RoutingRecord(config: m.config)
    let s = try Session(model: m, recordBytes: 10 * probe.bytesPerToken)
    try s.append([1, 2, 3, 4, 5, 6, 7, 8], logits: .last)
    let before = Array(s.record!.topk(first: 0, count: 8))
    expectFailure(.recordFull, ["record bound", "10 tokens"]) { () throws(GLM5Error) in try s.append([9, 10, 11], logits: .none) }
    expectFailure(.recordFull, ["record bound"]) { () throws(GLM5Error) in _ = try s.sample(SamplingParams(maxNewTokens: 3, ignoreEOS: true)) }
    #expect(s.count == 8 && s.record!.count == 8 && Array(s.record!.topk(first: 0, count: 8)) == before)
    #expect(s.record!.bytes <= 10 * probe.bytesPerToken)
    try s.append([9, 10], logits: .none)
    #expect(s.record!.count == 10)
    try s.truncate(6)
    #expect(s.record!.count == 6)
    let f = try s.fork()
    #expect(f.record!.count == 6 && Array(f.record!.topk(first: 0, count: 6)) == Array(before.prefix(6 * probe.topkStride)))
    try f.append([2, 3], logits: .none)
    let again = try Session(model: m, recordBytes: 0)
    try again.append([1, 2, 3, 4, 5, 6, 2, 3], logits: .none)
    #expect(Array(f.record!.topk(first: 0, count: 8)) == Array(again.record!.topk(first: 0, count: 8)))
    #expect(Array(f.record!.routes(first: 0, count: 8).weights) == Array(again.record!.routes(first: 0, count: 8).weights))
  }
}

/// Equal bit patterns (NaN at position 0 included).
func bitsEqual(_ a: [Float], _ b: [Float]) -> Bool {
  a.count == b.count && zip(a, b).allSatisfy { $0.bitPattern == $1.bitPattern }
}
