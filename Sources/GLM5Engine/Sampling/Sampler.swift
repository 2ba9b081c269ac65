// One token from one row of logits, exactly as include/glm5.h ("Sampling") specifies:
//   logits → temperature → rank order → top-k → top-p → min-p → renormalise → draw (Philox).
// Everything after the float32 logits is in Double, every sum runs in ascending id order, and
// ordering ties go to the lower id with NaN last (Kernels.topK's rule), so a draw is a pure
// function of (logits row, parameters, seed, position).
//
// The raw and scaled logprobs come from Kernels.logSumExp, the function scoring uses, on the same
// logits row (row-invariant kernels make it the same bits), so sampling and scoring agree bitwise.

import GLM5Core
import GLM5Kernels

/// Per-worker scratch of the sampler: [V] doubles and [V] ints.
public struct SamplerScratch {
  let w: UnsafeMutablePointer<Double>
  let ids: UnsafeMutablePointer<Int32>
  let heap: UnsafeMutablePointer<Int32>

  public static func bytes(vocab: Int) -> Int { 2 * 64 + vocab * 8 + 2 * vocab * 4 + 3 * 64 }
  init(_ cv: inout Carver, vocab: Int) {
    w = cv.take(vocab, Double.self)
    ids = cv.ints(vocab)
    heap = cv.ints(vocab)
  }
}

/// What the sampler reports for one token.
struct SampledToken {
  var id: Int32 = 0
  var raw: Float = .nan
  var scaled: Float = .nan
  var processed: Float = .nan
}

enum Sampler {
  /// Raw (temperature 1) and scaled logprobs of `id` under `logits` [V]: what scoring reports.
  /// Temperature 0 gives the raw value for both.
  static func logprobs(_ logits: UnsafePointer<Float>, vocab V: Int, id: Int, temperature: Float) -> (raw: Float, scaled: Float) {
    let lse = Kernels.logSumExp(logits, V)
    let raw = Float(Double(logits[id]) - lse)
    guard temperature > 0 && temperature != 1 else { return (raw, raw) }
    let t = Double(temperature)
    let lseT = Kernels.logSumExp(logits, V, temperature: t)
    return (raw, Float(Double(logits[id]) / t - lseT))
  }

  /// Draw the token for `position` from `logits` [V]; write the top-N alternatives (ids, scaled
  /// logprobs) when asked.
  static func sample(_ logits: UnsafePointer<Float>, vocab V: Int, params p: SamplingParams, position: Int,
                     scratch sc: SamplerScratch, topIds: UnsafeMutablePointer<Int32>?, topLogprobs: UnsafeMutablePointer<Float>?) -> SampledToken {
    var out = SampledToken()
    let tau = p.temperature
    if tau == 0 {
      // Greedy: the best of the rank order.
      Kernels.topK(logits, V, 1, heap: sc.heap)
      out.id = sc.heap[0]
      let (raw, _) = logprobs(logits, vocab: V, id: Int(out.id), temperature: 0)
      out.raw = raw
      out.scaled = raw
      out.processed = 0
    } else {
      let t = Double(tau)
      // 2. distribution: w_i = exp(s_i - m); NaN → 0.
      var m = -Double.infinity
      for i in 0..<V where !logits[i].isNaN { m = max(m, Double(logits[i]) / t) }
      let w = sc.w
      var z: Double = 0
      if m.isFinite {
        for i in 0..<V {
          let l = logits[i]
          let wi = l.isNaN ? 0 : _expD(Double(l) / t - m)
          w[i] = wi
          z += wi
        }
      } else {
        // every logit NaN or -inf (or some +inf): the best of the rank order, alone
        Kernels.topK(logits, V, 1, heap: sc.heap)
        for i in 0..<V { w[i] = 0 }
        w[Int(sc.heap[0])] = 1
        z = 1
      }
      // 3-6. the kept set K, as ids in sc.ids[0..<nKept] (ascending id).
      let nKept = keptSet(logits, V, w, z, p, sc)
      // 7. renormalise; 8. draw.
      var wk: Double = 0
      for i in 0..<nKept { wk += w[Int(sc.ids[i])] }
      let target = Philox.uniform(seed: p.seed, position: position) * wk
      var c: Double = 0
      var chosen: Int32 = -1
      for i in 0..<nKept {
        let id = sc.ids[i]
        let wi = w[Int(id)]
        c += wi
        if c > target { chosen = id; break }
      }
      if chosen < 0 {
        for i in stride(from: nKept - 1, through: 0, by: -1) where w[Int(sc.ids[i])] > 0 { chosen = sc.ids[i]; break }
        if chosen < 0 { chosen = nKept > 0 ? sc.ids[0] : 0 }
      }
      out.id = chosen
      let (raw, scaled) = logprobs(logits, vocab: V, id: Int(chosen), temperature: tau)
      out.raw = raw
      out.scaled = scaled
      let sx = Double(logits[Int(chosen)]) / t
      out.processed = Float((sx - m) - _logD(wk))
    }
    if p.topLogprobs > 0, let topIds, let topLogprobs {
      let n = Kernels.topK(logits, V, p.topLogprobs, heap: sc.heap)
      let lse = Kernels.logSumExp(logits, V)
      let useT = tau > 0 && tau != 1
      let lseT = useT ? Kernels.logSumExp(logits, V, temperature: Double(tau)) : lse
      for i in 0..<p.topLogprobs {
        if i < n {
          let id = sc.heap[i]
          topIds[i] = id
          topLogprobs[i] = useT ? Float(Double(logits[Int(id)]) / Double(tau) - lseT) : Float(Double(logits[Int(id)]) - lse)
        } else {
          topIds[i] = -1
          topLogprobs[i] = -.infinity
        }
      }
    }
    return out
  }

