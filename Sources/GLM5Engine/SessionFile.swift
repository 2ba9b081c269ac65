// A session saved to bytes and restored into a new session on the same model: an agentic
// trajectory parked and resumed later, on this replica or another.
//
//   header   "GLM5SES\0"  8 bytes
//            u32 format version (1), u32 flags (bit 0: a routing record follows; bit 1: MTP entries follow)
//            u64 configuration fingerprint (ModelConfig.fingerprint)
//            u32 n, n bytes: the weight version the caches were computed with
//            u64 payload bytes (uncompressed), u64 compressed bytes
//   payload  one zstd frame of:
//            u64 max_tokens, u64 T, i32 tokens[T]
//            u64 R (hidden rows kept), f32 hidden[R, H]
//            per layer: f32 latent[T, Rkv], f32 k_rope[T, Dr], then f32 index_key[T, Di] if the layer has one
//            (flag bit 1) u64 M (valid MTP entries, < T), the MTP layer's latent[M, Rkv], k_rope[M, Dr], index_key[M, Di]
//            (flag bit 0) u64 record bound, i32 topk[T, L, K], i32 expert ids[T, M, k], f32 weights[T, M, k]
//   trailer  u64 checksum: FNV-1a over the 64-bit little-endian words of everything before it
//            (the last partial word zero-padded)
//
// All integers little-endian. The sampler needs no state: a draw is a function of (seed,
// position), and the position is T. Restoring checks, in order: length (truncated), magic, format
// version (a future one is unsupported), checksum (corrupt), configuration (incompatible), weight
// version (versionMismatch unless allowed), then every size in the payload; nothing crashes on
// any byte string, and a refused file creates no session.

import GLM5Core
import GLM5Model

/// The format's constants and checksum (public for Sources/GLM5Fuzz, which writes valid headers).
public enum SessionFile {
  public static let magic: [UInt8] = Array("GLM5SES".utf8) + [0]
  public static let formatVersion: UInt32 = 1
  /// Bytes of the fixed header before the version string, and after it.
  static let headFixed = 8 + 4 + 4 + 8 + 4
  static let headTail = 16

  public static func checksum(_ p: UnsafeRawBufferPointer) -> UInt64 {
    var h: UInt64 = 0xcbf2_9ce4_8422_2325
    let words = p.count / 8
    for i in 0..<words { h = (h ^ p.loadUnaligned(fromByteOffset: 8 * i, as: UInt64.self)) &* 0x0000_0100_0000_01b3 }
    if p.count % 8 != 0 {
      var last: UInt64 = 0
      for j in 0..<(p.count % 8) { last |= UInt64(p[8 * words + j]) << (8 * UInt64(j)) }
      h = (h ^ last) &* 0x0000_0100_0000_01b3
    }
    return h
  }
}

/// Sequential little-endian writes into a buffer sized in advance.
struct ByteWriter {
  let base: UnsafeMutableRawPointer
  let capacity: Int
  var at = 0
  mutating func put<T: FixedWidthInteger>(_ v: T) { base.storeBytes(of: v.littleEndian, toByteOffset: at, as: T.self); at += MemoryLayout<T>.size }
  mutating func put(_ p: UnsafeRawPointer, _ n: Int) { if n > 0 { (base + at).copyMemory(from: p, byteCount: n) }; at += n }
  mutating func put<T>(_ b: UnsafeBufferPointer<T>) { if let p = b.baseAddress { put(p, b.count * MemoryLayout<T>.stride) } }
}

/// Sequential reads that fail, naming what was being read, instead of running past the end.
struct ByteReader {
  let bytes: UnsafeRawBufferPointer
  var at = 0
  let what: String
  mutating func take(_ n: Int, _ field: String) throws(GLM5Error) -> UnsafeRawPointer {
    guard n >= 0, n <= bytes.count - at, let b = bytes.baseAddress else {
      throw .badFormat("\(what): truncated: \(field) needs \(n) bytes at offset \(at), \(bytes.count - at) remain")
    }
    defer { at += n }
    return b + at
  }
  mutating func get<T: FixedWidthInteger>(_: T.Type, _ field: String) throws(GLM5Error) -> T {
    T(littleEndian: try take(MemoryLayout<T>.size, field).loadUnaligned(as: T.self))
  }
  /// A count that must be at most `limit`.
  mutating func count(_ field: String, limit: Int) throws(GLM5Error) -> Int {
    let v = try get(UInt64.self, field)
    guard v <= UInt64(limit) else { throw .badFormat("\(what): \(field) is \(v), at most \(limit) is possible here") }
    return Int(v)
  }
}

