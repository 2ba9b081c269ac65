// The BPE model of tokenizer.json (`model.type` "BPE"), as HF tokenizers runs it
// (tokenizers/src/models/bpe/model.rs, word.rs):
//
//   1. a pre-token ("word") becomes one symbol per character: its vocabulary id, with
//      `continuing_subword_prefix` on every character but the first and `end_of_word_suffix` on
//      the last when the file has them; a character missing from the vocabulary becomes its
//      `<0xXX>` byte tokens (`byte_fallback`) or the unknown token (fused with a preceding unknown
//      when `fuse_unk`), or is dropped when there is neither;
//   2. adjacent pairs merge by rank, lowest first, leftmost among equal ranks, until no pair of
//      the word has a merge (a heap of candidate pairs; entries made stale by an earlier merge are
//      skipped);
//   3. with `ignore_merges`, a word that is itself in the vocabulary is that one token.
//
// With a ByteLevel pre-tokenizer the "characters" are the word's UTF-8 bytes in GPT-2's alphabet
// (ByteLevel.swift), so the words arrive here as bytes and each byte is one symbol. Results are
// cached per word (words under 256 bytes), as HF does.

import GLM5Core
import Synchronization

final class BPE: Sendable {
  /// token string → id
  let vocab: [String: Int32]
  /// [n_ids] id → token string (nil for ids the vocabulary skips)
  let idToToken: [String?]
  /// (left id << 32 | right id) → (rank << 32 | merged id)
  private let merges: MergeTable
  private let unkId: Int32?
  private let fuseUnk: Bool
  private let byteFallback: Bool
  private let ignoreMerges: Bool
  private let prefix: String?
  private let suffix: String?
  /// Whether words are byte-level (one symbol per byte) or text (one symbol per scalar).
  let byteLevel: Bool
  /// [256] byte-level: the id of each byte's alphabet character, -1 if absent
  private let byteIds: [Int32]
  /// text mode: ids of single-scalar tokens
  private let scalarIds: [UInt32: Int32]
  /// [256] ids of the `<0xXX>` tokens (byte_fallback), -1 if absent
  private let fallbackIds: [Int32]
  /// ignore_merges: whole words in the vocabulary, keyed by the word's bytes
  private let wordIds: [[UInt8]: Int32]
  private let cache = Mutex(WordCache())
  private static let cacheWordBytes = 256
  private static let cacheEntries = 100_000
  /// Ids at or above this are refused (the id table is allocated up front; real vocabularies
  /// stay under 300 000).
  static let maxIds = 1 << 22

