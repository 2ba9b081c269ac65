// Opaque handles: a retained Swift object behind an OpaquePointer, plus a registry of live
// handles so that a freed or foreign pointer is refused with a status instead of crashing.

import GLM5Core
import Synchronization

final class HandleRegistry: Sendable {
  private let live = Mutex<[UInt: String]>([:])  // address -> kind ("model", "session")

  func insert(_ p: OpaquePointer, kind: String) { _ = live.withLock { $0[UInt(bitPattern: p)] = kind } }
  func remove(_ p: OpaquePointer, kind: String) -> Bool {
    live.withLock { m in
      guard m[UInt(bitPattern: p)] == kind else { return false }
      m[UInt(bitPattern: p)] = nil
      return true
    }
  }
  func contains(_ p: OpaquePointer, kind: String) -> Bool { live.withLock { $0[UInt(bitPattern: p)] == kind } }
}

let handles = HandleRegistry()

/// Wrap an object as a new handle (retained until `release`).
func makeHandle<T: AnyObject>(_ object: T, kind: String) -> OpaquePointer {
  let p = OpaquePointer(Unmanaged.passRetained(object).toOpaque())
  handles.insert(p, kind: kind)
  return p
}

/// The live object behind a handle, or an invalid-argument error naming the parameter.
func object<T: AnyObject>(_ p: OpaquePointer?, _ type: T.Type, kind: String, param: String) throws(GLM5Error) -> T {
  guard let p else { throw .invalidArgument("\(param) is NULL") }
  guard handles.contains(p, kind: kind) else {
    throw .invalidArgument("\(param) is not a live glm5_\(kind) (already freed, or not from this library)")
  }
  return Unmanaged<T>.fromOpaque(UnsafeRawPointer(p)).takeUnretainedValue()
}

/// Drop a handle; NULL and dead handles are ignored.
func release<T: AnyObject>(_ p: OpaquePointer?, _ type: T.Type, kind: String) {
  guard let p, handles.remove(p, kind: kind) else { return }
  Unmanaged<T>.fromOpaque(UnsafeRawPointer(p)).release()
}
