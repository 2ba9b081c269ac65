// glm5 quantize: the INT4 checkpoint it writes loads, every quantized weight is within half a
// quantization step of the original, kept modules are untouched, and the output is deterministic.

import Testing
import GLM5Core
import GLM5Kernels
@testable import GLM5Model
import GLM5Engine
#if canImport(Glibc)
import Glibc
#endif

private func tempFolder(_ tag: String) -> String {
  var template = Array("/tmp/glm5-quant-\(tag)-XXXXXX".utf8CString)
  let p = template.withUnsafeMutableBufferPointer { mkdtemp($0.baseAddress!) }
  return String(cString: p!)
}

@Suite("Quantizer")
struct QuantizerTests {
  @Test("quantized weights are within a quantization step of the source", arguments: [
    ("tiny-dsa", 32, true), ("tiny-dsa-bf16-sharded", 64, false), ("tiny-dense-f16", 32, false),
  ])
  func roundTrip(preset: String, group: Int, symmetric: Bool) throws {
    let src = fixturesRoot + "/" + preset
    let out = tempFolder(preset)
    let report = try Quantizer.run(input: src, output: out, options: QuantizeOptions(groupSize: group, symmetric: symmetric))
    #expect(report.quantizedModules > 0)
    let a = try Checkpoint(folder: src)
    let b = try Checkpoint(folder: out)
    #expect(b.quant == .int4Group(groupSize: group, symmetric: symmetric, ignore: report.keptModules))
    let before = Dictionary(uniqueKeysWithValues: a.linearModules.map { ($0.name, $0.linear) })
    var quantized = 0
    for (name, _, l) in b.linearModules {
      let orig = try #require(before[name])
      var x = [Float](repeating: 0, count: l.inFeatures), y = x
      switch l.format {
      case .int4Group(let scale, let zp, let g):
        quantized += 1
        #expect(g == group)
        #expect((zp == nil) == symmetric)
        for r in 0..<l.outFeatures {
          x.withUnsafeMutableBufferPointer { orig.copyRowAsFloat(r, to: $0.baseAddress!) }
          y.withUnsafeMutableBufferPointer { l.copyRowAsFloat(r, to: $0.baseAddress!) }
          for c in 0..<l.inFeatures {
            let s = WeightMatrix(dtype: scale.dtype, data: scale.data!, rows: l.outFeatures, cols: l.inFeatures / g).element(r, c / g)
            // Half a step when symmetric (a little more: the stored scale is rounded to its dtype);
            // asymmetric groups can lose another half step to the rounded zero point at the ends.
            let bound = (symmetric ? 0.55 : 1.05) * s
            #expect(abs(x[c] - y[c]) <= bound, "\(name)[\(r), \(c)]: \(x[c]) vs \(y[c]), scale \(s)")
          }
        }
      case .float:
        #expect(report.keptModules.contains(name))
        #expect(l.weight.dtype == orig.weight.dtype)
        let n = l.weight.byteCount
        #expect(memcmp(l.weight.data!, orig.weight.data!, n) == 0, "\(name) changed")
      default:
        Issue.record("\(name): unexpected format")
      }
    }
    #expect(quantized == report.quantizedModules)
    // Everything else (embeddings, norms, biases) is byte-identical.
    for (name, t) in a.store.byName where !name.hasSuffix(".weight") || before[String(name.dropLast(7))] == nil {
      let u = try #require(b.store.byName[name], "\(name) missing from the output")
      #expect(u.dtype == t.dtype && u.shape == t.shape && memcmp(u.data!, t.data!, t.byteCount) == 0, "\(name) differs")
    }
  }

  @Test("the output is deterministic")
  func deterministic() throws {
    let src = fixturesRoot + "/tiny-dsa"
    let o1 = tempFolder("d1"), o2 = tempFolder("d2")
    _ = try Quantizer.run(input: src, output: o1, options: QuantizeOptions(groupSize: 32, symmetric: false))
    _ = try Quantizer.run(input: src, output: o2, options: QuantizeOptions(groupSize: 32, symmetric: false))
    for f in ["model.safetensors", "config.json"] {
      let a = try MappedFile(path: o1 + "/" + f), b = try MappedFile(path: o2 + "/" + f)
      #expect(a.bytes.count == b.bytes.count && memcmp(a.bytes.baseAddress!, b.bytes.baseAddress!, a.bytes.count) == 0, "\(f) differs")
    }
  }

  @Test("the committed glm5-quantized/int4 fixture (loaded by transformers for its golden) is exactly what glm5 quantize writes")
  func reproducesTransformersFixture() throws {
    let root = fixturesRoot + "/glm5-quantized"
    let out = tempFolder("repro")
    _ = try Quantizer.run(input: root + "/source", output: out, options: QuantizeOptions(groupSize: 32, symmetric: true))
    for f in ["config.json", "model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors", "model.safetensors.index.json"] {
      let a = try MappedFile(path: out + "/" + f), b = try MappedFile(path: root + "/int4/" + f)
      #expect(a.bytes.count == b.bytes.count && memcmp(a.bytes.baseAddress!, b.bytes.baseAddress!, a.bytes.count) == 0,
              "\(f) differs from the committed fixture: regenerate it with tools/reference (make_fixtures.py --preset glm5-quantized)")
    }
  }

  @Test("bad requests are refused with a status")
  func badRequests() throws {
    let src = fixturesRoot + "/tiny-dsa"
    #expect(throws: GLM5Error.self) { try Quantizer.run(input: src, output: tempFolder("g"), options: QuantizeOptions(groupSize: 48)) }
    #expect(throws: GLM5Error.self) { try Quantizer.run(input: src, output: src, options: QuantizeOptions()) }
    #expect(throws: GLM5Error.self) { try Quantizer.run(input: "/nonexistent", output: tempFolder("n"), options: QuantizeOptions()) }
    let q = tempFolder("twice")
    _ = try Quantizer.run(input: src, output: q, options: QuantizeOptions())
    do {
      _ = try Quantizer.run(input: q, output: tempFolder("again"), options: QuantizeOptions())
      Issue.record("re-quantizing INT4 should fail")
    } catch {
      #expect(error.status == .unsupported)
    }
  }
}
