// A loaded model as the engine sees it: the checked checkpoint and the threads to run it with.

import GLM5Core
import GLM5Model

public final class Model: @unchecked Sendable {
  public let checkpoint: Checkpoint
  public let pool: ThreadPool
  public let transformer: Transformer

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
  }
}
