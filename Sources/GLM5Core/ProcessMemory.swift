// The process's resident memory, from /proc/self/status (Linux): what benchmarks print and the
// memory test measures.

#if canImport(Glibc)
import Glibc
#endif

public enum ProcessMemory {
  /// VmRSS: bytes resident now (anonymous + file-backed pages, mapped weights included).
  public static var residentBytes: Int { field("VmRSS:") }
  /// RssAnon: resident anonymous memory (heap, caches, activations, any copied weights).
  public static var residentAnonymousBytes: Int { field("RssAnon:") }
  /// RssFile: resident file-backed pages (the memory-mapped weights).
  public static var residentFileBytes: Int { field("RssFile:") }
  /// VmHWM: the peak of VmRSS so far.
  public static var peakResidentBytes: Int { field("VmHWM:") }

  static func field(_ key: String) -> Int {
    // procfs files report size 0, so they are read, not mapped.
    let fd = open("/proc/self/status", O_RDONLY | O_CLOEXEC)
    guard fd >= 0 else { return 0 }
    defer { close(fd) }
    var bytes = [UInt8]()
    var buf = [UInt8](repeating: 0, count: 4096)
    while true {
      let n = buf.withUnsafeMutableBytes { read(fd, $0.baseAddress, 4096) }
      if n <= 0 { break }
      bytes += buf[0..<n]
    }
    let text = String(decoding: bytes, as: UTF8.self)
    for line in text.split(separator: "\n") where line.hasPrefix(key) {
      let digits = line.dropFirst(key.count).filter { $0.isNumber }
      return (Int(String(digits)) ?? 0) * 1024  // the kernel reports kB
    }
    return 0
  }
}
