// Saved sessions (SessionFile.swift), restored into tiny-dsa (Tests/Fixtures/tiny-dsa). A file
// ends in a checksum of everything before it and carries its payload as one zstd frame, so random
// bytes would stop at the checksum or in zstd: each target writes those parts itself, and the
// mutations land on the fields behind them.
//   session          the file without its trailer; the target appends the right checksum
//   session-payload  a flags byte (low two bits), then the uncompressed payload; the target writes
//                    the header (tiny-dsa's fingerprint, the live weight version), the frame, the sum
// A restored session must then work: one more token is appended (a forward pass over its caches).

import GLM5Core
import GLM5Engine

let fuzzModel: Model = {
  let path = fuzzFixtures + "/tiny-dsa"
  do throws(GLM5Error) { return try Model(path: path, threads: 1) } catch { fatalError("glm5 fuzz: cannot load \(path): \(error.message) (set GLM5_FUZZ_FIXTURES)") }
}()

func appendLE<T: FixedWidthInteger>(_ v: T, to out: inout [UInt8]) {
  withUnsafeBytes(of: v.littleEndian) { out.append(contentsOf: $0) }
}

/// Restore `file`, and use the session.
func restoreAndUse(_ file: [UInt8]) {
  swallow { () throws(GLM5Error) in
    let s = try withBytes(file) { (b) throws(GLM5Error) -> Session in try fuzzModel.restore(b, allowOtherVersion: true) }
    try s.append([1], logits: .last)
  }
}

@Sendable func fuzzSession(_ bytes: UnsafeRawBufferPointer) {
  var file = Array(bytes)
  let sum = file.withUnsafeBytes { SessionFile.checksum($0) }
  appendLE(sum, to: &file)
  restoreAndUse(file)
}

@Sendable func fuzzSessionPayload(_ bytes: UnsafeRawBufferPointer) {
  let model = fuzzModel  // loaded on the first call, even an empty input's (the driver's warm-up)
  guard bytes.count >= 1 else { return }
  let payload = UnsafeRawBufferPointer(rebasing: bytes[1...])
  guard let z = try? Zstd.compress(payload, level: 1, what: "fuzz payload") else { return }
  let version = Array(model.weightVersion.utf8)
  var file = SessionFile.magic
  appendLE(SessionFile.formatVersion, to: &file)
  appendLE(UInt32(bytes[0] & 3), to: &file)
  appendLE(model.config.fingerprint, to: &file)
  appendLE(UInt32(version.count), to: &file)
  file += version
  appendLE(UInt64(payload.count), to: &file)
  appendLE(UInt64(z.count), to: &file)
  file += UnsafeRawBufferPointer(start: z.pointer, count: z.count)
  let sum = file.withUnsafeBytes { SessionFile.checksum($0) }
  appendLE(sum, to: &file)
  restoreAndUse(file)
}

// MARK: - Seeds

/// Seed inputs of both targets, from sessions on tiny-dsa: empty, a few tokens, a few tokens with
/// a routing record (FuzzCorpusTests writes them when GLM5_FUZZ_WRITE_SEEDS is set).
public func fuzzSessionSeeds() throws(GLM5Error) -> [(target: String, name: String, bytes: [UInt8])] {
  var out: [(target: String, name: String, bytes: [UInt8])] = []
  let m = fuzzModel
  for (name, tokens, record) in [("empty", [Int32](), false), ("tokens5", [3, 1, 4, 1, 5], false), ("tokens3-record", [2, 7, 1], true)] {
    let s = try Session(model: m, maxTokens: 16, recordBytes: record ? 0 : nil)
    if !tokens.isEmpty { try s.append(tokens, logits: .last) }
    let saved = try s.save()
    let file = Array(UnsafeRawBufferPointer(saved.bytes))
    out.append(("session", name, Array(file.dropLast(8))))
    // Header: magic 8, version 4, flags 4, fingerprint 8, n 4 + version, payload 8, compressed 8.
    let flags = file[12]
    let vn = file.withUnsafeBytes { Int(UInt32(littleEndian: $0.loadUnaligned(fromByteOffset: 24, as: UInt32.self))) }
    let z = 28 + vn + 16
    let payload = try withBytes(file) { (b) throws(GLM5Error) -> ByteBuffer in
      try Zstd.decompress(UnsafeRawBufferPointer(rebasing: b[z..<(b.count - 8)]), limit: 1 << 30, what: "seed")
    }
    out.append(("session-payload", name, [flags] + Array(UnsafeRawBufferPointer(payload.bytes))))
  }
  return out
}
