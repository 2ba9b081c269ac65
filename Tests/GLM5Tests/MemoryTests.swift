// The resident memory of a loaded INT4 model stays within 1.15× of its weight file size plus the
// caches: weights are used in place from the mapping, never expanded.

import Testing
import GLM5Core
@testable import GLM5Model
import GLM5Engine
#if canImport(Glibc)
import Glibc
#endif

@Suite("Memory", .serialized)
struct MemoryTests {
  @Test("Array.reserveFallibly: an impossible count is out of memory, not a trap, and growth is geometric")
  func reserveFallibly() throws {
    var a: [Int32] = [1, 2, 3]
    for huge in [Int.max / 2, 1 << 50] {  // bytes that overflow; 4 PiB that malloc refuses
      #expect(throws: GLM5Error.self) { try a.reserveFallibly(huge, what: "test") }
    }
    #expect(a == [1, 2, 3])
    try a.reserveFallibly(100, what: "test")
    #expect(a.capacity >= 100 && a == [1, 2, 3])
    let c = a.capacity
    try a.reserveFallibly(c + 1, what: "test")  // a little more each time stays linear
    #expect(a.capacity >= 2 * c && a == [1, 2, 3])
  }

  @Test("an INT4 model of more than 200 MB stays within 1.15x its file size plus caches",
        .disabled(if: Sanitizer.address || Sanitizer.thread, "a sanitizer's allocator and shadow memory are anonymous memory"))
  func int4Residency() throws {
    var template = Array("/tmp/glm5-mem-XXXXXX".utf8CString)
    let dir = String(cString: template.withUnsafeMutableBufferPointer { mkdtemp($0.baseAddress!) }!)
    defer { _ = system("rm -rf '\(dir)'") }
    // 128 experts of width 384 in 3 MoE layers: ~250 MB of INT4 weights.
    let json = SyntheticCheckpoint.configJSON(hidden: 1024, layers: 4, experts: 128, vocab: 8192)
    guard case .object(var o) = json else { Issue.record("config"); return }
    o["moe_intermediate_size"] = .number(384)
    let cfgJSON = JSON.object(o)
    let config = try ModelConfig(json: cfgJSON)
    try SyntheticCheckpoint.write(config: config, configJSON: cfgJSON, folder: dir, format: .int4(group: 32))
    let fileBytes = Int(try MappedFile(path: dir + "/model.safetensors").bytes.count)
    #expect(fileBytes > 200_000_000, "the model must be over 200 MB (is \(fileBytes))")

    let anon0 = ProcessMemory.residentAnonymousBytes, file0 = ProcessMemory.residentFileBytes
    let model = try Model(path: dir, threads: 2)
    #expect(model.checkpoint.formatMask & 4 != 0)
    let session = try Session(model: model, maxTokens: 512)
    // Every weight page made resident, then a prefill and decode through the quantized kernels:
    // nothing may be expanded or copied on the way.
    #expect(model.checkpoint.prefault() == fileBytes)
    var rng: UInt64 = 1
    let ids: [Int32] = (0..<256).map { _ in rng = rng &* 6364136223846793005 &+ 1; return Int32((rng >> 33) % 8192) }
    try session.append(ids, logits: .last)
    _ = try session.generate(4)
    let anon = ProcessMemory.residentAnonymousBytes - anon0
    let file = ProcessMemory.residentFileBytes - file0
    // The session's caches and the step scratch the model keeps for its next call.
    let caches = session.cacheBytes + model.idleScratchBytes
    print("[memory] INT4 file \(fileBytes / 1_000_000) MB: mapped pages resident +\(file / 1_000_000) MB, anonymous +\(anon / 1_000_000) MB, caches and step scratch \(caches / 1_000_000) MB; (mapped + anonymous) / file = \(Double(file + max(anon, 0)) / Double(fileBytes))")
    // The measurement sees the mapped weights: the whole file is resident now ...
    #expect(file >= Int(0.95 * Double(fileBytes)))
    // ... and everything together stays within 1.15x of it plus the caches.
    #expect(file + max(anon, 0) <= Int(1.15 * Double(fileBytes)) + caches)
  }
}
