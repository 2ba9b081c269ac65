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
// pattern loops forever. The syntax tree and the parser are in RegexSyntax.swift.

import GLM5Core

// MARK: - Program

private struct Inst {
  var op: Op
  var a: Int32 = 0
  var b: Int32 = 0
}

private enum Op: UInt8 { case scalar, cls, split, jmp, match, look, notLook, atomic, anchor }

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
