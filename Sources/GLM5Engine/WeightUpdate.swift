// Weight updates while the model stays loaded and its sessions stay alive (an RL trainer pushing
// new weights every few steps). Three paths, one mechanism:
//
//   updateWeights(folder:)        a Hugging Face folder with the same configuration, any format
//   WeightUpdate add(…) commit()  tensors streamed from host memory, then a commit
//   updateWeights(delta:)         slime's delta weight sync (SlimeDelta.swift)
//
// Each builds the changed tensors in owned memory, in the loaded format (a BF16 tensor for an INT4
// module is quantized with the loaded group size by WeightEncoding, the quantizer's code), lays
// them over the current tensors (TensorStore(overlay:)), binds the result with every check of a
// load (WeightBinder), and installs it as a new WeightSnapshot with the caller's version. Any
// failure happens before the install, so a bad update leaves the model exactly as it was.
//
// Calls in flight finish on the snapshot they started with (it lives until they return); calls
// that start after the install use the new one. Sessions keep their caches (what the old weights
// computed) and continue with the new weights; Session.recompute() rebuilds a cache instead.
// A folder whose tensors all have the loaded formats is adopted as it is: mapped, bit for bit a
// fresh load.

import GLM5Core
import GLM5Kernels
import GLM5Model
import Synchronization

/// Tensors an update made, in owned memory; the keeper of their views in the overlay store.
final class OwnedTensors: @unchecked Sendable {
  private(set) var views: [String: TensorView] = [:]
  private var buffers: [String: ByteBuffer] = [:]
  let label: String

  init(label: String) { self.label = label }

  func put(_ name: String, dtype: DType, shape: [Int], _ data: ByteBuffer) {
    buffers[name] = data
    views[name] = TensorView(name: name, dtype: dtype, shape: shape, data: UnsafeRawPointer(data.pointer),
                             byteCount: data.count, file: label)
  }

  func buffer(_ name: String) -> ByteBuffer? { buffers[name] }
  var isEmpty: Bool { views.isEmpty }
}

/// The longest weight version (bytes) a host may set; the C API's output structs hold it.
public let maxWeightVersionBytes = 127

func checkVersion(_ v: String) throws(GLM5Error) {
  guard !v.isEmpty, v.utf8.count <= maxWeightVersionBytes, !v.utf8.contains(0) else {
    throw .invalidArgument("weight version \"\(v)\" must be 1 to \(maxWeightVersionBytes) bytes of UTF-8 without NUL")
  }
}

/// The Linear modules of a checkpoint by name, and the module each component tensor belongs to.
struct LinearTable {
  var byName: [String: Linear] = [:]
  var moduleOf: [String: String] = [:]

  init(_ ck: Checkpoint) {
    for (name, _, l) in ck.linearModules {
      byName[name] = l
      for s in LinearTable.suffixes(l) { moduleOf[name + "." + s] = name }
    }
  }

  static func suffixes(_ l: Linear) -> [String] {
    switch l.format {
    case .float: return ["weight"]
    case .fp8Block: return ["weight", "weight_scale_inv"]
    case .int4Group(_, let zp, _): return ["weight_packed", "weight_scale", "weight_shape"] + (zp == nil ? [] : ["weight_zero_point"])
    }
  }
}

enum WeightConversion {
  static func copy(_ t: TensorView) throws(GLM5Error) -> ByteBuffer {
    let b = try ByteBuffer(count: t.byteCount, what: "updated tensor \(t.name)")
    if let d = t.data, t.byteCount > 0 { UnsafeMutableRawPointer(b.pointer).copyMemory(from: d, byteCount: t.byteCount) }
    return b
  }

