// glm5 bench --load: what loading a model costs, on a model folder (by default the GLM-5-shaped
// bench model in INT4 g32, written there when the folder holds no checkpoint):
//   - load time (`Model(path:threads:)`) with a cold and a warm page cache;
//   - time to first token: from nothing to the first token sampled after a 16-token prompt
//     (load + Session + append + sample 1), cold and warm;
//   - resident memory after load and after the first token against the checkpoint's size and
//     against the bytes that token's steps actually touched (the routed experts recorded per
//     layer), to show the weights are mapped, not read: resident ∝ touched.
// Cold means the folder's pages were evicted from the page cache before the load: by writing 1
// to /proc/sys/vm/drop_caches when permitted, and by posix_fadvise(POSIX_FADV_DONTNEED) on every
// file (no root needed for clean pages not mapped by another process). Which one worked is
// measured with mincore(2) on a fresh mapping of each file, before every cold run.
// Figures only; nothing is asserted. Timings on a shared machine vary: best and median of N runs.

import GLM5Core
import GLM5Engine
import GLM5Model
#if canImport(Glibc)
import Glibc
#endif

enum LoadBench {
  /// Runs per case (cold, warm); best and median are printed.
  static let runs = 3
  static let promptTokens = 16

  static func run(folder: String, threads: Int, say: (String) -> Void) throws(GLM5Error) {
    if !BatchBench.holdsCheckpoint(folder) {
      let json = SyntheticCheckpoint.glm5BenchConfigJSON()
      let c = try ModelConfig(json: json, source: "GLM-5-shaped bench config")
      let t0 = now()
      try SyntheticCheckpoint.write(config: c, configJSON: json, folder: folder, format: .int4(group: 32))
      say("GLM-5-shaped bench model, INT4 g32 (random codes), written in \(fmt(now() - t0, 1)) s to \(folder)")
    }
    let files = regularFiles(folder)
    let total = files.reduce(0) { $0 + fileSize($1) }
    say("load bench: \(folder): \(files.count) file(s), \(mb(total)) MB; \(threads == 0 ? ThreadPool.availableCPUs : threads) threads; prompt \(promptTokens) tokens, then 1 sampled token")
    say("(timings on a shared machine: best and median of \(runs) runs each; MB = 10^6 bytes)")

    // Which eviction works here, measured with mincore. posix_fadvise first: it drops only
    // this folder's pages; drop_caches empties the whole machine's page cache (other users'
    // files too), so it is only probed for permission, and written only if fadvise fails.
    warm(files)
    say("page cache after reading every file: \(pct(cachedFraction(files))) of the folder cached")
    let adv = fadviseDontNeed(files)
    let fa = cachedFraction(files)
    let fadviseWorks = fa < 0.05
    say("  posix_fadvise(POSIX_FADV_DONTNEED) after fdatasync: \(adv.ok)/\(files.count) files accepted\(adv.errors.isEmpty ? "" : " (" + adv.errors.joined(separator: "; ") + ")"); folder cached now \(pct(fa))")
    var dropWorks = false
    if let err = dropCaches(write: false) {
      say("  /proc/sys/vm/drop_caches: not writable (\(err))")
    } else if fadviseWorks {
      say("  /proc/sys/vm/drop_caches: writable, not used (it would empty the whole machine's page cache; posix_fadvise suffices)")
    } else {
      warm(files)
      _ = dropCaches(write: true)
      let f = cachedFraction(files)
      dropWorks = f < 0.05
      say("  echo 1 > /proc/sys/vm/drop_caches: written; folder cached now \(pct(f))")
    }
    let method = fadviseWorks ? "posix_fadvise" : dropWorks ? "drop_caches" : "none worked (cold figures below are NOT cold)"
    say("cold runs evict with: \(method) (checked with mincore before each run: \"cached before\")")
    let sc = scaleBytes(folder)
    if sc > 0 {
      say("quantization scales in the checkpoint: \(mb(sc)) MB = \(pct(Double(sc) / Double(total))) (WeightBinder.checkFinite reads every one while loading)")
    }

    var cold: [Run] = [], warmRuns: [Run] = []
    for i in 0..<runs {
      if fadviseWorks { _ = fadviseDontNeed(files) } else if dropWorks { _ = dropCaches(write: true) }
      let before = cachedFraction(files)
      let r = try once(folder: folder, threads: threads, files: files)
      cold.append(r)
      say("cold \(i + 1): " + r.line(cachedBefore: before, total: total))
    }
    warm(files)
    for i in 0..<runs {
      let before = cachedFraction(files)
      let r = try once(folder: folder, threads: threads, files: files)
      warmRuns.append(r)
      say("warm \(i + 1): " + r.line(cachedBefore: before, total: total))
    }
    func summary(_ name: String, _ rs: [Run]) {
      func bm(_ k: (Run) -> Double) -> String {
        let v = rs.map(k).sorted()
        return "best \(ms(v[0])) ms, median \(ms(v[v.count / 2])) ms"
      }
      say("\(name): load \(bm { $0.load }); first token \(bm { $0.firstToken }) "
          + "(prefill \(bm { $0.prefill }); sample 1 token \(bm { $0.sample }))")
    }
    summary("cold", cold)
    summary("warm", warmRuns)
    if let r = warmRuns.last {
      let expected = r.touched + r.scalesOnly
      say("resident (warm, last run): after load +\(mb(r.afterLoad.rss)) MB (file-backed +\(mb(r.afterLoad.file)) MB = \(pct(Double(r.afterLoad.file) / Double(total))) of the checkpoint); "
          + "after the first token +\(mb(r.afterFirst.rss)) MB (file-backed +\(mb(r.afterFirst.file)) MB = \(pct(Double(r.afterFirst.file) / Double(total))) of the checkpoint)")
      say("  the steps ran Linears of \(mb(r.touched)) MB (\(r.experts)/\(r.expertSlots) layer-experts routed), the load checked \(mb(r.scalesOnly)) MB more of scales: "
          + "\(mb(expected)) MB expected resident = \(pct(Double(expected) / Double(total))); file-backed resident / expected = \(fmt(Double(r.afterFirst.file) / Double(max(1, expected)), 2))")
    }
  }

