// Deterministic top-k, shared by the DSA indexer, the MoE router and the sampler. The rule
// (documented in include/glm5.h): higher score first; equal scores go to the lower index; NaN
// ranks last. It is a strict total order, so the result does not depend on the algorithm.

import GLM5Core

/// The total order used by every top-k in the library: does (a, i) rank before (b, j)?
@inline(__always) public func precedes(_ a: Float, _ i: Int, _ b: Float, _ j: Int) -> Bool {
  if a.isNaN { return b.isNaN && i < j }
  if b.isNaN { return true }
  return a > b || (a == b && i < j)
}

@inline(__always) func swapAt(_ p: UnsafeMutablePointer<Int32>, _ i: Int, _ j: Int) {
  let t = p[i]; p[i] = p[j]; p[j] = t
}

extension Kernels {
  /// Indices of the k best of scores[0..<n] in rank order (best first), written to
  /// `heap[0..<min(k, n)]` (k entries of scratch); returns min(k, n). O(n log k), no allocation:
  /// a bounded heap whose root is the worst kept entry, then sorted in place.
  @discardableResult
  public static func topK(_ scores: UnsafePointer<Float>, _ n: Int, _ k: Int, heap: UnsafeMutablePointer<Int32>) -> Int {
    let k = min(k, n)
    if k <= 0 { return 0 }
    @inline(__always) func worse(_ a: Int32, _ b: Int32) -> Bool {  // a ranks after b
      precedes(scores[Int(b)], Int(b), scores[Int(a)], Int(a))
    }
    @inline(__always) func siftDown(_ start: Int, _ count: Int) {
      var i = start
      while true {
        let l = 2 * i + 1, r = l + 1
        var m = i
        if l < count && worse(heap[l], heap[m]) { m = l }
        if r < count && worse(heap[r], heap[m]) { m = r }
        if m == i { return }
        swapAt(heap, i, m)
        i = m
      }
    }
    for i in 0..<k {
      heap[i] = Int32(i)
      var j = i
      while j > 0 {
        let p = (j - 1) / 2
        if worse(heap[j], heap[p]) { swapAt(heap, j, p); j = p } else { break }
      }
    }
    var i = k
    while i < n {
      let c = Int32(i)
      if worse(heap[0], c) { heap[0] = c; siftDown(0, k) }
      i += 1
    }
    // Pop the worst to the back until one is left: best first.
    var end = k
    while end > 1 {
      end -= 1
      swapAt(heap, 0, end)
      siftDown(0, end)
    }
    return k
  }

  /// The set `topK` selects, in ascending index order, into out[0..<min(k, n)]; returns the count.
  /// O(n) and no scratch beyond a 256-bin histogram: a radix select on a 32-bit key that orders
  /// scores as `precedes` does (NaN lowest, −0 as +0), four 8-bit passes to the exact key of the
  /// k-th best, then one pass in index order that keeps every better key and the first equal ones
  /// (equal scores go to the lower index). The indexer's selection (2048 of up to 200k keys).
  @discardableResult
  public static func topKAscending(_ scores: UnsafePointer<Float>, _ n: Int, _ k: Int, out: UnsafeMutablePointer<Int32>) -> Int {
    let k = min(k, n)
    if k <= 0 { return 0 }
    if k == n {
      for i in 0..<n { out[i] = Int32(i) }
      return n
    }
    @inline(__always) func key(_ i: Int) -> UInt32 {
      let v = scores[i]
      if v.isNaN { return 0 }
      let b = (v == 0 ? Float(0) : v).bitPattern
      return b & 0x8000_0000 != 0 ? ~b : b | 0x8000_0000
    }
    var prefix: UInt32 = 0, mask: UInt32 = 0
    var need = k  // how many of the keys matching prefix (from the top) still to take
    withUnsafeTemporaryAllocation(of: Int.self, capacity: 256) { h in
      let hist = h.baseAddress!
      for shift: UInt32 in [24, 16, 8, 0] {
        hist.update(repeating: 0, count: 256)
        for i in 0..<n {
          let kv = key(i)
          if kv & mask == prefix { hist[Int((kv >> shift) & 255)] += 1 }
        }
        var b = 255
        while b > 0 && hist[b] < need { need -= hist[b]; b -= 1 }
        prefix |= UInt32(b) << shift
        mask |= 255 << shift
      }
    }
    // prefix is the k-th best key; keep every key above it and the first `need` equal to it.
    var m = 0
    for i in 0..<n {
      let kv = key(i)
      if kv > prefix || (kv == prefix && need > 0) {
        if kv == prefix { need -= 1 }
        out[m] = Int32(i)
        m += 1
      }
    }
    return m
  }

