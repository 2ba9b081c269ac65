// Weight updates while loaded: from a folder (same or another format), tensor by tensor, and from
// slime deltas; each must equal a fresh load of the new weights bit for bit, carry its version,
// and leave the model untouched when refused.

import Foundation
import Testing
import GLM5Core
@testable import GLM5Model
@testable import GLM5Engine

private let int4Folder = fixturesRoot + "/glm5-quantized/int4"
private let sourceFolder = fixturesRoot + "/glm5-quantized/source"
private let probe: [Int32] = [5, 17, 3, 99, 42, 7, 120, 64, 1, 33, 125, 8]

private func logits(_ m: Model) throws -> [Float] { try m.fullForwardLogits(probe) }

/// Make the model's outputs and caches clearly wrong (lm_head and the first input norm zeroed),
/// through the tensor path.
private func poison(_ m: Model) throws {
  let u = m.beginUpdate()
  for name in ["lm_head.weight", "model.layers.0.input_layernorm.weight"] {
    let t = m.checkpoint.store.byName[name]!
    let bytes = [UInt8](repeating: 0, count: t.byteCount)
    try bytes.withUnsafeBytes { try u.add(name: name, dtype: t.dtype, shape: t.shape, data: $0) }
  }
  try u.commit(version: "poisoned")
}

/// Every tensor of a folder, streamed into one update.
private func streamFolder(_ m: Model, _ folder: String, version: String) throws {
  let store = try TensorStore(folder: folder)
  let u = m.beginUpdate()
  for (name, t) in store.byName.sorted(by: { $0.key < $1.key }) {
    try u.add(name: name, dtype: t.dtype, shape: t.shape, data: UnsafeRawBufferPointer(start: t.data, count: t.byteCount))
  }
  try u.commit(version: version)
}

@Suite("Weight updates")
struct WeightUpdateTests {
  @Test("a call in flight finishes on the weights it started with while an update lands")
  func inFlight() throws {
    let f = fixturesRoot + "/tiny-dsa"
    let params = SamplingParams(temperature: 1, seed: 21, maxNewTokens: 240, ignoreEOS: true)
    let ref = try Session(model: Model(path: f, threads: 1))
    try ref.append([1, 2, 3], logits: .none)
    let want = try ref.sample(params)
    let m = try Model(path: f, threads: 1)
    let s = try Session(model: m)
    try s.append([1, 2, 3], logits: .none)
    let started = DispatchSemaphore(value: 0)
    nonisolated(unsafe) var updatedAt = 0.0, finishedAt = 0.0
    nonisolated(unsafe) var updateError: (any Error)? = nil
    let t = Thread {
      started.wait()
      Thread.sleep(forTimeInterval: 0.01)
      do { try m.updateWeights(folder: fixturesRoot + "/tiny-dsa-v2", version: "v2") } catch { updateError = error }
      updatedAt = Date().timeIntervalSince1970
    }
    t.start()
    started.signal()
    let got = try s.sample(params)
    finishedAt = Date().timeIntervalSince1970
    while updatedAt == 0 { Thread.sleep(forTimeInterval: 0.001) }
    #expect(updateError == nil)
    #expect(got.tokens == want.tokens && bitsEqual(got.logprobs, want.logprobs))
    #expect(got.weightVersion == "default" && m.weightVersion == "v2")
    print("[update] landed \(String(format: "%.0f", (finishedAt - updatedAt) * 1000)) ms before the 240-token call ended")
    let after = try s.sample(SamplingParams(temperature: 1, seed: 21, maxNewTokens: 2, ignoreEOS: true))
    #expect(after.weightVersion == "v2")
  }

  @Test("a BF16 folder sent to the INT4 model is quantized in memory exactly as glm5 quantize wrote the INT4 folder")
  func folderConversion() throws {
    let fresh = try logits(Model(path: int4Folder, threads: 2))
    let m = try Model(path: int4Folder, threads: 2)
    #expect(m.weightVersion == "default")
    try poison(m)
    #expect(try logits(m) != fresh)
    #expect(m.weightVersion == "poisoned")
    try m.updateWeights(folder: sourceFolder, version: "step-1")
    #expect(m.weightVersion == "step-1" && m.weights.epoch == 2)
    #expect(try logits(m) == fresh)
    #expect(m.checkpoint.store.ownedBytes == m.checkpoint.tensorBytes)  // everything converted, nothing mapped
    #expect(m.checkpoint.store.files.isEmpty)
    #expect(m.checkpoint.formatMask == 1 | 4)
  }