  /// `src` (any format) encoded like the loaded module `target`, into `out` as module.suffix.
  static func linear(_ src: Linear, like target: Linear, module: String, into out: OwnedTensors) throws(GLM5Error) {
    guard src.outFeatures == target.outFeatures, src.inFeatures == target.inFeatures else {
      throw .badFormat("\(module): the update is [\(src.outFeatures), \(src.inFeatures)], the model's is [\(target.outFeatures), \(target.inFeatures)]")
    }
    var enc: [EncodedTensor]
    switch (target.format, src.format) {
    case (.float, .float) where src.weight.dtype == target.weight.dtype:
      enc = [EncodedTensor(suffix: "weight", dtype: src.weight.dtype, shape: src.weight.shape, data: try copy(src.weight))]
    case (.float, _):
      enc = try WeightEncoding.float(src, dtype: target.weight.dtype)
    case (.fp8Block(_, let br, let bc), .fp8Block(let s, let sbr, let sbc)) where br == sbr && bc == sbc:
      enc = [EncodedTensor(suffix: "weight", dtype: .f8e4m3, shape: src.weight.shape, data: try copy(src.weight)),
             EncodedTensor(suffix: "weight_scale_inv", dtype: s.dtype, shape: s.shape, data: try copy(s))]
    case (.fp8Block(_, let br, let bc), _):
      enc = try WeightEncoding.fp8(src, blockRows: br, blockCols: bc)
    case (.int4Group(let ts, let tz, let g), .int4Group(let s, let z, let sg)) where g == sg && (tz == nil) == (z == nil) && ts.dtype == s.dtype:
      enc = [EncodedTensor(suffix: "weight_packed", dtype: .i32, shape: src.weight.shape, data: try copy(src.weight)),
             EncodedTensor(suffix: "weight_scale", dtype: s.dtype, shape: s.shape, data: try copy(s))]
      if let z { enc.append(EncodedTensor(suffix: "weight_zero_point", dtype: .i32, shape: z.shape, data: try copy(z))) }
    case (.int4Group(let ts, let tz, let g), _):
      enc = try WeightEncoding.int4(src, group: g, symmetric: tz == nil, scaleDType: ts.dtype)
    }
    // weight_shape does not change: the loaded one stays.
    for t in enc where t.suffix != "weight_shape" { out.put(module + "." + t.suffix, dtype: t.dtype, shape: t.shape, t.data) }
  }

  /// A tensor that is not part of a Linear (norms, embeddings, biases) in the loaded tensor's
  /// dtype: copied when the dtypes agree, converted between float dtypes otherwise.
  static func tensor(_ src: TensorView, like target: TensorView, into out: OwnedTensors) throws(GLM5Error) {
    guard src.shape == target.shape else {
      throw .badFormat("tensor \(target.name): the update has shape \(shapeString(src.shape)), the model's is \(shapeString(target.shape))")
    }
    if src.dtype == target.dtype { out.put(target.name, dtype: src.dtype, shape: src.shape, try copy(src)); return }
    guard src.dtype.isFloatWeight && target.dtype.isFloatWeight, let d = src.data else {
      throw .badFormat("tensor \(target.name): the update is \(src.dtype.name), the model holds \(target.dtype.name)")
    }
    let n = src.count
    let b = try ByteBuffer(count: n * target.dtype.byteSize, what: "updated tensor \(target.name)")
    let w = WeightMatrix(dtype: src.dtype, data: d, rows: 1, cols: n)
    let row = try FloatBuffer(count: n, what: "updated tensor \(target.name)")
    w.copyRow(0, to: row.pointer)
    for i in 0..<n { WeightEncoding.store(row[i], target.dtype, UnsafeMutableRawPointer(b.pointer), i) }
    out.put(target.name, dtype: target.dtype, shape: src.shape, b)
  }
}

extension Model {
  /// Lay `owned` over the current tensors, check and install the result as version `version`.
  /// Runs under `updating`.
  func installOverlay(_ owned: OwnedTensors, version: String) throws(GLM5Error) {
    let cur = weights
    let store = TensorStore(overlay: cur.checkpoint.store, replacing: owned.views, keeper: owned)
    let ck = try Checkpoint(updating: cur.checkpoint, store: store)
    install(WeightSnapshot(checkpoint: ck, version: version, epoch: cur.epoch + 1))
  }

