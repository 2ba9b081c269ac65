// Rotary position embedding tables, as transformers builds them (fp32 throughout):
//   inv_freq[i] = 1 / θ^(2i/d)                       (default)
//   YaRN: a blend of interpolated and extrapolated frequencies, cos/sin × attention_factor.
//   angle[p, i] = Float(p) · inv_freq[i]
// GLM-5 rotates interleaved pairs (x[2i], x[2i+1]) in both the MLA rope slice (last Dr dims of
// each head) and the indexer (first Dr dims of each indexer head); see Kernels.ropeInterleaved.
// DeepSeek-V3.2 rotates its indexer's two halves instead (Kernels.ropeHalfSplit), with the same
// table. YaRN's mscale² in the softmax scale: ModelConfig.softmaxScale.

import GLM5Core
import GLM5Kernels
#if canImport(Glibc)
import Glibc
#endif

public struct RoPE: Sendable {
  /// Rotated dims (qk_rope_head_dim); pairs = dims / 2.
  public let dims: Int
  public let invFreq: [Float]
  /// Multiplies cos and sin (1 unless YaRN).
  public let attentionScaling: Float

  public init(config c: ModelConfig) {
    let d = c.qkRopeHeadDim
    dims = d
    let base = Float(c.rope.theta)
    let posFreqs: [Float] = (0..<(d / 2)).map { i in powf(base, Float(2 * i) / Float(d)) }
    guard c.rope.type == "yarn" else {
      invFreq = posFreqs.map { 1 / $0 }
      attentionScaling = 1
      return
    }
    // transformers `_compute_yarn_parameters`
    let factor = c.rope.factor
    func mscale(_ scale: Double, _ m: Double = 1) -> Double { scale <= 1 ? 1 : 0.1 * m * Glibc.log(scale) + 1 }
    if let af = c.rope.attentionFactor {
      attentionScaling = Float(af)
    } else if c.rope.mscale != 0 && c.rope.mscaleAllDim != 0 {
      attentionScaling = Float(mscale(factor, c.rope.mscale) / mscale(factor, c.rope.mscaleAllDim))
    } else {
      attentionScaling = Float(mscale(factor))
    }
    let orig = Double(c.rope.originalMaxPositionEmbeddings)
    func correctionDim(_ rotations: Double) -> Double {
      Double(d) * Glibc.log(orig / (rotations * 2 * Double.pi)) / (2 * Glibc.log(Double(c.rope.theta)))
    }
    var low = correctionDim(c.rope.betaFast), high = correctionDim(c.rope.betaSlow)
    if c.rope.truncate { low = low.rounded(.down); high = high.rounded(.up) }
    low = max(low, 0)
    high = min(high, Double(d - 1))
    if low == high { high += 0.001 }
    invFreq = (0..<(d / 2)).map { i in
      let ramp = min(max((Float(i) - Float(low)) / Float(high - low), 0), 1)
      let extrapolationFactor = 1 - ramp
      let extra = 1 / posFreqs[i]
      let inter = 1 / (Float(factor) * posFreqs[i])
      return inter * (1 - extrapolationFactor) + extra * extrapolationFactor
    }
  }

  /// cos and sin of every pair's angle at `position`, each [dims / 2].
  public func table(position: Int, cos: UnsafeMutablePointer<Float>, sin: UnsafeMutablePointer<Float>) {
    let p = Float(position)
    for i in 0..<invFreq.count {
      let a = p * invFreq[i]
      cos[i] = cosf(a) * attentionScaling
      sin[i] = sinf(a) * attentionScaling
    }
  }
}
