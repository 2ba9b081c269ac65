// Loading quantized checkpoints: every quantized fixture opens through the engine and reports its
// formats; a fixture copied with one defect (config or tensors) fails with the right status and a
// message that names the tensor or config key.

import Foundation
import GLM5Core
import GLM5Engine
@testable import GLM5Kernels
@testable import GLM5Model
import Testing

let fp8Fixture = "tiny-fp8-block"
let symFixture = "tiny-int4-g32"
let asymFixture = "tiny-int4-g64-asym"

/// FP8 fixture modules: [240, 144] with a 2×2 scale grid (partial edge blocks), and [160, 56].
let fp8KvB = "model.layers.0.self_attn.kv_b_proj"
let fp8Down = "model.layers.1.mlp.experts.0.down_proj"
/// INT4 g32 symmetric: [64, 32] (packed [64, 4], scale [64, 1]).
let symDown = "model.layers.1.mlp.experts.0.down_proj"
/// INT4 g64 asymmetric: [156, 64] (packed [156, 8], scale [156, 1], zero points [20, 1]).
let asymKvB = "model.layers.0.self_attn.kv_b_proj"

let groupWeights = ["quantization_config", "config_groups", "group_0", "weights"]

/// Writes `copy` and expects loading it to fail with `status` and every needle in the message.
@discardableResult
func expectCopyFails(_ copy: FixtureCopy, _ status: Status, _ needles: [String],
                     sourceLocation: SourceLocation = #_sourceLocation) -> GLM5Error? {
  let f = copy.write()
  return expectLoadFailure(f.path, status, needles, sourceLocation: sourceLocation)
}

@Suite("Quantized loading") struct QuantLoadingTests {
  // MARK: - The fixtures load

  @Test("each quantized fixture loads through Model(path:) and reports its formats", arguments: quantizedFixtures)
  func fixtureLoadsThroughTheEngine(fixture: String) throws {
    let model = try Model(path: fixturesFolder() + "/" + fixture, threads: 1)
    let ck = model.checkpoint
    // Formats present, from the tensor names alone.
    var float = 0, fp8 = 0, int4 = 0
    for m in ck.linearModules {
      if ck.store.byName[m.name + ".weight_packed"] != nil {
        int4 += 1
        guard case .int4Group = m.linear.format else { Issue.record("\(fixture) \(m.name) has weight_packed but is bound as \(m.linear.format)"); continue }
      } else if ck.store.byName[m.name + ".weight_scale_inv"] != nil {
        fp8 += 1
        guard case .fp8Block = m.linear.format else { Issue.record("\(fixture) \(m.name) has weight_scale_inv but is bound as \(m.linear.format)"); continue }
      } else {
        float += 1
        guard case .float = m.linear.format else { Issue.record("\(fixture) \(m.name) is bound as \(m.linear.format)"); continue }
      }
    }
    let expected: UInt32 = (float > 0 ? 1 : 0) | (fp8 > 0 ? 2 : 0) | (int4 > 0 ? 4 : 0)
    #expect(ck.formatMask == expected, "\(fixture): formatMask \(ck.formatMask), tensors say \(expected) (float \(float), fp8 \(fp8), int4 \(int4))")
    if fixture == fp8Fixture {
      #expect(ck.formatMask == 3)
      guard case .fp8Block(let br, let bc, _)? = ck.quant else { Issue.record("\(fixture): quant \(String(describing: ck.quant))"); return }
      #expect(br == 128 && bc == 128)
    } else {
      #expect(ck.formatMask == 5, "\(fixture): lm_head stays float, the rest INT4")
      guard case .int4Group(let g, let sym, _)? = ck.quant else { Issue.record("\(fixture): quant \(String(describing: ck.quant))"); return }
      let expectedGroup = ["tiny-int4-g64-asym": 64, "tiny-int4-g128": 128][fixture] ?? 32
      #expect(g == expectedGroup && sym == (fixture != asymFixture), "\(fixture): \(String(describing: ck.quant))")
    }
    if fixture == "tiny-int4-partial" {
      // Both kinds among the quantizable modules, not just the head.
      #expect(ck.linearModules.contains { $0.quantizable && isFloat($0.linear.format) })
      #expect(int4 > 0 && float > 1, "float \(float) int4 \(int4)")
    }
  }

