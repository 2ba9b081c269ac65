// zstd frames in and out of fallible heap buffers (libzstd, a system dependency): slime's
// deltas_zstd weight files and saved sessions.

import CZstd

public enum Zstd {
  /// The zstd frame magic, little-endian 0xFD2FB528.
  public static let magic: [UInt8] = [0x28, 0xB5, 0x2F, 0xFD]

  public static func isFrame(_ b: UnsafeRawBufferPointer) -> Bool {
    b.count >= 4 && b[0] == magic[0] && b[1] == magic[1] && b[2] == magic[2] && b[3] == magic[3]
  }

  /// Compress `src` at `level` into a new buffer of exactly the frame's bytes.
  public static func compress(_ src: UnsafeRawBufferPointer, level: Int32 = 3, what: String) throws(GLM5Error) -> ByteBuffer {
    let bound = ZSTD_compressBound(src.count)
    guard ZSTD_isError(bound) == 0 else { throw .outOfMemory("\(what): \(src.count) bytes are too many to compress") }
    let out = try ByteBuffer(count: bound, what: what)
    let n = ZSTD_compress(out.pointer, bound, src.baseAddress, src.count, level)
    guard ZSTD_isError(n) == 0 else { throw .internal("\(what): zstd compression failed: \(String(cString: ZSTD_getErrorName(n)))") }
    return try out.prefix(n, what: what)
  }

  /// Decompress one frame whose header states its size, refusing one that would exceed `limit`
  /// bytes, or that states more than its blocks can hold (so that a few bytes claiming a terabyte
  /// allocate nothing). Malformed input is a badFormat error naming `what`.
  public static func decompress(_ src: UnsafeRawBufferPointer, limit: Int, what: String) throws(GLM5Error) -> ByteBuffer {
    guard let base = src.baseAddress, src.count > 0 else { throw .badFormat("\(what): empty zstd data") }
    let size = ZSTD_getFrameContentSize(base, src.count)
    if size == ZSTD_CONTENTSIZE_ERROR { throw .badFormat("\(what): not a zstd frame") }
    if size == ZSTD_CONTENTSIZE_UNKNOWN { throw .badFormat("\(what): the zstd frame does not state its size") }
    guard size <= UInt64(limit) else { throw .badFormat("\(what): the zstd frame claims \(size) bytes, more than the \(limit) allowed") }
    if isFrame(src) {
      guard let most = contentBound(src) else { throw .badFormat("\(what): corrupt zstd data (truncated or reserved blocks)") }
      guard size <= UInt64(most) else { throw .badFormat("\(what): the zstd frame claims \(size) bytes, but its blocks hold at most \(most)") }
    }
    let out = try ByteBuffer(count: Int(size), what: what)
    let n = ZSTD_decompress(out.pointer, Int(size), base, src.count)
    guard ZSTD_isError(n) == 0 else { throw .badFormat("\(what): corrupt zstd data (\(String(cString: ZSTD_getErrorName(n))))") }
    guard n == Int(size) else { throw .badFormat("\(what): the zstd frame holds \(n) bytes, its header says \(size)") }
    return out
  }

  /// The most bytes the first frame of `src` (a zstd frame) can decompress to, from its block
  /// headers (RFC 8878 §3.1.1: a raw or RLE block holds its Block_Size, a compressed one at most
  /// 128 KiB); nil when its blocks run past the end or one is of the reserved type.
  static func contentBound(_ src: UnsafeRawBufferPointer) -> Int? {
    guard isFrame(src), src.count >= 5 else { return nil }
    let fhd = src[4]
    let single = fhd & 0x20 != 0
    let fcsBytes = [single ? 1 : 0, 2, 4, 8][Int(fhd >> 6)]
    var at = 5 + (single ? 0 : 1) + [0, 1, 2, 4][Int(fhd & 3)] + fcsBytes
    var most = 0
    while at + 3 <= src.count {
      let h = Int(src[at]) | Int(src[at + 1]) << 8 | Int(src[at + 2]) << 16
      at += 3
      let blockSize = h >> 3
      switch (h >> 1) & 3 {
      case 0: most += blockSize; at += blockSize  // raw
      case 1: most += blockSize; at += 1  // RLE: one byte, repeated
      case 2: most += 1 << 17; at += blockSize  // compressed
      default: return nil  // reserved
      }
      if h & 1 != 0 { return most }  // the last block
    }
    return nil  // truncated
  }
}

extension HeapBuffer {
  /// A new buffer holding the first n elements.
  public func prefix(_ n: Int, what: String) throws(GLM5Error) -> HeapBuffer<Element> {
    let b = try HeapBuffer<Element>(count: n, what: what)
    b.pointer.update(from: pointer, count: min(n, count))
    return b
  }
}
