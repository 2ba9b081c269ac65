// A small strict JSON reader (RFC 8259) for config.json, safetensors headers and shard indexes.
// The engine stays free of Foundation (../shared/docs/toolchain.md §2), so it has its own.

public enum JSON: Equatable, Sendable {
  case null
  case bool(Bool)
  case number(Double)
  case string(String)
  case array([JSON])
  case object([String: JSON])

  /// Parse a whole document; trailing non-space bytes are an error.
  public static func parse(_ bytes: UnsafeRawBufferPointer) throws(GLM5Error) -> JSON {
    var p = Parser(bytes: bytes)
    p.skipSpace()
    let v = try p.value(depth: 0)
    p.skipSpace()
    if p.i != bytes.count { throw p.error("unexpected data after the JSON value") }
    return v
  }

  public static func parse(_ text: String) throws(GLM5Error) -> JSON {
    try withBytes(Array(text.utf8)) { (buf) throws(GLM5Error) -> JSON in try parse(buf) }
  }

  public subscript(key: String) -> JSON? {
    if case .object(let o) = self { return o[key] }
    return nil
  }

  public var object: [String: JSON]? { if case .object(let o) = self { return o }; return nil }
  public var array: [JSON]? { if case .array(let a) = self { return a }; return nil }
  public var string: String? { if case .string(let s) = self { return s }; return nil }
  public var double: Double? { if case .number(let d) = self { return d }; return nil }
  public var bool: Bool? { if case .bool(let b) = self { return b }; return nil }
  public var isNull: Bool { self == .null }

  /// An integer value, if this is a number with no fractional part that fits in Int.
  public var int: Int? {
    guard case .number(let d) = self, d.rounded() == d, abs(d) < 9.0e15 else { return nil }
    return Int(d)
  }

  /// Short type name for error messages.
  public var kind: String {
    switch self {
    case .null: return "null"
    case .bool: return "a boolean"
    case .number: return "a number"
    case .string: return "a string"
    case .array: return "an array"
    case .object: return "an object"
    }
  }

  /// Serialise (sorted keys, for stable output in files we write).
  public var serialized: String {
    switch self {
    case .null: return "null"
    case .bool(let b): return b ? "true" : "false"
    case .number(let d):
      if d.rounded() == d && abs(d) < 9.0e15 { return String(Int(d)) }
      return "\(d)"
    case .string(let s): return JSON.quote(s)
    case .array(let a): return "[" + a.map(\.serialized).joined(separator: ", ") + "]"
    case .object(let o):
      return "{" + o.keys.sorted().map { JSON.quote($0) + ": " + o[$0]!.serialized }.joined(separator: ", ") + "}"
    }
  }

  public static func quote(_ s: String) -> String {
    var out = "\""
    for u in s.unicodeScalars {
      switch u {
      case "\"": out += "\\\""
      case "\\": out += "\\\\"
      case "\n": out += "\\n"
      case "\r": out += "\\r"
      case "\t": out += "\\t"
      default:
        if u.value < 0x20 {
          let h = String(u.value, radix: 16)
          out += "\\u" + String(repeating: "0", count: 4 - h.count) + h
        } else {
          out.unicodeScalars.append(u)
        }
      }
    }
    return out + "\""
  }
}

/// `Array.withUnsafeBytes` for a body with typed throws.
public func withBytes<T, R>(_ a: [T], _ body: (UnsafeRawBufferPointer) throws(GLM5Error) -> R) throws(GLM5Error) -> R {
  let r: Result<R, GLM5Error> = a.withUnsafeBytes { b in Result { () throws(GLM5Error) -> R in try body(b) } }
  return try r.get()
}

private struct Parser {
  let bytes: UnsafeRawBufferPointer
  var i = 0
  static let maxDepth = 256

  init(bytes: UnsafeRawBufferPointer) { self.bytes = bytes }

  func error(_ what: String) -> GLM5Error {
    .badFormat("invalid JSON at byte \(i): \(what)")
  }

  mutating func skipSpace() {
    while i < bytes.count {
      let c = bytes[i]
      if c == 0x20 || c == 0x09 || c == 0x0A || c == 0x0D { i += 1 } else { break }
    }
  }

  mutating func value(depth: Int) throws(GLM5Error) -> JSON {
    guard depth < Parser.maxDepth else { throw error("nested deeper than \(Parser.maxDepth)") }
    guard i < bytes.count else { throw error("unexpected end of input") }
    switch bytes[i] {
    case UInt8(ascii: "{"): return try object(depth: depth)
    case UInt8(ascii: "["): return try array(depth: depth)
    case UInt8(ascii: "\""): return .string(try string())
    case UInt8(ascii: "t"): try literal("true"); return .bool(true)
    case UInt8(ascii: "f"): try literal("false"); return .bool(false)
    case UInt8(ascii: "n"): try literal("null"); return .null
    case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"): return try number()
    default: throw error("unexpected character '\(Character(Unicode.Scalar(bytes[i])))'")
    }
  }

  mutating func literal(_ word: StaticString) throws(GLM5Error) {
    let n = word.utf8CodeUnitCount
    guard i + n <= bytes.count else { throw error("unexpected end of input") }
    for k in 0..<n where bytes[i + k] != word.utf8Start[k] { throw error("invalid literal") }
    i += n
  }

