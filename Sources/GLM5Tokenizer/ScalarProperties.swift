// The Unicode facts the tokenizer's regexes and added-token rules ask about a scalar, packed in one
// byte: the general category (5 bits) and the White_Space and word flags. A text is classified
// once (`ScalarText`), so a pattern with seven alternatives looks each scalar up once.
//
// Semantics follow Oniguruma (what HF tokenizers' `onig` regexes use) and Rust `regex` (what its
// added-token rules use), on these points identical: `\s` = White_Space, `\d` = Nd,
// `\w` = Alphabetic | M | Nd | Pc | Join_Control. The Unicode tables are Swift's, Oniguruma's
// are its own: scalars assigned in Unicode 13 to 16 classify the same in both (test_tokenizer_hf.py,
// RECENT_UNICODE); a future Unicode version could differ until both catch up.

import GLM5Core

/// General categories in a fixed order; `\p{..}` names map onto bit masks of these.
enum GeneralCategory: UInt8, CaseIterable {
  case Lu, Ll, Lt, Lm, Lo, Mn, Mc, Me, Nd, Nl, No, Pc, Pd, Ps, Pe, Pi, Pf, Po
  case Sm, Sc, Sk, So, Zs, Zl, Zp, Cc, Cf, Cs, Co, Cn

  init(_ c: Unicode.GeneralCategory) {
    switch c {
    case .uppercaseLetter: self = .Lu
    case .lowercaseLetter: self = .Ll
    case .titlecaseLetter: self = .Lt
    case .modifierLetter: self = .Lm
    case .otherLetter: self = .Lo
    case .nonspacingMark: self = .Mn
    case .spacingMark: self = .Mc
    case .enclosingMark: self = .Me
    case .decimalNumber: self = .Nd
    case .letterNumber: self = .Nl
    case .otherNumber: self = .No
    case .connectorPunctuation: self = .Pc
    case .dashPunctuation: self = .Pd
    case .openPunctuation: self = .Ps
    case .closePunctuation: self = .Pe
    case .initialPunctuation: self = .Pi
    case .finalPunctuation: self = .Pf
    case .otherPunctuation: self = .Po
    case .mathSymbol: self = .Sm
    case .currencySymbol: self = .Sc
    case .modifierSymbol: self = .Sk
    case .otherSymbol: self = .So
    case .spaceSeparator: self = .Zs
    case .lineSeparator: self = .Zl
    case .paragraphSeparator: self = .Zp
    case .control: self = .Cc
    case .format: self = .Cf
    case .surrogate: self = .Cs
    case .privateUse: self = .Co
    case .unassigned: self = .Cn
    @unknown default: self = .Cn
    }
  }

  var mask: UInt32 { 1 << UInt32(rawValue) }

  /// `\p{name}` → mask of categories: one- and two-letter names, `L&`/`LC`, and the long names.
  static func mask(named name: String) -> UInt32? {
    func m(_ cs: [GeneralCategory]) -> UInt32 { cs.reduce(0) { $0 | $1.mask } }
    let key = name.lowercased().replacingAll("_", "").replacingAll(" ", "").replacingAll("-", "")
    switch key {
    case "l", "letter": return m([.Lu, .Ll, .Lt, .Lm, .Lo])
    case "lc", "l&", "casedletter": return m([.Lu, .Ll, .Lt])
    case "m", "mark", "combiningmark": return m([.Mn, .Mc, .Me])
    case "n", "number": return m([.Nd, .Nl, .No])
    case "p", "punctuation", "punct": return m([.Pc, .Pd, .Ps, .Pe, .Pi, .Pf, .Po])
    case "s", "symbol": return m([.Sm, .Sc, .Sk, .So])
    case "z", "separator": return m([.Zs, .Zl, .Zp])
    case "c", "other": return m([.Cc, .Cf, .Cs, .Co, .Cn])
    case "uppercaseletter": return GeneralCategory.Lu.mask
    case "lowercaseletter": return GeneralCategory.Ll.mask
    case "titlecaseletter": return GeneralCategory.Lt.mask
    case "modifierletter": return GeneralCategory.Lm.mask
    case "otherletter": return GeneralCategory.Lo.mask
    case "nonspacingmark": return GeneralCategory.Mn.mask
    case "spacingmark": return GeneralCategory.Mc.mask
    case "enclosingmark": return GeneralCategory.Me.mask
    case "decimalnumber", "digit": return GeneralCategory.Nd.mask
    case "letternumber": return GeneralCategory.Nl.mask
    case "othernumber": return GeneralCategory.No.mask
    case "connectorpunctuation": return GeneralCategory.Pc.mask
    case "dashpunctuation": return GeneralCategory.Pd.mask
    case "openpunctuation": return GeneralCategory.Ps.mask
    case "closepunctuation": return GeneralCategory.Pe.mask
    case "initialpunctuation": return GeneralCategory.Pi.mask
    case "finalpunctuation": return GeneralCategory.Pf.mask
    case "otherpunctuation": return GeneralCategory.Po.mask
    case "mathsymbol": return GeneralCategory.Sm.mask
    case "currencysymbol": return GeneralCategory.Sc.mask
    case "modifiersymbol": return GeneralCategory.Sk.mask
    case "othersymbol": return GeneralCategory.So.mask
    case "spaceseparator": return GeneralCategory.Zs.mask
    case "lineseparator": return GeneralCategory.Zl.mask
    case "paragraphseparator": return GeneralCategory.Zp.mask
    case "control", "cntrl": return GeneralCategory.Cc.mask
    case "format": return GeneralCategory.Cf.mask
    case "surrogate": return GeneralCategory.Cs.mask
    case "privateuse": return GeneralCategory.Co.mask
    case "unassigned": return GeneralCategory.Cn.mask
    default: break
    }
    for c in GeneralCategory.allCases where "\(c)".lowercased() == key { return c.mask }
    return nil
  }
}

