// The strict JSON reader of GLM5Core.

import GLM5Core
import Testing

@Suite struct JSONTests {
  func parse(_ s: String) throws(GLM5Error) -> JSON { try JSON.parse(s) }

  func expectInvalid(_ s: String, _ needles: [String], sourceLocation: SourceLocation = #_sourceLocation) {
    expectFailure(.badFormat, ["invalid JSON"] + needles, sourceLocation: sourceLocation) { () throws(GLM5Error) in
      _ = try JSON.parse(s)
    }
  }

  // MARK: - Valid documents

  @Test func scalars() throws {
    #expect(try parse("null") == .null)
    #expect(try parse("true") == .bool(true))
    #expect(try parse("false") == .bool(false))
    #expect(try parse("0") == .number(0))
    #expect(try parse("-0") == .number(-0.0))
    #expect(try parse("\"\"") == .string(""))
    #expect(try parse("  \t\r\n 42 \n") == .number(42))
  }

  @Test func numbers() throws {
    #expect(try parse("123") == .number(123))
    #expect(try parse("-17") == .number(-17))
    #expect(try parse("3.25") == .number(3.25))
    #expect(try parse("1e3") == .number(1000))
    #expect(try parse("1E+3") == .number(1000))
    #expect(try parse("2.5e-3") == .number(0.0025))
    #expect(try parse("-1.5E2") == .number(-150))
    #expect(try parse("1e-05") == .number(1e-5))
    #expect(try parse("154880").int == 154880)
    #expect(try parse("1.0").int == 1)
    #expect(try parse("1.5").int == nil)
    #expect(try parse("1e300").int == nil)
    #expect(try parse("\"1\"").int == nil)
  }

  @Test func stringsWithEscapes() throws {
    #expect(try parse(#""a\"b\\c\/d""#) == .string("a\"b\\c/d"))
    #expect(try parse(#""\b\f\n\r\t""#) == .string("\u{08}\u{0C}\n\r\t"))
    #expect(try parse(#""\u0041\u00e9\u00E9\u4e2d""#) == .string("Aéé中"))
    #expect(try parse(#""\u0000""#) == .string("\u{0}"))
    // UTF-8 passes through unchanged.
    #expect(try parse("\"héllo ✓ 😀\"") == .string("héllo ✓ 😀"))
  }

  @Test func surrogatePairs() throws {
    #expect(try parse(#""\ud83d\ude00""#) == .string("😀"))
    #expect(try parse(#""\uD834\uDD1E""#) == .string("𝄞"))
    #expect(try parse(#""x\uDBFF\uDFFFy""#) == .string("x\u{10FFFF}y"))
  }

