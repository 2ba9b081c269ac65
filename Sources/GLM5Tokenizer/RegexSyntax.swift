// The syntax of the regex subset Regex.swift compiles (that file's header lists it): the tree
// (Node, CharClass, CaseFold) and the parser from a pattern's scalars to it, which refuses
// unsupported constructs with a message naming them.

import GLM5Core

// MARK: - Syntax tree

indirect enum Node {
  case empty
  case scalar(UInt32)
  case cls(CharClass)
  case concat([Node])
  case alt([Node])
  case repetition(Node, min: Int, max: Int?, greedy: Bool)
  case look(Node, negate: Bool)
  case atomic(Node)
  case anchor(Anchor)
}

enum Anchor: Int32 { case lineStart, lineEnd, textStart, textEnd, textEndNewline, wordBoundary, notWordBoundary }

/// A bracket class (or an escape like `\s`, or a case-folded literal).
struct CharClass {
  enum Item {
    case range(UInt32, UInt32)
    case categories(UInt32, negated: Bool)
    case flag(UInt8, negated: Bool)  // ScalarProperties.space / .word
  }
  var items: [Item] = []
  var negated = false
  var caseInsensitive = false

  func matches(_ v: UInt32, _ prop: UInt8) -> Bool {
    var hit = itemsMatch(v, prop)
    if !hit && caseInsensitive {
      for w in CaseFold.variants(v) where w != v {
        if itemsMatch(w, ScalarProperties.classify(w)) { hit = true; break }
      }
    }
    return hit != negated
  }

  private func itemsMatch(_ v: UInt32, _ prop: UInt8) -> Bool {
    for item in items {
      switch item {
      case .range(let lo, let hi): if v >= lo && v <= hi { return true }
      case .categories(let m, let neg): if ((ScalarProperties.category(prop) & m) != 0) != neg { return true }
      case .flag(let f, let neg): if ((prop & f) != 0) != neg { return true }
      }
    }
    return false
  }
}

/// Simple case folding for case-insensitive literals and classes.
enum CaseFold {
  /// Scalars that fold to a letter other than their lowercase mapping suggests (CaseFolding.txt).
  static let extra: [UInt32: UInt32] = [0x17F: 0x73, 0x212A: 0x6B, 0x212B: 0xE5, 0x2126: 0x3C9, 0x1E9E: 0xDF]

  static func single(_ s: String) -> UInt32? {
    let u = s.unicodeScalars
    return u.count == 1 ? u.first?.value : nil
  }

  static func fold(_ v: UInt32) -> UInt32 {
    if let e = extra[v] { return e }
    guard let s = Unicode.Scalar(v) else { return v }
    return single(s.properties.lowercaseMapping) ?? v
  }

  /// Every scalar that matches v case-insensitively (v included).
  static func variants(_ v: UInt32) -> [UInt32] {
    let f = fold(v)
    var out: [UInt32] = [v]
    func add(_ w: UInt32?) { if let w, !out.contains(w) { out.append(w) } }
    add(f)
    if let s = Unicode.Scalar(f) {
      add(single(s.properties.uppercaseMapping))
      add(single(s.properties.titlecaseMapping))
    }
    for (k, t) in extra where t == f { add(k) }
    return out
  }
}

// MARK: - Parser

struct Parser {
  let p: [UInt32]
  var i = 0
  var caseInsensitive = false
  let source: String

  init(_ pattern: String) {
    p = pattern.unicodeScalars.map(\.value)
    source = pattern
  }

  func error(_ what: String) -> GLM5Error {
    .unsupported("regex \(JSON.quote(source)) at \(i): \(what)")
  }

  var atEnd: Bool { i >= p.count }
  func peek(_ k: Int = 0) -> UInt32? { i + k < p.count ? p[i + k] : nil }
  func isChar(_ c: Unicode.Scalar, _ k: Int = 0) -> Bool { peek(k) == c.value }

  mutating func parseAlternation(depth: Int) throws(GLM5Error) -> Node {
    guard depth < 200 else { throw error("nested too deeply") }
    var branches = [try parseConcat(depth: depth)]
    while isChar("|") {
      i += 1
      branches.append(try parseConcat(depth: depth))
    }
    return branches.count == 1 ? branches[0] : .alt(branches)
  }

