// Opaque handles. The registry owns every live object, keyed by its handle: a freed or foreign
// pointer is refused with a status instead of crashing, and a lookup hands out a strong reference
// taken under the lock, so a handle freed by another thread mid-call stays alive until that call
// returns. A handle is not the object's address but the next value of a 64-bit counter (16-byte
// aligned, never NULL, never reused): a freed handle stays dead even when a new object takes the
// freed one's memory.

import GLM5Core
import Synchronization

final class HandleRegistry: Sendable {
  private struct Entry: @unchecked Sendable {
    let kind: String  // "model", "session"
    let object: AnyObject
  }
  private struct State {
    var live: [UInt: Entry] = [:]
    /// Handles given out so far.
    var issued: UInt = 0
  }
  private let state = Mutex(State())

  func insert(_ object: AnyObject, kind: String) -> OpaquePointer {
    state.withLock { s in
      s.issued += 1
      // 2^59 handles before this wraps: centuries at a billion a second.
      let h = 0x10000 &+ (s.issued << 4)
      s.live[h] = Entry(kind: kind, object: object)
      return OpaquePointer(bitPattern: h)!
    }
  }

  func lookup(_ p: OpaquePointer, kind: String) -> AnyObject? {
    state.withLock { s in
      guard let e = s.live[UInt(bitPattern: p)], e.kind == kind else { return nil }
      return e.object
    }
  }

  /// Drop the registry's reference; returns the object so that it is released outside the lock.
  func remove(_ p: OpaquePointer, kind: String) -> AnyObject? {
    state.withLock { s in
      guard let e = s.live[UInt(bitPattern: p)], e.kind == kind else { return nil }
      s.live[UInt(bitPattern: p)] = nil
      return e.object
    }
  }
}

let handles = HandleRegistry()

/// Register an object as a new handle (kept alive until `release`).
func makeHandle<T: AnyObject>(_ object: T, kind: String) -> OpaquePointer {
  handles.insert(object, kind: kind)
}

/// The live object behind a handle, or an invalid-argument error naming the parameter.
func object<T: AnyObject>(_ p: OpaquePointer?, _ type: T.Type, kind: String, param: String) throws(GLM5Error) -> T {
  guard let p else { throw .invalidArgument("\(param) is NULL") }
  guard let o = handles.lookup(p, kind: kind) as? T else {
    throw .invalidArgument("\(param) is not a live glm5_\(kind) (already freed, or not from this library)")
  }
  return o
}

/// Drop a handle; NULL and dead handles are ignored.
func release<T: AnyObject>(_ p: OpaquePointer?, _ type: T.Type, kind: String) {
  guard let p else { return }
  _ = handles.remove(p, kind: kind)  // the object goes when the last user lets go of it
}
