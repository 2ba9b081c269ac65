// The tokenizer (GLM5Tokenizer) without Python: ids HF tokenizers gave for hand-picked strings
// (Tests/Fixtures/tokenizers/expected.json, tools/reference/tokenizer_expected.py), the regex
// engine's semantics and refusals, streaming decode, and load errors that name the key. The
// corpus-wide comparison with HF is bindings/python/tests/test_tokenizer_hf.py.

import GLM5Core
import GLM5Engine
@testable import GLM5Tokenizer
import Testing

private func repoRoot(_ filePath: String = #filePath) -> String {
  var parts = filePath.split(separator: "/", omittingEmptySubsequences: false)
  parts.removeLast(3)  // Tests/GLM5Tests/TokenizerTests.swift
  return parts.joined(separator: "/")
}

private let tinyTokenizer = repoRoot() + "/models/glm5-tiny"

private func bytes(_ s: String) -> [UInt8] { Array(s.utf8) }

@Suite struct TokenizerTests {
  // MARK: - Against HF (expected.json)

  @Test func expectedIdsFromHF() throws {
    let doc = try JSON.parse(String(decoding: try readTextFile(fixturesFolder() + "/tokenizers/expected.json"), as: UTF8.self))
    let cases = try #require(doc["cases"]?.array)
    #expect(cases.count >= 100)
    var tokenizers: [String: Tokenizer] = [:]
    var failures = 0
    for c in cases {
      let rel = try #require(c["tokenizer"]?.string)
      let text = try #require(c["text"]?.string)
      let parse = try #require(c["parse_special"]?.bool)
      let want = try #require(c["ids"]?.array).map { Int32($0.int ?? -1) }
      let tok = try tokenizers[rel] ?? Tokenizer.load(path: repoRoot() + "/" + rel)
      tokenizers[rel] = tok
      let got = try tok.encode(text, parseSpecial: parse)
      if got != want {
        failures += 1
        Issue.record("\(rel) \(JSON.quote(text)) parse_special=\(parse): glm5 \(got), HF \(want)")
        continue
      }
      #expect(try tok.decode(got) == c["decoded"]?.string, "\(JSON.quote(text))")
      #expect(try tok.decode(got, skipSpecialTokens: true) == c["decoded_skip_special"]?.string, "\(JSON.quote(text))")
    }
    #expect(failures == 0)
  }

  @Test func specialTokensAndConfig() throws {
    let tok = try Tokenizer.load(path: tinyTokenizer)
    #expect(tok.idCount == 4096 && tok.eosId == 4087 && tok.padId == 4087 && tok.bosId == nil)
    #expect(tok.id(of: "<|user|>") == 4091 && tok.isSpecial(4091) && !tok.isSpecial(100))
    #expect(try tok.encode("<|user|>", parseSpecial: true) == [4091])
    #expect(try tok.encode("<|user|>", parseSpecial: false).count > 1)
    #expect(try tok.piece(try tok.encode(" the")[0]) == bytes(" the"))
  }

  // MARK: - Streaming

  @Test func streamingHoldsBackIncompleteUTF8() throws {
    let tok = try Tokenizer.load(path: tinyTokenizer)
    let text = "ok 😀 你好 👨‍👩‍👧 done"
    let ids = try tok.encode(text)
    let s = StreamingDetokenizer(tok, skipSpecialTokens: false)
    var out: [UInt8] = []
    for id in ids {
      let chunk = try s.push([id])
      #expect(String(validating: chunk, as: UTF8.self) != nil, "a chunk is not valid UTF-8: \(chunk)")
      out += chunk
    }
    out += s.finish()
    #expect(String(decoding: out, as: UTF8.self) == text)
    // A lone first byte of a 4-byte sequence is held, then becomes U+FFFD at the end.
    let emoji = try tok.encode("😀")
    #expect(emoji.count > 1)
    let t = StreamingDetokenizer(tok, skipSpecialTokens: false)
    #expect(try t.push([emoji[0]]).isEmpty && t.heldBack > 0)
    #expect(t.finish() == bytes("\u{FFFD}"))
    #expect(throws: GLM5Error.self) { try t.push([999_999]) }
  }

  @Test func completeUTF8Prefixes() {
    #expect(completeUTF8Prefix(bytes("abc")) == 3)
    #expect(completeUTF8Prefix([0x61, 0xF0, 0x9F]) == 1)  // 😀 begun
    #expect(completeUTF8Prefix([0x61, 0xE4, 0xBD]) == 1)  // 你 begun
    #expect(completeUTF8Prefix([0x61, 0xE0, 0x80]) == 3)  // cannot become valid: emitted (U+FFFD)
    #expect(completeUTF8Prefix([0x61, 0xFF]) == 2)
    #expect(completeUTF8Prefix([0xF0, 0x9F, 0x98, 0x80]) == 4)
  }

  // MARK: - Regex engine

