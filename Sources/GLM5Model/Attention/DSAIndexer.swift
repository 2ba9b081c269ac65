// The DSA "lightning indexer": per query, a cheap score for every earlier key, then the top-k
// keys that the main attention will read (DeepSeek-V3.2 / GLM-5; transformers `GlmMoeDsaIndexer`).
//
//   qi  = wq_b(q_lat)                      [T, Hi, Di]   RoPE (interleaved) on the first Dr dims
//   ki  = LayerNorm(wk(a)) (eps 1e-6)      [T, Di]       RoPE on the first Dr dims; cached
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

  init(_ w: IndexerWeights, config c: ModelConfig) {
    weights = w
    kNormW = w.kNormWeight.floats()
    kNormB = w.kNormBias.floats()
    heads = c.indexNHeads
    headDim = c.indexHeadDim
    ropeDims = c.qkRopeHeadDim
    topK = c.indexTopK
  }

  /// Project this step's indexer queries and keys; append keys to the cache at [start, start+T).
  /// Returns (queries [T, Hi, Di], head weights [T, Hi]).
  func project(aNorm a: UnsafePointer<Float>, qLat: UnsafePointer<Float>, tokens T: Int, start: Int,
               rope: RopeTables, keyCache: FloatBuffer, ctx: ForwardContext) throws(GLM5Error) -> (FloatBuffer, FloatBuffer) {
    let c = ctx.config
    let q = try FloatBuffer(count: T * heads * headDim, what: "indexer queries")
    Kernels.linear(q.pointer, ldy: heads * headDim, qLat, ldx: c.qLoraRank, tokens: T, weights.wqB.kernel, pool: ctx.pool)
    let k = try FloatBuffer(count: T * headDim, what: "indexer keys")
    Kernels.linear(k.pointer, ldy: headDim, a, ldx: c.hiddenSize, tokens: T, weights.wk.kernel, pool: ctx.pool)
    let w = try FloatBuffer(count: T * heads, what: "indexer head weights")
    Kernels.linear(w.pointer, ldy: heads, a, ldx: c.hiddenSize, tokens: T, weights.weightsProj.kernel, pool: ctx.pool)
    let hScale = 1 / Float(heads).squareRoot()
    for i in 0..<(T * heads) { w[i] *= hScale }
    kNormW.withUnsafeBufferPointer { nw in
      kNormB.withUnsafeBufferPointer { nb in
        for t in 0..<T {
          let dst = keyCache.pointer + (start + t) * headDim
          Kernels.layerNorm(dst, k.pointer + t * headDim, nw.baseAddress!, nb.baseAddress!, headDim, eps: 1e-6)
          Kernels.ropeInterleaved(dst, cos: rope.cos(t), sin: rope.sin(t), pairs: ropeDims / 2)
          for h in 0..<heads {
            Kernels.ropeInterleaved(q.pointer + (t * heads + h) * headDim, cos: rope.cos(t), sin: rope.sin(t), pairs: ropeDims / 2)
          }
        }
      }
    }
    return (q, w)
  }

  /// The selected keys for the query at absolute `position`, ascending. `scores` is scratch of at
  /// least position + 1 floats.
  func select(query q: UnsafePointer<Float>, headWeights w: UnsafePointer<Float>, position: Int,
              keyCache: FloatBuffer, scores: UnsafeMutablePointer<Float>, out: inout [Int32]) {
    let nKeys = position + 1
    if nKeys <= topK {
      out.removeAll(keepingCapacity: true)
      for j in 0..<nKeys { out.append(Int32(j)) }
      return
    }
    let scale = 1 / Float(headDim).squareRoot()
    for j in 0..<nKeys {
      let kj = keyCache.pointer + j * headDim
      var s: Float = 0
      for h in 0..<heads {
        let d = Kernels.dot(q + h * headDim, kj, headDim) * scale
        if d > 0 { s = s.addingProduct(w[h], d) }
      }
      scores[j] = s
    }
    Kernels.topK(scores, nKeys, topK, into: &out)
    out.sort()
  }
}
