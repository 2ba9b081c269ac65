// A backtracking regex engine over Unicode scalars, for the patterns tokenizer.json files carry
// (Split pre-tokenizers, Replace decoders). HF tokenizers compiles them with Oniguruma (Ruby
// syntax, UTF-8); this engine implements the subset those files use with Oniguruma's meaning and
// refuses everything else with a message naming the construct (never a silent difference):
//
//   alternation `|`, groups `(…)` `(?:…)` `(?i:…)` `(?-i:…)` `(?i)`, atomic `(?>…)`, lookahead
//   `(?=…)` `(?!…)`; classes `[…]` `[^…]` with ranges, `\p{..}` `\P{..}` `\p{^..}` (general
//   categories), `\s \S \d \D \w \W`; `.` (not `\n`); quantifiers `? * + {m} {m,} {m,n} {,n}`,
//   greedy, lazy (`??` `*?` …) and possessive (`?+` `*+` `++`); anchors `^ $` (line, as Ruby),
//   `\A \z \Z`, `\b \B`; escapes `\t \n \r \f \v \a \e \xHH \x{H…} \uHHHH` and escaped
//   punctuation. Case-insensitive matching folds simply (s/S/ſ, k/K/K, å/Å/Å).
//
// Not supported (an error): lookbehind, backreferences, named-group references, scripts
// (`\p{Han}`), POSIX brackets, class intersection, `\h \R \X \K \G`, `{m,n}+`, other flags.
//
// Matching is leftmost with Perl priority (first alternative, greedy first), as Oniguruma's
// search. A repetition whose body can match the empty string is refused at compile time, so no
// pattern loops forever.

import GLM5Core

// MARK: - Syntax tree

