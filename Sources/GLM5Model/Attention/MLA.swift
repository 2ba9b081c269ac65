// Multi-head latent attention (DeepSeek-V2/V3 MLA, as GLM-5 uses it), in the absorbed form for
// every query, prefill and decode alike (glm5-architecture.md §3.3, §3.7):
//
//   q_lat = RMSNorm(q_a_proj(a), eps 1e-6)                 [T, Rq]   (also feeds the indexer)
//   q     = q_b_proj(q_lat) → per head [q_nope Dn | q_rope Dr], RoPE on q_rope
//   ckv   = kv_a_proj_with_mqa(a) → c = RMSNorm(ckv[:Rkv], eps 1e-6), k_rope = RoPE(ckv[Rkv:])
//   cache ← (c, k_rope) per token                          576 floats/token/layer at GLM-5 size
//   q̃_h   = W_UK_hᵀ q_nope_h                               [Rkv]  (W_UK_h: kv_b rows of head h's keys)
//   s_h(j) = (q̃_h · c_j + q_rope_h · k_rope_j) · scale     only for the keys j the indexer selected
//   o_h   = W_UV_h (Σ_j softmax(s_h)_j c_j)                 [Dv]
//   out   = o_proj(concat_h o_h)
// Past keys are never re-expanded; a query reads exactly its selected cache rows, so its cost is
// O(k), not O(T). Each query is computed on its own, in a fixed order, whatever the batch.

import GLM5Core
import GLM5Kernels

/// cos/sin for each token of a step: [T, Dr/2] each.
struct RopeTables {
  let pairs: Int
  let cosBuf: FloatBuffer, sinBuf: FloatBuffer

  init(rope: RoPE, start: Int, tokens T: Int) throws(GLM5Error) {
    pairs = rope.dims / 2
    cosBuf = try FloatBuffer(count: T * pairs, what: "RoPE table")
    sinBuf = try FloatBuffer(count: T * pairs, what: "RoPE table")
    for t in 0..<T { rope.table(position: start + t, cos: cosBuf.pointer + t * pairs, sin: sinBuf.pointer + t * pairs) }
  }
  func cos(_ t: Int) -> UnsafePointer<Float> { UnsafePointer(cosBuf.pointer + t * pairs) }
  func sin(_ t: Int) -> UnsafePointer<Float> { UnsafePointer(sinBuf.pointer + t * pairs) }
}

struct MLA {
  let weights: AttentionWeights
  let qANorm: [Float], kvANorm: [Float]
  let indexer: DSAIndexer?
  let nh: Int, dn: Int, dr: Int, dv: Int, rq: Int, rkv: Int
  let scale: Float

  init(_ w: AttentionWeights, config c: ModelConfig) {
    weights = w
    qANorm = w.qANorm.floats()
    kvANorm = w.kvANorm.floats()
    indexer = w.indexer.map { DSAIndexer($0, config: c) }
    nh = c.numAttentionHeads
    dn = c.qkNopeHeadDim
    dr = c.qkRopeHeadDim
    dv = c.vHeadDim
    rq = c.qLoraRank
    rkv = c.kvLoraRank
    scale = Float(c.softmaxScale)
  }