extension Session {
  /// The session as bytes (SessionFile.swift). Fails only when memory runs out.
  public func save() throws(GLM5Error) -> ByteBuffer {
    let c = model.config
    let h = c.hiddenSize
    let T = count
    // Payload size, then the payload.
    var n = 8 + 8 + 4 * T + 8 + 4 * hiddenRows * h
    let L = c.numHiddenLayers
    for l in cache.layers.prefix(L) { n += 4 * T * (cache.rkv + cache.dr + (l.indexKey == nil ? 0 : cache.di)) }
    let mtpLayer = keepsMTP && cache.layers.count > L ? cache.layers[L] : nil
    let M = mtpLayer == nil ? 0 : min(cache.mtpCount, max(T - 1, 0))
    if let l = mtpLayer { n += 8 + 4 * M * (cache.rkv + cache.dr + (l.indexKey == nil ? 0 : cache.di)) }
    if let r = record { n += 8 + 4 * T * r.topkStride + 8 * T * r.routeStride }
    let payload = try ByteBuffer(count: n, what: "saved session")
    var w = ByteWriter(base: UnsafeMutableRawPointer(payload.pointer), capacity: n)
    w.put(UInt64(maxTokens)); w.put(UInt64(T))
    tokens.withUnsafeBytes { b in if let p = b.baseAddress { w.put(p, 4 * T) } }
    w.put(UInt64(hiddenRows)); w.put(hidden.pointer, 4 * hiddenRows * h)
    for l in cache.layers.prefix(L) {
      w.put(l.latent.pointer, 4 * T * cache.rkv)
      w.put(l.kRope.pointer, 4 * T * cache.dr)
      if let k = l.indexKey { w.put(k.pointer, 4 * T * cache.di) }
    }
    if let l = mtpLayer {
      w.put(UInt64(M))
      w.put(l.latent.pointer, 4 * M * cache.rkv)
      w.put(l.kRope.pointer, 4 * M * cache.dr)
      if let k = l.indexKey { w.put(k.pointer, 4 * M * cache.di) }
    }
    if let r = record {
      w.put(UInt64(r.maxBytes))
      w.put(r.topk(first: 0, count: T))
      let (ids, wts) = r.routes(first: 0, count: T)
      w.put(ids)
      w.put(wts)
    }
    guard w.at == n else { throw .internal("save: wrote \(w.at) of \(n) payload bytes") }
    let z = try Zstd.compress(UnsafeRawBufferPointer(payload.bytes), level: 3, what: "saved session")
    let version = Array(model.weightVersion.utf8)  // the weights in force when saved
    let total = SessionFile.headFixed + version.count + SessionFile.headTail + z.count + 8
    let out = try ByteBuffer(count: total, what: "saved session")
    var o = ByteWriter(base: UnsafeMutableRawPointer(out.pointer), capacity: total)
    SessionFile.magic.withUnsafeBytes { o.put($0.baseAddress!, 8) }
    o.put(SessionFile.formatVersion); o.put(UInt32(record == nil ? 0 : 1) | UInt32(mtpLayer == nil ? 0 : 2))
    o.put(c.fingerprint)
    o.put(UInt32(version.count)); version.withUnsafeBytes { if let p = $0.baseAddress { o.put(p, version.count) } }
    o.put(UInt64(n)); o.put(UInt64(z.count))
    o.put(z.pointer, z.count)
    o.put(SessionFile.checksum(UnsafeRawBufferPointer(start: out.pointer, count: o.at)))
    guard o.at == total else { throw .internal("save: wrote \(o.at) of \(total) bytes") }
    return out
  }

  /// Save to a file.
  public func save(path: String) throws(GLM5Error) -> Int {
    let b = try save()
    let f = try FileWriter(path: path)
    try f.write(UnsafeRawPointer(b.pointer), b.count)
    try f.close()
    return b.count
  }
}