  @Test func nesting() throws {
    let v = try parse(#" { "a" : [1, {"b": [true, null, "c"]}, []], "d": {}, "e": {"f": {"g": -2e2}} } "#)
    let expected = JSON.object([
      "a": .array([.number(1), .object(["b": .array([.bool(true), .null, .string("c")])]), .array([])]),
      "d": .object([:]),
      "e": .object(["f": .object(["g": .number(-200)])]),
    ])
    #expect(v == expected)
    #expect(v["e"]?["f"]?["g"]?.double == -200)
    #expect(v["a"]?.array?.count == 3)
    #expect(v["missing"] == nil)
    #expect(v["a"]?["x"] == nil)  // subscript on a non-object
  }

  @Test func nestingAtTheLimit() throws {
    // 256 levels are accepted (depth 0 ... 255).
    let s = String(repeating: "[", count: 256) + String(repeating: "]", count: 256)
    var v = try parse(s)
    var depth = 1
    while case .array(let a) = v, let first = a.first { v = first; depth += 1 }
    #expect(depth == 256)
  }

  @Test func accessors() throws {
    let v = try parse(#"{"s": "x", "n": 2, "b": false, "z": null, "a": [1], "o": {}}"#)
    #expect(v["s"]?.string == "x" && v["s"]?.int == nil)
    #expect(v["n"]?.double == 2 && v["n"]?.int == 2 && v["n"]?.string == nil)
    #expect(v["b"]?.bool == false)
    #expect(v["z"]?.isNull == true)
    #expect(v["a"]?.array == [.number(1)])
    #expect(v["o"]?.object?.isEmpty == true)
    #expect(v["s"]?.kind == "a string" && v["z"]?.kind == "null" && v["o"]?.kind == "an object")
  }

  @Test func serializedRoundTrips() throws {
    let v = JSON.object([
      "k\"ey": .string("line\nbreak\t\u{01}\\ \"q\" é😀"),
      "n": .array([.number(1), .number(-2.5), .number(1e-5), .bool(true), .null]),
      "o": .object(["z": .number(0), "a": .object([:])]),
    ])
    let s = v.serialized
    #expect(try parse(s) == v)
    #expect(JSON.object(["b": .number(1), "a": .number(2)]).serialized == #"{"a": 2, "b": 1}"#)
  }

  @Test func parseFromBytes() throws {
    let bytes = Array(#"{"x": [1, 2]}"#.utf8)
    let v = try withBytes(bytes) { (b) throws(GLM5Error) -> JSON in try JSON.parse(b) }
    #expect(v["x"] == .array([.number(1), .number(2)]))
  }

  // MARK: - Invalid documents

  @Test func emptyInput() { expectInvalid("", ["end of input"]) }
  @Test func onlySpace() { expectInvalid("  \n ", ["end of input"]) }
  @Test func trailingGarbage() { expectInvalid("{} x", ["unexpected data after the JSON value"]) }
  @Test func twoValues() { expectInvalid("1 2", ["unexpected data after"]) }
  @Test func unterminatedString() { expectInvalid(#"{"a": "abc"#, ["unterminated string"]) }
  @Test func unterminatedEscape() { expectInvalid(#""abc\"#, ["unterminated"]) }
  @Test func badEscape() { expectInvalid(#""a\qb""#, ["invalid escape"]) }
  @Test func badHexEscape() { expectInvalid(#""\u12G4""#, ["bad hex digit"]) }
  @Test func shortHexEscape() { expectInvalid(#""\u12"#, ["short \\u escape"]) }
  @Test func loneHighSurrogate() { expectInvalid(#""\ud83d""#, ["unpaired surrogate"]) }
  @Test func highSurrogateThenNonLow() { expectInvalid(#""\ud83d\u0041""#, ["unpaired surrogate"]) }
  @Test func loneLowSurrogate() { expectInvalid(#""\ude00""#, ["unpaired surrogate"]) }
  @Test func controlCharacterInString() { expectInvalid("\"a\nb\"", ["control character"]) }
  @Test func duplicateKey() { expectInvalid(#"{"a": 1, "b": 2, "a": 3}"#, ["duplicate key \"a\""]) }
  @Test func trailingCommaInObject() { expectInvalid(#"{"a": 1,}"#, ["expected a string key"]) }
  @Test func trailingCommaInArray() { expectInvalid("[1, 2,]", ["unexpected character ']'"]) }
  @Test func missingColon() { expectInvalid(#"{"a" 1}"#, ["expected ':'"]) }
  @Test func unquotedKey() { expectInvalid("{a: 1}", ["expected a string key"]) }
  @Test func missingComma() { expectInvalid("[1 2]", ["expected ',' or ']'"]) }
  @Test func unclosedObject() { expectInvalid(#"{"a": 1"#, ["end of input in an object"]) }
  @Test func unclosedArray() { expectInvalid("[1, 2", ["end of input in an array"]) }
  @Test func badLiteral() { expectInvalid("nul", ["end of input"]); expectInvalid("trve", ["invalid literal"]) }
  @Test func singleQuotes() { expectInvalid("'a'", ["unexpected character"]) }
  @Test func badNumbers() {
    for s in ["-", "1.", ".5", "1e", "1e+", "+1", "-.5", "0x10", "NaN", "Infinity"] {
      expectFailure(.badFormat, ["invalid JSON"]) { () throws(GLM5Error) in _ = try JSON.parse(s) }
    }
  }

  @Test func tooDeep() {
    let s = String(repeating: "[", count: 257) + String(repeating: "]", count: 257)
    expectInvalid(s, ["nested deeper than 256"])
    let o = String(repeating: #"{"a":"#, count: 300) + "1" + String(repeating: "}", count: 300)
    expectInvalid(o, ["nested deeper than 256"])
  }

  @Test func veryDeepDoesNotCrash() {
    // Far past the limit: must fail cleanly, not overflow the stack.
    expectInvalid(String(repeating: "[", count: 1_000_000), ["nested deeper"])
  }

  @Test func invalidUTF8InAString() {
    let bytes: [UInt8] = [0x22, 0x61, 0xFF, 0x62, 0x22]  // "a\xFFb"
    expectFailure(.badFormat, ["invalid JSON", "UTF-8"]) { () throws(GLM5Error) in
      _ = try withBytes(bytes) { (b) throws(GLM5Error) -> JSON in try JSON.parse(b) }
    }
  }

  @Test func errorsGiveTheByteOffset() {
    expectInvalid("[1, 2, @]", ["at byte 7", "'@'"])
  }
}
