// tokenizer.json's `decoder`: token strings back to text (HF tokenizers/src/decoders), and the
// streaming form that holds back an incomplete UTF-8 sequence across calls.
//
//   ByteLevel    each token whose every character is in GPT-2's alphabet becomes those bytes;
//                any other token (an added token with a space, say) stays its UTF-8;
//   ByteFallback `<0xXX>` tokens become bytes; a run of them that is not valid UTF-8 becomes one
//                U+FFFD per byte (HF's rule);
//   Fuse         all tokens joined into one;
//   Strip        up to `start` leading and `stop` trailing `content` characters removed per token;
//   Replace      a literal ({"String": …}) replaced by `content` in every token;
//   Sequence     the steps in order.
// Without a decoder, tokens are joined with spaces (HF's fallback). The result is bytes; the
// tokenizer turns them into text replacing invalid UTF-8 (maximal subparts, as Rust's
// from_utf8_lossy). HF applies that replacement inside ByteLevel; here it happens once at the end,
// which differs only when a step after ByteLevel would see U+FFFD.

import GLM5Core

struct Decoder: Sendable {
  enum Step: Sendable {
    case byteLevel
    case byteFallback
    case fuse
    case strip(content: [UInt8], start: Int, stop: Int)
    case replace(pattern: [UInt8], content: [UInt8])
  }

  let steps: [Step]
  let present: Bool

  init(_ field: Field?) throws(GLM5Error) {
    var steps: [Step] = []
    if let field { try Decoder.parse(field, into: &steps) }
    self.steps = steps
    present = field != nil
  }

  private static func parse(_ f: Field, into steps: inout [Step]) throws(GLM5Error) {
    let type = try f.type()
    switch type {
    case "Sequence":
      for d in try f.required("decoders").array() { try parse(d, into: &steps) }
    case "ByteLevel": steps.append(.byteLevel)
    case "ByteFallback": steps.append(.byteFallback)
    case "Fuse": steps.append(.fuse)
    case "Strip":
      let c = try f.required("content").string()
      guard c.unicodeScalars.count == 1 else { throw f.fail("Strip content must be one character") }
      steps.append(.strip(content: Array(c.utf8), start: try f.required("start").int(in: 0...1_000_000),
                          stop: try f.required("stop").int(in: 0...1_000_000)))
    case "Replace":
      let pf = try f.required("pattern")
      guard let s = pf.member("String") else {
        throw GLM5Error.unsupported("\(pf.path): only {\"String\": …} patterns are supported in a Replace decoder")
      }
      let pattern = Array(try s.string().utf8)
      guard !pattern.isEmpty else { throw pf.fail("empty pattern") }
      steps.append(.replace(pattern: pattern, content: Array(try f.required("content").string().utf8)))
    default:
      throw GLM5Error.unsupported("\(f.path): decoder type \"\(type)\" is not supported (ByteLevel, ByteFallback, Fuse, Strip, Replace, Sequence)")
    }
  }

  /// The bytes of `tokens` decoded together.
  func decode(_ tokens: [String]) -> [UInt8] {
    guard present else {
      var out: [UInt8] = []
      for (k, t) in tokens.enumerated() {
        if k > 0 { out.append(0x20) }
        out.append(contentsOf: t.utf8)
      }
      return out
    }
    var pieces = tokens.map { Array($0.utf8) }
    for step in steps { pieces = apply(step, pieces, streaming: false) }
    return pieces.flatMap { $0 }
  }

  /// The bytes one token adds to a stream (`first`: whether it is the stream's first token).
  /// ByteFallback bytes are passed through raw so that a character split over byte tokens joins.
  func decodeStreaming(_ token: String, first: Bool) -> [UInt8] {
    guard present else { return (first ? [] : [0x20]) + Array(token.utf8) }
    var pieces = [Array(token.utf8)]
    for step in steps { pieces = apply(step, pieces, streaming: true) }
    return pieces.flatMap { $0 }
  }

  private func apply(_ step: Step, _ pieces: [[UInt8]], streaming: Bool) -> [[UInt8]] {
    switch step {
    case .byteLevel:
      var out: [UInt8] = []
      for p in pieces {
        let s = String(decoding: p, as: UTF8.self)
        if let b = ByteLevel.bytes(of: s) { out += b } else { out += p }
      }
      return [out]
    case .byteFallback:
      var out: [[UInt8]] = []
      var run: [UInt8] = []
      func flush() {
        guard !run.isEmpty else { return }
        if streaming || String(validating: run, as: UTF8.self) != nil {
          out.append(run)
        } else {
          for _ in run { out.append([0xEF, 0xBF, 0xBD]) }
        }
        run = []
      }
      for p in pieces {
        if let b = Decoder.fallbackByte(p) { run.append(b) } else { flush(); out.append(p) }
      }
      flush()
      return out
    case .fuse:
      return [pieces.flatMap { $0 }]
    case .strip(let content, let start, let stop):
      return pieces.map { Decoder.strip($0, content, start, stop) }
    case .replace(let pattern, let content):
      return pieces.map { Decoder.replace($0, pattern, content) }
    }
  }

