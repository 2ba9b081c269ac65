// The floating-point environment every computation runs in: round to nearest, subnormals kept
// (no flush-to-zero, no denormals-are-zero). A host may have changed its threads' MXCSR (audio
// and ML code often sets FTZ/DAZ); the FP8 kernels rely on subnormal lanes, any activation may
// be subnormal, and every result is specified bitwise, so each API call and each worker chunk runs in this environment
// and restores the caller's afterwards.

#if canImport(Glibc)
import Glibc
#endif

public enum FloatEnvironment {
  /// MXCSR bits that must be clear: FTZ (15), rounding control (13-14), DAZ (6).
  static let clearMask: UInt32 = 0x8000 | 0x6000 | 0x0040

  /// Run `body` with the standard environment on this thread.
  @inline(__always)
  public static func standard<R, E: Error>(_ body: () throws(E) -> R) throws(E) -> R {
    #if arch(x86_64) && canImport(Glibc)
    var saved = fenv_t()
    fegetenv(&saved)
    if saved.__mxcsr & clearMask == 0 { return try body() }
    var env = saved
    env.__mxcsr &= ~clearMask
    fesetenv(&env)
    defer { fesetenv(&saved) }
    return try body()
    #else
    return try body()
    #endif
  }
}
