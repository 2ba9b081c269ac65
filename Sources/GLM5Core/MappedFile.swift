// A read-only memory-mapped file. One of the few places with raw pointers: weights are read
// straight from the mapping, never copied (a 750 B-parameter checkpoint does not fit twice).

#if canImport(Glibc)
import Glibc
#endif

public final class MappedFile: @unchecked Sendable {
  public let path: String
  /// The mapped bytes; `count` is the file size. Valid while this object lives.
  public let bytes: UnsafeRawBufferPointer

  public init(path: String) throws(GLM5Error) {
    self.path = path
    // O_NONBLOCK: opening a FIFO must not wait for a writer; only regular files are mapped.
    let fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK)
    if fd < 0 { throw .io("cannot open \(path): \(errnoText())") }
    defer { close(fd) }
    var st = stat()
    if fstat(fd, &st) != 0 { throw .io("cannot stat \(path): \(errnoText())") }
    if (st.st_mode & S_IFMT) == S_IFDIR { throw .io("\(path) is a folder, not a file") }
    if (st.st_mode & S_IFMT) != S_IFREG { throw .io("\(path) is not a regular file") }
    let size = Int(st.st_size)
    if size == 0 {
      bytes = UnsafeRawBufferPointer(start: nil, count: 0)
      return
    }
    let p = mmap(nil, size, PROT_READ, MAP_PRIVATE, fd, 0)
    if p == MAP_FAILED || p == nil {
      // ENOMEM: no address space left (an rlimit, a full 32-bit space): out of memory, not I/O.
      let e = errno
      throw GLM5Error(e == ENOMEM ? .outOfMemory : .io, "cannot map \(path) (\(size) bytes): \(errnoText())")
    }
    guard MemoryHeadroom.available() else {
      munmap(p, size)
      throw .outOfMemory("mapping \(path) (\(size) bytes) leaves less than \(MemoryHeadroom.bytes >> 20) MiB of address space")
    }
    bytes = UnsafeRawBufferPointer(start: p, count: size)
  }

  deinit {
    if let base = bytes.baseAddress { munmap(UnsafeMutableRawPointer(mutating: base), bytes.count) }
  }

  /// Access-pattern advice for the whole mapping (a hint; failures are ignored). `random`: a page
  /// fault reads its own page only. Binding a checkpoint touches a few bytes of most tensors
  /// (shape tensors, every scale), scattered through the files; with the default readahead
  /// window (8 MiB on some disks) each of those touches read megabytes of the weights around it,
  /// so a cold load read ~93% of an INT4 checkpoint. The loader binds under `random` and
  /// restores the default (MADV_NORMAL) for inference, whose reads run along tensors.
  /// Ask the kernel to read `count` bytes at `p` (inside a mapping) ahead, in large I/Os
  /// (MADV_WILLNEED; a hint, asynchronous): what the loader is about to scan under `random`.
  public static func willNeed(_ p: UnsafeRawPointer, count: Int) {
    let page = Int(sysconf(Int32(_SC_PAGESIZE)))
    let start = Int(bitPattern: p) & ~(page - 1), end = Int(bitPattern: p) + count
    guard end > start, let base = UnsafeMutableRawPointer(bitPattern: start) else { return }
    _ = madvise(base, end - start, Int32(MADV_WILLNEED))
  }

  public func advise(random: Bool) {
    guard let base = bytes.baseAddress, bytes.count > 0 else { return }
    _ = madvise(UnsafeMutableRawPointer(mutating: base), bytes.count, random ? Int32(MADV_RANDOM) : Int32(MADV_NORMAL))
  }
}

/// The text of the current errno.
public func errnoText() -> String {
  if let s = strerror(errno) { return String(cString: s) }
  return "errno \(errno)"
}

/// Whole-file read into memory (small text files such as config.json).
public func readTextFile(_ path: String) throws(GLM5Error) -> [UInt8] {
  let f = try MappedFile(path: path)
  return Array(f.bytes)
}

public enum FileKind { case missing, file, directory }

public func fileKind(_ path: String) -> FileKind {
  var st = stat()
  if stat(path, &st) != 0 { return .missing }
  return (st.st_mode & S_IFMT) == S_IFDIR ? .directory : .file
}

/// `a/b` joined with one slash.
public func joinPath(_ a: String, _ b: String) -> String {
  if a.isEmpty { return b }
  return a.hasSuffix("/") ? a + b : a + "/" + b
}

/// The names in a folder (not "." or ".."), sorted.
public func listDirectory(_ path: String) throws(GLM5Error) -> [String] {
  guard let d = opendir(path) else { throw .io("cannot open folder \(path): \(errnoText())") }
  defer { closedir(d) }
  var names: [String] = []
  while let e = readdir(d) {
    let name = withUnsafeBytes(of: e.pointee.d_name) { raw in String(cString: raw.bindMemory(to: CChar.self).baseAddress!) }
    if name != "." && name != ".." { names.append(name) }
  }
  return names.sorted()
}
