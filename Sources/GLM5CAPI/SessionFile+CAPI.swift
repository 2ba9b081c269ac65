// glm5_session_save / _save_file, glm5_session_restore / _restore_file, glm5_free
// (include/glm5.h "Saving sessions").

import CGLM5
import GLM5Core
import GLM5Engine
#if canImport(Glibc)
import Glibc
#endif

func restoreFlags(_ f: UInt32) throws(GLM5Error) -> Bool {
  guard f & ~GLM5_RESTORE_ANY_WEIGHT_VERSION == 0 else { throw .invalidArgument("flags 0x\(String(f, radix: 16)) has unknown bits") }
  return f & GLM5_RESTORE_ANY_WEIGHT_VERSION != 0
}

@c @implementation
public func glm5_session_save(_ session: OpaquePointer?, _ outData: UnsafeMutablePointer<UnsafeMutableRawPointer?>?,
                              _ outSize: UnsafeMutablePointer<Int>?) -> glm5_status {
  withSession("glm5_session_save", session) { (s) throws(GLM5Error) in
    guard let outData, let outSize else { throw .invalidArgument("out_data or out_size is NULL") }
    let b = try s.save()
    guard let p = malloc(max(b.count, 1)) else {
      throw .outOfMemory("cannot allocate \(b.count) bytes for the saved session")
    }
    p.copyMemory(from: b.pointer, byteCount: b.count)
    outData.pointee = p
    outSize.pointee = b.count
  }
}

@c @implementation
public func glm5_session_save_file(_ session: OpaquePointer?, _ path: UnsafePointer<CChar>?, _ outSize: UnsafeMutablePointer<Int>?) -> glm5_status {
  withSession("glm5_session_save_file", session) { (s) throws(GLM5Error) in
    guard let path else { throw .invalidArgument("path is NULL") }
    let n = try s.save(path: String(cString: path))
    outSize?.pointee = n
  }
}

@c @implementation
public func glm5_session_restore(_ model: OpaquePointer?, _ data: UnsafeRawPointer?, _ size: Int, _ flags: UInt32,
                                 _ outSession: UnsafeMutablePointer<OpaquePointer?>?) -> glm5_status {
  guarded("glm5_session_restore") { () throws(GLM5Error) in
    let m = try object(model, Model.self, kind: "model", param: "model")
    guard let outSession else { throw .invalidArgument("out_session is NULL") }
    try checkCount(size, "size")
    guard data != nil || size == 0 else { throw .invalidArgument("data is NULL") }
    let s = try m.restore(UnsafeRawBufferPointer(start: data, count: size), allowOtherVersion: try restoreFlags(flags))
    outSession.pointee = makeHandle(SessionBox(s), kind: "session")
  }
}

@c @implementation
public func glm5_session_restore_file(_ model: OpaquePointer?, _ path: UnsafePointer<CChar>?, _ flags: UInt32,
                                      _ outSession: UnsafeMutablePointer<OpaquePointer?>?) -> glm5_status {
  guarded("glm5_session_restore_file") { () throws(GLM5Error) in
    let m = try object(model, Model.self, kind: "model", param: "model")
    guard let path else { throw .invalidArgument("path is NULL") }
    guard let outSession else { throw .invalidArgument("out_session is NULL") }
    let s = try m.restore(path: String(cString: path), allowOtherVersion: try restoreFlags(flags))
    outSession.pointee = makeHandle(SessionBox(s), kind: "session")
  }
}

@c @implementation
public func glm5_free(_ p: UnsafeMutableRawPointer?) { free(p) }
