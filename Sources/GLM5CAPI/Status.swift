// The one place where Swift errors become `glm5_status` values and the thread's last-error text.

import CGLM5
import GLM5Core
#if canImport(Glibc)
import Glibc
#endif

/// Turn a library pointer for a static string into the C type.
func cString(_ s: StaticString) -> UnsafePointer<CChar> {
  UnsafeRawPointer(s.utf8Start).assumingMemoryBound(to: CChar.self)
}

// MARK: - Thread-local last error

/// One heap buffer per thread, owned by a pthread key whose destructor frees it.
private let lastErrorKey: pthread_key_t = {
  var key = pthread_key_t()
  _ = pthread_key_create(&key) { p in free(p) }
  return key
}()

private let emptyMessage: StaticString = ""

func setLastError(_ message: String) {
  let bytes = Array(message.utf8)
  guard let buf = malloc(bytes.count + 1)?.assumingMemoryBound(to: UInt8.self) else { return }
  bytes.withUnsafeBufferPointer { src in
    if let b = src.baseAddress { buf.update(from: b, count: bytes.count) }
  }
  buf[bytes.count] = 0
  if let old = pthread_getspecific(lastErrorKey) { free(old) }
  _ = pthread_setspecific(lastErrorKey, buf)
}

/// setLastError for a static message, with malloc only (no Swift allocation).
func setLastError(static message: StaticString) {
  let n = message.utf8CodeUnitCount
  guard let buf = malloc(n + 1)?.assumingMemoryBound(to: UInt8.self) else { return }
  buf.update(from: message.utf8Start, count: n)
  buf[n] = 0
  if let old = pthread_getspecific(lastErrorKey) { free(old) }
  _ = pthread_setspecific(lastErrorKey, buf)
}

func lastErrorPointer() -> UnsafePointer<CChar> {
  if let p = pthread_getspecific(lastErrorKey) { return UnsafePointer(p.assumingMemoryBound(to: CChar.self)) }
  return cString(emptyMessage)
}

func cStatus(_ s: Status) -> glm5_status { glm5_status(rawValue: UInt32(s.rawValue)) }

/// Run `body`; on error record its message and return its status.
/// `allocates: false` for calls that only read a few fields (token counts, record info): they
/// run without the headroom check, so that a host can inspect its sessions at the limit.
func guarded(_ function: String, allocates: Bool = true, _ body: () throws(GLM5Error) -> Void) -> glm5_status {
  // A call starts only with room for its small allocations (GLM5Core/MemoryHeadroom.swift); the
  // message is static, copied without a Swift allocation.
  guard !allocates || MemoryHeadroom.available() else {
    setLastError(static: "out of memory: less than 8 MiB could be allocated when the call started; nothing was changed")
    return cStatus(.outOfMemory)
  }
  do {
    try FloatEnvironment.standard(body)
    return GLM5_OK
  } catch {
    setLastError("\(function): \(error.message)")
    return cStatus(error.status)
  }
}

/// A failure raised directly at the API boundary.
func fail(_ function: String, _ status: Status, _ message: String) -> glm5_status {
  setLastError("\(function): \(message)")
  return cStatus(status)
}

@c @implementation
public func glm5_status_string(_ status: glm5_status) -> UnsafePointer<CChar>? {
  guard let s = Status(rawValue: Int32(truncatingIfNeeded: status.rawValue)) else {
    return cString("unknown status")
  }
  return cString(s.text)
}

@c @implementation
public func glm5_last_error() -> UnsafePointer<CChar>? {
  lastErrorPointer()
}

@c @implementation
public func glm5_dtype_name(_ dtype: glm5_dtype) -> UnsafePointer<CChar>? {
  guard let d = DType(rawValue: Int32(truncatingIfNeeded: dtype.rawValue)) else { return cString("unknown") }
  return cString(d.name)
}

/// Check a params struct's struct_size: at least the first version's size.
func checkStructSize(_ function: String, _ name: String, _ got: UInt32, minimum: Int) throws(GLM5Error) {
  guard Int(got) >= minimum else {
    throw .invalidArgument("\(name).struct_size is \(got), smaller than the \(minimum) bytes of its first version; initialise it with \(name)_init")
  }
}
