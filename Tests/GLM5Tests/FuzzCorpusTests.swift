// The fuzz corpora (Tests/fuzz/<target>/: seeds, and every input that once crashed, hung or
// leaked) replayed through the same target functions `make fuzz` runs (Sources/GLM5Fuzz), so that
// a fixed parser bug stays fixed in every `swift test`. A failure here is a trap, not an #expect.

import Foundation
import GLM5Core
import GLM5Fuzz
import Testing

private func corpusFolder(_ target: String, _ filePath: String = #filePath) -> URL {
  URL(fileURLWithPath: filePath).deletingLastPathComponent().deletingLastPathComponent()
    .appendingPathComponent("fuzz").appendingPathComponent(target)
}

@Suite("Fuzz corpora", .serialized)
struct FuzzCorpusTests {
  @Test("every committed input of every target runs without a crash", arguments: fuzzTargets.map(\.name))
  func replay(target: String) throws {
    let t = try #require(fuzzTarget(named: target))
    let dir = corpusFolder(target)
    let names = try FileManager.default.contentsOfDirectory(atPath: dir.path).filter { !$0.hasPrefix(".") }.sorted()
    #expect(!names.isEmpty, "no corpus in \(dir.path)")
    let start = Date()
    for n in names {
      let b = try Data(contentsOf: dir.appendingPathComponent(n))
      let t0 = Date()
      b.withUnsafeBytes { t.run($0) }
      // libFuzzer's -timeout=1 is the bar; a debug build under test is allowed more.
      #expect(Date().timeIntervalSince(t0) < 5, "\(target)/\(n) took \(Date().timeIntervalSince(t0)) s")
    }
    print("[fuzz corpus] \(target): \(names.count) inputs in \(String(format: "%.2f", Date().timeIntervalSince(start))) s")
  }

  /// Writes the generated seeds (saved sessions) into the corpus folders: run once with
  /// GLM5_FUZZ_WRITE_SEEDS=1 after the session format changes.
  @Test("generated seeds", .enabled(if: ProcessInfo.processInfo.environment["GLM5_FUZZ_WRITE_SEEDS"] != nil))
  func writeSeeds() throws {
    for s in try fuzzSessionSeeds() {
      let dir = corpusFolder(s.target)
      try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
      try Data(s.bytes).write(to: dir.appendingPathComponent("seed-\(s.name)"))
    }
  }
}
