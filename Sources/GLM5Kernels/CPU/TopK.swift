// Deterministic top-k, shared by the DSA indexer and the MoE router. The rule (documented in
// include/glm5.h): higher score first; equal scores go to the lower index; NaN ranks last.

import GLM5Core

extension Kernels {
  /// Indices of the k best of scores[0..<n] in rank order (best first). O(n log k) with a
  /// bounded heap whose root is the worst kept entry.
  public static func topK(_ scores: UnsafePointer<Float>, _ n: Int, _ k: Int, into out: inout [Int32]) {
    out.removeAll(keepingCapacity: true)
    let k = min(k, n)
    if k <= 0 { return }
    // heap of indices; "worse" at the root.
    var heap = [Int32]()
    heap.reserveCapacity(k)
    @inline(__always) func worse(_ a: Int32, _ b: Int32) -> Bool {
      // a ranks after b
      precedes(scores[Int(b)], Int(b), scores[Int(a)], Int(a))
    }
    func siftDown(_ start: Int) {
      var i = start
      while true {
        let l = 2 * i + 1, r = l + 1
        var m = i
        if l < heap.count && worse(heap[l], heap[m]) { m = l }
        if r < heap.count && worse(heap[r], heap[m]) { m = r }
        if m == i { return }
        heap.swapAt(i, m)
        i = m
      }
    }
    for i in 0..<n {
      let c = Int32(i)
      if heap.count < k {
        heap.append(c)
        var j = heap.count - 1
        while j > 0 {
          let p = (j - 1) / 2
          if worse(heap[j], heap[p]) { heap.swapAt(j, p); j = p } else { break }
        }
      } else if worse(heap[0], c) {
        heap[0] = c
        siftDown(0)
      }
    }
    heap.sort { precedes(scores[Int($0)], Int($0), scores[Int($1)], Int($1)) }
    out.append(contentsOf: heap)
  }
}
