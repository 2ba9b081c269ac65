// Terminal output shared by the commands that print as they go (generate, chat): bytes to stdout
// as soon as they exist, lines to stderr, a progress bar, a failure that exits with a message.
//
// Everything goes through write(2) after flushing stdio (fflush(NULL)), so text written here and
// lines written with `print` come out in the order they were produced, and a token's text is on
// the terminal when its step ends (no buffering by line).

import GLM5Core
#if canImport(Glibc)
import Glibc
#endif

enum Out {
  /// Write bytes to stdout now.
  static func bytes(_ b: [UInt8]) { put(1, b) }
  static func text(_ s: String) { put(1, Array(s.utf8)) }
  /// A line to stderr (diagnostics, timings, prompts), now.
  static func err(_ s: String) { put(2, Array((s + "\n").utf8)) }

  static var stdoutIsTerminal: Bool { isatty(1) != 0 }
  static var stderrIsTerminal: Bool { isatty(2) != 0 }
  static var stdinIsTerminal: Bool { isatty(0) != 0 }

  private static func put(_ fd: Int32, _ b: [UInt8]) {
    fflush(nil)
    b.withUnsafeBytes { buf in
      var off = 0
      while off < buf.count {
        let n = write(fd, buf.baseAddress! + off, buf.count - off)
        if n < 0 && errno == EINTR { continue }
        if n <= 0 { return }  // a closed pipe: nothing more to say
        off += n
      }
    }
  }
}

/// A failure at run time: ArgumentParser prints "Error: <message>" and exits with status 1 (no
/// usage text, unlike ValidationError, which is for wrong arguments).
struct CLIFailure: Error, CustomStringConvertible {
  let description: String
  init(_ message: String) { description = message }
}

/// Run a library call; its error becomes a CLIFailure with the library's message.
func orFail<T>(_ body: () throws(GLM5Error) -> T) throws(CLIFailure) -> T {
  do { return try body() } catch { throw CLIFailure(error.description) }
}

/// A progress bar on stderr, drawn only on a terminal and only once the work has taken more
/// than `delay` seconds (a fast load shows nothing); redrawn every 1 %.
struct ProgressBar {
  let label: String
  let delay: Double
  let enabled = Out.stderrIsTerminal
  let start = now()
  private var last = -1.0
  private var shown = false

  init(_ label: String, delay: Double = 1) {
    self.label = label
    self.delay = delay
  }

  mutating func update(done: Int, total: Int) {
    guard enabled else { return }
    let frac = total > 0 ? Double(done) / Double(total) : 1
    guard frac - last >= 0.01 || (done == total && shown), now() - start >= delay else { return }
    last = frac
    shown = true
    let width = 30
    let filled = min(width, Int(frac * Double(width)))
    let bar = String(repeating: "#", count: filled) + String(repeating: ".", count: width - filled)
    let line = "\r\(label) [\(bar)] \(fmt(frac * 100, 0))%  \(fmt(Double(done) / 1e6, 1))/\(fmt(Double(total) / 1e6, 1)) MB"
    Out.bytes(Array(line.utf8))
  }

  /// End the bar's line (when one was drawn).
  mutating func finish() {
    if shown { Out.bytes(Array("\n".utf8)) }
    shown = false
  }
}

/// A token's text for a table: JSON-quoted (newlines and controls escaped; an incomplete UTF-8
/// piece shows U+FFFD).
func quotedPiece(_ bytes: [UInt8]) -> String {
  JSON.quote(String(decoding: bytes, as: UTF8.self))
}