  struct Memory {
    var rss = 0, file = 0, anon = 0
    static var now: Memory {
      Memory(rss: ProcessMemory.residentBytes, file: ProcessMemory.residentFileBytes, anon: ProcessMemory.residentAnonymousBytes)
    }
    static func - (a: Memory, b: Memory) -> Memory { Memory(rss: a.rss - b.rss, file: a.file - b.file, anon: a.anon - b.anon) }
  }

  struct Run {
    var load = 0.0, prefill = 0.0, sample = 0.0, firstToken = 0.0
    var afterLoad = Memory(), afterFirst = Memory()
    var cachedAfterLoad = 0.0, cachedAfterFirst = 0.0
    /// Weight bytes the steps read: every Linear but the routed experts and the MTP layer, plus
    /// the experts the recorded routes used (each layer's distinct ids); `scalesOnly`: the scales
    /// of the Linears not run (read by the load's check only).
    var touched = 0, scalesOnly = 0, experts = 0, expertSlots = 0
    var token: Int32 = -1

    func line(cachedBefore: Double, total: Int) -> String {
      "cached before \(pct(cachedBefore)) | load \(ms(load)) ms | prefill \(ms(prefill)) ms | sample 1 token \(ms(sample)) ms | "
        + "first token \(ms(firstToken)) ms from start (token \(token)) | resident after load +\(mb(afterLoad.rss)) MB "
        + "(file \(mb(afterLoad.file)), anon \(mb(afterLoad.anon))), after first token +\(mb(afterFirst.rss)) MB "
        + "(file \(mb(afterFirst.file)) = \(pct(Double(afterFirst.file) / Double(total))) of the checkpoint, anon \(mb(afterFirst.anon))) | "
        + "steps' Linears \(mb(touched)) MB (\(experts)/\(expertSlots) layer-experts) + load-checked scales \(mb(scalesOnly)) MB | page cache after load \(pct(cachedAfterLoad)), after first token \(pct(cachedAfterFirst))"
    }
  }

