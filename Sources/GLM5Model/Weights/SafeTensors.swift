// safetensors files (https://github.com/huggingface/safetensors): an 8-byte little-endian header
// length N, N bytes of JSON {name: {dtype, shape, data_offsets: [begin, end]}, "__metadata__": {...}},
// then the tensor data; offsets are relative to the end of the header. Files are memory-mapped
// and tensors point into the mapping.

import GLM5Core

/// One tensor inside a mapped file. `data` stays valid while the owning `SafeTensorsFile` lives.
public struct TensorView: @unchecked Sendable {
  public let name: String
  public let dtype: DType
  /// Row-major shape, outermost first ([out, in] for a Linear weight).
  public let shape: [Int]
  public let data: UnsafeRawPointer?
  public let byteCount: Int
  /// The file the tensor is in (for messages).
  public let file: String

  public var count: Int { shape.reduce(1, *) }

  public init(name: String, dtype: DType, shape: [Int], data: UnsafeRawPointer?, byteCount: Int, file: String) {
    self.name = name
    self.dtype = dtype
    self.shape = shape
    self.data = data
    self.byteCount = byteCount
    self.file = file
  }
}

public final class SafeTensorsFile: @unchecked Sendable {
  public let path: String
  public let mapping: MappedFile
  /// Tensors in the order of their data offsets.
  public let tensors: [TensorView]
  public let metadata: [String: String]

  public init(path: String) throws(GLM5Error) {
    self.path = path
    mapping = try MappedFile(path: path)
    (tensors, metadata) = try SafeTensorsFile.parse(mapping.bytes, path: path)
  }

  /// Parse and validate a whole file held in `bytes`.
  public static func parse(_ bytes: UnsafeRawBufferPointer, path: String) throws(GLM5Error) -> ([TensorView], [String: String]) {
    let size = bytes.count
    guard size >= 8 else {
      throw .badFormat("\(path): truncated safetensors file: \(size) bytes, fewer than the 8-byte header length")
    }
    var n: UInt64 = 0
    for k in 0..<8 { n |= UInt64(bytes[k]) << (8 * UInt64(k)) }
    guard n <= UInt64(size - 8) else {
      throw .badFormat("\(path): safetensors header length \(n) runs past the end of the file (\(size) bytes)")
    }
    let headerEnd = 8 + Int(n)
    let json: JSON
    do {
      json = try JSON.parse(UnsafeRawBufferPointer(rebasing: bytes[8..<headerEnd]))
    } catch {
      throw .badFormat("\(path): safetensors header is not JSON: \(error.message)")
    }
    guard let entries = json.object else {
      throw .badFormat("\(path): safetensors header is \(json.kind), expected an object")
    }
    let dataSize = size - headerEnd
    let base = bytes.baseAddress.map { $0 + headerEnd }
    var metadata: [String: String] = [:]
    var out: [(begin: Int, view: TensorView)] = []
    for (name, entry) in entries {
      if name == "__metadata__" {
        for (k, v) in entry.object ?? [:] { metadata[k] = v.string ?? v.serialized }
        continue
      }
      func bad(_ what: String) -> GLM5Error { .badFormat("\(path): tensor \(name): \(what)") }
      guard let e = entry.object else { throw bad("header entry is \(entry.kind), expected an object") }
      guard let dtName = e["dtype"]?.string else { throw bad("missing \"dtype\"") }
      guard let dtype = DType(safetensorsName: dtName) else {
        throw .unsupported("\(path): tensor \(name): unknown dtype \"\(dtName)\"")
      }
      guard let shapeJSON = e["shape"]?.array else { throw bad("missing \"shape\"") }
      var shape: [Int] = []
      var count = 1
      for d in shapeJSON {
        guard let v = d.int, v >= 0 else { throw bad("shape entry \(d.serialized) is not a non-negative integer") }
        shape.append(v)
        let (p, o) = count.multipliedReportingOverflow(by: v)
        guard !o else { throw bad("shape \(shapeString(shape)) overflows") }
        count = p
      }
      guard let offs = e["data_offsets"]?.array, offs.count == 2, let begin = offs[0].int, let end = offs[1].int else {
        throw bad("\"data_offsets\" must be two integers")
      }
      let (bytesNeeded, o) = count.multipliedReportingOverflow(by: dtype.byteSize)
      guard !o else { throw bad("shape \(shapeString(shape)) overflows") }
      guard begin >= 0, begin <= end, end <= dataSize else {
        throw bad("data_offsets [\(begin), \(end)] outside the data section (\(dataSize) bytes)")
      }
      guard end - begin == bytesNeeded else {
        throw bad("data_offsets [\(begin), \(end)] hold \(end - begin) bytes, but \(dtName) \(shapeString(shape)) needs \(bytesNeeded)")
      }
      let view = TensorView(name: name, dtype: dtype, shape: shape, data: base.map { UnsafeRawPointer($0 + begin) },
                            byteCount: bytesNeeded, file: path)
      out.append((begin, view))
    }
    out.sort { ($0.begin, $0.view.byteCount) < ($1.begin, $1.view.byteCount) }
    // Sorted by start: a non-empty tensor must start at or after the furthest end seen so far.
    var furthest: (end: Int, name: String)? = nil
    for cur in out where cur.view.byteCount > 0 {
      if let f = furthest, cur.begin < f.end {
        throw .badFormat("\(path): tensors \(f.name) and \(cur.view.name) overlap in the data section")
      }
      let end = cur.begin + cur.view.byteCount
      if furthest == nil || end > furthest!.end { furthest = (end, cur.view.name) }
    }
    return (out.map(\.view), metadata)
  }
}

