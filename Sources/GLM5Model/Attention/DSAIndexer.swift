// The DSA "lightning indexer": per query, a cheap score for every earlier key, then the top-k
// keys that the main attention will read (DeepSeek-V3.2 / GLM-5; transformers `GlmMoeDsaIndexer`).
//
//   qi  = wq_b(q_lat)                      [T, Hi, Di]   RoPE on the first Dr dims
//   ki  = LayerNorm(wk(a)) (eps 1e-6)      [T, Di]       RoPE on the first Dr dims; cached
//   RoPE layout: interleaved pairs (x[2i], x[2i+1]) for GLM, the two halves (x[i], x[i + Dr/2])
//   for DeepSeek-V3.2 (transformers `apply_rotary_pos_emb`); same angles and positions as MLA.
//   w   = weights_proj(a) · Hi^-0.5        [T, Hi]
//   score(t, j) = Σ_h w[t, h] · ReLU(qi[t, h] · ki[j] · Di^-0.5)     for keys j ≤ position(t)
//   selected(t) = the min(index_topk, position(t) + 1) best keys, fixed tie rule (Kernels.topK)
// When every earlier key fits in index_topk the selection is all of them (dense attention) and
// scoring is skipped; the result is identical.

import GLM5Core
import GLM5Kernels

struct DSAIndexer {
  let weights: IndexerWeights
  let kNormW: [Float], kNormB: [Float]
  let heads: Int, headDim: Int, ropeDims: Int, topK: Int
  /// Interleaved pairs (GLM) or two halves (DeepSeek-V3.2).
  let ropeInterleaved: Bool

  init(_ w: IndexerWeights, config c: ModelConfig) {
    weights = w
    kNormW = w.kNormWeight.floats()
    kNormB = w.kNormBias.floats()
    heads = c.indexNHeads
    headDim = c.indexHeadDim
    ropeDims = c.qkRopeHeadDim
    topK = c.indexTopK
    ropeInterleaved = c.indexerRopeInterleaved
  }

  /// RoPE on the first ropeDims values of x, in this model's indexer layout.
  @inline(__always)
  func rotate(_ x: UnsafeMutablePointer<Float>, cos: UnsafePointer<Float>, sin: UnsafePointer<Float>, pairs: Int) {
    if ropeInterleaved {
      Kernels.ropeInterleaved(x, cos: cos, sin: sin, pairs: pairs)
    } else {
      Kernels.ropeHalfSplit(x, cos: cos, sin: sin, pairs: pairs)
    }
  }

  /// Project the step's indexer queries [R, Hi, Di] and head weights [R, Hi] into the step
  /// buffers, and append each row's key to its segment's cache at its position.
  func project(layer l: Int, aNorm a: UnsafePointer<Float>, qLat: UnsafePointer<Float>, ctx: ForwardContext) throws(GLM5Error) {
    let c = ctx.config
    let b = ctx.buf
    let R = ctx.rows
    let pairs = ropeDims / 2
    let q = b.iq, k = b.ik, w = b.iw
    Kernels.linear(q, ldy: heads * headDim, qLat, ldx: c.qLoraRank, tokens: R, weights.wqB.kernel, pool: ctx.pool)
    Kernels.linear(k, ldy: headDim, a, ldx: c.hiddenSize, tokens: R, weights.wk.kernel, pool: ctx.pool)
    Kernels.linear(w, ldy: heads, a, ldx: c.hiddenSize, tokens: R, weights.weightsProj.kernel, pool: ctx.pool)
    let hScale = 1 / Float(heads).squareRoot()
    for i in 0..<(R * heads) { w[i] *= hScale }
    kNormW.withUnsafeBufferPointer { nw in
      kNormB.withUnsafeBufferPointer { nb in
        for t in 0..<R {
          let keyCache = ctx.segment(t).cache.layers[l].indexKey!
          let dst = keyCache.pointer + ctx.position(t) * headDim
          Kernels.layerNorm(dst, k + t * headDim, nw.baseAddress!, nb.baseAddress!, headDim, eps: 1e-6)
          rotate(dst, cos: b.cos(t, pairs), sin: b.sin(t, pairs), pairs: pairs)
          for h in 0..<heads {
            rotate(q + (t * heads + h) * headDim, cos: b.cos(t, pairs), sin: b.sin(t, pairs), pairs: pairs)
          }
        }
      }
    }
  }

  /// Index scores of keys [j0, j1) for one query into scores[j0..<j1] (each key on its own;
  /// Kernels.indexScores, whose plain form is Reference.indexScores).
  func score(query q: UnsafePointer<Float>, headWeights w: UnsafePointer<Float>, keys: UnsafePointer<Float>,
             from j0: Int, to j1: Int, scores: UnsafeMutablePointer<Float>) {
    Kernels.indexScores(query: q, headWeights: w, heads: heads, dim: headDim, keys: keys, from: j0, to: j1,
                        scale: 1 / Float(headDim).squareRoot(), scores: scores)
  }

  /// The selection from scores of all position + 1 keys (or every key when they fit in topK),
  /// ascending, into out; returns the count (Kernels.topKAscending: the set Kernels.topK picks).
  func pick(position: Int, scores: UnsafePointer<Float>, out: UnsafeMutablePointer<Int32>) -> Int {
    let nKeys = position + 1
    if nKeys <= topK {
      for j in 0..<nKeys { out[j] = Int32(j) }
      return nKeys
    }
    return Kernels.topKAscending(scores, nKeys, topK, out: out)
  }

  /// Whether a query at `position` needs scores (more keys than topK).
  func needsScores(position: Int) -> Bool { position + 1 > topK }
}