  /// Replace every weight with those of a Hugging Face folder of the same configuration, in any
  /// supported format (converted to the loaded formats when they differ).
  public func updateWeights(folder: String, version: String) throws(GLM5Error) {
    try checkVersion(version)
    let new = try Checkpoint(folder: folder)
    guard new.config.fingerprint == config.fingerprint else {
      throw .init(.incompatible, "\(folder) has another configuration than the loaded model: \(Model.firstDifference(new.config, config))")
    }
    try updating.withLock { (_) throws(GLM5Error) in
      let cur = weights.checkpoint
      let same = cur.store.byName.count == new.store.byName.count && cur.store.byName.allSatisfy { name, t in
        guard let n = new.store.byName[name] else { return false }
        return n.dtype == t.dtype && n.shape == t.shape
      }
      if same {
        // The loaded formats: adopt the folder as it is (mapped, a fresh load bit for bit).
        install(WeightSnapshot(checkpoint: new, version: version, epoch: weights.epoch + 1))
        return
      }
      let owned = OwnedTensors(label: "<update \(version) from \(folder)>")
      let table = LinearTable(cur), newTable = LinearTable(new)
      for (name, _, target) in cur.linearModules {
        guard let src = newTable.byName[name] else { throw .badFormat("\(folder) has no Linear module \(name)") }
        try WeightConversion.linear(src, like: target, module: name, into: owned)
      }
      for (name, t) in cur.store.byName where table.moduleOf[name] == nil {
        guard let src = new.store.byName[name] else { throw .badFormat("\(folder) has no tensor \(name)") }
        try WeightConversion.tensor(src, like: t, into: owned)
      }
      // What no conversion replaced (INT4 weight_shape) is copied too, so that the old files go.
      for (name, t) in cur.store.byName where owned.views[name] == nil { owned.put(name, dtype: t.dtype, shape: t.shape, try WeightConversion.copy(t)) }
      try installOverlay(owned, version: version)
    }
  }

  /// Start a tensor-by-tensor update (WeightUpdate.add, then commit).
  public func beginUpdate() -> WeightUpdate { WeightUpdate(model: self) }

  /// Apply a slime delta folder (SlimeDelta.swift): the changed elements of tensors, in the
  /// loaded tensors' own dtypes. Its prev_version must be the loaded version (versionMismatch
  /// otherwise). `version` nil takes the delta's current_version.
  public func updateWeights(delta folder: String, version: String?) throws(GLM5Error) {
    if let version { try checkVersion(version) }
    let delta = try SlimeDelta(folder: folder)
    guard let v = version ?? delta.currentVersion else {
      throw .invalidArgument("no version given and \(folder) names no current_version")
    }
    try checkVersion(v)
    try updating.withLock { (_) throws(GLM5Error) in
      let cur = weights
      if let prev = delta.prevVersion, prev != cur.version {
        throw .init(.versionMismatch, "\(folder) is a delta against weight version \"\(prev)\", the loaded weights are version \"\(cur.version)\"")
      }
      let store = cur.checkpoint.store
      let table = LinearTable(cur.checkpoint)
      let owned = OwnedTensors(label: "<update \(v) from delta \(folder)>")
      for p in delta.params {
        guard let t = store.byName[p.name] else {
          if p.name.hasSuffix(".weight"), let l = table.byName[String(p.name.dropLast(7))], case .int4Group = l.format {
            throw .unsupported("\(p.file): the delta changes \(p.name), but the model holds that module as INT4 (a delta applies to the loaded bytes): send the whole tensor (a tensor update) or an INT4 delta")
          }
          throw .badFormat("\(p.file): the delta changes \(p.name), which the model does not have")
        }
        guard t.shape == p.shape, t.dtype == p.dtype else {
          throw .badFormat("\(p.file): param \(p.name) is \(p.dtype.name) \(shapeString(p.shape)), the model holds \(t.dtype.name) \(shapeString(t.shape))")
        }
        let b: ByteBuffer
        if let have = owned.buffer(p.name) { b = have } else {
          b = try WeightConversion.copy(t)
          owned.put(p.name, dtype: t.dtype, shape: t.shape, b)
        }
        let es = t.dtype.byteSize
        let dst = UnsafeMutableRawPointer(b.pointer)
        for k in 0..<p.positions.count {
          (dst + p.positions[k] * es).copyMemory(from: p.values + k * es, byteCount: es)
        }
      }
      try installOverlay(owned, version: v)
    }
  }

  /// The first configuration field that differs (for messages).
  static func firstDifference(_ a: ModelConfig, _ b: ModelConfig) -> String {
    let x = a.fingerprintText.split(separator: ";"), y = b.fingerprintText.split(separator: ";")
    for (p, q) in zip(x, y) where p != q { return "\(p) (loaded: \(q))" }
    return "the fingerprints differ"
  }
}

/// A tensor-by-tensor update: add tensors (each checked and converted to the loaded format as it
/// arrives; the host's memory is not kept), then commit them all as one new version.
public final class WeightUpdate: @unchecked Sendable {
  public let model: Model
  let owned = OwnedTensors(label: "<tensor update>")
  public private(set) var tensorsAdded = 0
  /// The loaded modules (their formats never change across updates).
  let table: LinearTable