/// All tensors of a checkpoint folder: `model.safetensors`, or the shards listed by
/// `model.safetensors.index.json`.
public final class TensorStore: @unchecked Sendable {
  /// The mapped files some tensor still points into.
  public let files: [SafeTensorsFile]
  public private(set) var byName: [String: TensorView] = [:]
  /// What keeps each tensor's memory alive: its mapped file, or the owned memory of a weight
  /// update (OwnedTensors). A store made by an update keeps only what it still uses.
  private(set) var owner: [String: AnyObject] = [:]
  /// For synthetic stores: makes any tensor the weight table asks for (benchmarks).
  let generator: ((String, [Int]) -> TensorView?)?

  /// An in-memory store whose tensors are produced on request by `generator` (which owns their
  /// memory for as long as it lives).
  public init(generator: @escaping (String, [Int]) -> TensorView?) {
    files = []
    self.generator = generator
  }

  /// `base` with some tensors replaced by views into memory that `keeper` keeps alive (a weight
  /// update). Files no tensor points into any more are let go.
  public init(overlay base: TensorStore, replacing: [String: TensorView], keeper: AnyObject) {
    var byName = base.byName, owner = base.owner
    for (n, v) in replacing { byName[n] = v; owner[n] = keeper }
    var used = Set<ObjectIdentifier>()
    for o in owner.values { used.insert(ObjectIdentifier(o)) }
    files = base.files.filter { used.contains(ObjectIdentifier($0)) }
    self.byName = byName
    self.owner = owner
    generator = base.generator
  }

  /// Bytes of tensors that live in owned memory (updates) rather than in a mapped file.
  public var ownedBytes: Int {
    var n = 0
    for (name, o) in owner where !(o is SafeTensorsFile) { n += byName[name]?.byteCount ?? 0 }
    return n
  }

  /// The tensor called `name`; a synthetic store makes it with `shape` on first request.
  func lookup(_ name: String, shape: [Int]) -> TensorView? {
    if let t = byName[name] { return t }
    guard let generator, let t = generator(name, shape) else { return nil }
    byName[name] = t
    return t
  }

  public init(folder: String) throws(GLM5Error) {
    let index = joinPath(folder, "model.safetensors.index.json")
    let single = joinPath(folder, "model.safetensors")
    var files: [SafeTensorsFile] = []
    var expected: [String: String] = [:]  // tensor -> shard file, from the index
    if fileKind(index) == .file {
      expected = try TensorStore.parseIndex(try readTextFile(index), path: index)
      for f in Set(expected.values).sorted() {
        let p = joinPath(folder, f)
        guard fileKind(p) == .file else {
          throw .badFormat("\(index) names shard \(f), which does not exist in \(folder)")
        }
        files.append(try SafeTensorsFile(path: p))
      }
    } else if fileKind(single) == .file {
      files.append(try SafeTensorsFile(path: single))
    } else {
      throw .io("\(folder) holds neither model.safetensors nor model.safetensors.index.json")
    }
    self.files = files
    generator = nil
    for f in files {
      for t in f.tensors {
        if let other = byName[t.name] {
          throw .badFormat("tensor \(t.name) appears in both \(other.file) and \(t.file)")
        }
        byName[t.name] = t
        owner[t.name] = f
      }
    }
    for (tensor, file) in expected {
      guard let t = byName[tensor] else {
        throw .badFormat("\(index) places tensor \(tensor) in \(file), but no shard holds it")
      }
      if !t.file.hasSuffix("/" + file) && t.file != file {
        throw .badFormat("\(index) places tensor \(tensor) in \(file), but it is in \(t.file)")
      }
    }
  }

  /// model.safetensors.index.json's weight_map: tensor name -> shard file name (a plain name in
  /// the folder); `path` names the file in messages.
  public static func parseIndex(_ bytes: [UInt8], path: String) throws(GLM5Error) -> [String: String] {
    let json: JSON
    do { json = try withBytes(bytes) { (b) throws(GLM5Error) -> JSON in try JSON.parse(b) } } catch {
      throw .badFormat("\(path): \(error.message)")
    }
    guard let map = json["weight_map"]?.object else {
      throw .badFormat("\(path): missing \"weight_map\" object")
    }
    var expected: [String: String] = [:]
    for (tensor, file) in map {
      guard let f = file.string, !f.isEmpty, !f.contains("/") else {
        throw .badFormat("\(path): weight_map entry for \(tensor) is not a file name in the folder")
      }
      expected[tensor] = f
    }
    return expected
  }
}