/// One byte per scalar: bits 0-4 the GeneralCategory, bit 5 White_Space, bit 6 word (`\w`).
enum ScalarProperties {
  static let space: UInt8 = 0x20
  static let word: UInt8 = 0x40

  static func classify(_ v: UInt32) -> UInt8 {
    if v < 0x10000 { return bmp[Int(v)] }
    return compute(v)
  }

  /// [65536] the Basic Multilingual Plane, classified once per process (~10 ms) because the
  /// stdlib's property lookups dominate encoding time on CJK text otherwise.
  static let bmp: [UInt8] = (0..<0x10000).map { compute(UInt32($0)) }

  static func compute(_ v: UInt32) -> UInt8 {
    guard let s = Unicode.Scalar(v) else { return GeneralCategory.Cs.rawValue }
    let p = s.properties
    let cat = GeneralCategory(p.generalCategory)
    var b = cat.rawValue
    if p.isWhitespace { b |= space }
    switch cat {
    case .Mn, .Mc, .Me, .Nd, .Pc: b |= word
    default: if p.isAlphabetic || p.isJoinControl { b |= word }
    }
    return b
  }

  static let ascii: [UInt8] = (0..<128).map { compute(UInt32($0)) }

  @inline(__always) static func category(_ b: UInt8) -> UInt32 { 1 << UInt32(b & 0x1F) }
}

/// A text as Unicode scalars with their properties and UTF-8 offsets: what the regex engine and
/// the added-token matcher read.
struct ScalarText {
  /// [n] scalar values
  var scalars: [UInt32]
  /// [n] ScalarProperties bytes
  var props: [UInt8]

  init(_ scalars: [UInt32]) {
    self.scalars = scalars
    props = [UInt8](repeating: 0, count: scalars.count)
    ScalarText.classify(scalars, &props)
  }

  /// The same with the properties allocated fallibly (the whole text of an encode, up to 2^28).
  init(fallible scalars: [UInt32]) throws(GLM5Error) {
    self.scalars = scalars
    props = []
    try props.reserveFallibly(scalars.count, what: "the properties of \(scalars.count) scalars")
    props.append(contentsOf: repeatElement(0, count: scalars.count))
    ScalarText.classify(scalars, &props)
  }

  private static func classify(_ scalars: [UInt32], _ props: inout [UInt8]) {
    scalars.withUnsafeBufferPointer { s in
      props.withUnsafeMutableBufferPointer { p in
        for i in 0..<s.count { p[i] = ScalarProperties.classify(s[i]) }
      }
    }
  }

  var count: Int { scalars.count }
}

extension String {
  func replacingAll(_ a: Character, _ b: String) -> String {
    var out = ""
    for c in self { if c == a { out += b } else { out.append(c) } }
    return out
  }
}
