// Scratch for a kernel call's temporaries (permuted x, decoded weight rows, parked tile totals):
// one region per OS thread, grown when a call needs more and kept for the thread's life (as
// OpenBLAS keeps its per-thread buffers), so that after the first steps no kernel call
// allocates. Growth is fallible: `take` returns nil, and the caller then runs its scratch-free
// path, which gives the same bits (every kernel path is row-invariant) more slowly. Nothing
// traps and nothing reports an error for want of kernel scratch.
//
// Only the entry point of a kernel call takes (Kernels.linear, Kernels.linearTransposed), on the
// thread that called it, and hands pointers into the region to its workers; a worker never takes
// while running a chunk for a caller that holds a region, so one thread's region is never used
// by two calls at once. The region stays valid until the same thread's next take.

#if canImport(Glibc)
import Glibc
#endif

public enum KernelScratch {
  /// Largest region a call may use, in bytes. Tests lower it to run the scratch-free paths
  /// (their results must not change); a host never needs to.
  nonisolated(unsafe) public static var limit = Int.max

  struct Slot {
    var base: UnsafeMutableRawPointer?
    var capacity: Int
  }

  /// One Slot per thread, freed with it.
  private static let key: pthread_key_t = {
    var k = pthread_key_t()
    pthread_key_create(&k) { p in
      guard let p else { return }
      free(p.assumingMemoryBound(to: Slot.self).pointee.base)
      free(p)
    }
    return k
  }()

  /// The calling thread's region of at least `bytes` (64-byte aligned, contents not kept), or nil
  /// when `bytes` exceeds `limit` or the region cannot grow (then the old region is kept).
  public static func take(_ bytes: Int) -> UnsafeMutableRawPointer? {
    guard bytes >= 0, bytes <= limit, bytes < Int.max / 4 else { return nil }
    let slot: UnsafeMutablePointer<Slot>
    if let p = pthread_getspecific(key) {
      slot = p.assumingMemoryBound(to: Slot.self)
    } else {
      guard let p = malloc(MemoryLayout<Slot>.stride) else { return nil }
      slot = p.bindMemory(to: Slot.self, capacity: 1)
      slot.initialize(to: Slot(base: nil, capacity: 0))
      guard pthread_setspecific(key, p) == 0 else { free(p); return nil }
    }
    if slot.pointee.capacity >= max(bytes, 1) { return slot.pointee.base }
    // Grow by at least half again, in whole pages, so that a few growing calls settle quickly.
    let want = (max(bytes, slot.pointee.capacity + slot.pointee.capacity / 2, 64 << 10) + 4095) & ~4095
    var p: UnsafeMutableRawPointer? = nil
    guard posix_memalign(&p, 64, want) == 0, let p else { return nil }
    // Keep the room the C API's calls rely on (MemoryHeadroom.swift).
    guard MemoryHeadroom.available() else { free(p); return nil }
    free(slot.pointee.base)
    slot.pointee = Slot(base: p, capacity: want)
    return p
  }

  /// Bytes the calling thread holds.
  public static var threadBytes: Int {
    pthread_getspecific(key).map { $0.assumingMemoryBound(to: Slot.self).pointee.capacity } ?? 0
  }

  /// Run body with `limit` set to `bytes` (tests).
  public static func withLimit<R>(_ bytes: Int, _ body: () throws -> R) rethrows -> R {
    let old = limit
    limit = bytes
    defer { limit = old }
    return try body()
  }
}
