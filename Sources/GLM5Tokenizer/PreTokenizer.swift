// tokenizer.json's `pre_tokenizer`: how a text segment (what lies between added tokens) is cut
// into the words BPE sees. The types GLM-family and DeepSeek-family files use:
//
//   Sequence   the steps in order, each applied to every piece the previous one produced;
//   Split      a regex (`{"Regex": …}`, Oniguruma semantics, Regex.swift) or a literal
//              (`{"String": …}`) found left to right; `behavior` Isolated (each match its own
//              piece), Removed (matches dropped), MergedWithPrevious / MergedWithNext (a match
//              joins the piece before / after it), Contiguous (runs of matches and of non-matches
//              each become one piece); `invert` swaps matches and gaps;
//   ByteLevel  `add_prefix_space` (a space before each piece not starting with one), `use_regex`
//              (split with GPT-2's pattern), then every piece becomes its UTF-8 bytes in GPT-2's
//              alphabet; `trim_offsets` concerns offsets only;
//   Digits     digits (Unicode N) isolated one by one (`individual_digits`) or as runs.
//
// Empty pieces are dropped after every step, as HF does. ByteLevel must be the last step (its
// output is bytes, not text).

import GLM5Core

/// A piece of text on its way to the model: scalars [lo, hi) of one of the pipeline's buffers.
struct Piece {
  var buffer: Int
  var lo: Int
  var hi: Int
}

struct PreTokenizer: Sendable {
  enum Behavior: String, Sendable { case Removed, Isolated, MergedWithPrevious, MergedWithNext, Contiguous }

  enum Step: Sendable {
    case split(Regex, Behavior, invert: Bool)
    case byteLevel(addPrefixSpace: Bool, regex: Regex?)
  }

  let steps: [Step]
  /// Whether the pieces end as byte-level words (a ByteLevel step is present).
  let byteLevel: Bool

  init(_ field: Field?) throws(GLM5Error) {
    var steps: [Step] = []
    if let field { try PreTokenizer.parse(field, into: &steps) }
    var byteLevel = false
    for (k, s) in steps.enumerated() {
      if case .byteLevel = s {
        guard k == steps.count - 1 else {
          throw GLM5Error.unsupported("\(field?.path ?? "pre_tokenizer"): a step after ByteLevel is not supported (ByteLevel must come last)")
        }
        byteLevel = true
      }
    }
    self.steps = steps
    self.byteLevel = byteLevel
  }

