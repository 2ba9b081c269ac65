// A slime weight-delta flush file (SlimeDelta.swift): parsed, checked and its positions decoded,
// as SlimeDelta(folder:) reads each file of the folder.

import GLM5Core
import GLM5Model

@Sendable func fuzzDelta(_ bytes: UnsafeRawBufferPointer) {
  swallow { () throws(GLM5Error) in
    let d = try SlimeDelta(files: [(path: "rank0000_flush000000.safetensors", bytes: Array(bytes))])
    for p in d.params {
      // What applying reads: every decoded position and the last value's bytes.
      var count = 1
      for s in p.shape { count *= s }
      for k in 0..<p.positions.count { precondition(p.positions[k] >= 0 && p.positions[k] < count) }
      if p.positions.count > 0 { _ = p.values.load(fromByteOffset: p.positions.count * p.dtype.byteSize - 1, as: UInt8.self) }
    }
  }
}