  @Test("streaming a BF16 checkpoint tensor by tensor into the INT4 model equals the quantizer's folder")
  func tensorConversion() throws {
    let fresh = try logits(Model(path: int4Folder, threads: 2))
    let m = try Model(path: int4Folder, threads: 2)
    try poison(m)
    try streamFolder(m, sourceFolder, version: "streamed")
    #expect(try logits(m) == fresh)
    #expect(m.weightVersion == "streamed")
  }

  @Test("a folder in the loaded formats is adopted mapped, bit for bit a fresh load")
  func folderAdoption() throws {
    let f = fixturesRoot + "/tiny-int4-g32"
    let fresh = try logits(Model(path: f, threads: 2))
    let m = try Model(path: f, threads: 2)
    try poison(m)
    #expect(m.checkpoint.store.ownedBytes > 0)
    try m.updateWeights(folder: f, version: "again")
    #expect(try logits(m) == fresh)
    #expect(m.checkpoint.store.ownedBytes == 0 && !m.checkpoint.store.files.isEmpty)
  }

  @Test("a refused update changes nothing: version, weights, sessions")
  func refused() throws {
    let m = try Model(path: fixturesRoot + "/tiny-int4-g32", threads: 2)
    let before = try logits(m)
    let w = m.checkpoint.store.byName["model.layers.1.mlp.experts.0.gate_proj.weight_packed"]!
    func expectUnchanged(_ sourceLocation: SourceLocation = #_sourceLocation) throws {
      #expect(m.weightVersion == "default" && m.weights.epoch == 0, sourceLocation: sourceLocation)
      #expect(try logits(m) == before, sourceLocation: sourceLocation)
    }
    let bytes = [UInt8](repeating: 1, count: w.byteCount)
    try bytes.withUnsafeBytes { (b) throws in
      let u = m.beginUpdate()
      expectFailure(.badFormat, ["weight_packed", "holds it as I32"]) { () throws(GLM5Error) in
        try u.add(name: w.name, dtype: .f32, shape: [w.shape[0], w.shape[1] / 4 * 4 / 4], data: UnsafeRawBufferPointer(rebasing: b[0..<(w.byteCount / 4 * 4 / 4 * 4 / 4)]))
      }
      expectFailure(.invalidArgument, ["needs", "bytes"]) { () throws(GLM5Error) in try u.add(name: w.name, dtype: .i32, shape: w.shape, data: UnsafeRawBufferPointer(rebasing: b[0..<4])) }
      expectFailure(.invalidArgument, ["no tensor model.layers.9.foo"]) { () throws(GLM5Error) in try u.add(name: "model.layers.9.foo", dtype: .i32, shape: [1], data: UnsafeRawBufferPointer(rebasing: b[0..<4])) }
      expectFailure(.badFormat, ["has shape [2, 2]"]) { () throws(GLM5Error) in
        try u.add(name: "model.layers.1.mlp.experts.0.gate_proj.weight", dtype: .bf16, shape: [2, 2], data: UnsafeRawBufferPointer(rebasing: b[0..<8]))
      }
      expectFailure(.invalidArgument, ["holds no tensor"]) { () throws(GLM5Error) in try u.commit(version: "x") }
      try u.add(name: w.name, dtype: .i32, shape: w.shape, data: b)
      expectFailure(.invalidArgument, ["weight version"]) { () throws(GLM5Error) in try u.commit(version: "") }
      expectFailure(.invalidArgument, ["weight version"]) { () throws(GLM5Error) in try u.commit(version: String(repeating: "v", count: 128)) }
    }
    // A scale that is not finite is refused by the same checks as a load.
    let s = m.checkpoint.store.byName["model.layers.1.mlp.experts.0.gate_proj.weight_scale"]!
    let nanScales = [UInt16](repeating: 0x7FC0, count: s.count)
    let u = m.beginUpdate()
    try nanScales.withUnsafeBytes { try u.add(name: s.name, dtype: s.dtype, shape: s.shape, data: $0) }
    expectFailure(.badFormat, ["non-finite scale"]) { () throws(GLM5Error) in try u.commit(version: "nan") }
    expectFailure(.incompatible, ["another configuration", "vocab=320 (loaded: vocab=256)"]) { () throws(GLM5Error) in
      try m.updateWeights(folder: fixturesRoot + "/tiny-dsa", version: "other")
    }
    expectFailure(.io, ["no such"]) { () throws(GLM5Error) in try m.updateWeights(folder: "/nonexistent/folder", version: "v") }
    try expectUnchanged()
  }

