// Plain, obviously-correct kernels: the test oracle for the fast ones in CPU/ (llm.c `*_cpu`).
// Same signatures as their fast twins; outputs first. Shapes in comments: T tokens, N out
// features, K in features.

import GLM5Core

public enum Reference {
  /// y[t, n] = Σ_k x[t, k] · W[n, k]        y: [T, N] (row stride ldy), x: [T, K] (row stride ldx)
  public static func linear(_ y: UnsafeMutablePointer<Float>, ldy: Int, _ x: UnsafePointer<Float>, ldx: Int, tokens: Int, _ w: WeightMatrix) {
    for t in 0..<tokens {
      for n in 0..<w.rows {
        var s: Double = 0
        for k in 0..<w.cols { s += Double(x[t * ldx + k]) * Double(w.element(n, k)) }
        y[t * ldy + n] = Float(s)
      }
    }
  }

  /// y[t, k] = Σ_n x[t, n] · W[n, k]   (multiply by the transpose of a [N, K] matrix)
  public static func linearTransposed(_ y: UnsafeMutablePointer<Float>, ldy: Int, _ x: UnsafePointer<Float>, ldx: Int, tokens: Int, _ w: WeightMatrix) {
    for t in 0..<tokens {
      for k in 0..<w.cols {
        var s: Double = 0
        for n in 0..<w.rows { s += Double(x[t * ldx + n]) * Double(w.element(n, k)) }
        y[t * ldy + k] = Float(s)
      }
    }
  }

  /// Multi-query scores in Double: s[h, i] = (q̃_h · c_{j_i} + q^rope_h · k^rope_{j_i}) · scale.
  public static func multiQueryScores(_ s: UnsafeMutablePointer<Float>, lds: Int,
                                      qn: UnsafePointer<Float>, ldqn: Int, qr: UnsafePointer<Float>, ldqr: Int, heads H: Int,
                                      latent: UnsafePointer<Float>, rank R: Int, rope: UnsafePointer<Float>, ropeDims Dr: Int,
                                      keys: UnsafePointer<Int32>, count n: Int, scale: Float) {
    for h in 0..<H {
      for i in 0..<n {
        let j = Int(keys[i])
        var v: Double = 0
        for c in 0..<R { v += Double(qn[h * ldqn + c]) * Double(latent[j * R + c]) }
        for c in 0..<Dr { v += Double(qr[h * ldqr + c]) * Double(rope[j * Dr + c]) }
        s[h * lds + i] = Float(v * Double(scale))
      }
    }
  }

  /// Multi-query weighted sum in Double: o[h, :] = Σ_i p[h, i] · c_{j_i}.
  public static func multiQuerySum(_ o: UnsafeMutablePointer<Float>, ldo: Int, _ p: UnsafePointer<Float>, ldp: Int, heads H: Int,
                                   latent: UnsafePointer<Float>, rank R: Int, ldl: Int, keys: UnsafePointer<Int32>, count n: Int) {
    for h in 0..<H {
      for c in 0..<R {
        var v: Double = 0
        for i in 0..<n { v += Double(p[h * ldp + i]) * Double(latent[Int(keys[i]) * ldl + c]) }
        o[h * ldo + c] = Float(v)
      }
    }
  }

  /// RMSNorm as transformers computes it: y = w ⊙ (x · rsqrt(mean(x²) + eps)).   x, y: [n]
  public static func rmsNorm(_ y: UnsafeMutablePointer<Float>, _ x: UnsafePointer<Float>, _ w: UnsafePointer<Float>, _ n: Int, eps: Float) {
    var ss: Double = 0
    for i in 0..<n { ss += Double(x[i]) * Double(x[i]) }
    let r = Float(1 / (ss / Double(n) + Double(eps)).squareRoot())
    for i in 0..<n { y[i] = w[i] * (x[i] * r) }
  }

  /// LayerNorm with bias: y = (x - mean) / sqrt(var + eps) ⊙ w + b (biased variance).   [n]
  public static func layerNorm(_ y: UnsafeMutablePointer<Float>, _ x: UnsafePointer<Float>, _ w: UnsafePointer<Float>, _ b: UnsafePointer<Float>, _ n: Int, eps: Float) {
    var mean: Double = 0
    for i in 0..<n { mean += Double(x[i]) }
    mean /= Double(n)
    var v: Double = 0
    for i in 0..<n { v += (Double(x[i]) - mean) * (Double(x[i]) - mean) }
    v /= Double(n)
    let r = 1 / (v + Double(eps)).squareRoot()
    for i in 0..<n { y[i] = Float((Double(x[i]) - mean) * r) * w[i] + b[i] }
  }

