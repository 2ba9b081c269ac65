// Small per-token kernels (norms, RoPE, activations, softmax). They are cheap next to the
// matrix products; each is written once, in the obvious fixed order, and shared by the
// reference and fast paths (the reference twins in Reference/ use Double accumulation).

import CGLM5Kernels
import GLM5Core

extension Kernels {
  /// RMSNorm (transformers `GlmMoeDsaRMSNorm`): y = w ⊙ (x · rsqrt(mean(x²) + eps)).   [n]
  public static func rmsNorm(_ y: UnsafeMutablePointer<Float>, _ x: UnsafePointer<Float>, _ w: UnsafePointer<Float>, _ n: Int, eps: Float) {
    var ss: Float = 0
    for i in 0..<n { ss = ss.addingProduct(x[i], x[i]) }
    let r = 1 / (ss / Float(n) + eps).squareRoot()
    for i in 0..<n { y[i] = w[i] * (x[i] * r) }
  }

  /// LayerNorm with bias (the indexer's k_norm): biased variance, eps inside the root.   [n]
  public static func layerNorm(_ y: UnsafeMutablePointer<Float>, _ x: UnsafePointer<Float>, _ w: UnsafePointer<Float>, _ b: UnsafePointer<Float>, _ n: Int, eps: Float) {
    var mean: Float = 0
    for i in 0..<n { mean += x[i] }
    mean /= Float(n)
    var v: Float = 0
    for i in 0..<n { let d = x[i] - mean; v = v.addingProduct(d, d) }
    v /= Float(n)
    let r = 1 / (v + eps).squareRoot()
    for i in 0..<n { y[i] = ((x[i] - mean) * r) * w[i] + b[i] }
  }

  /// Interleaved RoPE in place on `pairs` pairs: (x[2i], x[2i+1]) rotated by angle i.
  @inline(__always)
  public static func ropeInterleaved(_ x: UnsafeMutablePointer<Float>, cos: UnsafePointer<Float>, sin: UnsafePointer<Float>, pairs: Int) {
    for i in 0..<pairs {
      let a = x[2 * i], b = x[2 * i + 1]
      x[2 * i] = a * cos[i] - b * sin[i]
      x[2 * i + 1] = b * cos[i] + a * sin[i]
    }
  }

  /// Half-split (NeoX) RoPE in place on 2·pairs values: (x[i], x[i + pairs]) rotated by angle i
  /// (transformers `apply_rotary_pos_emb` with `rotate_half`; the DeepSeek-V3.2 indexer).
  @inline(__always)
  public static func ropeHalfSplit(_ x: UnsafeMutablePointer<Float>, cos: UnsafePointer<Float>, sin: UnsafePointer<Float>, pairs: Int) {
    for i in 0..<pairs {
      let a = x[i], b = x[i + pairs]
      x[i] = a * cos[i] - b * sin[i]
      x[i + pairs] = b * cos[i] + a * sin[i]
    }
  }

  /// silu(g) ⊙ u into g: g[i] = (g[i] / (1 + expf(−g[i]))) · u[i].   [n]
  /// In C, 8 lanes at a time (CGLM5Kernels/exp.c), with libm's expf bit for bit.
  public static func swiglu(_ g: UnsafeMutablePointer<Float>, _ u: UnsafePointer<Float>, _ n: Int) {
    glm5k_swiglu(g, u, Int64(n))
  }

  /// Softmax in place over x[0..<n] (max-subtracted, fp32): m = max, e = expf(x − m), s = Σ e in
  /// index order (one float chain), x = e · (1/s). In C (CGLM5Kernels/exp.c), the exps 8 lanes (AVX-512:
  /// 16) at a time with libm's expf bit for bit.
  public static func softmax(_ x: UnsafeMutablePointer<Float>, _ n: Int) {
    glm5k_softmax(x, Int64(n))
  }

  /// softmax on each of `rows` rows x + r · ld, every row's bits as softmax's; the rows' sum
  /// chains run side by side (up to 8 at once) instead of one add latency per element.
  public static func softmaxRows(_ x: UnsafeMutablePointer<Float>, ld: Int, rows: Int, _ n: Int) {
    glm5k_softmax_rows(x, Int64(ld), Int64(rows), Int64(n))
  }

  /// log Σ exp(x / temperature) over [n], in Double: m = max_i Double(x_i) / t, then
  /// m + log Σ exp(Double(x_i) / t - m) summed in index order. NaN if any x is NaN, +inf if any
  /// is +inf, -inf if n == 0 or every x is -inf. Temperature 1 (the raw log-softmax) divides
  /// exactly, so it is the same function at every temperature.
  public static func logSumExp(_ x: UnsafePointer<Float>, _ n: Int, temperature t: Double = 1) -> Double {
    var m = -Double.infinity
    var nan = false
    for i in 0..<n {
      let v = x[i]
      if v.isNaN { nan = true } else { m = max(m, Double(v) / t) }
    }
    if nan { return .nan }
    if m.isInfinite { return m }
    var s: Double = 0
    for i in 0..<n { s += _expD(Double(x[i]) / t - m) }
    return m + _logD(s)
  }
}

#if canImport(Glibc)
import Glibc
/// libm's expf and log, the one place production kernels take them from.
@inline(__always) public func _exp(_ x: Float) -> Float { expf(x) }
@inline(__always) public func _log(_ x: Double) -> Double { Glibc.log(x) }
@inline(__always) public func _expD(_ x: Double) -> Double { Glibc.exp(x) }
@inline(__always) public func _logD(_ x: Double) -> Double { Glibc.log(x) }
#endif
