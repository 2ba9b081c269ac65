// A Hugging Face tokenizer (tokenizer.json + tokenizer_config.json), run as HF tokenizers runs it:
//
//   text ─ added tokens (AddedTokens.swift) ─ normalizer (Normalizer.swift: identity or NFC)
//        ─ pre-tokenizer (PreTokenizer.swift: Split with the model's regex, ByteLevel)
//        ─ BPE per piece (BPE.swift) ─ ids
//   ids ─ token strings ─ decoder (Decoder.swift) ─ bytes ─ UTF-8 text
//
// No special tokens are added around the text (`post_processor` is read and ignored: GLM-5's
// `tokenizer(text)` adds none either, ../shared/docs/glm5-architecture.md §10). A Tokenizer is
// immutable apart from its word cache (behind a lock) and may be used from any number of threads.

import GLM5Core

public final class Tokenizer: Sendable {
  /// Where it was loaded from (the tokenizer.json file).
  public let path: String
  let model: BPE
  let normalizer: Normalizer
  let added: AddedVocabulary
  let preTokenizer: PreTokenizer
  let decoder: Decoder
  /// tokenizer_config.json's special tokens, as ids (nil when absent).
  public let eosId: Int32?
  public let bosId: Int32?
  public let padId: Int32?
  public let unkId: Int32?
  /// One more than the largest id (vocabulary and added tokens).
  public let idCount: Int
  /// Tokens of the BPE vocabulary.
  public var vocabularySize: Int { model.vocab.count }
  public var addedTokenCount: Int { added.tokens.count }
  /// Whether words are byte-level (a ByteLevel pre-tokenizer): every byte string has ids.
  public var isByteLevel: Bool { preTokenizer.byteLevel }

  // MARK: - Loading

  /// Load `path`: a folder holding tokenizer.json (and optionally tokenizer_config.json), or a
  /// tokenizer.json file (its folder's tokenizer_config.json is read when present). A file
  /// starting with the zstd magic is decompressed first (tokenizer.json.zst).
  public static func load(path: String) throws(GLM5Error) -> Tokenizer {
    var file = path
    var folder = path
    switch fileKind(path) {
    case .missing: throw .io("\(path): no such file or folder")
    case .directory:
      file = joinPath(path, "tokenizer.json")
      if fileKind(file) == .missing, fileKind(file + ".zst") == .file { file += ".zst" }
      guard fileKind(file) == .file else { throw .io("\(path): no tokenizer.json in this folder") }
    case .file:
      if let slash = path.lastIndex(of: "/") { folder = String(path[..<slash]) } else { folder = "." }
    }
    let json = try readMaybeCompressed(file)
    let cfgPath = joinPath(folder, "tokenizer_config.json")
    let cfg = fileKind(cfgPath) == .file ? try readTextFile(cfgPath) : nil
    return try Tokenizer(json: json, config: cfg, path: file, configPath: cfgPath)
  }

  /// The folder's tokenizer, or nil when it has no tokenizer.json (a model needs none).
  public static func loadIfPresent(folder: String) throws(GLM5Error) -> Tokenizer? {
    let file = joinPath(folder, "tokenizer.json")
    if fileKind(file) == .missing && fileKind(file + ".zst") == .missing { return nil }
    return try load(path: folder)
  }

  static func readMaybeCompressed(_ path: String) throws(GLM5Error) -> [UInt8] {
    let f = try MappedFile(path: path)
    if Zstd.isFrame(f.bytes) {
      let b = try Zstd.decompress(f.bytes, limit: 1 << 30, what: path)
      return Array(UnsafeRawBufferPointer(b.bytes))
    }
    return Array(f.bytes)
  }

