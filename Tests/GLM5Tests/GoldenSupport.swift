// Reading the reference tool's golden outputs (Tests/Fixtures/<preset>/golden.safetensors).

import GLM5Core
@testable import GLM5Model
import GLM5Engine

let fixturesRoot: String = {
  // .../Tests/GLM5Tests/GoldenSupport.swift → .../Tests/Fixtures
  var parts = #filePath.split(separator: "/", omittingEmptySubsequences: false)
  parts.removeLast(2)
  return parts.joined(separator: "/") + "/Fixtures"
}()

/// Float checkpoints; tiny-v32 is DeepSeek-V3.2 (transformers' DeepseekV32ForCausalLM), tiny-dsa-shared
/// GLM-5.2 shared indexer layers (indexer_types F S S F S).
let floatPresets = ["tiny-dsa", "tiny-dsa-bf16-sharded", "tiny-dense-f16", "tiny-dsa-yarn", "tiny-v32", "tiny-dsa-shared"]
/// Quantized checkpoints: FP8 blocks, compressed-tensors INT4 written by the library itself, and
/// the INT4 folder `glm5 quantize` wrote (its golden comes from transformers loading it), and
/// DeepSeek-V3.2 in its release format (FP8 blocks, YaRN).
let quantizedPresets = ["tiny-fp8-block", "tiny-int4-g32", "tiny-int4-g64-asym", "tiny-int4-g128", "tiny-int4-partial",
                        "glm5-quantized/int4", "tiny-v32-fp8"]
/// The bundled trained model (models/glm5-tiny, INT4 from `glm5 quantize`); its golden lives in
/// Tests/Fixtures/glm5-tiny (tools/reference/tiny_golden.py).
let bundledPresets = ["glm5-tiny"]
let goldenPresets = floatPresets + quantizedPresets + bundledPresets

/// The model folder of a golden preset: the fixture folder, or models/ for the bundled model.
func modelFolder(_ preset: String) -> String {
  bundledPresets.contains(preset) ? fixturesRoot + "/../../models/" + preset : fixturesRoot + "/" + preset
}

/// Tolerance on logits against transformers' float32 goldens, pinned near the error reached: both
/// sit within 1.7e-5 of an independent float64 forward on every fixture (tools/reference
/// check_fixtures.py --glm5), so |glm5 − golden| ≤ 3.3e-5; 6e-5 leaves a margin of ~2× (the
/// original requirement was 5e-4 float, 1e-3 quantized).
func logitTolerance(_ preset: String) -> Float { 6e-5 }

struct Golden {
  let file: SafeTensorsFile

  init(preset: String) throws {
    file = try SafeTensorsFile(path: fixturesRoot + "/" + preset + "/golden.safetensors")
  }

  func view(_ name: String) -> TensorView? { file.tensors.first { $0.name == name } }

  func has(_ name: String) -> Bool { view(name) != nil }

  func ints(_ name: String) -> [Int32] {
    guard let v = view(name), let d = v.data, v.dtype == .i32 else { return [] }
    return (0..<v.count).map { d.loadUnaligned(fromByteOffset: 4 * $0, as: Int32.self) }
  }

  func floats(_ name: String) -> [Float] {
    guard let v = view(name), let d = v.data, v.dtype == .f32 else { return [] }
    return (0..<v.count).map { d.loadUnaligned(fromByteOffset: 4 * $0, as: Float.self) }
  }

  func shape(_ name: String) -> [Int] { view(name)?.shape ?? [] }

  var sequenceCount: Int {
    var n = 0
    while has("seq\(n).tokens") { n += 1 }
    return n
  }
}

func maxAbsDiff(_ a: [Float], _ b: [Float]) -> Float {
  precondition(a.count == b.count)
  var m: Float = 0
  for i in a.indices {
    if a[i].isNaN && b[i].isNaN { continue }
    m = max(m, abs(a[i] - b[i]))
    if a[i].isNaN != b[i].isNaN { return .infinity }
  }
  return m
}
