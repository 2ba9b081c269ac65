// The one error type of the library. Swift code throws it; Sources/GLM5CAPI/Status.swift turns it
// into a `glm5_status` and the thread's last-error message, in exactly one place.

/// Mirrors `glm5_status` in include/glm5.h; raw values are pinned there.
public enum Status: Int32, Sendable {
  case ok = 0
  case invalidArgument = 1
  case io = 2
  case badFormat = 3
  case unsupported = 4
  case outOfMemory = 5
  case contextFull = 6
  case busy = 7
  case `internal` = 8
  case bufferTooSmall = 9
  case recordFull = 10
  case versionMismatch = 11
  case incompatible = 12

  public var text: StaticString {
    switch self {
    case .ok: return "ok"
    case .invalidArgument: return "invalid argument"
    case .io: return "I/O error"
    case .badFormat: return "bad format"
    case .unsupported: return "unsupported"
    case .outOfMemory: return "out of memory"
    case .contextFull: return "context full"
    case .busy: return "busy"
    case .internal: return "internal error"
    case .bufferTooSmall: return "buffer too small"
    case .recordFull: return "record full"
    case .versionMismatch: return "version mismatch"
    case .incompatible: return "incompatible"
    }
  }
}

/// A failure with its status and a message that names what was wrong.
public struct GLM5Error: Error, CustomStringConvertible, Sendable {
  public var status: Status
  public var message: String

  public init(_ status: Status, _ message: String) {
    self.status = status
    self.message = message
  }

  public var description: String { "\(status.text): \(message)" }

  public static func invalidArgument(_ m: String) -> GLM5Error { GLM5Error(.invalidArgument, m) }
  public static func io(_ m: String) -> GLM5Error { GLM5Error(.io, m) }
  public static func badFormat(_ m: String) -> GLM5Error { GLM5Error(.badFormat, m) }
  public static func unsupported(_ m: String) -> GLM5Error { GLM5Error(.unsupported, m) }
  public static func outOfMemory(_ m: String) -> GLM5Error { GLM5Error(.outOfMemory, m) }
  public static func `internal`(_ m: String) -> GLM5Error { GLM5Error(.internal, m) }

  /// Prefix the message with where it happened ("config.json: ...").
  public func context(_ prefix: String) -> GLM5Error { GLM5Error(status, "\(prefix): \(message)") }
}

/// A shape written the way messages print it: [576, 64].
public func shapeString(_ shape: [Int]) -> String {
  "[" + shape.map(String.init).joined(separator: ", ") + "]"
}