  /// Interleaved (GPT-J) RoPE on x[0..<2·cos.count] in place: pair (x[2i], x[2i+1]) rotated by angle i.
  public static func ropeInterleaved(_ x: UnsafeMutablePointer<Float>, cos: UnsafePointer<Float>, sin: UnsafePointer<Float>, pairs: Int) {
    for i in 0..<pairs {
      let a = x[2 * i], b = x[2 * i + 1]
      x[2 * i] = a * cos[i] - b * sin[i]
      x[2 * i + 1] = b * cos[i] + a * sin[i]
    }
  }

  /// Half-split (NeoX) RoPE on x[0..<2·pairs] in place, as transformers writes it:
  /// y = x ⊙ cos + rotate_half(x) ⊙ sin with rotate_half(x) = [−x[pairs...], x[..<pairs]] and
  /// cos, sin repeated over both halves.
  public static func ropeHalfSplit(_ x: UnsafeMutablePointer<Float>, cos: UnsafePointer<Float>, sin: UnsafePointer<Float>, pairs: Int) {
    let n = 2 * pairs
    let src = (0..<n).map { x[$0] }
    for j in 0..<n {
      let c = cos[j % pairs], s = sin[j % pairs]
      let rotated = j < pairs ? -src[j + pairs] : src[j - pairs]
      x[j] = src[j] * c + rotated * s
    }
  }

  /// Softmax in place over x[0..<n].
  public static func softmax(_ x: UnsafeMutablePointer<Float>, _ n: Int) {
    var m = -Float.infinity
    for i in 0..<n { m = max(m, x[i]) }
    var s: Double = 0
    for i in 0..<n { s += Double(_exp(x[i] - m)) }
    for i in 0..<n { x[i] = Float(Double(_exp(x[i] - m)) / s) }
  }

  /// silu(g) ⊙ u into g, in Double.   [n]
  public static func swiglu(_ g: UnsafeMutablePointer<Float>, _ u: UnsafePointer<Float>, _ n: Int) {
    for i in 0..<n {
      let z = Double(g[i])
      g[i] = Float(z / (1 + _expD(-z)) * Double(u[i]))
    }
  }

  /// log Σ exp(x) over [n] in Double: NaN if any x is NaN, +inf if any is +inf, -inf if n == 0 or
  /// every x is -inf.
  public static func logSumExp(_ x: UnsafePointer<Float>, _ n: Int) -> Double {
    var m = -Double.infinity
    for i in 0..<n {
      if x[i].isNaN { return .nan }
      m = Swift.max(m, Double(x[i]))
    }
    if m.isInfinite { return m }
    var s: Double = 0
    for i in 0..<n { s += _expD(Double(x[i]) - m) }
    return m + _logD(s)
  }

  /// Σ_i a[i] · b[i] in Double.
  public static func dot(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, _ n: Int) -> Float {
    var s: Double = 0
    for i in 0..<n { s += Double(a[i]) * Double(b[i]) }
    return Float(s)
  }

  /// y[i] += a · x[i], the product exact in Double.
  public static func axpy(_ y: UnsafeMutablePointer<Float>, _ a: Float, _ x: UnsafePointer<Float>, _ n: Int) {
    for i in 0..<n { y[i] = Float(Double(y[i]) + Double(a) * Double(x[i])) }
  }

  /// The k largest of scores[0..<n] by the library's rule: higher score first, ties to the lower
  /// index; NaN ranks below everything. Returned in that rank order.
  public static func topK(_ scores: UnsafePointer<Float>, _ n: Int, _ k: Int) -> [Int32] {
    let order = (0..<n).sorted { precedes(scores[$0], $0, scores[$1], $1) }
    return order.prefix(k).map { Int32($0) }
  }
}

extension Reference {
  /// Kernels.indexScores written plainly: per key, per head in order, the dot as one fma chain in
  /// column order, scale, ReLU, fma.
  public static func indexScores(query q: UnsafePointer<Float>, headWeights w: UnsafePointer<Float>, heads: Int, dim: Int,
                                 keys: UnsafePointer<Float>, from j0: Int, to j1: Int, scale: Float,
                                 scores: UnsafeMutablePointer<Float>) {
    for j in j0..<j1 {
      let kj = keys + j * dim
      var s: Float = 0
      for h in 0..<heads {
        var dot: Float = 0
        for t in 0..<dim { dot = dot.addingProduct(q[h * dim + t], kj[t]) }
        let d = dot * scale
        if d > 0 { s = s.addingProduct(w[h], d) }
      }
      scores[j] = s
    }
  }
}