  mutating func parseConcat(depth: Int) throws(GLM5Error) -> Node {
    var items: [Node] = []
    while !atEnd && !isChar("|") && !isChar(")") {
      // `(?i)` switches the flag for the rest of the enclosing group.
      if isChar("(") && isChar("?", 1) && (isChar("i", 2) || isChar("-", 2)) {
        var k = 2
        var on = true
        if isChar("-", k) { on = false; k += 1 }
        if isChar("i", k) && isChar(")", k + 1) {
          caseInsensitive = on
          i += k + 2
          continue
        }
      }
      let atom = try parseAtom(depth: depth)
      items.append(try parseQuantifier(atom))
    }
    return items.count == 1 ? items[0] : (items.isEmpty ? .empty : .concat(items))
  }

  mutating func parseNumber() -> Int? {
    var n: Int? = nil
    while let c = peek(), c >= 0x30, c <= 0x39 {
      let v = (n ?? 0) * 10 + Int(c - 0x30)
      n = v
      if v > 100_000 { return n }
      i += 1
    }
    return n
  }

  mutating func parseQuantifier(_ atom: Node) throws(GLM5Error) -> Node {
    var node = atom
    var stacked = 0
    while let c = peek() {
      var lo = 0
      var hi: Int? = nil
      var interval = false
      switch c {
      case 0x2A: lo = 0; hi = nil; i += 1  // *
      case 0x2B: lo = 1; hi = nil; i += 1  // +
      case 0x3F: lo = 0; hi = 1; i += 1  // ?
      case 0x7B:  // {m,n}: an invalid interval is a literal '{' (Oniguruma)
        let save = i
        i += 1
        let m = parseNumber()
        var n: Int? = m
        var ok = true
        if isChar(",") {
          i += 1
          n = parseNumber()
          if m == nil && n == nil { ok = false }
        } else if m == nil { ok = false }
        if ok && isChar("}") {
          i += 1
          lo = m ?? 0
          hi = n
          interval = true
        } else {
          i = save
          return node
        }
        if let h = hi, h < lo { throw error("interval {\(lo),\(h)} has max < min") }
        if lo > 1000 || (hi ?? 0) > 1000 { throw error("interval bound above 1000") }
      default: return node
      }
      stacked += 1
      if stacked > 8 { throw error("more than 8 quantifiers on one atom") }
      if case .anchor = node { throw error("a quantifier after an anchor") }
      if case .look = node { throw error("a quantifier after a lookahead") }
      if (hi ?? 2) > 1 && node.nullable {
        throw error("a repetition whose body can match the empty string")
      }
      var greedy = true
      var possessive = false
      if isChar("?") { greedy = false; i += 1 } else if isChar("+") {
        if interval { throw error("'+' after an interval ({m,n}+ is ambiguous between Oniguruma's syntaxes)") }
        possessive = true; i += 1
      }
      node = .repetition(node, min: lo, max: hi, greedy: greedy)
      if possessive { node = .atomic(node) }
    }
    return node
  }

  mutating func literal(_ v: UInt32) -> Node {
    if caseInsensitive {
      let vs = CaseFold.variants(v)
      if vs.count > 1 { return .cls(CharClass(items: vs.map { .range($0, $0) })) }
    }
    return .scalar(v)
  }

  mutating func parseAtom(depth: Int) throws(GLM5Error) -> Node {
    guard let c = peek() else { throw error("unexpected end") }
    switch c {
    case 0x28: return try parseGroup(depth: depth)  // (
    case 0x5B: i += 1; return .cls(try parseClass())  // [
    case 0x2E: i += 1; return .cls(CharClass(items: [.range(0x0A, 0x0A)], negated: true))  // .
    case 0x5E: i += 1; return .anchor(.lineStart)
    case 0x24: i += 1; return .anchor(.lineEnd)
    case 0x5C: return try parseEscape()
    case 0x2A, 0x2B, 0x3F: throw error("nothing to repeat")
    case 0x29: throw error("unmatched ')'")
    default:
      i += 1
      return literal(c)
    }
  }