  private func matches(_ pattern: String, _ text: String) throws -> [String] {
    let r = try Regex(pattern)
    let s = ScalarText(text.unicodeScalars.map(\.value))
    var out: [String] = []
    r.forEachMatch(in: s, 0, s.count) { a, b in
      var u = String.UnicodeScalarView()
      for v in s.scalars[a..<b] { u.append(Unicode.Scalar(v)!) }
      out.append(String(u))
    }
    return out
  }

  @Test func regexSemantics() throws {
    let glm = #"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"#
    #expect(try matches(glm, "I'M here  12345!\n\n  x") == ["I", "'M", " here", " ", " ", "123", "45", "!\n\n", " ", " x"])
    #expect(try matches(glm, "x'ſt") == ["x", "'ſ", "t"])  // Oniguruma folds ſ to s
    #expect(try matches(glm, "a\u{3000} b") == ["a", "\u{3000}", " b"])  // \s is White_Space
    #expect(try matches(#"a+?b|a"#, "aaab") == ["aaab"])
    #expect(try matches(#"a*+a|b"#, "aaab") == ["b"])  // possessive gives nothing back
    #expect(try matches(#"(?>a+)b|a"#, "aab") == ["aab"])
    #expect(try matches(#"\d{2,3}?"#, "12345") == ["12", "34"])
    #expect(try matches(#"^\w+$"#, "ab\ncd") == ["ab", "cd"])  // ^ $ are line anchors (Ruby)
    #expect(try matches(#"\bx\b"#, "x xx x") == ["x", "x"])
    #expect(try matches(#"[\p{L}&]+"#, "a&b c") == ["a&b", "c"])  // a single '&' is a literal
    #expect(try matches(#"[^\S\n]+"#, " \t\n ") == [" \t", " "])
    #expect(try matches(#"\x{1F600}|\u00e9"#, "é😀") == ["é", "😀"])
  }