  /// `topK`'s result (the k best of scores[0..<n], best first, into out[0..<min(k, n)]) in O(n + k)
  /// for large k: the set by `topKAscending` into `scratch` (ascending index), then a stable
  /// four-pass radix sort on the order's key (8 bits a pass; 2 KiB of stack), so equal scores keep
  /// the lower index first. k ≤ rankOrderHeapMax takes `topK` itself. out and scratch: k entries each.
  @discardableResult
  public static func rankOrder(_ scores: UnsafePointer<Float>, _ n: Int, _ k: Int, out: UnsafeMutablePointer<Int32>,
                               scratch: UnsafeMutablePointer<Int32>) -> Int {
    let k = min(k, n)
    if k <= rankOrderHeapMax { return topK(scores, n, k, heap: out) }
    let m = topKAscending(scores, n, k, out: scratch)
    // Sort by ~key ascending (best first); key as topKAscending's: NaN lowest, ±0 equal.
    @inline(__always) func rank(_ i: Int32) -> UInt32 {
      let v = scores[Int(i)]
      if v.isNaN { return ~UInt32(0) }
      let b = (v == 0 ? Float(0) : v).bitPattern
      return ~(b & 0x8000_0000 != 0 ? ~b : b | 0x8000_0000)
    }
    withUnsafeTemporaryAllocation(of: Int.self, capacity: 256) { h in
      let hist = h.baseAddress!
      var src = scratch, dst = out
      for shift: UInt32 in [0, 8, 16, 24] {
        let buckets = 256, mask: UInt32 = 255
        hist.update(repeating: 0, count: buckets)
        for i in 0..<m { hist[Int((rank(src[i]) >> shift) & mask)] += 1 }
        var total = 0
        for b in 0..<buckets { let c = hist[b]; hist[b] = total; total += c }
        for i in 0..<m {
          let id = src[i]
          let b = Int((rank(id) >> shift) & mask)
          dst[hist[b]] = id
          hist[b] += 1
        }
        swap(&src, &dst)
      }
    }
    // Four passes: the result is back in scratch.
    out.update(from: scratch, count: m)
    return m
  }

  /// Below this many, `rankOrder` uses the heap (fewer passes over n for small k).
  public static let rankOrderHeapMax = 256

  /// Sort ids[0..<n] (non-negative) ascending; large n by a four-pass radix sort through
  /// `scratch` (n entries; 2 KiB of stack), small n as `sortAscending`.
  public static func sortAscending(_ ids: UnsafeMutablePointer<Int32>, _ n: Int, scratch: UnsafeMutablePointer<Int32>) {
    if n <= rankOrderHeapMax { sortAscending(ids, n); return }
    withUnsafeTemporaryAllocation(of: Int.self, capacity: 256) { h in
      let hist = h.baseAddress!
      var src = ids, dst = scratch
      for shift: UInt32 in [0, 8, 16, 24] {
        hist.update(repeating: 0, count: 256)
        for i in 0..<n { hist[Int((UInt32(bitPattern: src[i]) >> shift) & 255)] += 1 }
        var total = 0
        for b in 0..<256 { let c = hist[b]; hist[b] = total; total += c }
        for i in 0..<n {
          let v = src[i]
          let b = Int((UInt32(bitPattern: v) >> shift) & 255)
          dst[hist[b]] = v
          hist[b] += 1
        }
        swap(&src, &dst)
      }
      // Four passes: the result is back in ids.
    }
  }

  /// The array form (tests, reference code).
  public static func topK(_ scores: UnsafePointer<Float>, _ n: Int, _ k: Int, into out: inout [Int32]) {
    let m = max(0, min(k, n))
    out = [Int32](repeating: 0, count: m)
    out.withUnsafeMutableBufferPointer { o in if m > 0 { topK(scores, n, k, heap: o.baseAddress!) } }
  }

  /// Sort ids[0..<n] ascending in place (heapsort: no allocation).
  public static func sortAscending(_ ids: UnsafeMutablePointer<Int32>, _ n: Int) {
    if n < 2 { return }
    if n <= 16 {
      for i in 1..<n {
        let v = ids[i]
        var j = i
        while j > 0 && ids[j - 1] > v { ids[j] = ids[j - 1]; j -= 1 }
        ids[j] = v
      }
      return
    }
    @inline(__always) func sift(_ start: Int, _ count: Int) {
      var i = start
      while true {
        let l = 2 * i + 1, r = l + 1
        var m = i
        if l < count && ids[l] > ids[m] { m = l }
        if r < count && ids[r] > ids[m] { m = r }
        if m == i { return }
        swapAt(ids, i, m)
        i = m
      }
    }
    var s = n / 2 - 1
    while s >= 0 { sift(s, n); s -= 1 }
    var end = n
    while end > 1 {
      end -= 1
      swapAt(ids, 0, end)
      sift(0, end)
    }
  }
}