  mutating func parseGroup(depth: Int) throws(GLM5Error) -> Node {
    i += 1  // (
    let saved = caseInsensitive
    defer { caseInsensitive = saved }
    var kind = 0  // 0 plain, 1 lookahead, 2 negative lookahead, 3 atomic
    if isChar("?") {
      i += 1
      guard let c = peek() else { throw error("unexpected end in a group") }
      switch c {
      case 0x3A: i += 1  // (?:
      case 0x3D: i += 1; kind = 1  // (?=
      case 0x21: i += 1; kind = 2  // (?!
      case 0x3E: i += 1; kind = 3  // (?>
      case 0x23:  // (?# comment )
        while let d = peek(), d != 0x29 { i += 1 }
        guard isChar(")") else { throw error("unterminated comment") }
        i += 1
        return .empty
      case 0x3C, 0x50:  // (?<name> or (?P<name>; lookbehind refused
        if isChar("P") { i += 1 }
        guard isChar("<") else { throw error("unsupported group (?P") }
        if isChar("=", 1) || isChar("!", 1) { throw error("lookbehind is not supported") }
        i += 1
        while let d = peek(), d != 0x3E { i += 1 }
        guard isChar(">") else { throw error("unterminated group name") }
        i += 1
      case 0x69, 0x2D:  // (?i: (?-i:
        var on = true
        if isChar("-") { on = false; i += 1 }
        guard isChar("i") else { throw error("unsupported flag group (only i)") }
        i += 1
        guard isChar(":") else { throw error("unsupported flag group (only (?i:…), (?-i:…), (?i), (?-i))") }
        i += 1
        caseInsensitive = on
      default:
        throw error("unsupported group (?\(String(Unicode.Scalar(c).map { Character($0) } ?? "?"))")
      }
    }
    let inner = try parseAlternation(depth: depth + 1)
    guard isChar(")") else { throw error("missing ')'") }
    i += 1
    switch kind {
    case 1: return .look(inner, negate: false)
    case 2: return .look(inner, negate: true)
    case 3: return .atomic(inner)
    default: return inner
    }
  }

  mutating func hexDigits(max: Int, exact: Bool) throws(GLM5Error) -> UInt32 {
    var v: UInt32 = 0
    var n = 0
    while n < max, let c = peek() {
      let d: UInt32
      switch c {
      case 0x30...0x39: d = c - 0x30
      case 0x41...0x46: d = c - 0x41 + 10
      case 0x61...0x66: d = c - 0x61 + 10
      default:
        if exact { throw error("expected \(max) hex digits") }
        return n == 0 ? 0 : v
      }
      v = v * 16 + d
      n += 1
      i += 1
    }
    if n == 0 { throw error("expected hex digits") }
    return v
  }

  /// An escape that stands for one scalar, or nil.
  mutating func scalarEscape(_ c: UInt32) throws(GLM5Error) -> UInt32? {
    switch c {
    case 0x74: return 0x09  // t
    case 0x6E: return 0x0A  // n
    case 0x72: return 0x0D  // r
    case 0x66: return 0x0C  // f
    case 0x76: return 0x0B  // v
    case 0x61: return 0x07  // a
    case 0x65: return 0x1B  // e
    case 0x78:  // x
      if isChar("{") {
        i += 1
        let v = try hexDigits(max: 8, exact: false)
        guard isChar("}") else { throw error("unterminated \\x{…}") }
        i += 1
        guard Unicode.Scalar(v) != nil else { throw error("\\x{\(String(v, radix: 16))} is not a scalar") }
        return v
      }
      return try hexDigits(max: 2, exact: false)
    case 0x75:  // u
      let v = try hexDigits(max: 4, exact: true)
      guard Unicode.Scalar(v) != nil else { throw error("\\u\(String(v, radix: 16)) is not a scalar") }
      return v
    default:
      // Escaped punctuation and symbols stand for themselves.
      if c < 0x80, let s = Unicode.Scalar(c), !s.properties.isAlphabetic, !(0x30...0x39).contains(c) { return c }
      if c >= 0x80 { return c }
      return nil
    }
  }

