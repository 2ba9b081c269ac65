// glm5 serve: prefix reuse. Sessions of finished requests are kept (within a byte budget, least
// recently used out first); a new request whose input_ids extend the tokens of a kept session
// starts from a fork of it, truncated to the common prefix, and prefills only the rest.
//
// Why reuse changes no bit: a fork copies the caches exactly, truncation is exact (the engine
// recomputes a dropped hidden row by running its token again at its position, row-invariantly),
// and appends are split-invariant (appending [0, c) then [c, n) gives the bits of appending
// [0, n) at once). Sampling draws from (seed, position, logits), all unchanged.
//
// Owned by the scheduler thread only (no locking). A weight update empties it: its caches were
// computed with the old weights.

import GLM5Engine

/// A kept session and its bookkeeping.
final class CacheEntry {
  let session: Session
  /// Whether the session records routes and selections (RoutingRecord): a request that asks for
  /// routed_experts or dsa_topk needs the records of its whole prefix.
  let records: Bool
  let bytes: Int
  var lastUse: UInt64

  init(session: Session, records: Bool, lastUse: UInt64) {
    self.session = session
    self.records = records
    bytes = session.cacheBytes + (session.record?.bytes ?? 0)
    self.lastUse = lastUse
  }
}

/// The scheduler's kept sessions, at most `budget` bytes of caches.
struct PrefixCache {
  /// Bytes of caches kept at most (0: nothing is kept, no reuse).
  let budget: Int
  private(set) var entries: [CacheEntry] = []
  private(set) var bytes = 0
  private(set) var evictions = 0
  private var tick: UInt64 = 0

  init(budget: Int) { self.budget = max(0, budget) }

  /// Length of the common prefix of a and b.
  static func common(_ a: [Int32], _ b: [Int32]) -> Int {
    let n = min(a.count, b.count)
    var i = 0
    while i < n && a[i] == b[i] { i += 1 }
    return i
  }

  /// The kept session sharing the longest prefix with `ids`, at most `limit` tokens of it (and
  /// at least one), with the same `records`; marks it used.
  mutating func lookup(_ ids: [Int32], limit: Int, records: Bool) -> (entry: CacheEntry, common: Int)? {
    guard limit > 0 else { return nil }
    var best: (entry: CacheEntry, common: Int)? = nil
    for e in entries where e.records == records {
      let c = min(PrefixCache.common(e.session.tokens, ids), limit)
      if c > (best?.common ?? 0) { best = (e, c) }
    }
    if let best {
      tick += 1
      best.entry.lastUse = tick
    }
    return best
  }

  /// Keep a finished request's session (the scheduler drops its own reference). A kept session
  /// that covers it makes it redundant; kept sessions it covers are dropped.
  mutating func insert(_ s: Session, records: Bool) {
    guard budget > 0, s.count > 0 else { return }
    tick += 1
    let t = s.tokens
    if let e = entries.first(where: { $0.records == records && $0.session.count >= t.count && PrefixCache.common($0.session.tokens, t) == t.count }) {
      e.lastUse = tick
      return
    }
    entries.removeAll { e in
      let covered = e.records == records && PrefixCache.common(e.session.tokens, t) == e.session.count
      if covered { bytes -= e.bytes }
      return covered
    }
    let e = CacheEntry(session: s, records: records, lastUse: tick)
    guard e.bytes <= budget else { return }
    entries.append(e)
    bytes += e.bytes
    while bytes > budget, let i = entries.indices.min(by: { entries[$0].lastUse < entries[$1].lastUse }) {
      bytes -= entries[i].bytes
      entries.remove(at: i)
      evictions += 1
    }
  }

  /// Drop everything (POST /flush_cache, a weight update).
  mutating func flush() {
    entries = []
    bytes = 0
  }
}