  @Test("an unmodified rewritten copy loads and dequantizes identically (the writer is sound)",
        arguments: [fp8Fixture, symFixture, asymFixture, "glm5-quantized/int4"])
  func unmodifiedCopyLoads(fixture: String) throws {
    let copy = try FixtureCopy(fixture)
    let f = copy.write()
    let a = try Checkpoint(folder: f.path)
    let b = try Checkpoint(folder: fixturesFolder() + "/" + fixture)
    #expect(a.formatMask == b.formatMask && a.linearModules.count == b.linearModules.count)
    try expectSameDequantization(a, b, fixture)
  }

  @Test("weight_shape may be I32; weight_scale may be F32 (same values, same dequantization)")
  func alternativeDTypesLoad() throws {
    var copy = try FixtureCopy(asymFixture)
    for t in copy.tensors where t.name.hasSuffix(".weight_shape") {
      copy[t.name] = STTensor(t.name, "I32", [2], bytes: littleEndianBytes(t.bytes.withUnsafeBytes { p in
        (0..<2).map { Int32(p.loadUnaligned(fromByteOffset: 8 * $0, as: Int64.self)) } }))
    }
    for t in copy.tensors where t.name.hasSuffix(".weight_scale") {
      let n = t.bytes.count / 2
      let f = t.bytes.withUnsafeBytes { p in (0..<n).map { plainBF16(p.loadUnaligned(fromByteOffset: 2 * $0, as: UInt16.self)) } }
      copy[t.name] = STTensor(t.name, "F32", t.shape, bytes: littleEndianBytes(f.map(\.bitPattern)))
    }
    let folder = copy.write()
    let a = try Checkpoint(folder: folder.path)
    let b = try Checkpoint(folder: fixturesFolder() + "/" + asymFixture)
    guard case .int4Group(let s, _, _) = a.linearModules.first(where: { $0.name == asymKvB })!.linear.format else {
      Issue.record("\(asymKvB) is not INT4"); return
    }
    #expect(s.dtype == .f32)
    try expectSameDequantization(a, b, asymFixture)
  }

  // MARK: - Bad quantization_config

  @Test func unknownQuantMethod() throws {
    var copy = try FixtureCopy(symFixture)
    copy.setConfig(["quantization_config", "quant_method"], .string("awq"))
    expectCopyFails(copy, .unsupported, ["config.json", "quantization_config", "quant_method", "\"awq\""])
    var fp8 = try FixtureCopy(fp8Fixture)
    fp8.setConfig(["quantization_config", "quant_method"], .string("fbgemm_fp8"))
    expectCopyFails(fp8, .unsupported, ["quantization_config", "quant_method", "\"fbgemm_fp8\""])
  }

  @Test func unsupportedFormat() throws {
    for format in ["marlin-24", "mixed-precision", "int-quantized"] {
      var copy = try FixtureCopy(symFixture)
      copy.setConfig(["quantization_config", "format"], .string(format))
      expectCopyFails(copy, .unsupported, ["quantization_config", "format", "\"\(format)\""])
    }
    var fp8 = try FixtureCopy(fp8Fixture)
    fp8.setConfig(["quantization_config", "fmt"], .string("e5m2"))
    expectCopyFails(fp8, .unsupported, ["quantization_config", "fmt", "e5m2"])
    var perTensor = try FixtureCopy(fp8Fixture)
    perTensor.setConfig(["quantization_config", "weight_block_size"], nil)
    expectCopyFails(perTensor, .unsupported, ["quantization_config", "weight_block_size"])
  }

  @Test func eightBitWeights() throws {
    var copy = try FixtureCopy(symFixture)
    copy.setConfig(groupWeights + ["num_bits"], .number(8))
    expectCopyFails(copy, .unsupported, ["quantization_config", "group_0", "num_bits 8"])
  }

  @Test func groupSize48() throws {
    var copy = try FixtureCopy(symFixture)
    copy.setConfig(groupWeights + ["group_size"], .number(48))
    expectCopyFails(copy, .unsupported, ["quantization_config", "group_0", "group_size 48"])
  }

