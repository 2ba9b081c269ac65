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

  /// Output allocated up front for a frame: what its header states, up to this many bytes per
  /// compressed byte (and at least 1 MiB). A larger claim is decompressed into a buffer that grows
  /// with the output, so that a few bytes claiming a terabyte allocate only what they really hold.
  static let trustedRatio = 64

  /// Decompress one frame whose header states its size, refusing one that would exceed `limit`
  /// bytes. Malformed input is a badFormat error naming `what`.
  public static func decompress(_ src: UnsafeRawBufferPointer, limit: Int, what: String) throws(GLM5Error) -> ByteBuffer {
    guard let base = src.baseAddress, src.count > 0 else { throw .badFormat("\(what): empty zstd data") }
    let size = ZSTD_getFrameContentSize(base, src.count)
    if size == ZSTD_CONTENTSIZE_ERROR { throw .badFormat("\(what): not a zstd frame") }
    if size == ZSTD_CONTENTSIZE_UNKNOWN { throw .badFormat("\(what): the zstd frame does not state its size") }
    guard size <= UInt64(limit) else { throw .badFormat("\(what): the zstd frame claims \(size) bytes, more than the \(limit) allowed") }
    let (bound, o) = src.count.multipliedReportingOverflow(by: trustedRatio)
    if Int(size) > max(o ? Int.max : bound, 1 << 20) {
      return try decompressGrowing(src, size: Int(size), initial: max(bound, 1 << 20), what: what)
    }
    let out = try ByteBuffer(count: Int(size), what: what)
    let n = ZSTD_decompress(out.pointer, Int(size), base, src.count)
    guard ZSTD_isError(n) == 0 else { throw .badFormat("\(what): corrupt zstd data (\(String(cString: ZSTD_getErrorName(n))))") }
    guard n == Int(size) else { throw .badFormat("\(what): the zstd frame holds \(n) bytes, its header says \(size)") }
    return out
  }

  /// Streaming decompression of a frame stating `size` bytes into a buffer that starts at
  /// `initial` bytes and doubles (up to `size`) only as output arrives.
  static func decompressGrowing(_ src: UnsafeRawBufferPointer, size: Int, initial: Int, what: String) throws(GLM5Error) -> ByteBuffer {
    guard let dctx = ZSTD_createDCtx() else { throw .outOfMemory("\(what): cannot create a zstd context") }
    defer { ZSTD_freeDCtx(dctx) }
    let out = try ByteBuffer(count: min(initial, size), what: what)
    var input = ZSTD_inBuffer(src: src.baseAddress, size: src.count, pos: 0)
    var produced = 0
    while true {
      var output = ZSTD_outBuffer(dst: out.pointer + produced, size: out.count - produced, pos: 0)
      let before = input.pos
      let r = ZSTD_decompressStream(dctx, &output, &input)
      guard ZSTD_isError(r) == 0 else { throw .badFormat("\(what): corrupt zstd data (\(String(cString: ZSTD_getErrorName(r))))") }
      produced += output.pos
      if r == 0 { break }  // the frame is complete
      if output.pos == output.size && out.count < size {
        try out.grow(to: min(size, 2 * out.count), what: what)
      } else if input.pos == before && output.pos == 0 {
        // No progress: at `size` bytes with more to come, or stuck.
        throw .badFormat("\(what): the zstd frame holds more than the \(size) bytes its header says")
      } else if input.pos == input.size && output.pos < output.size {
        throw .badFormat("\(what): corrupt zstd data (the frame ends after \(produced) of \(size) bytes)")
      }
    }
    guard produced == size else { throw .badFormat("\(what): the zstd frame holds \(produced) bytes, its header says \(size)") }
    return out
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