  mutating func object(depth: Int) throws(GLM5Error) -> JSON {
    i += 1
    var out: [String: JSON] = [:]
    skipSpace()
    if i < bytes.count && bytes[i] == UInt8(ascii: "}") { i += 1; return .object(out) }
    while true {
      skipSpace()
      guard i < bytes.count, bytes[i] == UInt8(ascii: "\"") else { throw error("expected a string key") }
      let key = try string()
      skipSpace()
      guard i < bytes.count, bytes[i] == UInt8(ascii: ":") else { throw error("expected ':'") }
      i += 1
      skipSpace()
      let v = try value(depth: depth + 1)
      if out[key] != nil { throw error("duplicate key \"\(key)\"") }
      out[key] = v
      skipSpace()
      guard i < bytes.count else { throw error("unexpected end of input in an object") }
      if bytes[i] == UInt8(ascii: ",") { i += 1; continue }
      if bytes[i] == UInt8(ascii: "}") { i += 1; return .object(out) }
      throw error("expected ',' or '}'")
    }
  }

  mutating func array(depth: Int) throws(GLM5Error) -> JSON {
    i += 1
    var out: [JSON] = []
    skipSpace()
    if i < bytes.count && bytes[i] == UInt8(ascii: "]") { i += 1; return .array(out) }
    while true {
      skipSpace()
      out.append(try value(depth: depth + 1))
      skipSpace()
      guard i < bytes.count else { throw error("unexpected end of input in an array") }
      if bytes[i] == UInt8(ascii: ",") { i += 1; continue }
      if bytes[i] == UInt8(ascii: "]") { i += 1; return .array(out) }
      throw error("expected ',' or ']'")
    }
  }

  mutating func hex4() throws(GLM5Error) -> UInt32 {
    guard i + 4 <= bytes.count else { throw error("short \\u escape") }
    var v: UInt32 = 0
    for _ in 0..<4 {
      let c = bytes[i]
      let d: UInt32
      switch c {
      case UInt8(ascii: "0")...UInt8(ascii: "9"): d = UInt32(c - UInt8(ascii: "0"))
      case UInt8(ascii: "a")...UInt8(ascii: "f"): d = UInt32(c - UInt8(ascii: "a") + 10)
      case UInt8(ascii: "A")...UInt8(ascii: "F"): d = UInt32(c - UInt8(ascii: "A") + 10)
      default: throw error("bad hex digit in \\u escape")
      }
      v = v * 16 + d
      i += 1
    }
    return v
  }

  mutating func string() throws(GLM5Error) -> String {
    i += 1  // opening quote
    var raw: [UInt8] = []
    while true {
      guard i < bytes.count else { throw error("unterminated string") }
      let c = bytes[i]
      if c == UInt8(ascii: "\"") { i += 1; break }
      if c < 0x20 { throw error("control character in a string") }
      if c != UInt8(ascii: "\\") { raw.append(c); i += 1; continue }
      i += 1
      guard i < bytes.count else { throw error("unterminated escape") }
      let e = bytes[i]
      i += 1
      switch e {
      case UInt8(ascii: "\""): raw.append(0x22)
      case UInt8(ascii: "\\"): raw.append(0x5C)
      case UInt8(ascii: "/"): raw.append(0x2F)
      case UInt8(ascii: "b"): raw.append(0x08)
      case UInt8(ascii: "f"): raw.append(0x0C)
      case UInt8(ascii: "n"): raw.append(0x0A)
      case UInt8(ascii: "r"): raw.append(0x0D)
      case UInt8(ascii: "t"): raw.append(0x09)
      case UInt8(ascii: "u"):
        var cp = try hex4()
        if cp >= 0xD800 && cp < 0xDC00 {
          guard i + 6 <= bytes.count, bytes[i] == UInt8(ascii: "\\"), bytes[i + 1] == UInt8(ascii: "u") else {
            throw error("unpaired surrogate")
          }
          i += 2
          let lo = try hex4()
          guard lo >= 0xDC00 && lo < 0xE000 else { throw error("unpaired surrogate") }
          cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00)
        } else if cp >= 0xDC00 && cp < 0xE000 {
          throw error("unpaired surrogate")
        }
        guard let scalar = Unicode.Scalar(cp) else { throw error("invalid code point") }
        raw.append(contentsOf: Array(String(Character(scalar)).utf8))
      default: throw error("invalid escape")
      }
    }
    guard let s = String(validating: raw, as: UTF8.self) else { throw error("string is not valid UTF-8") }
    return s
  }

  mutating func number() throws(GLM5Error) -> JSON {
    let start = i
    if bytes[i] == UInt8(ascii: "-") { i += 1 }
    func digits(_ p: inout Parser) -> Int {
      var n = 0
      while p.i < p.bytes.count, p.bytes[p.i] >= UInt8(ascii: "0"), p.bytes[p.i] <= UInt8(ascii: "9") { p.i += 1; n += 1 }
      return n
    }
    if i < bytes.count && bytes[i] == UInt8(ascii: "0") {
      i += 1  // RFC 8259: no leading zeros
    } else {
      guard digits(&self) > 0 else { throw error("bad number") }
    }
    if i < bytes.count && bytes[i] == UInt8(ascii: ".") {
      i += 1
      guard digits(&self) > 0 else { throw error("bad number") }
    }
    if i < bytes.count && (bytes[i] == UInt8(ascii: "e") || bytes[i] == UInt8(ascii: "E")) {
      i += 1
      if i < bytes.count && (bytes[i] == UInt8(ascii: "+") || bytes[i] == UInt8(ascii: "-")) { i += 1 }
      guard digits(&self) > 0 else { throw error("bad number") }
    }
    let text = String(decoding: UnsafeRawBufferPointer(rebasing: bytes[start..<i]), as: UTF8.self)
    guard let d = Double(text), d.isFinite else { throw error("bad number '\(text)'") }
    return .number(d)
  }
}