  /// Steps 3-6: the ids kept by top-k, top-p and min-p, ascending, into sc.ids; returns how many.
  static func keptSet(_ logits: UnsafePointer<Float>, _ V: Int, _ w: UnsafeMutablePointer<Double>, _ z: Double,
                      _ p: SamplingParams, _ sc: SamplerScratch) -> Int {
    let minP = Double(p.minP)
    let topP = Double(p.topP)
    let useTopK = p.topK > 0 && p.topK < V
    let useTopP = p.topP < 1
    if !useTopK && !useTopP {
      // Only min-p (or nothing): a threshold on w, no ordering needed.
      var n = 0
      for i in 0..<V where !logits[i].isNaN && w[i] >= minP { sc.ids[n] = Int32(i); n += 1 }
      if n == 0 { n = 1; Kernels.topK(logits, V, 1, heap: sc.ids) }
      return n
    }
    // Candidates: a prefix of the rank order long enough to hold the kept set. top-k bounds it;
    // for top-p alone, the tokens with w >= θ for the largest θ (2^-4, 2^-8, ...) whose mass
    // exceeds top_p by more than any rounding of the rank-order sum (the kept set is then inside).
    var cand = useTopK ? p.topK : V
    if useTopP {
      var theta = 0x1p-4
      while theta >= 0x1p-200 {
        let th = max(theta, minP)
        var mass: Double = 0, n = 0
        for i in 0..<V where w[i] >= th { mass += w[i]; n += 1 }
        // {w >= th} is a rank-order prefix (w grows with the logit). It holds the kept set when
        // its mass reaches top_p with room for rounding, or when min-p cuts there anyway.
        if mass / z >= topP + 1e-9 || (minP > 0 && th == minP) { cand = min(cand, n); break }
        theta *= 0x1p-4
      }
    }
    cand = max(1, min(cand, V))
    // Rank-order prefix of `cand` tokens (heap scratch of `cand`).
    let nr = Kernels.rankOrder(logits, V, cand, out: sc.heap, scratch: sc.ids)
    var n = nr
    if useTopP {
      var cum: Double = 0
      var keep = 0
      for i in 0..<nr {
        if !(cum < topP) { break }
        cum += w[Int(sc.heap[i])] / z
        keep += 1
      }
      n = keep
    }
    if minP > 0 {
      var keep = 0
      for i in 0..<n where w[Int(sc.heap[i])] >= minP { keep = i + 1 }
      n = keep
    }
    n = max(n, 1)  // the most likely token always stays
    sc.ids.update(from: sc.heap, count: n)
    Kernels.sortAscending(sc.ids, n, scratch: sc.heap)
    return n
  }
}