  @Test("sessions live across an update: new tokens use the new weights, caches keep the old until recomputed; results carry the version")
  func sessionsAcrossUpdate() throws {
    let fresh = try Model(path: int4Folder, threads: 2)
    let m = try Model(path: int4Folder, threads: 2)
    try poison(m)
    let s = try Session(model: m)
    try s.append(Array(probe.prefix(6)), logits: .none)
    try m.updateWeights(folder: sourceFolder, version: "v2")
    // The cache holds what the poisoned weights computed: the next logits mix both.
    let ref = try Session(model: fresh)
    try ref.append(Array(probe.prefix(6)), logits: .none)
    let a = try s.append([probe[6]], logits: .last), b = try ref.append([probe[6]], logits: .last)
    _ = (a, b)
    let mixed = s.keptLogits
    #expect(mixed != ref.keptLogits)
    try s.recompute()
    try s.truncate(6)
    try s.append([probe[6]], logits: .last)
    #expect(s.keptLogits == ref.keptLogits)
    let r = try s.sample(SamplingParams(temperature: 1, seed: 3, maxNewTokens: 4, ignoreEOS: true))
    let rr = try ref.sample(SamplingParams(temperature: 1, seed: 3, maxNewTokens: 4, ignoreEOS: true))
    #expect(r.tokens == rr.tokens && r.logprobs == rr.logprobs)
    #expect(r.weightVersion == "v2" && rr.weightVersion == "default")
  }
}

private func deltaDir(_ name: String) -> String { fixturesRoot + "/deltas/" + name + "/weight_v000001" }

/// A copy of a delta folder to break.
private func copyDelta(_ name: String) -> TempFolder {
  let t = TempFolder("glm5-delta")
  for f in try! FileManager.default.contentsOfDirectory(atPath: deltaDir(name)) {
    try! FileManager.default.copyItem(atPath: deltaDir(name) + "/" + f, toPath: t.file(f))
  }
  return t
}

@Suite("Weight updates to the second weights")
struct SecondWeightsTests {
  @Test("each update path from v1 to v2 equals a fresh load of v2 bit for bit and v2's golden",
        arguments: ["tiny-dsa", "tiny-int4-g32"])
  func allPaths(preset: String) throws {
    let v2 = fixturesRoot + "/" + preset + "-v2"
    let g = try Golden(preset: preset + "-v2")
    let tokens = g.ints("seq1.tokens")
    let fresh = try Model(path: v2, threads: 2).fullForwardLogits(tokens)
    let v1 = try Model(path: modelFolder(preset), threads: 2).fullForwardLogits(tokens)
    #expect(maxAbsDiff(fresh, g.floats("seq1.logits")) <= logitTolerance(preset))
    #expect(maxAbsDiff(v1, fresh) > 0.5)
    var paths: [(String, (Model) throws -> Void)] = [
      ("folder", { m in try m.updateWeights(folder: v2, version: "1") }),
      ("tensors", { m in try streamFolder(m, v2, version: "1") }),
    ]
    let encodings = preset == "tiny-dsa" ? ["indices", "deltas", "deltas_zstd"] : ["deltas"]
    for e in encodings { paths.append(("delta \(e)", { m in try m.updateWeights(delta: deltaDir("\(preset)-v2.\(e)"), version: nil) })) }
    for (what, update) in paths {
      let m = try Model(path: modelFolder(preset), threads: 2)
      try update(m)
      #expect(m.weightVersion == "1", "\(preset) \(what)")
      #expect(try m.fullForwardLogits(tokens) == fresh, "\(preset) \(what): logits differ from a fresh load of v2")
    }
  }

  @Test("the BF16 v2 source sent to the INT4 model equals glm5 quantize of it, loaded")
  func quantizedSource() throws {
    let out = TempFolder("glm5-quant-v2")
    try FileManager.default.removeItem(atPath: out.path)
    _ = try Quantizer.run(input: fixturesRoot + "/glm5-quantized/source-v2", output: out.path, options: QuantizeOptions(groupSize: 32))
    let fresh = try Model(path: out.path, threads: 2).fullForwardLogits(probe)
    let m = try Model(path: int4Folder, threads: 2)
    let before = try m.fullForwardLogits(probe)
    try m.updateWeights(folder: fixturesRoot + "/glm5-quantized/source-v2", version: "v2")
    #expect(try m.fullForwardLogits(probe) == fresh)
    #expect(before != fresh)
  }

