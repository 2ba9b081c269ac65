// A reusable scratch region for one forward step (llama2.c's RunState, grown instead of fixed):
// the step's plan is measured first, the region grown once (fallibly, before anything changes),
// then carved into the step's buffers with a bump pointer. Nothing on the hot path allocates.

#if canImport(Glibc)
import Glibc
#endif

public final class ScratchArena: @unchecked Sendable {
  public private(set) var base: UnsafeMutableRawPointer? = nil
  public private(set) var capacity: Int = 0

  public init() {}

  /// Make room for `bytes` (contents are not kept). Fails with out-of-memory, leaving the old
  /// region in place.
  public func reserve(_ bytes: Int, what: @autoclosure () -> String = "scratch") throws(GLM5Error) {
    guard bytes > capacity else { return }
    var p: UnsafeMutableRawPointer? = nil
    guard bytes < Int.max / 2, posix_memalign(&p, 64, bytes) == 0, let p else {
      throw .outOfMemory("cannot allocate \(bytes) bytes of \(what())")
    }
    guard MemoryHeadroom.available() else {
      free(p)
      throw .outOfMemory("\(bytes) bytes of \(what()) leave less than \(MemoryHeadroom.bytes >> 20) MiB free")
    }
    free(base)
    base = p
    capacity = bytes
  }

  /// Give the memory back (the arena stays usable).
  public func release() {
    free(base)
    base = nil
    capacity = 0
  }

  deinit { free(base) }
}

/// Bump allocation over an arena. With `base` nil it only measures: the pointers it returns must
/// not be used (a plan is carved twice, once to measure and once for real).
public struct Carver {
  public let base: UnsafeMutableRawPointer?
  public let limit: Int
  public private(set) var used = 0

  public static func measuring() -> Carver { Carver(base: nil, limit: .max) }
  public init(arena: ScratchArena) { self.init(base: arena.base, limit: arena.capacity) }
  /// Over `limit` bytes at `base` (a kernel call's KernelScratch region).
  public init(base: UnsafeMutableRawPointer?, limit: Int) { self.base = base; self.limit = limit }

  /// n elements of T, 64-byte aligned. In measuring mode the pointer is a placeholder.
  public mutating func take<T>(_ n: Int, _: T.Type) -> UnsafeMutablePointer<T> {
    let start = (used + 63) & ~63
    used = start + max(n, 1) * MemoryLayout<T>.stride
    guard let base else { return UnsafeMutablePointer(bitPattern: 64)! }
    precondition(used <= limit, "scratch plan carved past its measured size")
    return (base + start).bindMemory(to: T.self, capacity: max(n, 1))
  }
  public mutating func floats(_ n: Int) -> UnsafeMutablePointer<Float> { take(n, Float.self) }
  public mutating func ints(_ n: Int) -> UnsafeMutablePointer<Int32> { take(n, Int32.self) }
}
