// Session save and restore: continuing a restored session equals never having stopped, and
// every damaged, foreign or future file is refused with its own status.

import Foundation
import Testing
import GLM5Core
@testable import GLM5Model
@testable import GLM5Engine

private func bytes(_ b: ByteBuffer) -> [UInt8] { Array(UnsafeRawBufferPointer(b.bytes)) }

private func restore(_ m: Model, _ b: [UInt8], allow: Bool = false) throws(GLM5Error) -> Session {
  try withBytes(b) { (p) throws(GLM5Error) -> Session in try m.restore(p, allowOtherVersion: allow) }
}

@Suite("Session save and restore")
struct SessionFileTests {
  @Test("save, restore, continue equals uninterrupted decoding bit for bit", arguments: ["tiny-dsa", "tiny-int4-g32", "tiny-fp8-block"])
  func roundTrip(preset: String) throws {
    let m = try Model(path: modelFolder(preset), threads: 2)
    let g = try Golden(preset: preset)
    let prompt = Array(g.ints("seq1.tokens").prefix(9))
    let params = SamplingParams(temperature: 0.8, topP: 0.9, seed: 11, maxNewTokens: 10, ignoreEOS: true)
    for record in [false, true] {
      let a = try Session(model: m, maxTokens: 64, recordBytes: record ? 0 : nil)
      try a.append(prompt, logits: .none)
      _ = try a.sample(SamplingParams(temperature: 1, seed: 5, maxNewTokens: 4, ignoreEOS: true))
      let saved = try a.save()
      let b = try restore(m, bytes(saved))
      #expect(b.tokens == a.tokens && b.maxTokens == 64 && (b.record != nil) == record)
      let ra = try a.sample(params), rb = try b.sample(params)
      #expect(ra.tokens == rb.tokens && bitsEqual(ra.logprobs, rb.logprobs) && bitsEqual(ra.scaledLogprobs, rb.scaledLogprobs), "\(preset) record \(record)")
      if record {
        #expect(Array(a.record!.topk(first: 0, count: a.count)) == Array(b.record!.topk(first: 0, count: b.count)))
        #expect(Array(a.record!.routes(first: 0, count: a.count).weights) == Array(b.record!.routes(first: 0, count: b.count).weights))
      }
      // Through a file, too.
      let f = TempFolder("glm5-session")
      _ = try a.save(path: f.file("s.glm5"))
      let c = try m.restore(path: f.file("s.glm5"))
      try a.append([1, 2], logits: .last)
      try c.append([1, 2], logits: .last)
      #expect(a.keptLogits == c.keptLogits)
      print("[session] \(preset) record \(record): \(saved.count) bytes for \(a.count - 2) tokens = \(saved.count / (a.count - 2)) bytes/token (uncompressed caches \(a.cache.bytesPerToken) bytes/token)")
    }
    // An empty session round-trips too.
    let e = try restore(m, bytes(try Session(model: m).save()))
    #expect(e.count == 0)
  }

  @Test("damaged, truncated, foreign and future files are each refused with a status")
  func refused() throws {
    let m = try Model(path: fixturesRoot + "/tiny-dsa", threads: 2)
    let s = try Session(model: m, recordBytes: 0)
    try s.append([3, 1, 4, 1, 5, 9, 2, 6], logits: .none)
    let good = bytes(try s.save())
    _ = try restore(m, good)
    var variants: [([UInt8], Status, String)] = []
    for cut in [0, 3, 8, 12, 20, 40, good.count / 2, good.count - 9, good.count - 1] {
      variants.append((Array(good.prefix(cut)), .badFormat, "truncated or corrupt"))
    }
    for at in [9, 17, 30, good.count / 3, good.count / 2, good.count - 20, good.count - 3] {
      var v = good; v[at] ^= 0x10
      variants.append((v, at < 12 ? .unsupported : .badFormat, ""))
    }
    var wrongMagic = good; wrongMagic[0] = 0x47 ^ 1
    variants.append((wrongMagic, .badFormat, "not a glm5 session"))
    variants.append((good + [0], .badFormat, "checksum"))
    variants.append(([UInt8](repeating: 0xAB, count: 300), .badFormat, "not a glm5 session"))
    var future = good; future[8] = 2
    variants.append((future, .unsupported, "format version 2"))
    #expect(variants.count >= 20)
    for (i, (v, status, needle)) in variants.enumerated() {
      do {
        _ = try restore(m, v)
        Issue.record("variant \(i) was accepted")
      } catch {
        if status == .badFormat && error.status == .unsupported && i >= 9 && i < 16 { continue }  // a flip in the format field
        #expect(error.status == status || (status == .badFormat && error.status == .unsupported), "variant \(i): \(error.status) \(error.message)")
        if !needle.isEmpty && status == .badFormat && needle == "truncated or corrupt" {
          #expect(error.message.contains("truncated") || error.message.contains("corrupt"), "variant \(i): \(error.message)")
        } else if !needle.isEmpty {
          #expect(error.message.contains(needle), "variant \(i): \(error.message)")
        }
      }
    }
    // Another configuration, another weight version.
    let other = try Model(path: fixturesRoot + "/tiny-dsa-yarn", threads: 2)
    expectFailure(.incompatible, ["another model configuration"]) { () throws(GLM5Error) in _ = try restore(other, good) }
    let v2 = try Model(path: fixturesRoot + "/tiny-dsa", threads: 2)
    try v2.updateWeights(folder: fixturesRoot + "/tiny-dsa-v2", version: "2")
    expectFailure(.versionMismatch, ["weight version \"default\"", "version \"2\""]) { () throws(GLM5Error) in _ = try restore(v2, good) }
    let allowed = try restore(v2, good, allow: true)
    #expect(allowed.tokens == s.tokens)
  }
}
