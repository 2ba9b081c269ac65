// Whether this test process runs under a sanitizer (`swift test --sanitize=…`, `make sanitize`):
// the sanitizer's runtime is linked into the test executable and exports its entry point.

#if canImport(Glibc)
import Glibc
#endif

enum Sanitizer {
  /// AddressSanitizer: its allocator keeps freed blocks in a quarantine and its shadow memory is
  /// anonymous memory, so tests that measure the process's resident memory do not apply.
  static let address = exported("__asan_init")
  /// ThreadSanitizer.
  static let thread = exported("__tsan_init")

  private static func exported(_ symbol: String) -> Bool {
    dlsym(UnsafeMutableRawPointer(bitPattern: 0), symbol) != nil  // RTLD_DEFAULT
  }
}
