// glm5_model_weight_version, glm5_model_update_from_folder / _from_delta, glm5_weight_update_*
// (include/glm5.h "Weight updates").

import CGLM5
import GLM5Core
import GLM5Engine
import Synchronization

/// An update behind a handle: spent after its commit; one call at a time.
final class UpdateBox: @unchecked Sendable {
  let update: WeightUpdate
  let state = Mutex<Bool>(false)  // committed
  init(_ u: WeightUpdate) { update = u }
}

func versionArg(_ p: UnsafePointer<CChar>?, _ name: String = "version") throws(GLM5Error) -> String {
  guard let p else { throw .invalidArgument("\(name) is NULL") }
  guard let s = String(validatingCString: p) else { throw .invalidArgument("\(name) is not valid UTF-8") }
  return s
}

@c @implementation
public func glm5_model_weight_version(_ model: OpaquePointer?, _ out: UnsafeMutablePointer<CChar>?, _ capacity: Int,
                                      _ nOut: UnsafeMutablePointer<Int>?) -> glm5_status {
  guarded("glm5_model_weight_version") { () throws(GLM5Error) in
    let m = try object(model, Model.self, kind: "model", param: "model")
    try checkCount(capacity, "capacity")
    guard out != nil || capacity == 0 else { throw .invalidArgument("out is NULL but capacity is \(capacity)") }
    let v = Array(m.weightVersion.utf8)
    nOut?.pointee = v.count + 1
    guard capacity >= v.count + 1 else { throw GLM5Error(.bufferTooSmall, "capacity is \(capacity) bytes, the version needs \(v.count + 1)") }
    if let out { writeCString(m.weightVersion, into: UnsafeMutableRawPointer(out), capacity: v.count + 1) }
  }
}

@c @implementation
public func glm5_model_update_from_folder(_ model: OpaquePointer?, _ path: UnsafePointer<CChar>?, _ version: UnsafePointer<CChar>?) -> glm5_status {
  guarded("glm5_model_update_from_folder") { () throws(GLM5Error) in
    let m = try object(model, Model.self, kind: "model", param: "model")
    guard let path else { throw .invalidArgument("path is NULL") }
    try m.updateWeights(folder: String(cString: path), version: try versionArg(version))
  }
}

@c @implementation
public func glm5_model_update_from_delta(_ model: OpaquePointer?, _ path: UnsafePointer<CChar>?, _ version: UnsafePointer<CChar>?) -> glm5_status {
  guarded("glm5_model_update_from_delta") { () throws(GLM5Error) in
    let m = try object(model, Model.self, kind: "model", param: "model")
    guard let path else { throw .invalidArgument("path is NULL") }
    try m.updateWeights(delta: String(cString: path), version: version == nil ? nil : try versionArg(version))
  }
}

@c @implementation
public func glm5_weight_update_begin(_ model: OpaquePointer?, _ outUpdate: UnsafeMutablePointer<OpaquePointer?>?) -> glm5_status {
  guarded("glm5_weight_update_begin") { () throws(GLM5Error) in
    let m = try object(model, Model.self, kind: "model", param: "model")
    guard let outUpdate else { throw .invalidArgument("out_update is NULL") }
    outUpdate.pointee = makeHandle(UpdateBox(m.beginUpdate()), kind: "weight_update")
  }
}

@c @implementation
public func glm5_weight_update_add(_ update: OpaquePointer?, _ name: UnsafePointer<CChar>?, _ dtype: glm5_dtype, _ shape: UnsafePointer<Int64>?,
                                   _ nDims: Int, _ data: UnsafeRawPointer?, _ nBytes: Int) -> glm5_status {
  guarded("glm5_weight_update_add") { () throws(GLM5Error) in
    let box = try object(update, UpdateBox.self, kind: "weight_update", param: "update")
    guard let name else { throw .invalidArgument("name is NULL") }
    let n = String(cString: name)
    guard let dt = DType(rawValue: Int32(truncatingIfNeeded: dtype.rawValue)) else { throw .invalidArgument("dtype is \(dtype.rawValue), not a glm5_dtype") }
    guard nDims >= 0 && nDims <= 8 else { throw .invalidArgument("n_dims is \(nDims), must be in [0, 8]") }
    guard shape != nil || nDims == 0 else { throw .invalidArgument("shape is NULL") }
    var dims: [Int] = []
    for i in 0..<nDims {
      let d = shape![i]
      guard d >= 0 && d <= 1 << 40 else { throw .invalidArgument("shape[\(i)] is \(d), not a plausible size") }
      dims.append(Int(d))
    }
    try checkCount(nBytes, "n_bytes")
    guard data != nil || nBytes == 0 else { throw .invalidArgument("data is NULL") }
    try box.state.withLock { (committed) throws(GLM5Error) in
      guard !committed else { throw .invalidArgument("the update was already committed") }
      try box.update.add(name: n, dtype: dt, shape: dims, data: UnsafeRawBufferPointer(start: data, count: nBytes))
    }
  }
}

@c @implementation
public func glm5_weight_update_commit(_ update: OpaquePointer?, _ version: UnsafePointer<CChar>?) -> glm5_status {
  guarded("glm5_weight_update_commit") { () throws(GLM5Error) in
    let box = try object(update, UpdateBox.self, kind: "weight_update", param: "update")
    let v = try versionArg(version)
    try box.state.withLock { (committed) throws(GLM5Error) in
      guard !committed else { throw .invalidArgument("the update was already committed") }
      committed = true  // spent either way
      try box.update.commit(version: v)
    }
  }
}

@c @implementation
public func glm5_weight_update_free(_ update: OpaquePointer?) {
  release(update, UpdateBox.self, kind: "weight_update")
}