private indirect enum Node {
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

private enum Anchor: Int32 { case lineStart, lineEnd, textStart, textEnd, textEndNewline, wordBoundary, notWordBoundary }

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

private struct Parser {
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
      if (hi ?? 2) > 1 && Compiler.nullable(node) {
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

// MARK: - Program

private struct Inst {
  var op: Op
  var a: Int32 = 0
  var b: Int32 = 0
}

private enum Op: UInt8 { case scalar, cls, split, jmp, match, look, notLook, atomic, anchor }

private enum Compiler {
  static func nullable(_ n: Node) -> Bool {
    switch n {
    case .empty, .anchor, .look: return true
    case .scalar, .cls: return false
    case .concat(let xs): return xs.allSatisfy(nullable)
    case .alt(let xs): return xs.contains(where: nullable)
    case .repetition(let x, let lo, _, _): return lo == 0 || nullable(x)
    case .atomic(let x): return nullable(x)
    }
  }
}

/// What a class test needs, packed: the ASCII bitmap and, for other scalars, either the fast
/// test (categories | flags, then negated) or a pointer to the full class (`slow`).
private struct ClassInfo {
  var lo: UInt64 = 0
  var hi: UInt64 = 0
  var cats: UInt32 = 0
  var flags: UInt8 = 0
  var negated = false
  var slow = false
}

/// A compiled pattern. Immutable and thread-safe.
public struct Regex: Sendable {
  private let code: [Inst]
  private let info: [ClassInfo]
  private let classes: [CharClass]
  public let pattern: String

  private static let maxInstructions = 100_000

  public init(_ pattern: String) throws(GLM5Error) {
    var parser = Parser(pattern)
    let tree = try parser.parseAlternation(depth: 0)
    if !parser.atEnd { throw parser.error("unmatched ')'") }
    var b = Builder()
    var subs: [(at: Int, node: Node)] = []
    try b.emit(tree, &subs)
    b.code.append(Inst(op: .match))
    while let (at, node) = subs.popLast() {
      b.code[at].a = Int32(b.code.count)
      try b.emit(node, &subs)
      b.code.append(Inst(op: .match))
      if b.code.count > Regex.maxInstructions { throw parser.error("pattern too large once repetitions are expanded") }
    }
    code = b.code
    var info: [ClassInfo] = []
    for cls in b.classes {
      var ci = ClassInfo()
      for v in 0..<128 where cls.matches(UInt32(v), ScalarProperties.ascii[v]) {
        if v < 64 { ci.lo |= 1 << UInt64(v) } else { ci.hi |= 1 << UInt64(v - 64) }
      }
      var fast = !cls.caseInsensitive
      for item in cls.items {
        switch item {
        case .range(_, let h): if h >= 128 { fast = false }
        case .categories(let m, let neg): if neg { fast = false } else { ci.cats |= m }
        case .flag(let fl, let neg): if neg { fast = false } else { ci.flags |= fl }
        }
      }
      ci.negated = cls.negated
      ci.slow = !fast
      info.append(ci)
    }
    self.info = info
    classes = b.classes
    self.pattern = pattern
  }

  private struct Builder {
    var code: [Inst] = []
    var classes: [CharClass] = []

    mutating func emit(_ n: Node, _ subs: inout [(at: Int, node: Node)]) throws(GLM5Error) {
      if code.count > Regex.maxInstructions { throw .unsupported("regex too large once repetitions are expanded") }
      switch n {
      case .empty: break
      case .scalar(let v): code.append(Inst(op: .scalar, a: Int32(bitPattern: v)))
      case .cls(let c): code.append(Inst(op: .cls, a: Int32(addClass(c))))
      case .anchor(let a): code.append(Inst(op: .anchor, a: a.rawValue))
      case .concat(let xs): for x in xs { try emit(x, &subs) }
      case .alt(let xs):
        var jumps: [Int] = []
        for (k, x) in xs.enumerated() {
          if k < xs.count - 1 {
            let split = code.count
            code.append(Inst(op: .split, a: Int32(split + 1)))
            try emit(x, &subs)
            jumps.append(code.count)
            code.append(Inst(op: .jmp))
            code[split].b = Int32(code.count)
          } else {
            try emit(x, &subs)
          }
        }
        for j in jumps { code[j].a = Int32(code.count) }
      case .look(let x, let negate):
        subs.append((code.count, x))
        code.append(Inst(op: negate ? .notLook : .look))
      case .atomic(let x):
        subs.append((code.count, x))
        code.append(Inst(op: .atomic))
      case .repetition(let x, let lo, let hi, let greedy):
        for _ in 0..<lo { try emit(x, &subs) }
        if let hi {
          // (x(x(x)?)?)? for the optional copies
          var patches: [Int] = []
          for _ in lo..<hi {
            let split = code.count
            code.append(Inst(op: .split))
            patches.append(split)
            code[split].a = Int32(split + 1)
            try emit(x, &subs)
          }
          for s in patches { setSplit(s, body: s + 1, out: code.count, greedy: greedy) }
        } else {
          let loop = code.count
          code.append(Inst(op: .split))
          try emit(x, &subs)
          code.append(Inst(op: .jmp, a: Int32(loop)))
          setSplit(loop, body: loop + 1, out: code.count, greedy: greedy)
        }
      }
    }

    mutating func setSplit(_ at: Int, body: Int, out: Int, greedy: Bool) {
      code[at].a = Int32(greedy ? body : out)
      code[at].b = Int32(greedy ? out : body)
    }

    mutating func addClass(_ c: CharClass) -> Int {
      classes.append(c)
      return classes.count - 1
    }
  }

  // MARK: - Matching

  /// Every non-overlapping match in scalars [lo, hi) of `text`, leftmost first, as Oniguruma's
  /// search iterates them (an empty match advances by one scalar). Calls `found(start, end)`.
  func forEachMatch(in text: ScalarText, _ lo: Int, _ hi: Int, _ found: (Int, Int) -> Void) {
    var stack = BacktrackStack()
    defer { stack.deallocate() }
    code.withUnsafeBufferPointer { code in
      text.scalars.withUnsafeBufferPointer { s in
        text.props.withUnsafeBufferPointer { p in
          info.withUnsafeBufferPointer { info in
            let m = Machine(code: code, s: s, p: p, info: info, classes: classes, lo: lo, hi: hi)
            var pos = lo
            while pos < hi {
              var start = pos
              var end = -1
              while start < hi {
                end = m.run(0, start, &stack)
                if end >= 0 { break }
                start += 1
              }
              if end < 0 { break }
              found(start, end)
              pos = end > start ? end : start + 1
            }
          }
        }
      }
    }
  }
}

/// Backtrack points as (pc, pos) pairs on a growable C buffer (no copy-on-write checks in the
/// matching loop).
private struct BacktrackStack {
  var base: UnsafeMutablePointer<Int32>
  var capacity = 256
  var count = 0

  init() { base = UnsafeMutablePointer<Int32>.allocate(capacity: 256) }

  func deallocate() { base.deallocate() }

  @inline(__always) mutating func push(_ a: Int32, _ b: Int32) {
    if count + 2 > capacity {
      let bigger = UnsafeMutablePointer<Int32>.allocate(capacity: capacity * 2)
      bigger.update(from: base, count: count)
      base.deallocate()
      base = bigger
      capacity *= 2
    }
    base[count] = a
    base[count + 1] = b
    count += 2
  }
}

/// One search's view of the program and the text.
private struct Machine {
  let code: UnsafeBufferPointer<Inst>
  let s: UnsafeBufferPointer<UInt32>
  let p: UnsafeBufferPointer<UInt8>
  let info: UnsafeBufferPointer<ClassInfo>
  let classes: [CharClass]
  let lo: Int
  let hi: Int

  @inline(__always) func classMatches(_ k: Int, _ v: UInt32, _ prop: UInt8) -> Bool {
    let c = info[k]
    if v < 64 { return c.lo & (1 << UInt64(v)) != 0 }
    if v < 128 { return c.hi & (1 << UInt64(v - 64)) != 0 }
    if c.slow { return classes[k].matches(v, prop) }
    let hit = (ScalarProperties.category(prop) & c.cats) != 0 || (prop & c.flags) != 0
    return hit != c.negated
  }

  func isWord(_ i: Int) -> Bool { i >= lo && i < hi && p[i] & ScalarProperties.word != 0 }

  func anchor(_ a: Int32, _ pos: Int) -> Bool {
    switch Anchor(rawValue: a) {
    case .lineStart: return pos == lo || s[pos - 1] == 0x0A
    case .lineEnd: return pos == hi || s[pos] == 0x0A
    case .textStart: return pos == lo
    case .textEnd: return pos == hi
    case .textEndNewline: return pos == hi || (pos == hi - 1 && s[pos] == 0x0A)
    case .wordBoundary: return isWord(pos - 1) != isWord(pos)
    case .notWordBoundary: return isWord(pos - 1) == isWord(pos)
    case nil: return false
    }
  }

  /// Run from instruction pc at pos; the end of the first match in priority order, or -1.
  /// Backtrack points live on `stack` above its entry height.
  func run(_ pc0: Int, _ pos0: Int, _ stack: inout BacktrackStack) -> Int {
    let base = stack.count
    var pc = pc0
    var pos = pos0
    while true {
      let inst = code[pc]
      var ok = false
      switch inst.op {
      case .scalar:
        if pos < hi && s[pos] == UInt32(bitPattern: inst.a) { pos += 1; pc += 1; ok = true }
      case .cls:
        if pos < hi && classMatches(Int(inst.a), s[pos], p[pos]) { pos += 1; pc += 1; ok = true }
      case .split:
        stack.push(inst.b, Int32(pos))
        pc = Int(inst.a)
        ok = true
      case .jmp:
        pc = Int(inst.a)
        ok = true
      case .match:
        stack.count = base
        return pos
      case .look, .notLook:
        let hit = run(Int(inst.a), pos, &stack) >= 0
        if hit == (inst.op == .look) { pc += 1; ok = true }
      case .atomic:
        let e = run(Int(inst.a), pos, &stack)
        if e >= 0 { pos = e; pc += 1; ok = true }
      case .anchor:
        if anchor(inst.a, pos) { pc += 1; ok = true }
      }
      if ok { continue }
      if stack.count == base { return -1 }
      stack.count -= 2
      pc = Int(stack.base[stack.count])
      pos = Int(stack.base[stack.count + 1])
    }
  }
}