  /// Build from the bytes of tokenizer.json and (optionally) tokenizer_config.json; `path` and
  /// `configPath` name them in messages.
  public init(json: [UInt8], config: [UInt8]?, path: String = "tokenizer.json",
              configPath: String = "tokenizer_config.json") throws(GLM5Error) {
    self.path = path
    let name = path.split(separator: "/").last.map(String.init) ?? path
    let root: JSON
    do { root = try withBytes(json) { (b) throws(GLM5Error) -> JSON in try JSON.parse(b) } } catch {
      throw .badFormat("\(path): \(error.message)")
    }
    let top = Field(root, "")
    do throws(GLM5Error) {
      _ = try top.object()
      normalizer = try Normalizer(top.optional("normalizer"))
      preTokenizer = try PreTokenizer(top.optional("pre_tokenizer"))
      model = try BPE(try top.required("model"), byteLevel: preTokenizer.byteLevel)
      added = try AddedVocabulary(top.optional("added_tokens"), normalizer: normalizer)
      decoder = try Decoder(top.optional("decoder"))
      if let pp = top.optional("post_processor") { _ = try pp.type() }
    } catch {
      throw GLM5Error(error.status, "\(name): \(error.message)")
    }
    idCount = max(model.idCount, (added.tokens.map { Int($0.id) }.max() ?? -1) + 1)

    // tokenizer_config.json: eos/bos/pad/unk as a string or {"content": …}.
    var ids: [String: Int32] = [:]
    if let config {
      let cfgName = configPath.split(separator: "/").last.map(String.init) ?? configPath
      let cfg: JSON
      do { cfg = try withBytes(config) { (b) throws(GLM5Error) -> JSON in try JSON.parse(b) } } catch {
        throw .badFormat("\(configPath): \(error.message)")
      }
      let c = Field(cfg, "")
      for key in ["eos_token", "bos_token", "pad_token", "unk_token"] {
        guard let f = c.optional(key) else { continue }
        let content: String
        if let s = f.value.string { content = s } else if f.value.object != nil, let s = f.member("content")?.value.string {
          content = s
        } else {
          throw GLM5Error.badFormat("\(cfgName): \(key): expected a string or {\"content\": …}, found \(f.value.kind)")
        }
        guard let id = Tokenizer.lookup(content, added, model) else {
          throw GLM5Error.badFormat("\(cfgName): \(key) \(JSON.quote(content)) is not a token of \(name)")
        }
        ids[key] = id
      }
    }
    eosId = ids["eos_token"]
    bosId = ids["bos_token"]
    padId = ids["pad_token"]
    unkId = ids["unk_token"]
  }

  private static func lookup(_ s: String, _ added: AddedVocabulary, _ model: BPE) -> Int32? {
    if let t = added.tokens.first(where: { $0.content == s }) { return t.id }
    return model.vocab[s]
  }

  // MARK: - Encoding

  /// The ids of UTF-8 `text` (no special tokens added). `parseSpecial`: special added tokens in
  /// the text are their ids (HF's default); when false they are encoded as plain text.
  /// Throws invalidArgument for text that is not valid UTF-8 (naming the byte offset).
  public func encode(_ text: UnsafeRawBufferPointer, parseSpecial: Bool = true) throws(GLM5Error) -> [Int32] {
    let scalars = try Tokenizer.decodeUTF8(text)
    let raw = try ScalarText(fallible: scalars)
    var out: [Int32] = []
    try out.reserveFallibly(text.count / 3 + 1, what: "the ids of \(text.count) bytes of text")
    var pieces: [Piece] = []
    var word: [UInt8] = []
    var buffers: [ScalarText] = []
    var rawSegments: [Segment] = []
    var segments: [Segment] = []
    added.splitRaw(raw, 0, scalars.count, parseSpecial: parseSpecial, into: &rawSegments)
    for rs in rawSegments {
      if rs.id >= 0 {
        out.append(rs.id)
        continue
      }
      // The normalized text of this segment (the raw text itself for the identity).
      let base = normalizer.isIdentity ? raw : ScalarText(normalizer.apply(scalars[rs.lo..<rs.hi]))
      let (lo, hi) = normalizer.isIdentity ? (rs.lo, rs.hi) : (0, base.count)
      segments.removeAll(keepingCapacity: true)
      added.splitNormalized(base, lo, hi, parseSpecial: parseSpecial, into: &segments)
      for seg in segments {
        if seg.id >= 0 {
          out.append(seg.id)
          continue
        }
        buffers.removeAll(keepingCapacity: true)
        buffers.append(base)
        preTokenizer.run(&buffers, seg.lo, seg.hi, &pieces)
        for p in pieces {
          word.removeAll(keepingCapacity: true)
          buffers[p.buffer].scalars.withUnsafeBufferPointer { s in
            for i in p.lo..<p.hi { Tokenizer.appendUTF8(s[i], &word) }
          }
          word.withUnsafeBufferPointer { model.tokenize($0, into: &out) }
        }
      }
    }
    return out
  }

  public func encode(_ text: String, parseSpecial: Bool = true) throws(GLM5Error) -> [Int32] {
    var t = text
    let r: Result<[Int32], GLM5Error> = t.withUTF8 { b in
      Result { () throws(GLM5Error) -> [Int32] in try encode(UnsafeRawBufferPointer(b), parseSpecial: parseSpecial) }
    }
    return try r.get()
  }