  /// From nothing to the first sampled token; the model and session are released on return.
  static func once(folder: String, threads: Int, files: [String]) throws(GLM5Error) -> Run {
    var r = Run()
    let base = Memory.now
    let t0 = now()
    let m = try Model(path: folder, threads: threads)
    let t1 = now()
    r.afterLoad = Memory.now - base
    r.cachedAfterLoad = cachedFraction(files)
    let c = m.config
    var rng: UInt64 = 7
    let prompt: [Int32] = (0..<promptTokens).map { _ in
      rng = rng &* 6364136223846793005 &+ 1442695040888963407
      return Int32((rng >> 33) % UInt64(c.vocabSize))
    }
    let t2 = now()
    let s = try Session(model: m, maxTokens: promptTokens + 2, recordBytes: 0, mtp: false)
    let rec = s.record!
    try s.append(prompt, logits: .none)
    let t3 = now()
    let res = try s.sample(SamplingParams(temperature: 1, topP: 0.95, seed: 1, maxNewTokens: 1, ignoreEOS: true))
    let t4 = now()
    r.afterFirst = Memory.now - base
    r.cachedAfterFirst = cachedFraction(files)
    r.token = res.tokens.first ?? -1
    r.load = t1 - t0
    r.prefill = t3 - t2
    r.sample = t4 - t3
    r.firstToken = t4 - t0
    (r.touched, r.scalesOnly, r.experts, r.expertSlots) = touchedBytes(m, rec)
    return r
  }

  /// Bytes of every Linear a step reads (not the MTP layer's), with the routed experts counted
  /// only when some recorded position used them; and (used, total) layer-expert pairs.
  static func touchedBytes(_ m: Model, _ rec: RoutingRecord) -> (touched: Int, scalesOnly: Int, used: Int, slots: Int) {
    let c = m.config
    var used = Set<Int>()  // layer · experts + expert
    for p in 0..<rec.count {
      for l in 0..<c.numHiddenLayers {
        for e in rec.route(position: p, layer: l)?.experts ?? [] { used.insert(l * c.nRoutedExperts + Int(e)) }
      }
    }
    var bytes = 0, scalesOnly = 0
    for (name, _, l) in m.checkpoint.linearModules {
      var sb = 0
      switch l.format {
      case .float: break
      case .fp8Block(let s, _, _): sb = s.byteCount
      case .int4Group(let s, let z, _): sb = s.byteCount + (z?.byteCount ?? 0)
      }
      let parts = name.split(separator: ".")
      var run = true
      if parts.count >= 3, parts[0] == "model", parts[1] == "layers", let layer = Int(parts[2]) {
        if layer >= c.numHiddenLayers { run = false }  // MTP: not run
        if parts.count >= 6, parts[3] == "mlp", parts[4] == "experts", let e = Int(parts[5]),
           !used.contains(layer * c.nRoutedExperts + e) { run = false }
      }
      if run { bytes += l.weight.byteCount + sb } else { scalesOnly += sb }
    }
    let embedRows = promptTokens * c.hiddenSize * m.checkpoint.weights.embedTokens.dtype.byteSize
    return (bytes + embedRows, scalesOnly, used.count, c.numMoELayers * c.nRoutedExperts)
  }

  /// Bytes of the quantization scales and zero points (read by the load's finiteness check).
  static func scaleBytes(_ folder: String) -> Int {
    guard let ck = try? Checkpoint(folder: folder) else { return 0 }
    var b = 0
    for (_, _, l) in ck.linearModules {
      switch l.format {
      case .float: break
      case .fp8Block(let s, _, _): b += s.byteCount
      case .int4Group(let s, let z, _): b += s.byteCount + (z?.byteCount ?? 0)
      }
    }
    return b
  }

  // MARK: - Page cache

