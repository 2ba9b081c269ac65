// safetensors parsing: valid files, and broken ones rejected with the file and tensor named.

import Foundation
import GLM5Core
@testable import GLM5Model
import Testing

@Suite struct SafeTensorsTests {
  /// Write `bytes` as a safetensors file in a fresh folder and open it.
  func open(_ bytes: [UInt8], name: String = "model.safetensors") -> (TempFolder, String) {
    let f = TempFolder()
    f.write(name, bytes)
    return (f, f.file(name))
  }

  func expectOpenFailure(_ bytes: [UInt8], _ status: Status, _ needles: [String],
                         sourceLocation: SourceLocation = #_sourceLocation) {
    let (f, path) = open(bytes, name: "broken.safetensors")
    expectFailure(status, ["broken.safetensors"] + needles, sourceLocation: sourceLocation) { () throws(GLM5Error) in
      _ = try SafeTensorsFile(path: path)
    }
    withExtendedLifetime(f) {}
  }

  // MARK: - Valid files

  @Test func parsesTensorsAndMetadata() throws {
    let a = STTensor("a", "F32", [2, 3], seed: 1)
    let b = STTensor("b", "BF16", [4], seed: 2)
    let c = STTensor("c", "I64", [1])
    let (f, path) = open(safetensorsBytes([a, b, c], metadata: ["format": "pt", "note": "x"]))
    let file = try SafeTensorsFile(path: path)
    #expect(file.tensors.map(\.name) == ["a", "b", "c"])  // in data order
    #expect(file.metadata == ["format": "pt", "note": "x"])
    let ta = file.tensors[0], tb = file.tensors[1], tc = file.tensors[2]
    #expect(ta.dtype == .f32 && ta.shape == [2, 3] && ta.byteCount == 24 && ta.count == 6)
    #expect(tb.dtype == .bf16 && tb.shape == [4] && tb.byteCount == 8)
    #expect(tc.dtype == .i64 && tc.byteCount == 8)
    #expect(ta.file == path)
    #expect(Array(UnsafeRawBufferPointer(start: ta.data, count: ta.byteCount)) == a.bytes)
    #expect(Array(UnsafeRawBufferPointer(start: tb.data, count: tb.byteCount)) == b.bytes)
    withExtendedLifetime(f) {}
  }

  @Test func scalarAndEmptyTensors() throws {
    let scalar = STTensor("scalar", "F32", [], seed: 3)
    let empty = STTensor("empty", "F16", [0, 5])
    let (f, path) = open(safetensorsBytes([scalar, empty], metadata: nil))
    let file = try SafeTensorsFile(path: path)
    let byName = Dictionary(uniqueKeysWithValues: file.tensors.map { ($0.name, $0) })
    #expect(byName["scalar"]?.count == 1 && byName["scalar"]?.byteCount == 4)
    #expect(byName["empty"]?.count == 0 && byName["empty"]?.byteCount == 0)
    #expect(file.metadata.isEmpty)
    withExtendedLifetime(f) {}
  }

  @Test func headerOnlyFile() throws {
    let (f, path) = open(safetensorsBytes([], metadata: nil))
    let file = try SafeTensorsFile(path: path)
    #expect(file.tensors.isEmpty)
    withExtendedLifetime(f) {}
  }

  @Test func everyDTypeNameIsAccepted() throws {
    let tensors = DType.allCases.map { STTensor("t\($0.rawValue)", "\($0.name)", [3]) }
    let (f, path) = open(safetensorsBytes(tensors))
    let file = try SafeTensorsFile(path: path)
    for d in DType.allCases {
      let t = try #require(file.tensors.first { $0.name == "t\(d.rawValue)" })
      #expect(t.dtype == d)
      #expect(t.byteCount == 3 * d.byteSize)
    }
    withExtendedLifetime(f) {}
  }

  // MARK: - Broken files

  @Test func emptyFile() {
    expectOpenFailure([], .badFormat, ["truncated", "0 bytes"])
  }

  @Test func truncatedBelowEightBytes() {
    expectOpenFailure([16, 0, 0, 0, 0], .badFormat, ["truncated", "5 bytes"])
  }

  @Test func headerLengthPastTheEnd() {
    let bytes = safetensorsBytes([STTensor("w", "F32", [2])], headerLength: 4096)
    expectOpenFailure(bytes, .badFormat, ["header length 4096", "past the end", "\(bytes.count) bytes"])
  }

  @Test func hugeHeaderLength() {
    let bytes = safetensorsBytes([STTensor("w", "F32", [2])], headerLength: UInt64.max)
    expectOpenFailure(bytes, .badFormat, ["header length \(UInt64.max)", "past the end"])
  }

  @Test func headerNotJSON() {
    expectOpenFailure(safetensorsBytes([], rawHeader: "{\"w\": {dtype}}"), .badFormat, ["header is not JSON", "invalid JSON"])
  }

  @Test func headerJSONNotAnObject() {
    expectOpenFailure(safetensorsBytes([], rawHeader: "[1, 2, 3]"), .badFormat, ["header is an array", "expected an object"])
  }

  @Test func headerCutShortByTheLength() {
    // A valid header, but the declared length stops in the middle of it.
    let full = safetensorsBytes([STTensor("w", "F32", [2])])
    expectOpenFailure(safetensorsBytes([STTensor("w", "F32", [2])], headerLength: UInt64(full.count - 8 - 8 - 10)),
                      .badFormat, ["header is not JSON"])
  }

