// Fuzz targets: every parser that reads outside data, as a function over one input's bytes.
// A target calls the parser the way the library does and swallows the error it throws: a thrown
// GLM5Error (or a 400 ServeError) is the parser doing its job; a trap, a crash, a sanitizer
// report, a hang or a leak is a bug. `make fuzz` runs each under libFuzzer (Sources/glm5-fuzz,
// tools/fuzz/run.sh); FuzzCorpusTests replays the committed corpora (Tests/fuzz/<name>/) through
// the same functions in every `swift test`.

import GLM5Core

#if canImport(Glibc)
import Glibc
#endif

public struct FuzzTarget: Sendable {
  /// The corpus folder's name (Tests/fuzz/<name>/) and GLM5_FUZZ_TARGET's value.
  public let name: String
  /// What an input is.
  public let input: String
  public let run: @Sendable (UnsafeRawBufferPointer) -> Void
}

/// All targets, in the order `make fuzz` runs them.
public let fuzzTargets: [FuzzTarget] = [
  FuzzTarget(name: "safetensors", input: "a whole safetensors file (header length, JSON header, data)", run: fuzzSafeTensors),
  FuzzTarget(name: "safetensors-index", input: "model.safetensors.index.json", run: fuzzSafeTensorsIndex),
  FuzzTarget(name: "config", input: "config.json", run: fuzzConfig),
  FuzzTarget(name: "quantization", input: "the quantization_config object of config.json (put into tiny-dsa's config)", run: fuzzQuantization),
  FuzzTarget(name: "generation-config", input: "generation_config.json", run: fuzzGenerationConfig),
  FuzzTarget(name: "tokenizer", input: "tokenizer.json (then a fixed text is encoded and decoded)", run: fuzzTokenizer),
  FuzzTarget(name: "tokenizer-config", input: "tokenizer_config.json (with a small fixed tokenizer.json)", run: fuzzTokenizerConfig),
  FuzzTarget(name: "session", input: "a saved session without its 8-byte checksum trailer (the target appends the right one)", run: fuzzSession),
  FuzzTarget(name: "session-payload", input: "a flags byte, then a saved session's uncompressed payload (the target writes a valid header around it)", run: fuzzSessionPayload),
  FuzzTarget(name: "delta", input: "one flush file of a slime weight delta (safetensors, or a zstd frame of one)", run: fuzzDelta),
  FuzzTarget(name: "serve", input: "the HTTP body of a glm5 serve request (/generate and the management routes)", run: fuzzServe),
]

public func fuzzTarget(named name: String) -> FuzzTarget? { fuzzTargets.first { $0.name == name } }

/// The test fixtures (Tests/Fixtures): GLM5_FUZZ_FIXTURES, else found from this file's path.
public let fuzzFixtures: String = {
  if let e = getenv("GLM5_FUZZ_FIXTURES") { return String(cString: e) }
  var p = #filePath  // <package>/Sources/GLM5Fuzz/FuzzTargets.swift
  for _ in 0..<3 { p = String(p[..<(p.lastIndex(of: "/") ?? p.startIndex)]) }
  return p + "/Tests/Fixtures"
}()

/// `body` with the error it throws swallowed.
@inline(__always)
func swallow(_ body: () throws(GLM5Error) -> Void) {
  do { try body() } catch { _ = error.message }
}
