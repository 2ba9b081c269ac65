// Writing safetensors files in a stream: the header (every tensor's dtype, shape and offsets)
// first, then each tensor's bytes in header order. Memory is bounded by one tensor.

import GLM5Core

public struct TensorSpec: Sendable {
  public let name: String
  public let dtype: DType
  public let shape: [Int]
  public var byteCount: Int { shape.reduce(1, *) * dtype.byteSize }
  public init(name: String, dtype: DType, shape: [Int]) {
    self.name = name
    self.dtype = dtype
    self.shape = shape
  }
}

public final class SafeTensorsWriter {
  public let file: FileWriter
  let specs: [TensorSpec]
  private var next = 0

  /// Create `path` and write the header for `specs` (data follows in this order).
  public init(path: String, specs: [TensorSpec], metadata: [String: String] = ["format": "pt"]) throws(GLM5Error) {
    self.specs = specs
    file = try FileWriter(path: path)
    var entries: [String: JSON] = [:]
    var offset = 0
    for s in specs {
      entries[s.name] = .object([
        "dtype": .string("\(s.dtype.name)"),
        "shape": .array(s.shape.map { .number(Double($0)) }),
        "data_offsets": .array([.number(Double(offset)), .number(Double(offset + s.byteCount))]),
      ])
      offset += s.byteCount
    }
    entries["__metadata__"] = .object(metadata.mapValues { .string($0) })
    var header = Array(JSON.object(entries).serialized.utf8)
    while header.count % 8 != 0 { header.append(0x20) }  // as the Python writer pads
    var len = [UInt8](repeating: 0, count: 8)
    for k in 0..<8 { len[k] = UInt8(truncatingIfNeeded: UInt64(header.count) >> (8 * UInt64(k))) }
    try file.write(len)
    try file.write(header)
  }

  /// Write the next tensor's bytes; must match its spec's size.
  public func write(_ name: String, _ bytes: UnsafeRawBufferPointer) throws(GLM5Error) {
    guard next < specs.count, specs[next].name == name else {
      throw .internal("safetensors writer: expected tensor \(next < specs.count ? specs[next].name : "<end>"), got \(name)")
    }
    guard bytes.count == specs[next].byteCount else {
      throw .internal("safetensors writer: tensor \(name) has \(bytes.count) bytes, its header says \(specs[next].byteCount)")
    }
    if let b = bytes.baseAddress { try file.write(b, bytes.count) }
    next += 1
  }

  public func finish() throws(GLM5Error) {
    guard next == specs.count else { throw .internal("safetensors writer: \(specs.count - next) tensors were not written") }
    try file.close()
  }
}