  /// `\d \s \w \p{..}` and their negations as class items.
  mutating func classEscape(_ c: UInt32) throws(GLM5Error) -> CharClass.Item? {
    switch c {
    case 0x64: return .categories(GeneralCategory.Nd.mask, negated: false)  // d
    case 0x44: return .categories(GeneralCategory.Nd.mask, negated: true)
    case 0x73: return .flag(ScalarProperties.space, negated: false)  // s
    case 0x53: return .flag(ScalarProperties.space, negated: true)
    case 0x77: return .flag(ScalarProperties.word, negated: false)  // w
    case 0x57: return .flag(ScalarProperties.word, negated: true)
    case 0x70, 0x50:  // p P
      var neg = c == 0x50
      guard isChar("{") else { throw error("\\p without {…}") }
      i += 1
      if isChar("^") { neg.toggle(); i += 1 }
      var name = ""
      while let d = peek(), d != 0x7D {
        name.unicodeScalars.append(Unicode.Scalar(d) ?? " ")
        i += 1
      }
      guard isChar("}") else { throw error("unterminated \\p{") }
      i += 1
      guard let mask = GeneralCategory.mask(named: name) else {
        throw error("\\p{\(name)}: only general categories are supported (not scripts or binary properties)")
      }
      return .categories(mask, negated: neg)
    default: return nil
    }
  }

  mutating func parseEscape() throws(GLM5Error) -> Node {
    i += 1  // backslash
    guard let c = peek() else { throw error("trailing backslash") }
    i += 1
    switch c {
    case 0x41: return .anchor(.textStart)  // A
    case 0x7A: return .anchor(.textEnd)  // z
    case 0x5A: return .anchor(.textEndNewline)  // Z
    case 0x62: return .anchor(.wordBoundary)  // b
    case 0x42: return .anchor(.notWordBoundary)  // B
    default: break
    }
    if let item = try classEscape(c) { return .cls(CharClass(items: [item])) }
    if let v = try scalarEscape(c) { return literal(v) }
    throw error("unsupported escape \\\(Character(Unicode.Scalar(c) ?? "?"))")
  }

  mutating func parseClass() throws(GLM5Error) -> CharClass {
    var cls = CharClass()
    cls.caseInsensitive = caseInsensitive
    if isChar("^") { cls.negated = true; i += 1 }
    var first = true
    while true {
      guard let c = peek() else { throw error("unterminated character class") }
      if c == 0x5D && !first { i += 1; break }  // ]
      first = false
      if c == 0x5B {  // [
        if isChar(":", 1) { throw error("POSIX bracket classes are not supported") }
        throw error("nested character classes are not supported")
      }
      if c == 0x26 && isChar("&", 1) { throw error("class intersection (&&) is not supported") }
      var lo: UInt32
      if c == 0x5C {
        i += 1
        guard let e = peek() else { throw error("trailing backslash") }
        i += 1
        if let item = try classEscape(e) { cls.items.append(item); continue }
        if e == 0x62 { lo = 0x08 }  // \b in a class is backspace
        else if let v = try scalarEscape(e) { lo = v }
        else { throw error("unsupported escape \\\(Character(Unicode.Scalar(e) ?? "?")) in a class") }
      } else {
        i += 1
        lo = c
      }
      // A range a-b (a '-' before ']' is literal).
      if isChar("-"), let next = peek(1), next != 0x5D {
        i += 1
        var hi: UInt32
        if next == 0x5C {
          i += 1
          guard let e = peek() else { throw error("trailing backslash") }
          i += 1
          guard let v = try scalarEscape(e) else { throw error("a class escape cannot end a range") }
          hi = v
        } else {
          i += 1
          hi = next
        }
        guard lo <= hi else { throw error("range out of order") }
        cls.items.append(.range(lo, hi))
      } else {
        cls.items.append(.range(lo, lo))
      }
    }
    return cls
  }
}

extension Node {
  /// Whether the node can match the empty string (a repetition of such a body is refused).
  var nullable: Bool {
    switch self {
    case .empty, .anchor, .look: return true
    case .scalar, .cls: return false
    case .concat(let xs): return xs.allSatisfy(\.nullable)
    case .alt(let xs): return xs.contains(where: \.nullable)
    case .repetition(let x, let lo, _, _): return lo == 0 || x.nullable
    case .atomic(let x): return x.nullable
    }
  }
}
