// Sequential file writing (the quantizer streams tensors out one at a time).

#if canImport(Glibc)
import Glibc
#endif

public final class FileWriter {
  public let path: String
  private var fd: Int32
  public private(set) var bytesWritten = 0

  /// Create or truncate `path`.
  public init(path: String) throws(GLM5Error) {
    self.path = path
    fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
    if fd < 0 { throw .io("cannot create \(path): \(errnoText())") }
  }

  public func write(_ p: UnsafeRawPointer, _ count: Int) throws(GLM5Error) {
    var done = 0
    while done < count {
      let n = Glibc.write(fd, p + done, count - done)
      if n < 0 {
        if errno == EINTR { continue }
        throw .io("cannot write \(path): \(errnoText())")
      }
      done += n
    }
    bytesWritten += count
  }

  public func write(_ bytes: [UInt8]) throws(GLM5Error) {
    let r: Result<Void, GLM5Error> = bytes.withUnsafeBytes { b in
      Result { () throws(GLM5Error) in if let base = b.baseAddress { try self.write(base, b.count) } }
    }
    try r.get()
  }

  public func write(_ s: String) throws(GLM5Error) { try write(Array(s.utf8)) }

  public func close() throws(GLM5Error) {
    guard fd >= 0 else { return }
    let r = Glibc.close(fd)
    fd = -1
    if r != 0 { throw .io("cannot close \(path): \(errnoText())") }
  }

  deinit { if fd >= 0 { _ = Glibc.close(fd) } }
}

/// mkdir -p for one level (the parent must exist).
public func makeDirectory(_ path: String) throws(GLM5Error) {
  if fileKind(path) == .directory { return }
  if mkdir(path, 0o755) != 0 { throw .io("cannot create folder \(path): \(errnoText())") }
}