  @Test("a group size that does not divide a module's input dimension names the module")
  func groupSizeDoesNotDivide() throws {
    // The g64 fixture (every input a multiple of 64) with a dense width of 96 instead of 192:
    // layer 0's gate/up_proj become [96, 64] (their first 96 rows; zero points: the first 12
    // packed words) and down_proj's input is 96, which group 64 does not divide.
    var copy = try FixtureCopy(asymFixture)
    #expect(copy.config["intermediate_size"] == .number(192))
    copy.setConfig(["intermediate_size"], .number(96))
    for proj in ["gate_proj", "up_proj"] {
      let m = "model.layers.0.mlp.\(proj)"
      for (suffix, rows) in [(".weight_packed", 96), (".weight_scale", 96), (".weight_zero_point", 12)] {
        var t = copy[m + suffix]
        #expect(t.shape[0] == 2 * rows)
        t.bytes = Array(t.bytes.prefix(t.bytes.count / 2))
        t.shape[0] = rows
        copy[m + suffix] = t
      }
      copy[m + ".weight_shape"] = STTensor(m + ".weight_shape", "I64", [2], bytes: littleEndianBytes([Int64(96), 64]))
    }
    expectCopyFails(copy, .badFormat, ["model.layers.0.mlp.down_proj", "group size 64", "does not divide", "input dimension 96"])

    // Group 64 over the g32 fixture: layer 0's kv_b_proj (in = kv_lora_rank = 32) cannot be
    // grouped by 64, but the first module met (indexer.wq_b, in 64) already has a scale grid of
    // two groups per row where the config implies one.
    var g32 = try FixtureCopy(symFixture)
    g32.setConfig(groupWeights + ["group_size"], .number(64))
    expectCopyFails(g32, .badFormat, ["model.layers.0.self_attn.indexer.wq_b.weight_scale", "[512, 2]", "expected [512, 1]"])
    // With every scale grid consistent up to it, kv_b_proj is the one named.
    for t in g32.tensors where t.name.hasSuffix(".weight_scale") && !t.name.contains("kv_b_proj") && t.shape[1] % 2 == 0 {
      g32[t.name] = STTensor(t.name, "BF16", [t.shape[0], t.shape[1] / 2], bytes: Array(t.bytes.prefix(t.bytes.count / 2)))
    }
    expectCopyFails(g32, .badFormat, ["model.layers.0.self_attn.kv_b_proj", "group size 64", "input dimension 32"])
  }

  // MARK: - INT4 tensors that disagree with the config

  @Test func packedShapeDisagreesWithConfig() throws {
    var copy = try FixtureCopy(symFixture)
    let name = symDown + ".weight_packed"
    #expect(copy[name].shape == [64, 4])
    copy[name] = STTensor(name, "I32", [64, 3], seed: 1)
    expectCopyFails(copy, .badFormat, [name, "[64, 3]", "expected [64, 4]"])

    var rows = try FixtureCopy(asymFixture)
    let n2 = asymKvB + ".weight_packed"
    rows[n2] = STTensor(n2, "I32", [155, 8], seed: 2)
    expectCopyFails(rows, .badFormat, [n2, "[155, 8]", "expected [156, 8]"])
  }

  @Test func packedDTypeIsNotI32() throws {
    var copy = try FixtureCopy(symFixture)
    let name = symDown + ".weight_packed"
    copy[name] = STTensor(name, "F32", [64, 4], seed: 1)
    expectCopyFails(copy, .badFormat, [name, "F32", "I32"])
  }

  @Test func weightShapeValuesDisagree() throws {
    var copy = try FixtureCopy(symFixture)
    let name = symDown + ".weight_shape"
    #expect(copy[name].dtype == "I64")
    copy[name] = STTensor(name, "I64", [2], bytes: littleEndianBytes([Int64(64), 40]))
    expectCopyFails(copy, .badFormat, [name, "[64, 40]", "[64, 32]"])
    copy[name] = STTensor(name, "I32", [2], bytes: littleEndianBytes([Int32(32), 64]))  // transposed
    expectCopyFails(copy, .badFormat, [name, "[32, 64]", "[64, 32]"])
    copy[name] = STTensor(name, "I64", [3], bytes: littleEndianBytes([Int64(64), 32, 1]))
    expectCopyFails(copy, .badFormat, [name, "[3]", "expected [2]"])
  }

  @Test func missingWeightScale() throws {
    var copy = try FixtureCopy(symFixture)
    copy.remove(symDown + ".weight_scale")
    expectCopyFails(copy, .badFormat, ["missing tensor", symDown + ".weight_scale", "[64, 1]"])
  }

  @Test func missingWeightShape() throws {
    var copy = try FixtureCopy(symFixture)
    copy.remove(symDown + ".weight_shape")
    expectCopyFails(copy, .badFormat, ["missing tensor", symDown + ".weight_shape"])
  }

