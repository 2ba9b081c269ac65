// glm5 bench --tokenizer PATH [--corpus FILE]: encoding speed of a tokenizer.json in MB/s of UTF-8
// input, single-threaded, on a corpus (default: the tokenizer test corpus,
// Tests/Fixtures/tokenizers/corpus.txt.zst) cut into ~64 KB chunks at line ends. The first pass
// starts with an empty word cache; the best and median of --reps further passes follow.
// tools/bench/tokenizer_bench.py measures HF tokenizers on the same chunks in the same run.

import GLM5Core
import GLM5Tokenizer

enum TokenizerBench {
  static func chunks(_ text: [UInt8], size: Int = 65536) -> [[UInt8]] {
    var out: [[UInt8]] = []
    var start = 0
    while start < text.count {
      var end = min(start + size, text.count)
      while end < text.count && text[end - 1] != 0x0A { end += 1 }  // cut after a newline
      out.append(Array(text[start..<end]))
      start = end
    }
    return out
  }

  static func run(tokenizer path: String, corpus: String, reps: Int, say: (String) -> Void) throws(GLM5Error) {
    let t0 = now()
    let tok = try Tokenizer.load(path: path)
    let loadSeconds = now() - t0
    let f = try MappedFile(path: corpus)
    let text: [UInt8]
    if Zstd.isFrame(f.bytes) {
      let b = try Zstd.decompress(f.bytes, limit: 1 << 31, what: corpus)
      text = Array(UnsafeRawBufferPointer(b.bytes))
    } else {
      text = Array(f.bytes)
    }
    let parts = chunks(text)
    let mb = Double(text.count) / 1e6
    say("tokenizer \(tok.path): \(tok.idCount) ids, loaded in \(fmt(loadSeconds * 1000, 0)) ms")
    say("corpus \(corpus): \(fmt(mb, 2)) MB in \(parts.count) chunks; single-threaded encode (parse_special)")
    func pass() throws(GLM5Error) -> (Double, Int) {
      var n = 0
      let s = now()
      for p in parts {
        n += try withBytes(p) { (b) throws(GLM5Error) -> Int in try tok.encode(b).count }
      }
      return (now() - s, n)
    }
    let (cold, n) = try pass()
    say("  first pass (empty word cache): \(fmt(mb / cold, 2)) MB/s, \(fmt(Double(n) / cold / 1e6, 2)) M tokens/s, \(n) tokens")
    var times: [Double] = []
    for _ in 0..<max(reps, 1) { times.append(try pass().0) }
    times.sort()
    say("  warm, best of \(times.count): \(fmt(mb / times[0], 2)) MB/s (median \(fmt(mb / times[times.count / 2], 2)) MB/s), \(fmt(Double(n) / times[0] / 1e6, 2)) M tokens/s")
  }
}
