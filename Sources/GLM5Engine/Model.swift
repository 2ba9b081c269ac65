// A loaded model as the engine sees it: its weights as a versioned snapshot (replaced whole by a
// weight update, WeightUpdate.swift), the threads to run it with, its end-of-sequence ids, and a
// pool of step arenas reused by every call on the model.

import GLM5Core
import GLM5Model
import GLM5Tokenizer
import Synchronization

/// The weights a call runs on: a checked checkpoint, the transformer over it, and the version a
/// host gave it. Immutable; a call takes the current one when it starts and keeps it to the end.
public final class WeightSnapshot: @unchecked Sendable {
  public let checkpoint: Checkpoint
  public let transformer: Transformer
  /// The caller-set weight version ("default" at load, as SGLang's initial weight_version).
  public let version: String
  /// Updates applied before this snapshot (0 at load).
  public let epoch: Int

  init(checkpoint: Checkpoint, version: String, epoch: Int) {
    self.checkpoint = checkpoint
    transformer = Transformer(checkpoint: checkpoint)
    self.version = version
    self.epoch = epoch
  }
}

public final class Model: @unchecked Sendable {
  public let pool: ThreadPool
  /// The snapshot new calls run on.
  private let current: Mutex<WeightSnapshot>
  /// Serialises weight updates (each builds on the snapshot before it).
  let updating = Mutex<Void>(())
  /// The configuration every snapshot shares (updates keep it).
  public let config: ModelConfig
  /// generation_config.json's eos_token_id when that file has one, else config.json's.
  public let eosTokenIds: [Int32]
  /// The folder's tokenizer, loaded at its first use (Model+Tokenizer.swift).
  let tokenizerState = Mutex<Result<Tokenizer?, GLM5Error>?>(nil)
  /// Arenas not in use by a call (each call takes one and gives it back).
  private let idleArenas = Mutex<[ScratchArena]>([])
  /// Arenas above this size are freed after their call instead of kept.
  static let keptArenaBytes = 256 << 20

  /// The weights in force now (a call should take this once and use it throughout).
  public var weights: WeightSnapshot { current.withLock { $0 } }
  public var checkpoint: Checkpoint { weights.checkpoint }
  public var transformer: Transformer { weights.transformer }
  public var weightVersion: String { weights.version }

  /// Make `s` the snapshot of calls that start from now on.
  func install(_ s: WeightSnapshot) { current.withLock { $0 = s } }

  /// - Parameter threads: compute threads; 0 means one per available CPU.
  public convenience init(path: String, threads: Int = 0) throws(GLM5Error) {
    guard threads >= 0 && threads <= 1024 else {
      throw .invalidArgument("n_threads is \(threads), must be in [0, 1024]")
    }
    try self.init(checkpoint: try Checkpoint(folder: path), threads: threads)
  }

  /// A model over an already-opened checkpoint (e.g. a synthetic one for benchmarks).
  public init(checkpoint: Checkpoint, threads: Int = 0) throws(GLM5Error) {
    guard threads >= 0 && threads <= 1024 else {
      throw .invalidArgument("n_threads is \(threads), must be in [0, 1024]")
    }
    current = Mutex(WeightSnapshot(checkpoint: checkpoint, version: "default", epoch: 0))
    config = checkpoint.config
    pool = ThreadPool(threads: threads == 0 ? ThreadPool.availableCPUs : threads)
    var eos = checkpoint.config.eosTokenIds
    let gen = joinPath(checkpoint.path, "generation_config.json")
    if fileKind(gen) == .file, let ids = try Model.generationEOS(try readTextFile(gen), path: gen) { eos = ids }
    let vocab = checkpoint.config.vocabSize
    for id in eos where id < 0 || id >= vocab {
      throw .badFormat("\(checkpoint.path): eos_token_id \(id) is outside the vocabulary [0, \(vocab))")
    }
    eosTokenIds = eos.map { Int32($0) }
  }

  /// generation_config.json's eos_token_id (an integer or a list of integers), nil when the file
  /// has none; `path` names the file in messages.
  public static func generationEOS(_ bytes: [UInt8], path: String) throws(GLM5Error) -> [Int]? {
    let json: JSON
    do { json = try withBytes(bytes) { (b) throws(GLM5Error) -> JSON in try JSON.parse(b) } } catch {
      throw .badFormat("\(path): \(error.message)")
    }
    guard let v = json["eos_token_id"], !v.isNull else { return nil }
    if let i = v.int { return [i] }
    if let a = v.array, a.allSatisfy({ $0.int != nil }) { return a.map { $0.int! } }
    throw .badFormat("\(path): eos_token_id is \(v.kind), expected an integer or a list of integers")
  }

  /// Bytes of step scratch the model holds between calls (reused by the next call).
  public var idleScratchBytes: Int { idleArenas.withLock { $0.reduce(0) { $0 + $1.capacity } } }

  /// Run body with an arena of at least `bytes` (reserved before body runs; out of memory is
  /// thrown before anything changes).
  func withArena<R>(bytes: Int, _ body: (ScratchArena) throws(GLM5Error) -> R) throws(GLM5Error) -> R {
    let arena = idleArenas.withLock { $0.popLast() } ?? ScratchArena()
    defer {
      if arena.capacity <= Model.keptArenaBytes { idleArenas.withLock { $0.append(arena) } }
    }
    try arena.reserve(bytes, what: "step scratch")
    return try body(arena)
  }
}
