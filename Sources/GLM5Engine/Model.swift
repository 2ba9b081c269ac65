// A loaded model as the engine sees it: the checked checkpoint and the threads to run it with.

import GLM5Core
import GLM5Model

public final class Model: @unchecked Sendable {
  public let checkpoint: Checkpoint
  public let pool: ThreadPool
  public let transformer: Transformer

  public var config: ModelConfig { checkpoint.config }

  /// - Parameter threads: compute threads; 0 means one per available CPU.
  public init(path: String, threads: Int = 0) throws(GLM5Error) {
    guard threads >= 0 && threads <= 1024 else {
      throw .invalidArgument("n_threads is \(threads), must be in [0, 1024]")
    }
    checkpoint = try Checkpoint(folder: path)
    pool = ThreadPool(threads: threads == 0 ? ThreadPool.availableCPUs : threads)
    transformer = Transformer(checkpoint: checkpoint)
  }
}