  init(_ model: Field, byteLevel: Bool) throws(GLM5Error) {
    let type = try model.optional("type")?.string() ?? "BPE"
    guard type == "BPE" else {
      throw GLM5Error.unsupported("\(model.path).type: model type \"\(type)\" is not supported (only BPE)")
    }
    if let d = model.optional("dropout"), let p = d.value.double, p != 0 {
      throw d.fail("BPE dropout \(p) is not supported (encoding would be random)")
    }
    self.byteLevel = byteLevel

    // Vocabulary
    let vocabField = try model.required("vocab")
    var vocab: [String: Int32] = [:]
    var maxId = -1
    let entries = try vocabField.object()
    vocab.reserveCapacity(entries.count)
    for (token, v) in entries {
      let f = Field(v, "\(vocabField.path)[\(JSON.quote(token))]")
      let id = try f.int(in: 0...(BPE.maxIds - 1))
      vocab[token] = Int32(id)
      maxId = max(maxId, id)
    }
    var idToToken = [String?](repeating: nil, count: maxId + 1)
    for (token, id) in vocab {
      if let other = idToToken[Int(id)] {
        let (a, b) = other < token ? (other, token) : (token, other)
        throw vocabField.fail("tokens \(JSON.quote(a)) and \(JSON.quote(b)) share id \(id)")
      }
      idToToken[Int(id)] = token
    }
    self.vocab = vocab
    self.idToToken = idToToken

    // Options
    fuseUnk = try model.bool("fuse_unk", default: false)
    byteFallback = try model.bool("byte_fallback", default: false)
    ignoreMerges = try model.bool("ignore_merges", default: false)
    // An empty prefix or suffix (Qwen- and GLM-style files write "") changes nothing.
    prefix = try model.string("continuing_subword_prefix").flatMap { $0.isEmpty ? nil : $0 }
    suffix = try model.string("end_of_word_suffix").flatMap { $0.isEmpty ? nil : $0 }
    if let unk = try model.string("unk_token") {
      guard let id = vocab[unk] else { throw model.fail("unk_token \(JSON.quote(unk)) is not in the vocabulary") }
      unkId = id
    } else {
      unkId = nil
    }

    // Merges: "a b" strings or ["a", "b"] pairs; a later duplicate overrides an earlier one.
    var merges: [UInt64: UInt64] = [:]
    let prefixBytes = prefix?.utf8.count ?? 0
    if let mf = model.optional("merges") {
      let list = try mf.array()
      merges.reserveCapacity(list.count)
      for (rank, m) in list.enumerated() {
        let a: String
        let b: String
        if let s = m.value.string {
          let parts = s.split(separator: " ", omittingEmptySubsequences: false)
          guard parts.count == 2 else { throw m.fail("expected \"left right\" (two tokens separated by one space), found \(JSON.quote(s))") }
          a = String(parts[0])
          b = String(parts[1])
        } else if let pair = m.value.array {
          guard pair.count == 2, let x = pair[0].string, let y = pair[1].string else {
            throw m.fail("expected a pair of strings")
          }
          a = x
          b = y
        } else {
          throw m.fail("expected a string or a pair of strings, found \(m.value.kind)")
        }
        guard let ia = vocab[a] else { throw m.fail("\(JSON.quote(a)) is not in the vocabulary") }
        guard let ib = vocab[b] else { throw m.fail("\(JSON.quote(b)) is not in the vocabulary") }
        let bTail = b.utf8.count >= prefixBytes ? String(decoding: Array(b.utf8.dropFirst(prefixBytes)), as: UTF8.self) : b
        let merged = a + bTail
        guard let im = vocab[merged] else { throw m.fail("the merged token \(JSON.quote(merged)) is not in the vocabulary") }
        merges[UInt64(UInt32(ia)) << 32 | UInt64(UInt32(ib))] = UInt64(rank) << 32 | UInt64(UInt32(im))
      }
    }
    self.merges = MergeTable(merges)

    // Lookup tables for the initial symbols.
    var byteIds = [Int32](repeating: -1, count: 256)
    for b in 0..<256 {
      if let s = Unicode.Scalar(ByteLevel.byteToScalar[b]), let id = vocab[String(Character(s))] { byteIds[b] = id }
    }
    self.byteIds = byteIds
    var scalarIds: [UInt32: Int32] = [:]
    var wordIds: [[UInt8]: Int32] = [:]
    for (token, id) in vocab {
      let u = token.unicodeScalars
      if u.count == 1, let v = u.first?.value { scalarIds[v] = id }
      if ignoreMerges {
        if byteLevel {
          if let bytes = ByteLevel.bytes(of: token) { wordIds[bytes] = id }
        } else {
          wordIds[Array(token.utf8)] = id
        }
      }
    }
    self.scalarIds = scalarIds
    self.wordIds = wordIds
    var fallbackIds = [Int32](repeating: -1, count: 256)
    let hex = Array("0123456789ABCDEF")
    for b in 0..<256 {
      if let id = vocab["<0x\(hex[b >> 4])\(hex[b & 15])>"] { fallbackIds[b] = id }
    }
    self.fallbackIds = fallbackIds
  }

  var idCount: Int { idToToken.count }

  // MARK: - Encoding one word

