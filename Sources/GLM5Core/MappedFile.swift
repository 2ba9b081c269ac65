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
    if p == MAP_FAILED || p == nil { throw .io("cannot map \(path) (\(size) bytes): \(errnoText())") }
    bytes = UnsafeRawBufferPointer(start: p, count: size)
  }

  deinit {
    if let base = bytes.baseAddress { munmap(UnsafeMutableRawPointer(mutating: base), bytes.count) }
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
