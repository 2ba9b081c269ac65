// Room kept free for the small allocations a call makes. The Swift runtime aborts the process
// when any allocation fails (a string, an array, an object), so a library that must report out
// of memory as a status keeps the process away from the edge: every C API call starts only if
// `bytes` more could be allocated now, and every large fallible allocation (caches, arenas,
// records, mapped files) succeeds only if that room is still there afterwards. Otherwise the
// call fails with GLM5_ERR_OUT_OF_MEMORY before it changes anything.
//
// The probe maps `bytes` of address space (PROT_NONE, nothing reserved or touched) and unmaps it:
// two system calls, no effect on malloc's state (a malloc/free probe of this size would raise
// glibc's mmap and trim thresholds for the whole host process), and the optimizer cannot remove
// it (it may assume a malloc that is only freed succeeded).

#if canImport(Glibc)
import Glibc
#endif

public enum MemoryHeadroom {
  /// 8 MiB: far more than the small allocations of one call; glibc's malloc also extends its
  /// heap by mmap in steps of at least 1 MiB once brk is refused.
  public static let bytes = 8 << 20

  /// Whether `bytes` more could be allocated now.
  public static func available() -> Bool {
    guard let p = mmap(nil, bytes, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0), p != MAP_FAILED else { return false }
    munmap(p, bytes)
    return true
  }
}