  /// Append the ids of one pre-token (its UTF-8 bytes) to `out`.
  func tokenize(_ word: UnsafeBufferPointer<UInt8>, into out: inout [Int32]) {
    guard word.count > 0 else { return }
    if ignoreMerges, let id = wordIds[Array(word)] {
      out.append(id)
      return
    }
    let cacheable = word.count < BPE.cacheWordBytes
    let hash = WordCache.hash(word)
    if cacheable && cache.withLock({ $0.append(word, hash, to: &out) }) { return }
    let ids = mergeWord(word)
    if cacheable {
      cache.withLock { $0.insert(word, hash, ids, maxEntries: BPE.cacheEntries) }
    }
    out.append(contentsOf: ids)
  }

  /// The characters of a word: byte-level bytes, or UTF-8 scalars (as their byte ranges).
  private func characters(_ word: UnsafeBufferPointer<UInt8>) -> [(lo: Int, hi: Int)] {
    var chars: [(lo: Int, hi: Int)] = []
    chars.reserveCapacity(word.count)
    if byteLevel {
      for i in 0..<word.count { chars.append((i, i + 1)) }
      return chars
    }
    var i = 0
    while i < word.count {
      let b = word[i]
      let n = b < 0x80 ? 1 : b < 0xE0 ? 2 : b < 0xF0 ? 3 : 4
      chars.append((i, min(i + n, word.count)))
      i += n
    }
    return chars
  }

  /// The vocabulary string of a character (with the prefix/suffix it takes at its position).
  private func characterString(_ word: UnsafeBufferPointer<UInt8>, _ c: (lo: Int, hi: Int), first: Bool, last: Bool) -> String {
    var s = ""
    if !first, let prefix { s += prefix }
    let bytes = UnsafeBufferPointer(rebasing: word[c.lo..<c.hi])
    s += byteLevel ? ByteLevel.string(of: bytes) : String(decoding: bytes, as: UTF8.self)
    if last, let suffix { s += suffix }
    return s
  }

  private func mergeWord(_ word: UnsafeBufferPointer<UInt8>) -> [Int32] {
    let chars = characters(word)
    var ids: [Int32] = []
    ids.reserveCapacity(chars.count)
    var unk: Int32? = nil  // a pending unknown token (fuse_unk extends it)
    let plain = prefix == nil && suffix == nil
    for (k, c) in chars.enumerated() {
      let first = k == 0
      let last = k == chars.count - 1
      var id: Int32? = nil
      var s: String? = nil
      if plain {
        if byteLevel {
          let v = byteIds[Int(word[c.lo])]
          if v >= 0 { id = v }
        } else {
          id = scalarIds[decodeScalar(word, c)]
        }
      } else {
        let str = characterString(word, c, first: first, last: last)
        s = str
        id = vocab[str]
      }
      if let id {
        if let u = unk { ids.append(u); unk = nil }
        ids.append(id)
        continue
      }
      if byteFallback {
        let str = s ?? characterString(word, c, first: first, last: last)
        var fb: [Int32] = []
        for b in str.utf8 {
          let f = fallbackIds[Int(b)]
          if f < 0 { fb = []; break }
          fb.append(f)
        }
        if !fb.isEmpty {
          ids.append(contentsOf: fb)  // HF does not flush a pending unknown here
          continue
        }
      }
      if let unkId {
        if let u = unk, !fuseUnk { ids.append(u) }
        unk = unkId
      }
    }
    if let u = unk { ids.append(u) }
    return mergeAll(ids)
  }

  private func decodeScalar(_ word: UnsafeBufferPointer<UInt8>, _ c: (lo: Int, hi: Int)) -> UInt32 {
    var it = UnsafeBufferPointer(rebasing: word[c.lo..<c.hi]).makeIterator()
    var d = UTF8()
    if case .scalarValue(let s) = d.decode(&it) { return s.value }
    return 0xFFFD
  }