  @Test func entryNotAnObject() {
    var t = STTensor("w", "F32", [2])
    t.rawEntry = .string("F32")
    expectOpenFailure(safetensorsBytes([t]), .badFormat, ["tensor w", "a string", "expected an object"])
  }

  @Test func entryWithoutDType() {
    var t = STTensor("w", "F32", [2])
    t.rawEntry = .object(["shape": .array([.number(2)]), "data_offsets": .array([.number(0), .number(8)])])
    expectOpenFailure(safetensorsBytes([t]), .badFormat, ["tensor w", "dtype"])
  }

  @Test func entryWithoutShape() {
    var t = STTensor("w", "F32", [2])
    t.rawEntry = .object(["dtype": .string("F32"), "data_offsets": .array([.number(0), .number(8)])])
    expectOpenFailure(safetensorsBytes([t]), .badFormat, ["tensor w", "shape"])
  }

  @Test func negativeShape() {
    var t = STTensor("w", "F32", [2])
    t.rawEntry = .object(["dtype": .string("F32"), "shape": .array([.number(-2)]),
                          "data_offsets": .array([.number(0), .number(8)])])
    expectOpenFailure(safetensorsBytes([t]), .badFormat, ["tensor w", "-2", "non-negative integer"])
  }

  @Test func overflowingShape() {
    var t = STTensor("w", "F32", [2])
    t.rawEntry = .object(["dtype": .string("F32"),
                          "shape": .array([.number(4_000_000_000_000), .number(4_000_000_000_000)]),
                          "data_offsets": .array([.number(0), .number(8)])])
    expectOpenFailure(safetensorsBytes([t]), .badFormat, ["tensor w", "overflows"])
  }

  @Test func badDataOffsets() {
    var t = STTensor("w", "F32", [2])
    t.rawEntry = .object(["dtype": .string("F32"), "shape": .array([.number(2)]), "data_offsets": .array([.number(0)])])
    expectOpenFailure(safetensorsBytes([t]), .badFormat, ["tensor w", "data_offsets", "two integers"])
  }

  @Test func dataOffsetsOutOfRange() {
    var a = STTensor("a", "F32", [2])
    var b = STTensor("layer.b", "F32", [2])
    a.offsets = (0, 8)
    b.offsets = (12, 20)  // data is 16 bytes
    expectOpenFailure(safetensorsBytes([a, b]), .badFormat, ["tensor layer.b", "[12, 20]", "outside the data section", "16 bytes"])
  }

  @Test func dataOffsetsReversed() {
    var t = STTensor("w", "F32", [2])
    t.offsets = (8, 0)
    expectOpenFailure(safetensorsBytes([t, STTensor("pad", "F32", [2])]), .badFormat, ["tensor w", "[8, 0]"])
  }

  @Test func negativeDataOffset() {
    var t = STTensor("w", "F32", [2])
    t.offsets = (-8, 0)
    expectOpenFailure(safetensorsBytes([t]), .badFormat, ["tensor w", "[-8, 0]", "outside"])
  }

  @Test func byteCountDoesNotMatchDTypeAndShape() {
    var t = STTensor("blk.w", "BF16", [3, 4], seed: 0)  // needs 24 bytes
    t.offsets = (0, 20)
    expectOpenFailure(safetensorsBytes([t]), .badFormat, ["tensor blk.w", "20 bytes", "BF16 [3, 4]", "needs 24"])
  }

  @Test func overlappingTensors() {
    var a = STTensor("first", "F32", [4])   // [0, 16)
    var b = STTensor("second", "F32", [4])  // [8, 24)
    a.offsets = (0, 16)
    b.offsets = (8, 24)
    let bytes = safetensorsBytes([a, b, STTensor("pad", "U8", [0])])
    // Data is 32 bytes; both ranges are inside it.
    expectOpenFailure(bytes, .badFormat, ["first", "second", "overlap"])
  }

  @Test func identicalRangesOverlap() {
    var a = STTensor("x", "F32", [2])
    var b = STTensor("y", "I32", [2])
    a.offsets = (0, 8)
    b.offsets = (0, 8)
    expectOpenFailure(safetensorsBytes([a, b]), .badFormat, ["x", "y", "overlap"])
  }

  @Test func unknownDType() {
    let t = STTensor("model.layers.0.mlp.down_proj.weight", "Q4_K", [4, 8], bytes: Array(repeating: 0, count: 32))
    expectOpenFailure(safetensorsBytes([t]), .unsupported, ["model.layers.0.mlp.down_proj.weight", "unknown dtype", "\"Q4_K\""])
  }

  @Test func brokenShardThroughTheCheckpoint() {
    // A broken file inside a checkpoint folder is reported with its path.
    let f = makeCheckpoint()
    f.write("model.safetensors", [1, 2, 3])
    expectLoadFailure(f.path, .badFormat, [f.file("model.safetensors"), "truncated"])
  }

  @Test func safetensorsIsAFolder() throws {
    let f = TempFolder()
    f.write("config.json", text: TinyDims().configJSON)
    try FileManager.default.createDirectory(atPath: f.file("model.safetensors"), withIntermediateDirectories: false)
    expectLoadFailure(f.path, .io, ["model.safetensors"])
  }

  @Test func missingFile() {
    let f = TempFolder()
    let p = f.file("nothing.safetensors")
    expectFailure(.io, [p, "cannot open"]) { () throws(GLM5Error) in _ = try SafeTensorsFile(path: p) }
  }
}
