// safetensors: SafeTensorsFile.parse over the whole file, as a mapped file is parsed.

import GLM5Core
import GLM5Model

@Sendable func fuzzSafeTensors(_ bytes: UnsafeRawBufferPointer) {
  swallow { () throws(GLM5Error) in
    let (tensors, _) = try SafeTensorsFile.parse(bytes, path: "fuzz.safetensors")
    // What loading reads of each view: its element count and its bytes' bounds.
    for t in tensors where t.byteCount > 0 {
      precondition(t.count * t.dtype.byteSize == t.byteCount)
      _ = t.data!.load(fromByteOffset: t.byteCount - 1, as: UInt8.self)
    }
  }
}

// model.safetensors.index.json: TensorStore.parseIndex, as TensorStore(folder:) reads it.
@Sendable func fuzzSafeTensorsIndex(_ bytes: UnsafeRawBufferPointer) {
  swallow { () throws(GLM5Error) in
    let map = try TensorStore.parseIndex(Array(bytes), path: "model.safetensors.index.json")
    for f in map.values { precondition(!f.isEmpty && !f.contains("/")) }
  }
}