  static func appendUTF8(_ v: UInt32, _ out: inout [UInt8]) {
    if v < 0x80 {
      out.append(UInt8(v))
    } else if v < 0x800 {
      out.append(UInt8(0xC0 | v >> 6)); out.append(UInt8(0x80 | v & 0x3F))
    } else if v < 0x10000 {
      out.append(UInt8(0xE0 | v >> 12)); out.append(UInt8(0x80 | v >> 6 & 0x3F)); out.append(UInt8(0x80 | v & 0x3F))
    } else {
      out.append(UInt8(0xF0 | v >> 18)); out.append(UInt8(0x80 | v >> 12 & 0x3F))
      out.append(UInt8(0x80 | v >> 6 & 0x3F)); out.append(UInt8(0x80 | v & 0x3F))
    }
  }

  /// Strict UTF-8 → scalars (no overlongs, surrogates or values above U+10FFFF).
  static func decodeUTF8(_ b: UnsafeRawBufferPointer) throws(GLM5Error) -> [UInt32] {
    var out: [UInt32] = []
    try out.reserveFallibly(b.count, what: "the scalars of \(b.count) bytes of text")  // the largest array of an encode
    let n = b.count
    var i = 0
    while i < n {
      let c0 = UInt32(b[i])
      if c0 < 0x80 { out.append(c0); i += 1; continue }
      var need = 0
      var v: UInt32 = 0
      var lo: UInt32 = 0x80
      var hi: UInt32 = 0xBF
      switch c0 {
      case 0xC2...0xDF: need = 1; v = c0 & 0x1F
      case 0xE0: need = 2; v = 0; lo = 0xA0
      case 0xE1...0xEC, 0xEE, 0xEF: need = 2; v = c0 & 0x0F
      case 0xED: need = 2; v = 0x0D; hi = 0x9F
      case 0xF0: need = 3; v = 0; lo = 0x90
      case 0xF1...0xF3: need = 3; v = c0 & 0x07
      case 0xF4: need = 3; v = 4; hi = 0x8F
      default: throw .invalidArgument("text is not valid UTF-8 (byte \(i) is 0x\(String(c0, radix: 16)))")
      }
      guard i + need < n else {
        throw .invalidArgument("text is not valid UTF-8 (truncated sequence at byte \(i))")
      }
      for k in 1...need {
        let c = UInt32(b[i + k])
        let (l, h) = k == 1 ? (lo, hi) : (UInt32(0x80), UInt32(0xBF))
        guard c >= l && c <= h else { throw .invalidArgument("text is not valid UTF-8 (byte \(i + k) is 0x\(String(c, radix: 16)))") }
        v = v << 6 | (c & 0x3F)
      }
      out.append(v)
      i += need + 1
    }
    return out
  }

  // MARK: - Decoding

  /// The token string of an id (vocabulary form, e.g. "Ġthe"), or nil for an id it lacks.
  public func tokenString(_ id: Int32) -> String? {
    if let t = added.token(id) { return t.decoded }
    guard id >= 0, Int(id) < model.idToToken.count else { return nil }
    return model.idToToken[Int(id)]
  }

  /// The id of a token string (added tokens first), or nil.
  public func id(of token: String) -> Int32? { Tokenizer.lookup(token, added, model) }

  public func isSpecial(_ id: Int32) -> Bool { added.token(id)?.special ?? false }

  /// The bytes `ids` decode to (before replacing invalid UTF-8); throws on an unknown id.
  public func decodeBytes(_ ids: [Int32], skipSpecialTokens: Bool = false) throws(GLM5Error) -> [UInt8] {
    var tokens: [String] = []
    tokens.reserveCapacity(ids.count)
    for (k, id) in ids.enumerated() {
      guard let s = tokenString(id) else { throw .invalidArgument("ids[\(k)] = \(id) is not a token of this tokenizer") }
      if skipSpecialTokens && isSpecial(id) { continue }
      tokens.append(s)
    }
    return decoder.decode(tokens)
  }

  /// The text of `ids`, invalid UTF-8 replaced by U+FFFD (HF tokenizers' `decode`).
  public func decode(_ ids: [Int32], skipSpecialTokens: Bool = false) throws(GLM5Error) -> String {
    lossyText(try decodeBytes(ids, skipSpecialTokens: skipSpecialTokens))
  }

  /// The bytes one token decodes to on its own (possibly part of a UTF-8 sequence).
  public func piece(_ id: Int32) throws(GLM5Error) -> [UInt8] {
    guard let s = tokenString(id) else { throw .invalidArgument("id \(id) is not a token of this tokenizer") }
    return decoder.decodeStreaming(s, first: true)
  }
}