  /// Apply merges by rank (lowest first, leftmost among equals) until none applies.
  private func mergeAll(_ initial: [Int32]) -> [Int32] {
    let n = initial.count
    if n < 2 { return initial }
    var c = initial
    var prev = [Int](repeating: -1, count: n)
    var next = [Int](repeating: -1, count: n)
    var alive = [Bool](repeating: true, count: n)
    for i in 0..<n {
      prev[i] = i - 1
      next[i] = i + 1 < n ? i + 1 : -1
    }
    var heap = MergeHeap()
    for i in 0..<(n - 1) {
      if let m = merges.get(pairKey(c[i], c[i + 1])) { heap.push(rank: UInt32(m >> 32), pos: i, newId: Int32(truncatingIfNeeded: m)) }
    }
    while let top = heap.pop() {
      let pos = top.pos
      guard alive[pos], next[pos] >= 0 else { continue }
      let right = next[pos]
      guard let m = merges.get(pairKey(c[pos], c[right])), Int32(truncatingIfNeeded: m) == top.newId else { continue }
      c[pos] = top.newId
      alive[right] = false
      let after = next[right]
      next[pos] = after
      if after >= 0 { prev[after] = pos }
      let before = prev[pos]
      if before >= 0, let m2 = merges.get(pairKey(c[before], c[pos])) {
        heap.push(rank: UInt32(m2 >> 32), pos: before, newId: Int32(truncatingIfNeeded: m2))
      }
      if after >= 0, let m2 = merges.get(pairKey(c[pos], c[after])) {
        heap.push(rank: UInt32(m2 >> 32), pos: pos, newId: Int32(truncatingIfNeeded: m2))
      }
    }
    var out: [Int32] = []
    out.reserveCapacity(n)
    var i = 0
    while i >= 0 {
      out.append(c[i])
      i = next[i]
    }
    return out
  }

  @inline(__always) private func pairKey(_ a: Int32, _ b: Int32) -> UInt64 {
    UInt64(UInt32(bitPattern: a)) << 32 | UInt64(UInt32(bitPattern: b))
  }
}

/// The merge map as an open-addressing table (linear probing, multiplicative hash): the lookup
/// every candidate pair of every word makes, so it is kept cheaper than Dictionary's SipHash.
struct MergeTable: Sendable {
  private let keys: [UInt64]  // UInt64.max marks an empty slot (ids are below 2^22)
  private let values: [UInt64]
  private let shift: UInt64

  init(_ d: [UInt64: UInt64]) {
    var bits: UInt64 = 4
    while (1 << bits) < max(16, 2 * d.count) { bits += 1 }
    let n = 1 << Int(bits)
    var keys = [UInt64](repeating: .max, count: n)
    var values = [UInt64](repeating: 0, count: n)
    shift = 64 - bits
    for (k, v) in d {
      var i = Int((k &* 0x9E37_79B9_7F4A_7C15) >> shift)
      while keys[i] != .max { i = (i + 1) & (n - 1) }
      keys[i] = k
      values[i] = v
    }
    self.keys = keys
    self.values = values
  }

  @inline(__always) func get(_ k: UInt64) -> UInt64? {
    let mask = keys.count - 1
    var i = Int((k &* 0x9E37_79B9_7F4A_7C15) >> shift)
    while true {
      let x = keys[i]
      if x == k { return values[i] }
      if x == .max { return nil }
      i = (i + 1) & mask
    }
  }
}

/// Words already encoded → their ids: an open-addressing table over flat arenas (FNV-1a of the
/// word's bytes), so a hit costs one hash and one compare, no allocation. The slot table starts
/// small and grows (×4, to 2^18 slots, load at most 1/2) with the entries, so that a tokenizer
/// costs no megabyte before it encodes (the fuzz targets build thousands per second).
struct WordCache {
  private static let maxSlots = 1 << 18
  private var slots = [Int32](repeating: -1, count: 1 << 10)  // entry index, -1 empty
  private var hashes: [UInt64] = []
  private var keyStart: [Int32] = [0]  // [entries + 1] offsets into keyBytes
  private var idStart: [Int32] = [0]  // [entries + 1] offsets into ids
  private var keyBytes: [UInt8] = []
  private var ids: [Int32] = []