  @Test func regexRefusals() {
    for (pattern, needle) in [(#"(?<=a)b"#, "lookbehind"), (#"\p{Han}"#, "general categories"), (#"(a*)*"#, "empty string"),
                              (#"(a)\1"#, "escape"), (#"[[:alpha:]]"#, "POSIX"), (#"[a&&b]"#, "intersection"),
                              (#"a{2,3}+"#, "interval"), (#"(?x)a"#, "group"), (#"a)"#, "unmatched")] {
      _ = expectFailure(.unsupported, [needle]) { () throws(GLM5Error) in _ = try Regex(pattern) }
    }
  }

  // MARK: - Loading errors name the key

  private func load(_ json: String, config: String? = nil) throws(GLM5Error) -> Tokenizer {
    try Tokenizer(json: bytes(json), config: config.map(bytes))
  }

  private let minimal = #"{"model": {"type": "BPE", "vocab": {"a": 0, "b": 1, "ab": 2}, "merges": [MERGES]}, "pre_tokenizer": PRE, "decoder": null, "added_tokens": ADDED}"#

  private func doc(merges: String = #"["a", "b"]"#, pre: String = "null", added: String = "[]") -> String {
    minimal.replacing("MERGES", with: merges).replacing("PRE", with: pre).replacing("ADDED", with: added)
  }

  @Test func loadErrorsNameTheKey() {
    _ = expectFailure(.badFormat, ["tokenizer.json: model.merges[1]", "\"c\" is not in the vocabulary"]) { () throws(GLM5Error) in
      _ = try load(doc(merges: #"["a", "b"], ["a", "c"]"#))
    }
    _ = expectFailure(.badFormat, ["model.merges[0]", "two tokens separated by one space"]) { () throws(GLM5Error) in
      _ = try load(doc(merges: #""a b c""#))
    }
    _ = expectFailure(.badFormat, ["missing key \"model\""]) { () throws(GLM5Error) in _ = try load("{}") }
    _ = expectFailure(.badFormat, ["invalid JSON"]) { () throws(GLM5Error) in _ = try load("{") }
    _ = expectFailure(.badFormat, ["added_tokens[0]", "content"]) { () throws(GLM5Error) in
      _ = try load(doc(added: #"[{"id": 3}]"#))
    }
    _ = expectFailure(.unsupported, ["pre_tokenizer.pretokenizers[0]", "Metaspace"]) { () throws(GLM5Error) in
      _ = try load(doc(pre: #"{"type": "Sequence", "pretokenizers": [{"type": "Metaspace"}]}"#))
    }
    _ = expectFailure(.unsupported, ["pre_tokenizer.pattern", "lookbehind"]) { () throws(GLM5Error) in
      _ = try load(doc(pre: #"{"type": "Split", "pattern": {"Regex": "(?<!x)a"}, "behavior": "Isolated", "invert": false}"#))
    }
    _ = expectFailure(.badFormat, ["tokenizer_config.json", "eos_token", "\"zz\""]) { () throws(GLM5Error) in
      _ = try load(doc(), config: #"{"eos_token": {"content": "zz"}}"#)
    }
  }

  @Test func plainBPEWithPrefixFallbackAndUnknown() throws {
    // Text-mode BPE (no ByteLevel): continuing_subword_prefix, byte fallback and fused unknowns.
    let json = #"""
    {"model": {"type": "BPE", "unk_token": "<unk>", "fuse_unk": true, "byte_fallback": true, "continuing_subword_prefix": "##",
      "vocab": {"<unk>": 0, "a": 1, "##b": 2, "ab": 3, "<0xC3>": 4, "<0xA9>": 5, "##c": 6},
      "merges": ["a ##b"]},
     "pre_tokenizer": {"type": "Split", "pattern": {"String": " "}, "behavior": "Removed", "invert": false},
     "decoder": {"type": "Sequence", "decoders": [{"type": "ByteFallback"}, {"type": "Fuse"}]}}
    """#
    let tok = try load(json)
    #expect(try tok.encode("ab abc") == [3, 3, 6])
    #expect(try tok.encode("é") == [4, 5])  // "é" is not in the vocabulary: its bytes
    #expect(try tok.encode("xyz") == [0])  // three unknowns fused into one
    #expect(try tok.decode([4, 5]) == "é")
    #expect(try tok.decode([4]) == "\u{FFFD}")  // an invalid byte run: U+FFFD per byte (HF)
  }

  /// Damaged files and random patterns: an error or a working tokenizer, never a trap or a hang.
  @Test func damagedInputsNeverTrap() throws {
    var rng = SplitMix(seed: 11)
    let valid = Array(#"""
    {"added_tokens": [{"id": 3, "content": "<s>", "special": true, "single_word": false, "lstrip": true, "rstrip": false, "normalized": false}],
     "normalizer": null,
     "pre_tokenizer": {"type": "Sequence", "pretokenizers": [{"type": "Split", "pattern": {"Regex": "(?i:'s)|\\p{L}+|\\s+(?!\\S)|\\s+|."}, "behavior": "Isolated", "invert": false},
       {"type": "ByteLevel", "add_prefix_space": false, "use_regex": false}]},
     "decoder": {"type": "ByteLevel"},
     "model": {"type": "BPE", "vocab": {"a": 0, "b": 1, "ab": 2, "Ġ": 4}, "merges": [["a", "b"]]}}
    """#.utf8)
    #expect((try? Tokenizer(json: valid, config: nil)) != nil)
    var loaded = 0
    let junk = Array(#"{}[]",:0\ab"#.utf8)
    for round in 0..<400 {
      var doc = valid
      for _ in 0..<(1 + Int(rng.next() % 3)) {
        let at = Int(rng.next() % UInt64(doc.count))
        switch rng.next() % 3 {
        case 0: doc.remove(at: at)
        case 1: doc.insert(UInt8(truncatingIfNeeded: rng.next() % 128), at: at)
        default: doc[at] = junk[Int(rng.next() % UInt64(junk.count))]
        }
      }
      if round % 50 == 0 { doc = Array(doc.prefix(Int(rng.next() % UInt64(doc.count)))) }
      guard let t = try? Tokenizer(json: doc, config: nil) else { continue }
      loaded += 1
      let ids = (try? t.encode("ab ab's <s> \u{1F600}")) ?? []
      _ = try? t.decode(ids)
    }
    #expect(loaded > 0)
    let alphabet = Array(#"ab()[]|*+?{}1,2^$\.-:=!<>isdwSpPL"#.unicodeScalars)
    let text = ScalarText("ab a1 b\n(a)".unicodeScalars.map(\.value))
    for _ in 0..<2000 {
      var p = ""
      for _ in 0..<(1 + Int(rng.next() % 12)) { p.unicodeScalars.append(alphabet[Int(rng.next() % UInt64(alphabet.count))]) }
      guard let r = try? Regex(p) else { continue }
      r.forEachMatch(in: text, 0, text.count) { a, b in #expect(a <= b && b <= text.count) }
    }
    _ = expectFailure(.unsupported, ["quantifiers"]) { () throws(GLM5Error) in _ = try Regex("a" + String(repeating: "?", count: 20)) }
  }

  @Test func folderWithoutTokenizerStillLoadsTheModel() throws {
    #expect(try Tokenizer.loadIfPresent(folder: fixturesFolder() + "/tiny-dsa") == nil)
    let m = try Model(path: fixturesFolder() + "/tiny-dsa", threads: 1)
    #expect(try m.tokenizer() == nil)
    _ = expectFailure(.io, ["no tokenizer.json"]) { () throws(GLM5Error) in _ = try Tokenizer.load(path: fixturesFolder() + "/tiny-dsa") }
  }
}

/// A seeded generator for the damage test.
private struct SplitMix {
  var state: UInt64
  init(seed: UInt64) { state = seed }
  mutating func next() -> UInt64 {
    state &+= 0x9E37_79B9_7F4A_7C15
    var z = state
    z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
    z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
    return z ^ (z >> 31)
  }
}
