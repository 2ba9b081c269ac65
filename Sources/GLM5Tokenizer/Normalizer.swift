// tokenizer.json's `normalizer`. GLM-family files have none (null) and DeepSeek-family files an
// empty Sequence, both the identity; NFC (Qwen-family files) composes canonically, with the
// standard library's NFC (`String._nfcCodeUnits`, what Foundation uses). Any other normalizer
// (NFD, NFKC, Lowercase, Replace, …) is refused at load with a message naming it, so a file is
// never encoded differently from HF tokenizers without notice.

import GLM5Core

struct Normalizer: Sendable {
  /// Whether text goes through NFC (NFC twice is NFC; the identity steps drop out).
  let nfc: Bool

  var isIdentity: Bool { !nfc }

  init(_ field: Field?) throws(GLM5Error) {
    var nfc = false
    try Normalizer.parse(field, &nfc)
    self.nfc = nfc
  }

  private static func parse(_ field: Field?, _ nfc: inout Bool) throws(GLM5Error) {
    guard let field else { return }
    let type = try field.type()
    switch type {
    case "Sequence":
      for n in try field.required("normalizers").array() { try parse(n, &nfc) }
    case "NFC":
      nfc = true
    default:
      throw GLM5Error.unsupported("\(field.path): normalizer type \"\(type)\" is not supported (only null, NFC and Sequence)")
    }
  }

  /// The normalized form of scalars.
  func apply(_ scalars: ArraySlice<UInt32>) -> [UInt32] {
    guard nfc else { return Array(scalars) }
    var s = String.UnicodeScalarView()
    for v in scalars { s.append(Unicode.Scalar(v) ?? "\u{FFFD}") }
    return String(decoding: String(s)._nfcCodeUnits, as: UTF8.self).unicodeScalars.map(\.value)
  }

  func apply(_ s: String) -> String {
    guard nfc else { return s }
    return String(decoding: s._nfcCodeUnits, as: UTF8.self)
  }
}
