// GPT-2's byte-level alphabet (`bytes_to_unicode`): every byte gets a printable scalar, so BPE
// runs on "characters" that are really bytes and any byte string is representable. The
// printable ranges '!'...'~', '¡'...'¬', '®'...'ÿ' map to themselves; the 68 other bytes map, in
// order, to U+0100, U+0101, … (space is U+0120 'Ġ', newline U+010A 'Ċ').
//
// The ByteLevel pre-tokenizer (PreTokenizer.swift) optionally adds a prefix space and splits with
// GPT-2's regex below, then maps each UTF-8 byte through this table; the ByteLevel decoder
// (Decoder.swift) maps back.

enum ByteLevel {
  /// [256] byte → scalar of the alphabet
  static let byteToScalar: [UInt32] = {
    var table = [UInt32](repeating: 0, count: 256)
    var printable = [Bool](repeating: false, count: 256)
    for b in 0x21...0x7E { printable[b] = true }
    for b in 0xA1...0xAC { printable[b] = true }
    for b in 0xAE...0xFF { printable[b] = true }
    var n: UInt32 = 0
    for b in 0..<256 {
      if printable[b] {
        table[b] = UInt32(b)
      } else {
        table[b] = 256 + n
        n += 1
      }
    }
    return table
  }()

  /// The inverse: the byte a scalar of the alphabet stands for, or nil for any other scalar.
  static func byte(for scalar: UInt32) -> UInt8? {
    if scalar < 256 {
      let b = Int(scalar)
      if (0x21...0x7E).contains(b) || (0xA1...0xAC).contains(b) || (0xAE...0xFF).contains(b) { return UInt8(b) }
      return nil
    }
    guard scalar < 256 + 68 else { return nil }
    return scalarToByteHigh[Int(scalar - 256)]
  }

  private static let scalarToByteHigh: [UInt8] = {
    var out = [UInt8](repeating: 0, count: 68)
    for b in 0..<256 where byteToScalar[b] >= 256 { out[Int(byteToScalar[b] - 256)] = UInt8(b) }
    return out
  }()

  /// A vocabulary string's bytes if every scalar is in the alphabet (what the decoder emits for
  /// it), else nil.
  static func bytes(of token: String) -> [UInt8]? {
    var out: [UInt8] = []
    out.reserveCapacity(token.utf8.count)
    for s in token.unicodeScalars {
      guard let b = byte(for: s.value) else { return nil }
      out.append(b)
    }
    return out
  }

  /// The string a byte sequence becomes in the alphabet.
  static func string(of bytes: some Sequence<UInt8>) -> String {
    var s = String.UnicodeScalarView()
    for b in bytes { s.append(Unicode.Scalar(byteToScalar[Int(b)]) ?? "?") }
    return String(s)
  }

  /// GPT-2's split pattern, what ByteLevel(use_regex: true) uses.
  static let gpt2Pattern = #"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"#
}
