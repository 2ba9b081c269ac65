// Typed reads of tokenizer.json fields whose failures name the key path
// ("tokenizer.json: model.merges[17]: expected a string, found a number").

import GLM5Core

/// A JSON value and the path it was reached by, for messages.
struct Field {
  let value: JSON
  let path: String

  init(_ value: JSON, _ path: String) {
    self.value = value
    self.path = path
  }

  func fail(_ what: String) -> GLM5Error { .badFormat("\(path): \(what)") }

  func member(_ key: String) -> Field? {
    guard let v = value[key] else { return nil }
    return Field(v, path.isEmpty ? key : "\(path).\(key)")
  }

  /// A member that may be absent or null.
  func optional(_ key: String) -> Field? {
    guard let f = member(key), !f.value.isNull else { return nil }
    return f
  }

  func required(_ key: String) throws(GLM5Error) -> Field {
    guard let f = member(key) else { throw fail("missing key \"\(key)\"") }
    return f
  }

  func object() throws(GLM5Error) -> [String: JSON] {
    guard let o = value.object else { throw fail("expected an object, found \(value.kind)") }
    return o
  }

  func array() throws(GLM5Error) -> [Field] {
    guard let a = value.array else { throw fail("expected an array, found \(value.kind)") }
    return a.enumerated().map { Field($0.element, "\(path)[\($0.offset)]") }
  }

  func string() throws(GLM5Error) -> String {
    guard let s = value.string else { throw fail("expected a string, found \(value.kind)") }
    return s
  }

  func bool() throws(GLM5Error) -> Bool {
    guard let b = value.bool else { throw fail("expected a boolean, found \(value.kind)") }
    return b
  }

  func int(in range: ClosedRange<Int>) throws(GLM5Error) -> Int {
    guard let i = value.int else { throw fail("expected an integer, found \(value.kind)") }
    guard range.contains(i) else { throw fail("\(i) is out of range [\(range.lowerBound), \(range.upperBound)]") }
    return i
  }

  /// `key` as a boolean, `def` when absent or null.
  func bool(_ key: String, default def: Bool) throws(GLM5Error) -> Bool {
    try optional(key)?.bool() ?? def
  }

  func string(_ key: String) throws(GLM5Error) -> String? {
    try optional(key)?.string()
  }

  /// The "type" member.
  func type() throws(GLM5Error) -> String { try required("type").string() }
}
