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
  struct Slot {
    var base: UnsafeMutableRawPointer?
    var capacity: Int
    /// Largest region a call on this thread may take (withLimit).
    var limit: Int
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
  /// when `bytes` exceeds the thread's limit (withLimit) or the region cannot grow (then the old region is kept).
  public static func take(_ bytes: Int) -> UnsafeMutableRawPointer? {
    guard bytes >= 0, bytes < Int.max / 4, let slot = threadSlot(), bytes <= slot.pointee.limit else { return nil }
    if slot.pointee.capacity >= max(bytes, 1) { return slot.pointee.base }
    // Grow by at least half again, in whole pages, so that a few growing calls settle quickly.
    let want = (max(bytes, slot.pointee.capacity + slot.pointee.capacity / 2, 64 << 10) + 4095) & ~4095
    var p: UnsafeMutableRawPointer? = nil
    guard posix_memalign(&p, 64, want) == 0, let p else { return nil }
    // Keep the room the C API's calls rely on (MemoryHeadroom.swift).
    guard MemoryHeadroom.available() else { free(p); return nil }
    free(slot.pointee.base)
    slot.pointee.base = p
    slot.pointee.capacity = want
    return p
  }

  /// The calling thread's slot, made on first use (nil when that fails).
  private static func threadSlot() -> UnsafeMutablePointer<Slot>? {
    if let p = pthread_getspecific(key) { return p.assumingMemoryBound(to: Slot.self) }
    guard let p = malloc(MemoryLayout<Slot>.stride) else { return nil }
    let slot = p.bindMemory(to: Slot.self, capacity: 1)
    slot.initialize(to: Slot(base: nil, capacity: 0, limit: Int.max))
    guard pthread_setspecific(key, p) == 0 else { free(p); return nil }
    return slot
  }

  /// Bytes the calling thread holds.
  public static var threadBytes: Int {
    pthread_getspecific(key).map { $0.assumingMemoryBound(to: Slot.self).pointee.capacity } ?? 0
  }

  /// Run body with the calling thread's takes limited to `bytes` (tests: the scratch-free paths,
  /// whose results must not change; a host never needs to). Per thread, so that tests running
  /// side by side do not limit each other; a call's entry point takes on the calling thread.
  public static func withLimit<R>(_ bytes: Int, _ body: () throws -> R) rethrows -> R {
    guard let slot = threadSlot() else { return try body() }
    let old = slot.pointee.limit
    slot.pointee.limit = bytes
    defer { slot.pointee.limit = old }
    return try body()
  }
}
