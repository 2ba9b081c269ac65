// A checkpoint folder opened and checked: configuration, mapped tensors, bound weights.

import GLM5Core

/// A checksum of the bytes the last `prefault()` read: public so that the reads cannot be
/// optimised away (a private write-only sink was, and the loop with it).
nonisolated(unsafe) public var prefaultChecksum: UInt8 = 0

public final class Checkpoint: @unchecked Sendable {
  public let path: String
  public let config: ModelConfig
  public let store: TensorStore
  public let weights: ModelWeights
  /// The quantized format declared by config.json, if any.
  public let quant: QuantScheme?
  /// Every Linear module name, in table order, with whether the INT4 quantizer may convert it.
  public let linearModules: [(name: String, quantizable: Bool, linear: Linear)]
  /// Keeps memory alive that the tensors point into (synthetic checkpoints).
  private var owned: [AnyObject] = []
  func retain(_ o: AnyObject) { owned.append(o) }

  /// Open a Hugging Face model folder (config.json + safetensors).
  public init(folder: String) throws(GLM5Error) {
    switch fileKind(folder) {
    case .missing: throw .io("\(folder): no such file or folder")
    case .file: throw .io("\(folder) is a file; expected a model folder holding config.json and safetensors weights")
    case .directory: break
    }
    path = folder
    let configPath = joinPath(folder, "config.json")
    guard fileKind(configPath) == .file else { throw .io("\(folder) has no config.json") }
    let bytes = try readTextFile(configPath)
    let json: JSON
    do { json = try withBytes(bytes) { (b) throws(GLM5Error) -> JSON in try JSON.parse(b) } } catch {
      throw .badFormat("\(configPath): \(error.message)")
    }
    config = try ModelConfig(json: json, source: configPath)
    quant = try config.quantization.map { (q) throws(GLM5Error) -> QuantScheme in try QuantScheme.parse(q, source: configPath) }
    let store = try TensorStore(folder: folder)
    self.store = store
    // Bind with random-access advice (MappedFile.advise): only the touched pages are read.
    for f in store.files { f.mapping.advise(random: true) }
    defer { for f in store.files { f.mapping.advise(random: false) } }
    var binder = WeightBinder(store: store, config: config, quant: quant)
    weights = try binder.model()
    linearModules = binder.linearModules
  }

  /// `base` with its tensors taken from `store` (a weight update's overlay): the same folder,
  /// configuration and quantization scheme, every tensor checked again as at load.
  public init(updating base: Checkpoint, store: TensorStore) throws(GLM5Error) {
    path = base.path
    config = base.config
    quant = base.quant
    self.store = store
    var binder = WeightBinder(store: store, config: config, quant: quant)
    weights = try binder.model()
    linearModules = binder.linearModules
    owned = base.owned
  }

  /// A checkpoint over an already-built store (synthetic models for benchmarks).
  public init(config: ModelConfig, store: TensorStore, path: String) throws(GLM5Error) {
    self.path = path
    self.config = config
    self.store = store
    quant = nil
    var binder = WeightBinder(store: store, config: config)
    weights = try binder.model()
    linearModules = binder.linearModules
  }

  /// Bit mask over `DType` raw values of the dtypes present.
  public var dtypeMask: UInt32 {
    var m: UInt32 = 0
    for t in store.byName.values { m |= 1 << UInt32(t.dtype.rawValue) }
    return m
  }

  /// Read every weight page once, so that the whole checkpoint is resident before it is used
  /// (benchmarks; hosts that prefer a slow load to a slow first token). Returns the bytes touched.
  /// `progress(done, total)` (bytes), when given, is called after every 64 MiB and at the end
  /// (a loading bar; it changes nothing else).
  @discardableResult
  public func prefault(progress: ((_ done: Int, _ total: Int) -> Void)? = nil) -> Int {
    var sum: UInt8 = 0
    var n = 0
    let total = store.files.reduce(0) { $0 + $1.mapping.bytes.count }
    let every = 64 << 20
    for f in store.files {
      guard let base = f.mapping.bytes.baseAddress else { continue }
      var i = 0
      while i < f.mapping.bytes.count {
        sum &+= base.load(fromByteOffset: i, as: UInt8.self)
        i += 4096
        if let progress, i % every == 0 { progress(n + i, total) }
      }
      n += f.mapping.bytes.count
    }
    prefaultChecksum = sum
    progress?(n, total)
    return n
  }

  /// Bit mask of glm5_weight_format over the Linear weights: 1 float, 2 FP8 blocks, 4 INT4 groups.
  public var formatMask: UInt32 {
    var m: UInt32 = 0
    for l in linearModules {
      switch l.linear.format {
      case .float: m |= 1
      case .fp8Block: m |= 2
      case .int4Group: m |= 4
      }
    }
    return m
  }

  public var parameterCount: Int { store.byName.values.reduce(0) { $0 + $1.count } }
  public var tensorBytes: Int { store.byName.values.reduce(0) { $0 + $1.byteCount } }
}
