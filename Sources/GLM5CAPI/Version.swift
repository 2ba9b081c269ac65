// Versions and status strings. Static storage only: the pointers live as long as the library.

import CGLM5
import GLM5Core

let libraryVersion: StaticString = "0.4.0"

@c @implementation
public func glm5_abi_version() -> UInt32 { 1 }

@c @implementation
public func glm5_version_number() -> UInt32 { 0 * 10000 + 4 * 100 + 0 }

@c @implementation
public func glm5_version_string() -> UnsafePointer<CChar>? {
  cString(libraryVersion)
}
