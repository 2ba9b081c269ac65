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

  /// Attention for the step's rows, whose cache rows are written here.
  ///   a   [R, H]  the input-normed hidden states
  ///   out [R, H]  the attention output (before the residual add)
  /// The step's selections buffer carries the last full indexer's selections to GLM-5.2
  /// "shared" layers (`haveSelections` says whether an earlier layer of this step wrote them).
  func forward(layer l: Int, a: UnsafePointer<Float>, out: UnsafeMutablePointer<Float>, haveSelections: inout Bool,
               ctx: ForwardContext) throws(GLM5Error) {
    let c = ctx.config
    let h = c.hiddenSize
    let dqk = dn + dr
    let pool = ctx.pool
    let b = ctx.buf
    let R = ctx.rows
    let pairs = dr / 2

    // MARK: - Queries and the compressed KV
    let qLat = b.qLat
    Kernels.linear(qLat, ldy: rq, a, ldx: h, tokens: R, weights.qA.kernel, pool: pool)
    qANorm.withUnsafeBufferPointer { w in
      for t in 0..<R { Kernels.rmsNorm(qLat + t * rq, qLat + t * rq, w.baseAddress!, rq, eps: 1e-6) }
    }
    let q = b.q
    Kernels.linear(q, ldy: nh * dqk, qLat, ldx: rq, tokens: R, weights.qB.kernel, pool: pool)
    let ckv = b.ckv
    Kernels.linear(ckv, ldy: rkv + dr, a, ldx: h, tokens: R, weights.kvA.kernel, pool: pool)
    kvANorm.withUnsafeBufferPointer { w in
      for t in 0..<R {
        let p = ctx.position(t)
        let cache = ctx.segment(t).cache.layers[l]
        Kernels.rmsNorm(cache.latent.pointer + p * rkv, ckv + t * (rkv + dr), w.baseAddress!, rkv, eps: 1e-6)
        let kr = cache.kRope.pointer + p * dr
        kr.update(from: ckv + t * (rkv + dr) + rkv, count: dr)
        Kernels.ropeInterleaved(kr, cos: b.cos(t, pairs), sin: b.sin(t, pairs), pairs: pairs)
        for hh in 0..<nh {
          Kernels.ropeInterleaved(q + (t * nh + hh) * dqk + dn, cos: b.cos(t, pairs), sin: b.sin(t, pairs), pairs: pairs)
        }
      }
    }

    // MARK: - DSA selection
    let S = b.maxSelected
    if let indexer {
      try indexer.project(layer: l, aNorm: a, qLat: qLat, ctx: ctx)
      ctx.parallelRows { t, worker in
        let keys = ctx.segment(t).cache.layers[l].indexKey!
        let n = indexer.select(query: b.iq + t * indexer.heads * indexer.headDim, headWeights: b.iw + t * indexer.heads,
                               position: ctx.position(t), keys: keys.pointer,
                               scores: b.scores + worker * b.plan.maxKeys, heap: b.heap + worker * S, out: b.selected + t * S)
        b.selectedCount[t] = Int32(n)
      }
      haveSelections = true
    } else {
      guard haveSelections else { throw .internal("layer \(l) shares the indexer, but no earlier layer selected keys") }
    }
    if ctx.recording {
      for t in 0..<R {
        ctx.segment(t).recorder?.recordSelection(layer: l, position: ctx.position(t),
                                                 UnsafeBufferPointer(start: b.selected + t * S, count: Int(b.selectedCount[t])))
      }
    }

    // MARK: - Absorbed attention over the selected keys
    // q̃ [R, Nh, Rkv], then the latent output [R, Nh, Rkv] and the heads' values [R, Nh, Dv].
    let qt = b.qAbsorbed, oLat = b.oLatent, o = b.oHeads
    let kvB = weights.kvB.kernel
    pool.parallelFor(nh) { hh in
      let wUK = kvB.rows(hh * (dn + dv), dn)  // [Dn, Rkv]
      Kernels.linearTransposed(qt + hh * rkv, ldy: nh * rkv, q + hh * dqk, ldx: nh * dqk, tokens: R, wUK)
    }
    // Multi-query over the latent: every selected row is read once for all heads (scores, then
    // the weighted sum), instead of once per head. Per head the operations are the same, in the
    // same order (a dot per key; softmax; fma of each key's row in key order), so this loop order
    // changes no bit.
    ctx.parallelRows { t, worker in
      let cache = ctx.segment(t).cache.layers[l]
      let latent = cache.latent.pointer, kRope = cache.kRope.pointer
      let keys = b.selected + t * S
      let nk = Int(b.selectedCount[t])
      let p = b.probs + worker * nh * S  // [Nh, S]
      let qn0 = qt + t * nh * rkv, qr0 = q + t * nh * dqk + dn
      for i in 0..<nk {
        let j = Int(keys[i])
        let cj = latent + j * rkv, kj = kRope + j * dr
        for hh in 0..<nh {
          let s = Kernels.dot(qn0 + hh * rkv, cj, rkv) + Kernels.dot(qr0 + hh * dqk, kj, dr)
          p[hh * S + i] = s * scale
        }
      }
      for hh in 0..<nh { Kernels.softmax(p + hh * S, nk) }
      let ol0 = oLat + t * nh * rkv
      ol0.update(repeating: 0, count: nh * rkv)
      for i in 0..<nk {
        let cj = latent + Int(keys[i]) * rkv
        for hh in 0..<nh { Kernels.axpy(ol0 + hh * rkv, p[hh * S + i], cj, rkv) }
      }
    }
    if ctx.recording {
      for t in 0..<R { ctx.segment(t).recorder?.recordAttended(layer: l, position: ctx.position(t), Int(b.selectedCount[t])) }
    }
    pool.parallelFor(nh) { hh in
      let wUV = kvB.rows(hh * (dn + dv) + dn, dv)  // [Dv, Rkv]
      Kernels.linear(o + hh * dv, ldy: nh * dv, oLat + hh * rkv, ldx: nh * rkv, tokens: R, wUV, pool: ThreadPool.serial)
    }
    Kernels.linear(out, ldy: h, o, ldx: nh * dv, tokens: R, weights.o.kernel, pool: pool)
  }
}