  @Test("a delta that is incomplete, truncated, against another version or for another model is refused and changes nothing")
  func badDeltas() throws {
    let m = try Model(path: fixturesRoot + "/tiny-dsa", threads: 2)
    let before = try m.fullForwardLogits(probe)
    let noDone = copyDelta("tiny-dsa-v2.indices")
    noDone.remove("DONE")
    expectFailure(.badFormat, ["no DONE marker"]) { () throws(GLM5Error) in try m.updateWeights(delta: noDone.path, version: nil) }
    for enc in ["indices", "deltas_zstd"] {
      let cut = copyDelta("tiny-dsa-v2.\(enc)")
      let f = cut.file("rank0000_flush000001.safetensors")
      let bytes = try Data(contentsOf: URL(fileURLWithPath: f))
      try bytes.prefix(bytes.count - 9).write(to: URL(fileURLWithPath: f))
      expectFailure(.badFormat, ["rank0000_flush000001"]) { () throws(GLM5Error) in try m.updateWeights(delta: cut.path, version: nil) }
    }
    let flipped = copyDelta("tiny-dsa-v2.deltas_zstd")
    let f = flipped.file("rank0000_flush000000.safetensors")
    var bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: f)))
    bytes[bytes.count / 2] ^= 0x5A
    flipped.write("rank0000_flush000000.safetensors", bytes)
    expectFailure(.badFormat, ["rank0000_flush000000"]) { () throws(GLM5Error) in try m.updateWeights(delta: flipped.path, version: nil) }
    let other = try Model(path: fixturesRoot + "/tiny-int4-g32", threads: 2)
    expectFailure(.badFormat, ["the model holds"]) { () throws(GLM5Error) in try other.updateWeights(delta: deltaDir("tiny-dsa-v2.indices"), version: nil) }
    let now1 = try m.fullForwardLogits(probe)
    #expect(m.weightVersion == "default" && now1 == before)
    // Applied once it moves the version to "1"; the same delta again is against "default".
    try m.updateWeights(delta: deltaDir("tiny-dsa-v2.deltas"), version: nil)
    let after = try m.fullForwardLogits(probe)
    expectFailure(.versionMismatch, ["against weight version \"default\"", "version \"1\""]) { () throws(GLM5Error) in
      try m.updateWeights(delta: deltaDir("tiny-dsa-v2.indices"), version: nil)
    }
    let now2 = try m.fullForwardLogits(probe)
    #expect(m.weightVersion == "1" && now2 == after && after != before)
  }

  @Test("uint32 gaps: the delta of a tensor changed at its first and last element decodes to exactly the new tensor")
  func wideGaps() throws {
    let d = try SlimeDelta(folder: deltaDir("gap-u32.deltas"))
    let old = try TensorStore(folder: fixturesRoot + "/deltas/gap-u32/old")
    let new = try TensorStore(folder: fixturesRoot + "/deltas/gap-u32/new")
    #expect(d.encoding == "deltas" && !d.params.isEmpty)
    var sawWide = false
    for p in d.params {
      let o = old.byName[p.name]!, n = new.byName[p.name]!
      var b = [UInt8](UnsafeRawBufferPointer(start: o.data, count: o.byteCount))
      let es = p.dtype.byteSize
      for k in 0..<p.positions.count {
        for j in 0..<es { b[p.positions[k] * es + j] = p.values.load(fromByteOffset: k * es + j, as: UInt8.self) }
      }
      if p.positions.count == 2 && p.positions[1] - p.positions[0] > 65536 { sawWide = true }
      #expect(b == [UInt8](UnsafeRawBufferPointer(start: n.data, count: n.byteCount)), "\(p.name)")
    }
    #expect(sawWide)
  }

  @Test("replaying v1's choices on the v2 weights changes the logits but not the choices")
  func replayAcrossWeights() throws {
    let g = try Golden(preset: "tiny-dsa")
    let tokens = g.ints("seq2.tokens")
    let n = tokens.count
    let v1 = try Model(path: fixturesRoot + "/tiny-dsa", threads: 2)
    let rec = try Session(model: v1, recordBytes: 0)
    let lp1 = try rec.append(tokens, logits: .none, logprobs: true)
    let v2 = try Model(path: fixturesRoot + "/tiny-dsa-v2", threads: 2)
    let own = try Session(model: v2, recordBytes: 0)
    let lp2 = try own.append(tokens, logits: .none, logprobs: true)
    let topk = Array(rec.record!.topk(first: 0, count: n))
    let ids = Array(rec.record!.routes(first: 0, count: n).ids)
    #expect(Array(own.record!.topk(first: 0, count: n)) != topk || Array(own.record!.routes(first: 0, count: n).ids) != ids)
    let replayed = try Session(model: v2, recordBytes: 0)
    let lpr = try topk.withUnsafeBufferPointer { tb in
      try ids.withUnsafeBufferPointer { ib in
        try replayed.append(tokens, logits: .none, logprobs: true, replay: RoutingReplay(topk: tb.baseAddress, expertIds: ib.baseAddress))
      }
    }
    #expect(Array(replayed.record!.topk(first: 0, count: n)) == topk)
    #expect(Array(replayed.record!.routes(first: 0, count: n).ids) == ids)
    #expect(!bitsEqual(lpr, lp1) && !bitsEqual(lpr, lp2))
  }
}