  /// `<0xXX>` → XX.
  static func fallbackByte(_ p: [UInt8]) -> UInt8? {
    guard p.count == 6, p[0] == 0x3C, p[1] == 0x30, p[2] == 0x78, p[5] == 0x3E else { return nil }
    func hex(_ c: UInt8) -> UInt8? {
      switch c {
      case 0x30...0x39: return c - 0x30
      case 0x41...0x46: return c - 0x41 + 10
      case 0x61...0x66: return c - 0x61 + 10
      default: return nil
      }
    }
    guard let h = hex(p[3]), let l = hex(p[4]) else { return nil }
    return h << 4 | l
  }

  static func strip(_ p: [UInt8], _ c: [UInt8], _ start: Int, _ stop: Int) -> [UInt8] {
    var lo = 0
    var hi = p.count
    var n = 0
    while n < start && hi - lo >= c.count && Array(p[lo..<(lo + c.count)]) == c { lo += c.count; n += 1 }
    n = 0
    while n < stop && hi - lo >= c.count && Array(p[(hi - c.count)..<hi]) == c { hi -= c.count; n += 1 }
    return Array(p[lo..<hi])
  }

  static func replace(_ p: [UInt8], _ pattern: [UInt8], _ content: [UInt8]) -> [UInt8] {
    var out: [UInt8] = []
    var i = 0
    while i < p.count {
      if i + pattern.count <= p.count && p[i..<(i + pattern.count)].elementsEqual(pattern) {
        out += content
        i += pattern.count
      } else {
        out.append(p[i])
        i += 1
      }
    }
    return out
  }
}

/// UTF-8 bytes to text, each maximal invalid subpart replaced by U+FFFD (Rust's
/// String::from_utf8_lossy, which HF's ByteLevel decoder uses).
func lossyText(_ bytes: [UInt8]) -> String {
  String(decoding: bytes, as: UTF8.self)
}

/// The length of the longest prefix of `bytes` after which what remains is an incomplete but
/// so far valid UTF-8 sequence (at most 3 bytes) that more bytes could complete.
func completeUTF8Prefix(_ bytes: [UInt8]) -> Int {
  let n = bytes.count
  var k = 1
  while k <= min(3, n) {
    let b = bytes[n - k]
    if b & 0xC0 != 0x80 {  // a lead (or ASCII) byte
      let need = b >= 0xF0 && b <= 0xF4 ? 4 : b >= 0xE0 && b < 0xF0 ? 3 : b >= 0xC2 && b < 0xE0 ? 2 : 0
      guard need > k else { return n }
      // The continuation bytes so far must be valid for this lead byte (second-byte ranges).
      if k >= 2 {
        let c = bytes[n - k + 1]
        let ok: Bool
        switch b {
        case 0xE0: ok = c >= 0xA0 && c <= 0xBF
        case 0xED: ok = c >= 0x80 && c <= 0x9F
        case 0xF0: ok = c >= 0x90 && c <= 0xBF
        case 0xF4: ok = c >= 0x80 && c <= 0x8F
        default: ok = true
        }
        if !ok { return n }
      }
      return n - k
    }
    k += 1
  }
  return n
}

/// A detokenizer for a stream of ids: each push returns the text that is complete so far; an
/// incomplete UTF-8 sequence at the end waits for the next ids. `finish` returns what is left
/// (an incomplete sequence becomes U+FFFD). The concatenated output equals Tokenizer.decode of
/// all ids for byte-level tokenizers.
public final class StreamingDetokenizer {
  public let tokenizer: Tokenizer
  public let skipSpecial: Bool
  private var pending: [UInt8] = []
  private var first = true

  public init(_ tokenizer: Tokenizer, skipSpecialTokens: Bool) {
    self.tokenizer = tokenizer
    skipSpecial = skipSpecialTokens
  }

  /// What pushing `ids` would return, and the stream's state after it (nothing changes until
  /// `commit`): lets a caller check its buffer first. Throws on an id the tokenizer lacks.
  public func preview(_ ids: [Int32]) throws(GLM5Error) -> (bytes: [UInt8], state: State) {
    var bytes = pending
    var first = self.first
    for (k, id) in ids.enumerated() {
      guard let s = tokenizer.tokenString(id) else { throw .invalidArgument("ids[\(k)] = \(id) is not a token of this tokenizer") }
      if skipSpecial && tokenizer.isSpecial(id) { continue }
      bytes += tokenizer.decoder.decodeStreaming(s, first: first)
      first = false
    }
    let cut = completeUTF8Prefix(bytes)
    return (Array(lossyText(Array(bytes[..<cut])).utf8), State(pending: Array(bytes[cut...]), first: first))
  }

  public struct State {
    fileprivate var pending: [UInt8]
    fileprivate var first: Bool
  }

  public func commit(_ s: State) {
    pending = s.pending
    first = s.first
  }

  /// The text bytes `ids` complete (preview + commit).
  public func push(_ ids: [Int32]) throws(GLM5Error) -> [UInt8] {
    let (out, state) = try preview(ids)
    commit(state)
    return out
  }

  /// What `finish` would return.
  public var remainder: [UInt8] { Array(lossyText(pending).utf8) }

  /// What the stream holds back, as text (U+FFFD for an incomplete sequence); the stream is then
  /// empty and starts over.
  public func finish() -> [UInt8] {
    let out = Array(lossyText(pending).utf8)
    pending = []
    first = true
    return out
  }

  /// Bytes held back now (an incomplete UTF-8 sequence).
  public var heldBack: Int { pending.count }
}
