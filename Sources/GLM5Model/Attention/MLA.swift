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
  /// Heads per work item of the absorbed attention (16: a GLM-5 decode row makes 2 items for 2
  /// threads, and each item reads its selected rows once for 16 heads).
  static let headsPerItem = 16
  /// Selected keys per scoring item of the few-rows path (every head of the row scores them; the
  /// kernel reads each block of 16 rows once, transposed, for all heads).
  static let scoreKeysPerItem = 128
  /// Latent columns per item of the few-rows sum (GLM-5's 512 make 4 items per row).
  static let sumColumnsPerItem = 128
  /// Heads per work item of the decode softmax (the kernel runs 8 rows' sum chains side by side).
  static let softmaxRowsPerItem = 8

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
    var t0 = ctx.phaseStart()
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

    ctx.profile?.lap(.attentionProjections, &t0)

    // MARK: - DSA selection
    let S = b.maxSelected
    /// Whether row t's selection is replayed (then the indexer does not score it).
    func replayed(_ t: Int) -> Bool { ctx.replaying && ctx.segment(t).replay?.topk != nil }
    if let indexer {
      try indexer.project(layer: l, aNorm: a, qLat: qLat, ctx: ctx)
      ctx.profile?.lap(.indexer, &t0)
      let ihd = indexer.heads * indexer.headDim
      if R < 8 {
        // Few rows (decode): score each row's keys in blocks on every thread, then pick. The
        // scores scratch has a row per step row here (plan.chunks == R).
        let block = 512
        var blocks = 0
        for t in 0..<R where indexer.needsScores(position: ctx.position(t)) && !replayed(t) { blocks = max(blocks, (ctx.position(t) + block) / block) }
        if blocks > 0 {
          let items = R * blocks
          pool.parallelFor(min(items, 64)) { c in
            var it = c
            while it < items {
              let t = it / blocks, j0 = (it % blocks) * block
              let pos = ctx.position(t)
              if indexer.needsScores(position: pos) && j0 <= pos && !replayed(t) {
                let keys = ctx.segment(t).cache.layers[l].indexKey!
                indexer.score(query: b.iq + t * ihd, headWeights: b.iw + t * indexer.heads, keys: keys.pointer,
                              from: j0, to: min(pos + 1, j0 + block), scores: b.scores + t * b.plan.maxKeys)
              }
              it += min(items, 64)
            }
          }
        }
        ctx.profile?.lap(.indexer, &t0)
        ctx.parallelRows { t, _ in
          if replayed(t) { return }
          b.selectedCount[t] = Int32(indexer.pick(position: ctx.position(t), scores: b.scores + t * b.plan.maxKeys,
                                                  out: b.selected + t * S))
        }
        ctx.profile?.lap(.topK, &t0)
      } else {
        // Scoring and selection are one parallel section here; the profile charges both to the
        // indexer.
        ctx.parallelRows { t, worker in
          if replayed(t) { return }
          let pos = ctx.position(t)
          let sc = b.scores + worker * b.plan.maxKeys
          if indexer.needsScores(position: pos) {
            let keys = ctx.segment(t).cache.layers[l].indexKey!
            indexer.score(query: b.iq + t * ihd, headWeights: b.iw + t * indexer.heads, keys: keys.pointer, from: 0, to: pos + 1, scores: sc)
          }
          b.selectedCount[t] = Int32(indexer.pick(position: pos, scores: sc, out: b.selected + t * S))
        }
        ctx.profile?.lap(.indexer, &t0)
      }
      haveSelections = true
    } else {
      guard haveSelections else { throw .internal("layer \(l) shares the indexer, but no earlier layer selected keys") }
    }
    if ctx.replaying {
      // Replayed rows (RoutingReplay): the host's selection instead of the indexer's.
      for t in 0..<R {
        let seg = ctx.segment(t)
        guard let rk = seg.replay?.topk else { continue }
        let K = c.indexTopK
        let src = rk + ((ctx.position(t) - seg.start) * c.numHiddenLayers + l) * K
        var n = 0
        while n < K && src[n] >= 0 { b.selected[t * S + n] = src[n]; n += 1 }
        b.selectedCount[t] = Int32(n)
      }
    }
    if ctx.recording {
      for t in 0..<R {
        ctx.segment(t).record?.recordSelection(position: ctx.position(t), layer: l, b.selected + t * S, count: Int(b.selectedCount[t]))
      }
    }

    // MARK: - Absorbed attention over the selected keys
    if ctx.profile != nil { t0 = PhaseProfile.now() }  // the recording above is not a phase
    // q̃ [R, Nh, Rkv], then the latent output [R, Nh, Rkv] and the heads' values [R, Nh, Dv].
    let qt = b.qAbsorbed, oLat = b.oLatent, o = b.oHeads
    let kvB = weights.kvB.kernel
    pool.parallelFor(nh) { hh in
      let wUK = kvB.rows(hh * (dn + dv), dn)  // [Dn, Rkv]
      Kernels.linearTransposed(qt + hh * rkv, ldy: nh * rkv, q + hh * dqk, ldx: nh * dqk, tokens: R, wUK)
    }
    ctx.profile?.lap(.attentionWUK, &t0)
    // Multi-query over the latent (Kernels.multiQueryScores / multiQuerySum): every head reads
    // the same selected rows. Few rows (decode, small batches): three sections, so that each
    // selected row is read from memory once for the scores and once for the sum, whatever the
    // thread count: scores over (row, block of keys) items for all heads, the softmax per (row,
    // head), the sum over (row, block of columns) items for all heads and keys. Many rows
    // (prefill): (row, block of headsPerItem heads) items, scores, softmax and sum in one.
    // Every score and every output element is the same sequence in both (a head's result does
    // not depend on the split).
    let hpi = MLA.headsPerItem
    let hb = (nh + hpi - 1) / hpi
    if R * hb <= 64 {
      // probs [R, nh, S] (StepBuffers sizes it for R * hb ≤ 64 blocks of hpi heads).
      let keyBlock = MLA.scoreKeysPerItem, colBlock = MLA.sumColumnsPerItem
      let kb = (S + keyBlock - 1) / keyBlock
      // Each row's queries packed column-major [Rkv + Dr, Nh] once, read by all its key blocks.
      let qp = b.qPacked, qw = rkv + dr
      pool.parallelFor(R) { t in
        Kernels.packMultiQuery(qp + t * qw * nh, ldq: nh, qn: qt + t * nh * rkv, ldqn: rkv, qr: q + t * nh * dqk + dn, ldqr: dqk,
                               heads: nh, rank: rkv, ropeDims: dr)
      }
      pool.parallelFor(R * kb) { item in
        let t = item / kb, i0 = (item % kb) * keyBlock
        let nk = Int(b.selectedCount[t])
        if i0 >= nk { return }
        let cache = ctx.segment(t).cache.layers[l]
        // Every head at once: the kernel transposes a block of rows once for all of them.
        Kernels.multiQueryScores(b.probs + t * nh * S + i0, lds: S, q: qp + t * qw * nh, ldq: nh,
                                 heads: nh, latent: cache.latent.pointer, rank: rkv, rope: cache.kRope.pointer, ropeDims: dr,
                                 keys: UnsafePointer(b.selected + t * S + i0), count: min(keyBlock, nk - i0), scale: scale)
      }
      ctx.profile?.lap(.attentionScores, &t0)
      // Blocks of softmaxRowsPerItem heads: their sums' chains run side by side.
      let sr = MLA.softmaxRowsPerItem, sb = (nh + sr - 1) / sr
      pool.parallelFor(R * sb) { item in
        let t = item / sb, h0 = (item % sb) * sr
        Kernels.softmaxRows(b.probs + (t * nh + h0) * S, ld: S, rows: min(sr, nh - h0), Int(b.selectedCount[t]))
      }
      ctx.profile?.lap(.attentionSoftmax, &t0)
      let cb = (rkv + colBlock - 1) / colBlock
      pool.parallelFor(R * cb) { item in
        let t = item / cb, c0 = (item % cb) * colBlock
        let cache = ctx.segment(t).cache.layers[l]
        Kernels.multiQuerySum(oLat + t * nh * rkv + c0, ldo: rkv, b.probs + t * nh * S, ldp: S, heads: nh,
                              latent: cache.latent.pointer + c0, rank: min(colBlock, rkv - c0), ldl: rkv,
                              keys: UnsafePointer(b.selected + t * S), count: Int(b.selectedCount[t]))
      }
      ctx.profile?.lap(.attentionSum, &t0)
    } else {
      let items = R * hb
      let chunks = min(items, 64)
      pool.parallelFor(chunks) { worker in
        var item = worker
        while item < items {
          let t = item / hb, h0 = (item % hb) * hpi, hn = min(hpi, nh - h0)
          let cache = ctx.segment(t).cache.layers[l]
          let keys = UnsafePointer(b.selected + t * S)
          let nk = Int(b.selectedCount[t])
          let p = b.probs + worker * hpi * S  // [hpi, S] of this worker
          let qw = rkv + dr, qp = b.qPacked + worker * hpi * qw  // [Rkv + Dr, hn] of this worker
          Kernels.packMultiQuery(qp, ldq: hn, qn: qt + (t * nh + h0) * rkv, ldqn: rkv, qr: q + (t * nh + h0) * dqk + dn, ldqr: dqk,
                                 heads: hn, rank: rkv, ropeDims: dr)
          Kernels.multiQueryScores(p, lds: S, q: qp, ldq: hn,
                                   heads: hn, latent: cache.latent.pointer, rank: rkv, rope: cache.kRope.pointer, ropeDims: dr,
                                   keys: keys, count: nk, scale: scale)
          Kernels.softmaxRows(p, ld: S, rows: hn, nk)
          Kernels.multiQuerySum(oLat + (t * nh + h0) * rkv, ldo: rkv, p, ldp: S, heads: hn, latent: cache.latent.pointer, rank: rkv, ldl: rkv,
                                keys: keys, count: nk)
          item += chunks
        }
      }
      // Many rows: scores, softmax and sum run in one section, charged to the sum.
      ctx.profile?.lap(.attentionSum, &t0)
    }
    pool.parallelFor(nh) { hh in
      let wUV = kvB.rows(hh * (dn + dv) + dn, dv)  // [Dv, Rkv]
      Kernels.linear(o + hh * dv, ldy: nh * dv, oLat + hh * rkv, ldx: nh * rkv, tokens: R, wUV, pool: ThreadPool.serial)
    }
    ctx.profile?.lap(.attentionWUV, &t0)
    Kernels.linear(out, ldy: h, o, ldx: nh * dv, tokens: R, weights.o.kernel, pool: pool)
    ctx.profile?.lap(.oProj, &t0)
  }
}
