// Which model folder a text command runs, and loading it with a progress bar.
//
// Without a MODEL argument, `generate` and `chat` run the bundled model, `models/glm5-tiny`:
// looked up in the current directory, then above the executable (the checkout's
// .build/release/glm5 is .build/<triple>/release/glm5-cli once symlinks are resolved, so the
// executable's folder and up to three folders above it are tried, both as invoked and resolved).

import GLM5Core
import GLM5Engine
#if canImport(Glibc)
import Glibc
#endif

enum ModelFolder {
  static let bundled = "models/glm5-tiny"

  /// `given`, or the bundled model's folder; a clear failure when there is none with weights.
  static func resolve(_ given: String?) throws(CLIFailure) -> String {
    if let given { return given }
    var tried: [String] = [bundled]
    var found: String? = fileKind(bundled) == .directory ? bundled : nil
    if found == nil {
      for dir in executableFolders() {
        var d = dir
        for _ in 0..<4 {
          let c = joinPath(d, bundled)
          tried.append(c)
          if fileKind(c) == .directory { found = c; break }
          d = joinPath(d, "..")
        }
        if found != nil { break }
      }
    }
    guard let folder = found else {
      throw CLIFailure("no MODEL given and the bundled model is not found (tried \(tried.joined(separator: ", "))); pass a model folder")
    }
    guard fileKind(joinPath(folder, "config.json")) == .file else {
      throw CLIFailure("the bundled model \(folder) has no weights yet (no config.json); pass a model folder")
    }
    return folder
  }

  /// The executable's folder as invoked (argv[0]) and with symlinks resolved (/proc/self/exe).
  static func executableFolders() -> [String] {
    var out: [String] = []
    let argv0 = CommandLine.arguments.first ?? ""
    if let slash = argv0.lastIndex(of: "/") { out.append(String(argv0[..<slash])) }
    var buf = [CChar](repeating: 0, count: 4096)
    let n = readlink("/proc/self/exe", &buf, buf.count - 1)
    if n > 0 {
      let exe = String(decoding: buf[..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
      if let slash = exe.lastIndex(of: "/") { out.append(String(exe[..<slash])) }
    }
    return out
  }

  /// Load `folder`. Unless `lazy`, every weight page is read now (Checkpoint.prefault), so that
  /// the first token does not pay for the disk and the tokens/s measure compute; on a terminal a
  /// bar shows it when it takes more than a second. Returns the model and the seconds taken.
  static func load(_ folder: String, threads: Int, lazy: Bool) throws(CLIFailure) -> (Model, Double) {
    let t0 = now()
    let m = try orFail { () throws(GLM5Error) -> Model in try Model(path: folder, threads: threads) }
    if !lazy {
      var bar = ProgressBar("loading \(folder)")
      m.checkpoint.prefault { done, total in bar.update(done: done, total: total) }
      bar.finish()
    }
    return (m, now() - t0)
  }
}
