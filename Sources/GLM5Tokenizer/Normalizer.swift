// tokenizer.json's `normalizer`. GLM-family files have none (null) and DeepSeek-family files an
// empty Sequence; both are the identity, which is all this version implements. Any other
// normalizer (NFC, NFKC, Lowercase, Replace, …) is refused at load with a message naming it, so a
// file is never encoded differently from HF tokenizers without notice.

import GLM5Core

enum Normalizer {
  /// Check that `field` (tokenizer.json's "normalizer") is the identity.
  static func parse(_ field: Field?) throws(GLM5Error) {
    guard let field else { return }
    let type = try field.type()
    switch type {
    case "Sequence":
      for n in try field.required("normalizers").array() { try parse(n) }
    default:
      throw GLM5Error.unsupported("\(field.path): normalizer type \"\(type)\" is not supported (only null and Sequence of none)")
    }
  }
}
