// glm5 serve: what a request may ask for besides tokens and logprobs, computed from what the
// engine keeps: routed_experts and dsa_topk from the session's RoutingRecord, input_top_logprobs
// from the logits an append kept.
//
//   routed_experts  int32 [tokens - 1, layers, experts_per_tok]  -1 rows for dense layers
//   dsa_topk        int32 [tokens - 1, layers, index_topk]       the keys each layer's attention
//                                                                read, ascending, -1 padded
// Both cover every token but the last (SGLang never runs the last one through the model), and
// are sent base64 little-endian (base64(_:) in ServeResponse.swift).

import GLM5Engine
import GLM5Kernels
import GLM5Model

enum ServeExtras {
  /// routed_experts of the first `tokens - 1` tokens.
  static func routedExperts(_ rec: RoutingRecord, tokens: Int) -> [Int32] {
    let n = max(0, min(tokens - 1, rec.count))
    let L = rec.layers, k = rec.perToken
    var out = [Int32](repeating: -1, count: n * L * k)
    let ids = rec.routes(first: 0, count: n).ids
    for t in 0..<n {
      for l in 0..<L {
        let m = rec.moeIndex[l]
        guard m >= 0 else { continue }
        for e in 0..<k { out[(t * L + l) * k + e] = ids[(t * rec.moeLayers + m) * k + e] }
      }
    }
    return out
  }

  /// dsa_topk of the first `tokens - 1` tokens: the record's topk rows as they are.
  static func dsaTopk(_ rec: RoutingRecord, tokens: Int) -> [Int32] {
    let n = max(0, min(tokens - 1, rec.count))
    return Array(rec.topk(first: 0, count: n))
  }

  /// The top-N (ids, logprobs) of each logits row [rows, V], as the sampler reports them for an
  /// output token (Sampler.sample): rank order by Kernels.topK (ties to the lower id, NaN last),
  /// logprobs scaled by `temperature` (raw at 0 or 1) from Kernels.logSumExp. Rows past the
  /// vocabulary are padded with id -1 and -inf.
  static func topLogprobs(_ logits: UnsafePointer<Float>, rows: Int, vocab V: Int, n N: Int, temperature tau: Float)
    -> (ids: [Int32], logprobs: [Float]) {
    var ids = [Int32](repeating: -1, count: rows * N)
    var lps = [Float](repeating: -.infinity, count: rows * N)
    var heap = [Int32](repeating: 0, count: max(N, 1))
    let useT = tau > 0 && tau != 1
    for r in 0..<rows {
      let row = logits + r * V
      let got = heap.withUnsafeMutableBufferPointer { Kernels.topK(row, V, N, heap: $0.baseAddress!) }
      let lse = Kernels.logSumExp(row, V)
      let lseT = useT ? Kernels.logSumExp(row, V, temperature: Double(tau)) : lse
      for i in 0..<min(got, N) {
        let id = heap[i]
        ids[r * N + i] = id
        lps[r * N + i] = useT ? Float(Double(row[Int(id)]) / Double(tau) - lseT) : Float(Double(row[Int(id)]) - lse)
      }
    }
    return (ids, lps)
  }
}