  init(model: Model) {
    self.model = model
    table = LinearTable(model.checkpoint)
  }

  /// Bytes staged so far (owned memory in the loaded format).
  public var stagedBytes: Int { owned.views.values.reduce(0) { $0 + $1.byteCount } }

  /// Stage tensor `name` (a checkpoint name) of `dtype` and `shape` from `data`:
  ///  - a tensor the model holds, in the same dtype and shape: replaced as given (quantized
  ///    components such as weight_packed / weight_scale included);
  ///  - `<module>.weight` in float (F32/BF16/F16) for any Linear module: encoded in the module's
  ///    loaded format (INT4 with its group size, FP8 with its blocks, or its float dtype);
  ///  - any other float tensor (norm, embedding) in another float dtype: converted.
  public func add(name: String, dtype: DType, shape: [Int], data: UnsafeRawBufferPointer) throws(GLM5Error) {
    var count = 1
    for d in shape {
      guard d >= 0 else { throw .invalidArgument("tensor \(name): shape \(shapeString(shape)) has a negative dimension") }
      let (m, o) = count.multipliedReportingOverflow(by: d)
      guard !o else { throw .invalidArgument("tensor \(name): shape \(shapeString(shape)) overflows") }
      count = m
    }
    let (need, o) = count.multipliedReportingOverflow(by: dtype.byteSize)
    guard !o, data.count == need else {
      throw .invalidArgument("tensor \(name): \(dtype.name) \(shapeString(shape)) needs \(need) bytes, \(data.count) were given")
    }
    let host = TensorView(name: name, dtype: dtype, shape: shape, data: data.baseAddress, byteCount: need, file: "<host memory>")
    let loaded = model.checkpoint.store.byName[name]
    if let loaded, loaded.dtype == dtype, loaded.shape == shape {
      owned.put(name, dtype: dtype, shape: shape, try WeightConversion.copy(host))
    } else if name.hasSuffix(".weight"), let target = table.byName[String(name.dropLast(7))] {
      guard dtype.isFloatWeight else {
        throw .badFormat("tensor \(name) is \(dtype.name): a Linear weight update is F32, BF16 or F16 (or the module's own quantized tensors)")
      }
      guard shape == [target.outFeatures, target.inFeatures] else {
        throw .badFormat("tensor \(name) has shape \(shapeString(shape)), the model's module is \(shapeString([target.outFeatures, target.inFeatures]))")
      }
      try WeightConversion.linear(Linear(weight: host), like: target, module: String(name.dropLast(7)), into: owned)
    } else if let loaded {
      if let m = table.moduleOf[name] {
        throw .badFormat("tensor \(name) is \(dtype.name) \(shapeString(shape)); the model holds it as \(loaded.dtype.name) \(shapeString(loaded.shape)) (to convert, send \(m).weight in float)")
      }
      try WeightConversion.tensor(host, like: loaded, into: owned)
    } else {
      throw .invalidArgument("the model has no tensor \(name)")
    }
    tensorsAdded += 1
  }

  /// Install every staged tensor as weight version `version` (checked as a load checks; on
  /// failure nothing changes). The update is spent either way.
  public func commit(version: String) throws(GLM5Error) {
    try checkVersion(version)
    guard !owned.isEmpty else { throw .invalidArgument("the update holds no tensor") }
    try model.updating.withLock { (_) throws(GLM5Error) in try model.installOverlay(owned, version: version) }
  }
}

extension Session {
  /// Recompute the caches (and hidden rows, and record) of every token with the current weights,
  /// as a new session appending the same tokens would. On failure the session is unchanged.
  public func recompute() throws(GLM5Error) {
    guard count > 0 else { return }
    let fresh = try Session(model: model, maxTokens: maxTokens, recordBytes: record?.maxBytes)
    try fresh.append(tokens, logits: .none)
    try record?.reserve(fresh.count)  // everything that can fail, before anything changes
    try cache.copy(from: fresh.cache)
    if let record, let r = fresh.record { try record.copy(from: r) }
    hidden.pointer.update(from: fresh.hidden.pointer, count: fresh.hiddenRows * hiddenSize)
    hiddenRows = fresh.hiddenRows
    kept = nil; keptRows = 0
  }
}