  @Test func weightScaleWithWrongGroupCount() throws {
    var copy = try FixtureCopy(symFixture)
    let name = symDown + ".weight_scale"
    copy[name] = STTensor(name, "BF16", [64, 2], seed: 3)
    expectCopyFails(copy, .badFormat, [name, "[64, 2]", "expected [64, 1]"])
  }

  @Test func missingZeroPointInAsymmetricCheckpoint() throws {
    var copy = try FixtureCopy(asymFixture)
    copy.remove(asymKvB + ".weight_zero_point")
    expectCopyFails(copy, .badFormat, ["missing tensor", asymKvB + ".weight_zero_point", "[20, 1]"])
  }

  @Test func zeroPointWithWrongShape() throws {
    var copy = try FixtureCopy(asymFixture)
    let name = asymKvB + ".weight_zero_point"
    copy[name] = STTensor(name, "I32", [156, 1], seed: 4)  // not packed along the rows
    expectCopyFails(copy, .badFormat, [name, "[156, 1]", "expected [20, 1]"])
  }

  @Test func zeroPointInSymmetricCheckpoint() throws {
    var copy = try FixtureCopy(symFixture)
    copy.add(STTensor(symDown + ".weight_zero_point", "I32", [8, 1], bytes: littleEndianBytes([UInt32](repeating: 0x8888_8888, count: 8))))
    expectCopyFails(copy, .badFormat, [symDown + ".weight_zero_point", "symmetric"])
    // An asymmetric checkpoint declared symmetric: every module has one; the first is named.
    var asym = try FixtureCopy(asymFixture)
    asym.setConfig(groupWeights + ["symmetric"], .bool(true))
    expectCopyFails(asym, .badFormat, [".weight_zero_point", "symmetric"])
  }

  // MARK: - Non-finite scales

  @Test(arguments: [(UInt32(0x7FC0), "nan"), (0x7F80, "inf"), (0xFF80, "-inf")])
  func nonFiniteWeightScale(bits: UInt32, text: String) throws {
    var copy = try FixtureCopy(symFixture)
    let name = symDown + ".weight_scale"
    copy[name].setBits(37, bits, size: 2)
    expectCopyFails(copy, .badFormat, [name, "non-finite", text, "element 37"])
  }

  @Test(arguments: [(Float.nan.bitPattern, "nan"), (Float.infinity.bitPattern, "inf")])
  func nonFiniteWeightScaleInv(bits: UInt32, text: String) throws {
    var copy = try FixtureCopy(fp8Fixture)
    let name = fp8KvB + ".weight_scale_inv"
    copy[name].setBits(3, bits, size: 4)
    expectCopyFails(copy, .badFormat, [name, "non-finite", text, "element 3"])
  }

  @Test func nonFiniteF32WeightScale() throws {
    var copy = try FixtureCopy(asymFixture)
    let name = asymKvB + ".weight_scale"
    var t = STTensor(name, "F32", copy[name].shape, bytes: littleEndianBytes([UInt32](repeating: Float(0.01).bitPattern, count: 156)))
    t.setBits(155, Float.infinity.bitPattern, size: 4)
    copy[name] = t
    expectCopyFails(copy, .badFormat, [name, "non-finite", "element 155"])
  }

  // MARK: - FP8 tensors that disagree with the config

  @Test func f8WeightWithoutScaleInv() throws {
    var copy = try FixtureCopy(fp8Fixture)
    copy.remove(fp8Down + ".weight_scale_inv")
    expectCopyFails(copy, .badFormat, [fp8Down + ".weight_scale_inv", "missing", "F8_E4M3"])
  }

  @Test func fp8ScaleGridWithWrongShape() throws {
    var copy = try FixtureCopy(fp8Fixture)
    let name = fp8KvB + ".weight_scale_inv"
    #expect(copy[name].shape == [2, 2])
    copy[name] = STTensor(name, "F32", [2, 3], seed: 5)
    expectCopyFails(copy, .badFormat, [name, "[2, 3]", "expected [2, 2]"])
    var t = try FixtureCopy(fp8Fixture)
    let n2 = fp8Down + ".weight_scale_inv"
    #expect(t[n2].shape == [2, 1])
    t[n2] = STTensor(n2, "F32", [1, 2], seed: 6)  // transposed
    expectCopyFails(t, .badFormat, [n2, "[1, 2]", "expected [2, 1]"])
    // The grid the config implies changes with weight_block_size: [64, 64] makes every grid wrong.
    var b = try FixtureCopy(fp8Fixture)
    b.setConfig(["quantization_config", "weight_block_size"], .array([.number(64), .number(64)]))
    expectCopyFails(b, .badFormat, [".weight_scale_inv", "expected ["])
  }