extension Model {
  /// A new session from bytes written by Session.save. `allowOtherVersion` accepts a file saved
  /// under another weight version (its caches then hold what those weights computed).
  public func restore(_ bytes: UnsafeRawBufferPointer, allowOtherVersion: Bool = false) throws(GLM5Error) -> Session {
    let c = config
    var r = ByteReader(bytes: bytes, what: "saved session")
    guard bytes.count >= 8 else { throw .badFormat("saved session: truncated: \(bytes.count) bytes, fewer than the 8-byte magic") }
    let m = try r.take(8, "magic")
    guard (0..<8).allSatisfy({ m.load(fromByteOffset: $0, as: UInt8.self) == SessionFile.magic[$0] }) else {
      throw .badFormat("saved session: not a glm5 session (bad magic)")
    }
    let format = try r.get(UInt32.self, "format version")
    guard format == SessionFile.formatVersion else {
      throw .unsupported("saved session: format version \(format); this library reads version \(SessionFile.formatVersion)")
    }
    guard bytes.count >= SessionFile.headFixed + SessionFile.headTail + 8 else { throw .badFormat("saved session: truncated header (\(bytes.count) bytes)") }
    let stored = UInt64(littleEndian: bytes.loadUnaligned(fromByteOffset: bytes.count - 8, as: UInt64.self))
    let sum = SessionFile.checksum(UnsafeRawBufferPointer(rebasing: bytes[0..<(bytes.count - 8)]))
    guard stored == sum else {
      throw .badFormat("saved session: checksum mismatch (the file is truncated or corrupt)")
    }
    let flags = try r.get(UInt32.self, "flags")
    guard flags & ~3 == 0 else { throw .unsupported("saved session: unknown flags 0x\(String(flags, radix: 16))") }
    let fp = try r.get(UInt64.self, "configuration fingerprint")
    guard fp == c.fingerprint else { throw .init(.incompatible, "saved session: made for another model configuration") }
    let vn = Int(try r.get(UInt32.self, "weight version length"))
    let vb = try r.take(vn, "weight version")
    let version = String(decoding: UnsafeRawBufferPointer(start: vb, count: vn), as: UTF8.self)
    guard allowOtherVersion || version == weightVersion else {
      throw .init(.versionMismatch, "saved session: its caches were computed with weight version \"\(version)\", the model's weights are version \"\(weightVersion)\"")
    }
    let n = try r.count("payload size", limit: 1 << 45)
    let zn = try r.count("compressed size", limit: bytes.count)
    let z = try r.take(zn, "compressed payload")
    guard r.at + 8 == bytes.count else { throw .badFormat("saved session: \(bytes.count - r.at - 8) bytes after the payload") }
    let payload = try Zstd.decompress(UnsafeRawBufferPointer(start: z, count: zn), limit: n, what: "saved session")
    guard payload.count == n else { throw .badFormat("saved session: the payload holds \(payload.count) bytes, the header says \(n)") }
    var p = ByteReader(bytes: UnsafeRawBufferPointer(payload.bytes), what: "saved session")
    let maxTokens = try p.count("max_tokens", limit: c.maxPositionEmbeddings)
    let T = try p.count("token count", limit: maxTokens)
    let s = try Session(model: self, maxTokens: maxTokens)
    let ids = try p.take(4 * T, "tokens")
    var tokens: [Int32] = []
    try tokens.reserveFallibly(T, what: "restored tokens")
    for i in 0..<T {
      let id = Int32(littleEndian: ids.loadUnaligned(fromByteOffset: 4 * i, as: Int32.self))
      guard id >= 0 && Int(id) < c.vocabSize else { throw .badFormat("saved session: token \(i) is \(id), outside [0, \(c.vocabSize))") }
      tokens.append(id)
    }
    let hr = try p.count("hidden rows", limit: min(T, Session.keptHiddenRows))
    guard (T == 0) == (hr == 0) else { throw .badFormat("saved session: \(hr) hidden rows for \(T) tokens") }
    let h = c.hiddenSize
    s.hidden.pointer.update(from: try p.take(4 * hr * h, "hidden rows").assumingMemoryBound(to: Float.self), count: hr * h)
    try s.cache.reserve(T)
    func load(_ l: LatentKVCache.Layer, rows: Int, _ what: String) throws(GLM5Error) {
      l.latent.pointer.update(from: try p.take(4 * rows * s.cache.rkv, what + "latent cache").assumingMemoryBound(to: Float.self), count: rows * s.cache.rkv)
      l.kRope.pointer.update(from: try p.take(4 * rows * s.cache.dr, what + "rope-key cache").assumingMemoryBound(to: Float.self), count: rows * s.cache.dr)
      if let k = l.indexKey {
        k.pointer.update(from: try p.take(4 * rows * s.cache.di, what + "indexer-key cache").assumingMemoryBound(to: Float.self), count: rows * s.cache.di)
      }
    }
    for l in s.cache.layers.prefix(c.numHiddenLayers) { try load(l, rows: T, "") }
    var mtpCount = 0
    if flags & 2 != 0 {
      let M = try p.count("MTP entries", limit: max(T - 1, 0))
      if s.keepsMTP && s.cache.layers.count > c.numHiddenLayers {
        try load(s.cache.layers[c.numHiddenLayers], rows: M, "MTP ")
        mtpCount = M
      } else {
        // The model has no MTP layer now: skip them (its indexer keeps keys, as the saving model's did).
        _ = try p.take(4 * M * (s.cache.rkv + s.cache.dr + s.cache.di), "MTP entries")
      }
    }
    if flags & 1 != 0 {
      let bound = try p.count("record bound", limit: Int.max / 2)
      let rec = try RoutingRecord(config: c, maxBytes: max(bound, 1))
      let tk = try p.take(4 * T * rec.topkStride, "top-k record")
      let ei = try p.take(4 * T * rec.routeStride, "expert record")
      let ew = try p.take(4 * T * rec.routeStride, "expert-weight record")
      try rec.load(topk: tk.assumingMemoryBound(to: Int32.self), expertIds: ei.assumingMemoryBound(to: Int32.self),
                   expertWeights: ew.assumingMemoryBound(to: Float.self), count: T)
      s.record = rec
    }
    guard p.at == n else { throw .badFormat("saved session: \(n - p.at) payload bytes left over") }
    s.cache.count = T
    s.cache.mtpCount = mtpCount
    s.hiddenRows = hr
    s.tokens = tokens
    return s
  }

  /// Restore from a file written by Session.save(path:).
  public func restore(path: String, allowOtherVersion: Bool = false) throws(GLM5Error) -> Session {
    let f = try MappedFile(path: path)
    return try restore(f.bytes, allowOtherVersion: allowOtherVersion)
  }
}