  /// Regular files directly in `folder`, sorted.
  static func regularFiles(_ folder: String) -> [String] {
    guard let d = opendir(folder) else { return [] }
    defer { closedir(d) }
    var out: [String] = []
    while let e = readdir(d) {
      let name = withUnsafePointer(to: &e.pointee.d_name) { p in
        p.withMemoryRebound(to: CChar.self, capacity: 256) { String(cString: $0) }
      }
      if name == "." || name == ".." { continue }
      let p = joinPath(folder, name)
      if fileKind(p) == .file { out.append(p) }
    }
    return out.sorted()
  }

  static func fileSize(_ path: String) -> Int {
    var st = stat()
    return stat(path, &st) == 0 ? Int(st.st_size) : 0
  }

  /// Read every file through read(2) (fills the page cache).
  static func warm(_ files: [String]) {
    let n = 8 << 20
    let buf = UnsafeMutableRawPointer.allocate(byteCount: n, alignment: 4096)
    defer { buf.deallocate() }
    for f in files {
      let fd = open(f, O_RDONLY | O_CLOEXEC)
      if fd < 0 { continue }
      while read(fd, buf, n) > 0 {}
      close(fd)
    }
  }

  /// Fraction of the files' pages in the page cache (mincore on a fresh mapping: nothing is read).
  static func cachedFraction(_ files: [String]) -> Double {
    var cached = 0, pages = 0
    let page = Int(sysconf(Int32(_SC_PAGESIZE)))
    for f in files {
      let size = fileSize(f)
      if size == 0 { continue }
      let fd = open(f, O_RDONLY | O_CLOEXEC)
      if fd < 0 { continue }
      defer { close(fd) }
      guard let p = mmap(nil, size, PROT_READ, MAP_SHARED, fd, 0), p != MAP_FAILED else { continue }
      defer { munmap(p, size) }
      let np = (size + page - 1) / page
      let vec = UnsafeMutablePointer<UInt8>.allocate(capacity: np)
      defer { vec.deallocate() }
      if mincore(p, size, vec) != 0 { continue }
      for i in 0..<np where vec[i] & 1 != 0 { cached += 1 }
      pages += np
    }
    return pages == 0 ? 0 : Double(cached) / Double(pages)
  }

  /// sync, then write 1 to /proc/sys/vm/drop_caches (or, without `write`, only open it for
  /// writing); nil on success, else why not.
  static func dropCaches(write doWrite: Bool) -> String? {
    let fd = open("/proc/sys/vm/drop_caches", O_WRONLY | O_CLOEXEC)
    if fd < 0 { return "open: \(errnoText())" }
    defer { close(fd) }
    if !doWrite { return nil }
    sync()
    let one: [UInt8] = [0x31, 0x0A]
    let n = one.withUnsafeBytes { write(fd, $0.baseAddress, 2) }
    return n == 2 ? nil : "write: \(errnoText())"
  }

  /// fdatasync (dirty pages are not dropped) then POSIX_FADV_DONTNEED on every file.
  static func fadviseDontNeed(_ files: [String]) -> (ok: Int, errors: [String]) {
    var ok = 0
    var errors: [String] = []
    for f in files {
      let fd = open(f, O_RDONLY | O_CLOEXEC)
      if fd < 0 { errors.append("\(f): open: \(errnoText())"); continue }
      _ = fdatasync(fd)
      let rc = posix_fadvise(fd, 0, 0, Int32(POSIX_FADV_DONTNEED))
      if rc == 0 { ok += 1 } else { errors.append("\(f): posix_fadvise: \(String(cString: strerror(rc)))") }
      close(fd)
    }
    return (ok, errors)
  }

  // MARK: - Text

  static func ms(_ s: Double) -> String { fmt(s * 1e3, s < 0.01 ? 2 : 1) }
  static func mb(_ b: Int) -> String { fmt(Double(b) / 1e6, Double(abs(b)) < 1e7 ? 1 : 0) }
  static func pct(_ f: Double) -> String { fmt(f * 100, 1) + "%" }
}
