// Zstd.decompress: a frame that compresses very well still decompresses (the bound its blocks give
// is above what it holds); a frame claiming more than its blocks can hold is refused before
// anything is allocated (Tests/fuzz/delta/crash-zstd-claims-512g).

@testable import GLM5Core
import Testing

@Suite("zstd frames")
struct ZstdTests {
  @Test func highRatioRoundTrip() throws {
    // 8 MiB, mostly zeros: RLE and compressed blocks.
    var src = [UInt8](repeating: 0, count: 8 << 20)
    for i in stride(from: 0, to: src.count, by: 4093) { src[i] = UInt8(truncatingIfNeeded: i / 4093) }
    let z = try withBytes(src) { (b) throws(GLM5Error) -> ByteBuffer in try Zstd.compress(b, what: "test") }
    #expect(z.count * 100 < src.count)
    #expect(Zstd.contentBound(UnsafeRawBufferPointer(z.bytes)).map { $0 >= src.count } == true)
    let back = try Zstd.decompress(UnsafeRawBufferPointer(z.bytes), limit: 1 << 30, what: "test")
    #expect(Array(UnsafeRawBufferPointer(back.bytes)) == src)
    // Cut short, the same frame is refused.
    let cut = UnsafeRawBufferPointer(rebasing: UnsafeRawBufferPointer(z.bytes)[0..<(z.count - 3)])
    #expect(throws: GLM5Error.self) { _ = try Zstd.decompress(cut, limit: 1 << 30, what: "test") }
  }

  @Test func claimBeyondContent() {
    // A single-segment frame stating 2^39 bytes whose one RLE block holds 100.
    var f: [UInt8] = [0x28, 0xB5, 0x2F, 0xFD, 0xE0]
    withUnsafeBytes(of: UInt64(1 << 39).littleEndian) { f += $0 }
    f += [0x23, 0x03, 0x00, 0x00]
    do {
      _ = try withBytes(f) { (b) throws(GLM5Error) -> ByteBuffer in try Zstd.decompress(b, limit: 1 << 40, what: "frame") }
      Issue.record("a frame holding 100 of the 2^39 bytes it states was accepted")
    } catch {
      #expect(error.status == .badFormat && error.message.contains("its blocks hold at most 100"), "\(error.message)")
    }
  }
}