  @Test func fp8ScaleInvWithWrongDType() throws {
    var copy = try FixtureCopy(fp8Fixture)
    let name = fp8Down + ".weight_scale_inv"
    copy[name] = STTensor(name, "BF16", [2, 1], seed: 7)
    expectCopyFails(copy, .badFormat, [name, "BF16", "F32"])
  }

  @Test func fp8WeightWithWrongShape() throws {
    var copy = try FixtureCopy(fp8Fixture)
    let name = fp8Down + ".weight"
    copy[name] = STTensor(name, "F8_E4M3", [56, 160], seed: 8)
    expectCopyFails(copy, .badFormat, [name, "[56, 160]", "expected [160, 56]"])
  }

  // MARK: - Tensors of one format under the other's config

  @Test func scaleInvUnderCompressedTensors() throws {
    // An INT4 module replaced by an FP8 one.
    var copy = try FixtureCopy(symFixture)
    for suffix in [".weight_packed", ".weight_scale", ".weight_shape"] { copy.remove(symDown + suffix) }
    copy.add(STTensor(symDown + ".weight", "F8_E4M3", [64, 32], seed: 9))
    copy.add(STTensor(symDown + ".weight_scale_inv", "F32", [1, 1], bytes: littleEndianBytes([Float(0.01).bitPattern])))
    expectCopyFails(copy, .badFormat, [symDown + ".weight_scale_inv", "does not declare FP8"])
    // A stray weight_scale_inv beside an INT4 module's tensors is left over.
    var stray = try FixtureCopy(symFixture)
    stray.add(STTensor(symDown + ".weight_scale_inv", "F32", [1, 1], bytes: littleEndianBytes([Float(0.01).bitPattern])))
    expectCopyFails(stray, .badFormat, ["unexpected tensor", symDown + ".weight_scale_inv"])
  }

  @Test func packedWeightUnderFP8() throws {
    var copy = try FixtureCopy(fp8Fixture)
    for suffix in [".weight", ".weight_scale_inv"] { copy.remove(fp8Down + suffix) }
    copy.add(STTensor(fp8Down + ".weight_packed", "I32", [160, 7], seed: 10))
    copy.add(STTensor(fp8Down + ".weight_scale", "BF16", [160, 1], seed: 11))
    copy.add(STTensor(fp8Down + ".weight_shape", "I64", [2], bytes: littleEndianBytes([Int64(160), 56])))
    expectCopyFails(copy, .badFormat, [fp8Down + ".weight_packed", "does not declare compressed-tensors"])
  }

  @Test func quantizedTensorsWithoutQuantizationConfig() throws {
    var fp8 = try FixtureCopy(fp8Fixture)
    fp8.setConfig(["quantization_config"], nil)
    expectCopyFails(fp8, .badFormat, [".weight_scale_inv", "quantization_config", "FP8"])
    var int4 = try FixtureCopy(symFixture)
    int4.setConfig(["quantization_config"], nil)
    expectCopyFails(int4, .badFormat, [".weight_packed", "quantization_config", "compressed-tensors"])
  }
}

/// Every Linear of `a` dequantizes to the same bits as the same module of `b`.
func expectSameDequantization(_ a: Checkpoint, _ b: Checkpoint, _ what: String,
                              sourceLocation: SourceLocation = #_sourceLocation) throws {
  try #require(a.linearModules.map(\.name) == b.linearModules.map(\.name), sourceLocation: sourceLocation)
  for (ma, mb) in zip(a.linearModules, b.linearModules) {
    let cols = ma.linear.inFeatures
    let ra = UnsafeMutablePointer<Float>.allocate(capacity: cols)
    let rb = UnsafeMutablePointer<Float>.allocate(capacity: cols)
    defer { ra.deallocate(); rb.deallocate() }
    var diff = 0
    for r in 0..<ma.linear.outFeatures {
      ma.linear.kernel.dequantizeRow(r, into: ra)
      mb.linear.kernel.dequantizeRow(r, into: rb)
      for c in 0..<cols where !sameFloat(ra[c], rb[c]) { diff += 1 }
    }
    #expect(diff == 0, "\(what) \(ma.name): \(diff) elements differ", sourceLocation: sourceLocation)
  }
}

func isFloat(_ f: Linear.Format) -> Bool {
  if case .float = f { return true }
  return false
}
