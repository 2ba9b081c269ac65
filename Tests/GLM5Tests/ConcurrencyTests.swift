// Concurrency stress (issue 13): 8 threads × 4 sessions each on one shared model, each thread
// running its own seeded script of appends, sampling (plain and speculative), batched sampling,
// forks, truncations, save/restore, scoring and weight updates (to the same weights under new
// versions, so that results may not change). Every thread's outputs must equal the same script
// run alone on a fresh model, bit for bit, whatever the interleaving. Bounded: 64 operations per
// thread on the bundled 5 M-parameter model (about a second).

import Testing
import Foundation
import Synchronization
import GLM5Core
@testable import GLM5Model
@testable import GLM5Engine

/// A small deterministic generator for the scripts (SplitMix64).
private struct Mix {
  var s: UInt64
  mutating func next() -> UInt64 {
    s &+= 0x9E37_79B9_7F4A_7C15
    var z = s
    z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
    z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
    return z ^ (z >> 31)
  }
  mutating func below(_ n: Int) -> Int { Int(next() % UInt64(n)) }
}

/// The outputs of one script: every token and the bits of every float it produced.
private struct Trace: Equatable {
  var ints: [Int32] = []
  var bits: [UInt32] = []
  mutating func add(_ r: SampleResult) {
    ints += r.tokens
    bits += r.logprobs.map(\.bitPattern) + r.scaledLogprobs.map(\.bitPattern) + r.processedLogprobs.map(\.bitPattern)
    ints.append(r.finishReason.rawValue)
  }
}

/// Thread t's script on `m`: the same operations whatever else runs on the model.
private func script(_ t: Int, _ m: Model, updateFolder: String, ops: Int) throws -> Trace {
  var g = Mix(s: UInt64(t) &* 7919 &+ 1)
  var trace = Trace()
  var sessions: [Session] = []
  for _ in 0..<4 {
    let s = try Session(model: m)
    try s.append((0..<(3 + g.below(6))).map { _ in Int32(g.below(m.config.vocabSize)) }, logits: .none)
    sessions.append(s)
  }
  func params() -> SamplingParams {
    SamplingParams(temperature: g.below(3) == 0 ? 0 : 0.8, topP: 0.95, seed: g.next(), maxNewTokens: 2 + g.below(6),
                   ignoreEOS: true, speculative: g.below(4))
  }
  for op in 0..<ops {
    let i = g.below(4)
    let s = sessions[i]
    switch g.below(8) {
    case 0:
      let ids = (0..<(1 + g.below(5))).map { _ in Int32(g.below(m.config.vocabSize)) }
      let lp = try s.append(ids, logits: .none, logprobs: true)
      trace.bits += lp.map(\.bitPattern)
    case 1, 2:
      trace.add(try s.sample(params()))
    case 3:
      trace.add(contentsOf: try m.sampleBatch(sessions, (0..<4).map { _ in params() }))
    case 4:
      sessions[g.below(4)] = try s.fork()
    case 5:
      try s.truncate(max(1, s.count - g.below(4)))
      trace.ints.append(Int32(s.count))
    case 6:
      let saved = try s.save()
      sessions[i] = try m.restore(UnsafeRawBufferPointer(saved.bytes), allowOtherVersion: true)
    default:
      if t % 4 == 0 && op % 8 == 7 {
        // The same weights under a new version: nothing may change.
        try m.updateWeights(folder: updateFolder, version: "t\(t)-op\(op)")
      } else {
        trace.bits += try m.score(Array(s.tokens)).map(\.bitPattern)
      }
    }
  }
  for s in sessions { trace.ints += s.tokens }
  return trace
}

private extension Trace {
  mutating func add(contentsOf rs: [SampleResult]) { for r in rs { add(r) } }
}

@Suite struct ConcurrencyTests {
  @Test func threadsOnOneModelEqualEachAlone() throws {
    let folder = modelFolder("glm5-tiny")
    let threads = 8, ops = 64
    // Each script alone, on its own model.
    var alone: [Trace] = []
    for t in 0..<threads {
      let m = try Model(path: folder, threads: 2)
      alone.append(try script(t, m, updateFolder: folder, ops: ops))
    }
    // All at once on one model.
    let shared = try Model(path: folder, threads: 2)
    let results = Mutex<[Int: Result<Trace, any Error>]>([:])
    let done = DispatchSemaphore(value: 0)
    for t in 0..<threads {
      let th = Thread {
        let r = Result { try script(t, shared, updateFolder: folder, ops: ops) }
        results.withLock { $0[t] = r }
        done.signal()
      }
      th.stackSize = 1 << 20
      th.start()
    }
    for _ in 0..<threads { done.wait() }
    let got = results.withLock { $0 }
    for t in 0..<threads {
      switch got[t] {
      case .success(let trace)?:
        #expect(trace == alone[t], "thread \(t): \(trace.ints.count) ints, \(trace.bits.count) floats")
        #expect(!trace.bits.isEmpty)
      case .failure(let e)?: Issue.record("thread \(t) failed: \(e)")
      case nil: Issue.record("thread \(t) did not finish")
      }
    }
  }
}