  private static func parse(_ f: Field, into steps: inout [Step]) throws(GLM5Error) {
    let type = try f.type()
    switch type {
    case "Sequence":
      for p in try f.required("pretokenizers").array() { try parse(p, into: &steps) }
    case "Split":
      let pf = try f.required("pattern")
      let regex: Regex
      do throws(GLM5Error) {
        if let r = pf.member("Regex") {
          regex = try Regex(try r.string())
        } else if let s = pf.member("String") {
          regex = try Regex(escaping: try s.string())
        } else {
          throw pf.fail("expected {\"Regex\": …} or {\"String\": …}")
        }
      } catch {
        throw error.status == .unsupported ? GLM5Error(.unsupported, "\(pf.path): \(error.message)") : error
      }
      let bf = try f.required("behavior")
      let name = try bf.string()
      guard let behavior = Behavior(rawValue: name) else {
        throw bf.fail("unknown behavior \(JSON.quote(name)) (Removed, Isolated, MergedWithPrevious, MergedWithNext, Contiguous)")
      }
      steps.append(.split(regex, behavior, invert: try f.bool("invert", default: false)))
    case "ByteLevel":
      let useRegex = try f.bool("use_regex", default: true)
      steps.append(.byteLevel(addPrefixSpace: try f.bool("add_prefix_space", default: true),
                              regex: useRegex ? try Regex(ByteLevel.gpt2Pattern) : nil))
    case "Digits":
      let individual = try f.bool("individual_digits", default: false)
      steps.append(.split(try Regex(individual ? #"\p{N}"# : #"\p{N}+"#), .Isolated, invert: false))
    default:
      throw GLM5Error.unsupported("\(f.path): pre_tokenizer type \"\(type)\" is not supported (Sequence, Split, ByteLevel, Digits)")
    }
  }

  /// Cut scalars [lo, hi) of buffers[0] into pieces; buffers may grow (prefix spaces).
  func run(_ buffers: inout [ScalarText], _ lo: Int, _ hi: Int, _ pieces: inout [Piece]) {
    pieces.removeAll(keepingCapacity: true)
    if hi > lo { pieces.append(Piece(buffer: 0, lo: lo, hi: hi)) }
    var next: [Piece] = []
    for step in steps {
      next.removeAll(keepingCapacity: true)
      switch step {
      case .split(let regex, let behavior, let invert):
        for p in pieces { PreTokenizer.split(p, buffers[p.buffer], regex, behavior, invert, &next) }
      case .byteLevel(let addPrefixSpace, let regex):
        for var p in pieces {
          if addPrefixSpace && buffers[p.buffer].scalars[p.lo] != 0x20 {
            var s: [UInt32] = [0x20]
            s.append(contentsOf: buffers[p.buffer].scalars[p.lo..<p.hi])
            buffers.append(ScalarText(s))
            p = Piece(buffer: buffers.count - 1, lo: 0, hi: s.count)
          }
          if let regex {
            PreTokenizer.split(p, buffers[p.buffer], regex, .Isolated, false, &next)
          } else {
            next.append(p)
          }
        }
      }
      swap(&pieces, &next)
    }
  }

  /// HF NormalizedString.split: matches and gaps in order, combined as `behavior` says.
  static func split(_ p: Piece, _ text: ScalarText, _ regex: Regex, _ behavior: Behavior, _ invert: Bool, _ out: inout [Piece]) {
    // (lo, hi, isMatch) in order, covering the piece
    var parts: [(lo: Int, hi: Int, match: Bool)] = []
    var prev = p.lo
    regex.forEachMatch(in: text, p.lo, p.hi) { s, e in
      if prev != s { parts.append((prev, s, invert)) }
      parts.append((s, e, !invert))
      prev = e
    }
    if prev != p.hi { parts.append((prev, p.hi, invert)) }

    var kept: [(lo: Int, hi: Int)] = []
    switch behavior {
    case .Isolated:
      kept = parts.map { ($0.lo, $0.hi) }
    case .Removed:
      kept = parts.filter { !$0.match }.map { ($0.lo, $0.hi) }
    case .Contiguous:
      var previous = false
      for x in parts {
        if x.match == previous, !kept.isEmpty { kept[kept.count - 1].hi = x.hi } else { kept.append((x.lo, x.hi)) }
        previous = x.match
      }
    case .MergedWithPrevious:
      var previous = false
      for x in parts {
        if x.match && !previous, !kept.isEmpty { kept[kept.count - 1].hi = x.hi } else { kept.append((x.lo, x.hi)) }
        previous = x.match
      }
    case .MergedWithNext:
      var previous = false
      for x in parts.reversed() {
        if x.match && !previous, !kept.isEmpty { kept[kept.count - 1].lo = x.lo } else { kept.append((x.lo, x.hi)) }
        previous = x.match
      }
      kept.reverse()
    }
    for k in kept where k.hi > k.lo { out.append(Piece(buffer: p.buffer, lo: k.lo, hi: k.hi)) }
  }
}

extension Regex {
  /// A pattern matching `literal` exactly (Split's {"String": …}).
  init(escaping literal: String) throws(GLM5Error) {
    var p = ""
    for u in literal.unicodeScalars {
      if u.value < 0x80, !u.properties.isAlphabetic, !(0x30...0x39).contains(u.value), u != " " {
        p += "\\"
      }
      p.unicodeScalars.append(u)
    }
    try self.init(p)
  }
}
