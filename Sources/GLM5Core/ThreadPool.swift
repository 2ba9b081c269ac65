// Work splitting over Dispatch. OpenBLAS is kept at one thread (toolchain.md §1: its idle
// workers spin and steal the second core), and parallelism is ours, at this one place.

import CBLAS
import Dispatch

public struct ThreadPool: Sendable {
  /// Number of workers (>= 1).
  public let threads: Int

  public init(threads: Int) {
    self.threads = max(1, threads)
    ThreadPool.pinBLASToOneThread()
  }

  /// CPUs available to this process.
  public static var availableCPUs: Int {
    #if canImport(Glibc)
    return max(1, Int(sysconf(Int32(_SC_NPROCESSORS_ONLN))))
    #else
    return 1
    #endif
  }

  private static let blasOnce: Void = { openblas_set_num_threads(1) }()
  public static func pinBLASToOneThread() { _ = blasOnce }

  /// Run `body(chunk)` for chunk in 0..<chunks on up to `threads` workers. The split of work into
  /// chunks must be chosen by the caller independently of `threads` when results must not depend
  /// on the thread count (each chunk writes disjoint outputs).
  public func parallelFor(_ chunks: Int, _ body: (Int) -> Void) {
    if chunks <= 0 { return }
    if threads == 1 || chunks == 1 {
      FloatEnvironment.standard { for c in 0..<chunks { body(c) } }
      return
    }
    let workers = min(threads, chunks)
    withoutActuallyEscaping(body) { body in
      // The caller guarantees chunks write disjoint memory; Dispatch only needs to run them.
      nonisolated(unsafe) let work = body
      DispatchQueue.concurrentPerform(iterations: workers) { w in
        FloatEnvironment.standard {
          var c = w
          while c < chunks {
            work(c)
            c += workers
          }
        }
      }
    }
  }
}

#if canImport(Glibc)
import Glibc
#endif

extension ThreadPool {
  /// One thread, for work already inside a parallel region.
  public static let serial = ThreadPool(threads: 1)
}
