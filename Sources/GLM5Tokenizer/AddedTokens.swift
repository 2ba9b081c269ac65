// tokenizer.json's `added_tokens`: strings matched in the raw text before anything else and never
// split (HF tokenizers' AddedVocabulary, tokenizers/src/tokenizer/added_vocabulary.rs):
//
//   - tokens with `normalized: false` are found in the input as given, then those with
//     `normalized: true`, in their normalized form, in the normalized text between them;
//   - matching is leftmost-longest over all tokens, non-overlapping, left to right; a match that
//     its rules reject still consumes its text for the search;
//   - `single_word`: only when neither neighbour is a word character (`\w`);
//   - `lstrip` / `rstrip`: the token also takes the whitespace before / after it (never reaching
//     back before the previous match);
//   - `special` tokens are matched only when the caller parses special tokens (HF's
//     `encode_special_tokens = False`, the default); otherwise they are encoded as plain text.
//
// Decoding maps an added token's id to its content, normalized for `normalized` tokens (HF's
// `simple_id_to_token`).

import GLM5Core

struct AddedToken: Sendable {
  var id: Int32
  var content: String
  var special: Bool
  var singleWord: Bool
  var lstrip: Bool
  var rstrip: Bool
  var normalized: Bool
  /// What the token decodes to: its content, normalized when `normalized`.
  var decoded: String
}

/// A segment of the input: scalars [lo, hi), and the added token it is, or -1 for text.
struct Segment {
  var lo: Int
  var hi: Int
  var id: Int32
}

struct AddedVocabulary: Sendable {
  let tokens: [AddedToken]
  let byId: [Int32: Int]
  private let raw: Trie
  private let normalized: Trie

  init(_ field: Field?, normalizer: Normalizer) throws(GLM5Error) {
    var tokens: [AddedToken] = []
    var byId: [Int32: Int] = [:]
    if let field {
      for f in try field.array() {
        let id = Int32(try f.required("id").int(in: 0...(BPE.maxIds - 1)))
        let content = try f.required("content").string()
        let special = try f.bool("special", default: false)
        let normalized = try f.bool("normalized", default: !special)
        let t = AddedToken(
          id: id, content: content, special: special,
          singleWord: try f.bool("single_word", default: false),
          lstrip: try f.bool("lstrip", default: false),
          rstrip: try f.bool("rstrip", default: false),
          normalized: normalized, decoded: normalized ? normalizer.apply(content) : content)
        if let k = byId[id] { throw f.fail("id \(id) is also the id of added token \(JSON.quote(tokens[k].content))") }
        byId[id] = tokens.count
        tokens.append(t)
      }
    }
    self.tokens = tokens
    self.byId = byId
    var raw = Trie()
    var norm = Trie()
    for (k, t) in tokens.enumerated() where !t.content.isEmpty {
      if t.normalized { norm.insert(t.decoded, k) } else { raw.insert(t.content, k) }
    }
    self.raw = raw
    self.normalized = norm
  }

  func token(_ id: Int32) -> AddedToken? { byId[id].map { tokens[$0] } }

  /// Split scalars [lo, hi) of the raw `text` by the non-normalized tokens.
  func splitRaw(_ text: ScalarText, _ lo: Int, _ hi: Int, parseSpecial: Bool, into out: inout [Segment]) {
    find(raw, text, lo, hi, parseSpecial, &out)
  }

  /// Split scalars [lo, hi) of normalized `text` by the normalized tokens.
  func splitNormalized(_ text: ScalarText, _ lo: Int, _ hi: Int, parseSpecial: Bool, into out: inout [Segment]) {
    find(normalized, text, lo, hi, parseSpecial, &out)
  }

  /// HF find_matches on the sentence [lo, hi).
  private func find(_ trie: Trie, _ text: ScalarText, _ lo: Int, _ hi: Int, _ parseSpecial: Bool, _ out: inout [Segment]) {
    if trie.isEmpty || hi <= lo {
      if hi > lo { out.append(Segment(lo: lo, hi: hi, id: -1)) }
      return
    }
    var startOffset = lo
    var pos = lo
    let s = text.scalars
    let p = text.props
    while pos < hi {
      guard let (k, end) = trie.longest(s, pos, hi) else { pos += 1; continue }
      var start = pos
      var stop = end
      pos = end
      let t = tokens[k]
      if t.special && !parseSpecial { continue }
      if t.singleWord {
        let startSpace = start == lo || p[start - 1] & ScalarProperties.word == 0
        let stopSpace = stop == hi || p[stop] & ScalarProperties.word == 0
        if !startSpace || !stopSpace { continue }
      }
      if t.lstrip {
        var ns = start
        while ns > lo && p[ns - 1] & ScalarProperties.space != 0 { ns -= 1 }
        start = max(ns, startOffset)
      }
      if t.rstrip {
        while stop < hi && p[stop] & ScalarProperties.space != 0 { stop += 1 }
      }
      if startOffset < start { out.append(Segment(lo: startOffset, hi: start, id: -1)) }
      out.append(Segment(lo: start, hi: stop, id: t.id))
      startOffset = stop
    }
    if startOffset < hi { out.append(Segment(lo: startOffset, hi: hi, id: -1)) }
  }
}

/// A trie over Unicode scalars for leftmost-longest matching.
struct Trie: Sendable {
  private var children: [[UInt32: Int32]] = [[:]]
  private var terminal: [Int] = [-1]  // token index ending at a node, or -1
  /// [4] first scalars below 256, as a bitmap: a quick rejection for most positions
  private var firstLow = [UInt64](repeating: 0, count: 4)

  var isEmpty: Bool { children[0].isEmpty }

  mutating func insert(_ s: String, _ index: Int) {
    var node = 0
    for u in s.unicodeScalars {
      if let c = children[node][u.value] {
        node = Int(c)
      } else {
        children.append([:])
        terminal.append(-1)
        children[node][u.value] = Int32(children.count - 1)
        node = children.count - 1
      }
    }
    if terminal[node] < 0 { terminal[node] = index }  // the first token with this content wins
    if let f = s.unicodeScalars.first?.value, f < 256 { firstLow[Int(f >> 6)] |= 1 << UInt64(f & 63) }
  }

  /// The longest token starting at `pos` (not past `hi`): its index and end.
  func longest(_ s: [UInt32], _ pos: Int, _ hi: Int) -> (Int, Int)? {
    let f = s[pos]
    if f < 256 && firstLow[Int(f >> 6)] & (1 << UInt64(f & 63)) == 0 { return nil }
    var node = 0
    var best: (Int, Int)? = nil
    var i = pos
    while i < hi, let c = children[node][s[i]] {
      node = Int(c)
      i += 1
      if terminal[node] >= 0 { best = (terminal[node], i) }
    }
    return best
  }
}
