// A loaded model as the engine sees it: the checked checkpoint, the threads to run it with, its
// end-of-sequence ids, and a pool of step arenas reused by every call on the model.

import GLM5Core
import GLM5Model
import Synchronization

public final class Model: @unchecked Sendable {
  public let checkpoint: Checkpoint
  public let pool: ThreadPool
  public let transformer: Transformer
  /// generation_config.json's eos_token_id when that file has one, else config.json's.
  public let eosTokenIds: [Int32]
  /// Arenas not in use by a call (each call takes one and gives it back).
  private let idleArenas = Mutex<[ScratchArena]>([])
  /// Arenas above this size are freed after their call instead of kept.
  static let keptArenaBytes = 256 << 20

  public var config: ModelConfig { checkpoint.config }

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
    self.checkpoint = checkpoint
    pool = ThreadPool(threads: threads == 0 ? ThreadPool.availableCPUs : threads)
    transformer = Transformer(checkpoint: checkpoint)
    var eos = checkpoint.config.eosTokenIds
    let gen = joinPath(checkpoint.path, "generation_config.json")
    if fileKind(gen) == .file {
      let bytes = try readTextFile(gen)
      let json: JSON
      do { json = try withBytes(bytes) { (b) throws(GLM5Error) -> JSON in try JSON.parse(b) } } catch {
        throw .badFormat("\(gen): \(error.message)")
      }
      if let v = json["eos_token_id"], !v.isNull {
        if let i = v.int { eos = [i] } else if let a = v.array, a.allSatisfy({ $0.int != nil }) { eos = a.map { $0.int! } } else {
          throw .badFormat("\(gen): eos_token_id is \(v.kind), expected an integer or a list of integers")
        }
      }
    }
    let vocab = checkpoint.config.vocabSize
    for id in eos where id < 0 || id >= vocab {
      throw .badFormat("\(checkpoint.path): eos_token_id \(id) is outside the vocabulary [0, \(vocab))")
    }
    eosTokenIds = eos.map { Int32($0) }
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