  /// Attention for T new tokens at positions start..<start+T, whose cache rows are written here.
  ///   a   [T, H]  the input-normed hidden states
  ///   out [T, H]  the attention output (before the residual add)
  /// `shared` carries the last full indexer's selections to GLM-5.2 "shared" layers; on return it
  /// holds this layer's selections ([T] arrays of ascending key indices).
  func forward(layer l: Int, a: UnsafePointer<Float>, out: UnsafeMutablePointer<Float>, tokens T: Int, start: Int,
               rope: RopeTables, cache: LatentKVCache.Layer, shared: inout [[Int32]], ctx: ForwardContext) throws(GLM5Error) {
    let c = ctx.config
    let h = c.hiddenSize
    let dqk = dn + dr
    let pool = ctx.pool

    // MARK: - Queries and the compressed KV
    let qLat = try FloatBuffer(count: T * rq, what: "q latent")
    Kernels.linear(qLat.pointer, ldy: rq, a, ldx: h, tokens: T, weights.qA.kernel, pool: pool)
    qANorm.withUnsafeBufferPointer { w in
      for t in 0..<T { Kernels.rmsNorm(qLat.pointer + t * rq, qLat.pointer + t * rq, w.baseAddress!, rq, eps: 1e-6) }
    }
    let q = try FloatBuffer(count: T * nh * dqk, what: "queries")
    Kernels.linear(q.pointer, ldy: nh * dqk, qLat.pointer, ldx: rq, tokens: T, weights.qB.kernel, pool: pool)
    let ckv = try FloatBuffer(count: T * (rkv + dr), what: "compressed kv")
    Kernels.linear(ckv.pointer, ldy: rkv + dr, a, ldx: h, tokens: T, weights.kvA.kernel, pool: pool)
    kvANorm.withUnsafeBufferPointer { w in
      for t in 0..<T {
        let p = start + t
        Kernels.rmsNorm(cache.latent.pointer + p * rkv, ckv.pointer + t * (rkv + dr), w.baseAddress!, rkv, eps: 1e-6)
        let kr = cache.kRope.pointer + p * dr
        kr.update(from: ckv.pointer + t * (rkv + dr) + rkv, count: dr)
        Kernels.ropeInterleaved(kr, cos: rope.cos(t), sin: rope.sin(t), pairs: dr / 2)
        for hh in 0..<nh {
          Kernels.ropeInterleaved(q.pointer + (t * nh + hh) * dqk + dn, cos: rope.cos(t), sin: rope.sin(t), pairs: dr / 2)
        }
      }
    }

    // MARK: - DSA selection
    var selections: [[Int32]]
    if let indexer {
      guard let keyCache = cache.indexKey else { throw .internal("layer \(l) has an indexer but no indexer cache") }
      let (qi, hw) = try indexer.project(aNorm: a, qLat: qLat.pointer, tokens: T, start: start, rope: rope, keyCache: keyCache, ctx: ctx)
      selections = Array(repeating: [], count: T)
      let scratch = try FloatBuffer(count: ctx.chunks(T) * (start + T), what: "indexer scores")
      selections.withUnsafeMutableBufferPointer { sel in
        let selBase = sel.baseAddress!
        ctx.parallelQueries(T) { t, worker in
          indexer.select(query: qi.pointer + t * indexer.heads * indexer.headDim, headWeights: hw.pointer + t * indexer.heads,
                         position: start + t, keyCache: keyCache, scores: scratch.pointer + worker * (start + T), out: &selBase[t])
        }
      }
    } else {
      guard shared.count == T else { throw .internal("layer \(l) shares the indexer, but no earlier layer selected keys") }
      selections = shared
    }
    shared = selections
    ctx.recorder?.recordSelections(layer: l, start: start, selections)

    // MARK: - Absorbed attention over the selected keys
    // q̃ [T, Nh, Rkv], then the latent output [T, Nh, Rkv] and the heads' values [T, Nh, Dv].
    let qt = try FloatBuffer(count: T * nh * rkv, what: "absorbed queries")
    let oLat = try FloatBuffer(count: T * nh * rkv, what: "latent attention output")
    let o = try FloatBuffer(count: T * nh * dv, what: "attention heads output")
    let kvB = weights.kvB.kernel
    ctx.pool.parallelFor(nh) { hh in
      let wUK = kvB.rows(hh * (dn + dv), dn)  // [Dn, Rkv]
      Kernels.linearTransposed(qt.pointer + hh * rkv, ldy: nh * rkv, q.pointer + hh * dqk, ldx: nh * dqk, tokens: T, wUK)
    }
    let maxSel = selections.reduce(0) { max($0, $1.count) }
    let probs = try FloatBuffer(count: ctx.chunks(T) * max(maxSel, 1), what: "attention probabilities")
    selections.withUnsafeBufferPointer { sel in
      ctx.parallelQueries(T) { t, worker in
        let keys = sel[t]
        let p = probs.pointer + worker * max(maxSel, 1)
        for hh in 0..<nh {
          let qn = qt.pointer + (t * nh + hh) * rkv
          let qr = q.pointer + (t * nh + hh) * dqk + dn
          for (i, j) in keys.enumerated() {
            let s = Kernels.dot(qn, cache.latent.pointer + Int(j) * rkv, rkv) + Kernels.dot(qr, cache.kRope.pointer + Int(j) * dr, dr)
            p[i] = s * scale
          }
          Kernels.softmax(p, keys.count)
          let ol = oLat.pointer + (t * nh + hh) * rkv
          for r in 0..<rkv { ol[r] = 0 }
          for (i, j) in keys.enumerated() {
            Kernels.axpy(ol, p[i], cache.latent.pointer + Int(j) * rkv, rkv)
          }
        }
      }
    }
    ctx.recorder?.recordAttended(layer: l, start: start, selections.map(\.count))
    ctx.pool.parallelFor(nh) { hh in
      let wUV = kvB.rows(hh * (dn + dv) + dn, dv)  // [Dv, Rkv]
      Kernels.linear(o.pointer + hh * dv, ldy: nh * dv, oLat.pointer + hh * rkv, ldx: nh * rkv, tokens: T, wUV, pool: ThreadPool.serial)
    }
    Kernels.linear(out, ldy: h, o.pointer, ldx: nh * dv, tokens: T, weights.o.kernel, pool: pool)
  }
}