  static func hash(_ w: UnsafeBufferPointer<UInt8>) -> UInt64 {
    var h: UInt64 = 0xCBF2_9CE4_8422_2325
    for b in w { h = (h ^ UInt64(b)) &* 0x100_0000_01B3 }
    return h
  }

  private func find(_ w: UnsafeBufferPointer<UInt8>, _ h: UInt64) -> (slot: Int, entry: Int) {
    let mask = slots.count - 1
    var i = Int(truncatingIfNeeded: h >> 7) & mask
    while true {
      let e = Int(slots[i])
      if e < 0 { return (i, -1) }
      if hashes[e] == h {
        let lo = Int(keyStart[e])
        let hi = Int(keyStart[e + 1])
        if hi - lo == w.count && keyBytes.withUnsafeBufferPointer({ k in memcmpEqual(k, lo, w) }) { return (i, e) }
      }
      i = (i + 1) & mask
    }
  }

  /// Append the cached ids of `w` to `out`; false when `w` is not cached.
  func append(_ w: UnsafeBufferPointer<UInt8>, _ h: UInt64, to out: inout [Int32]) -> Bool {
    let (_, e) = find(w, h)
    guard e >= 0 else { return false }
    out.append(contentsOf: ids[Int(idStart[e])..<Int(idStart[e + 1])])
    return true
  }

  mutating func insert(_ w: UnsafeBufferPointer<UInt8>, _ h: UInt64, _ value: [Int32], maxEntries: Int) {
    guard hashes.count < min(maxEntries, WordCache.maxSlots / 2) else { return }
    var (slot, e) = find(w, h)
    guard e < 0 else { return }
    if 2 * (hashes.count + 1) > slots.count && slots.count < WordCache.maxSlots {
      grow()
      slot = find(w, h).slot
    }
    slots[slot] = Int32(hashes.count)
    hashes.append(h)
    keyBytes.append(contentsOf: w)
    keyStart.append(Int32(keyBytes.count))
    ids.append(contentsOf: value)
    idStart.append(Int32(ids.count))
  }

  /// Four times the slots, every entry placed again by its stored hash.
  private mutating func grow() {
    var s = [Int32](repeating: -1, count: min(4 * slots.count, WordCache.maxSlots))
    let mask = s.count - 1
    for e in 0..<hashes.count {
      var i = Int(truncatingIfNeeded: hashes[e] >> 7) & mask
      while s[i] >= 0 { i = (i + 1) & mask }
      s[i] = Int32(e)
    }
    slots = s
  }
}

@inline(__always) private func memcmpEqual(_ k: UnsafeBufferPointer<UInt8>, _ lo: Int, _ w: UnsafeBufferPointer<UInt8>) -> Bool {
  for j in 0..<w.count where k[lo + j] != w[j] { return false }
  return true
}

/// A binary min-heap of candidate merges ordered by (rank, position).
private struct MergeHeap {
  struct Entry {
    var rank: UInt32
    var pos: Int
    var newId: Int32
    func less(_ o: Entry) -> Bool { rank != o.rank ? rank < o.rank : pos < o.pos }
  }
  var items: [Entry] = []

  mutating func push(rank: UInt32, pos: Int, newId: Int32) {
    items.append(Entry(rank: rank, pos: pos, newId: newId))
    var i = items.count - 1
    while i > 0 {
      let p = (i - 1) / 2
      guard items[i].less(items[p]) else { break }
      items.swapAt(i, p)
      i = p
    }
  }

  mutating func pop() -> Entry? {
    guard let top = items.first else { return nil }
    let last = items.removeLast()
    if !items.isEmpty {
      items[0] = last
      var i = 0
      while true {
        let l = 2 * i + 1
        let r = l + 1
        var m = i
        if l < items.count && items[l].less(items[m]) { m = l }
        if r < items.count && items[r].less(items[m]) { m = r }
        if m == i { break }
        items.swapAt(i, m)
        i = m
      }
    }
    return top
  }
}
