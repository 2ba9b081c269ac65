// The feed-forward half of a decoder layer: the dense SwiGLU MLP of the first
// first_k_dense_replace layers, or the MoE (routed experts + shared expert) of the rest.
//   SwiGLU(x) = down( silu(gate(x)) ⊙ up(x) )
//   MoE(x)    = Σ_{e ∈ routed(x), ascending e} w_e · Expert_e(x)  +  Shared(x)
// Tokens routed to the same expert are computed together (one weight read per step), each token's
// row with the same row-invariant kernels as alone.

import GLM5Core
import GLM5Kernels

/// down(silu(gate(x)) ⊙ up(x)) for T rows.   x [T, H] → y [T, H];  gate, up: scratch [T, W]
func swiGLU(_ w: SwiGLUWeights, x: UnsafePointer<Float>, ldx: Int, y: UnsafeMutablePointer<Float>, ldy: Int,
            tokens T: Int, gate g: UnsafeMutablePointer<Float>, up u: UnsafeMutablePointer<Float>, pool: ThreadPool) {
  let width = w.gate.outFeatures
  Kernels.linear(g, ldy: width, x, ldx: ldx, tokens: T, w.gate.kernel, pool: pool)
  Kernels.linear(u, ldy: width, x, ldx: ldx, tokens: T, w.up.kernel, pool: pool)
  Kernels.swiglu(g, u, T * width)
  Kernels.linear(y, ldy: ldy, g, ldx: width, tokens: T, w.down.kernel, pool: pool)
}

struct MoE {
  let weights: MoEWeights
  let router: Router
  /// This layer's index among the MoE layers, and their number (replay row layout).
  let moeIndex: Int, moeCount: Int

  init(_ w: MoEWeights, layer l: Int, config c: ModelConfig) {
    weights = w
    router = Router(w, config: c)
    moeIndex = (0..<l).filter { c.mlpLayerTypes[$0] == .sparse }.count
    moeCount = (0..<c.numHiddenLayers).filter { c.mlpLayerTypes[$0] == .sparse }.count
  }

  /// y [R, H] = MoE(x [R, H]) over the step's rows.
  func forward(layer l: Int, x: UnsafePointer<Float>, y: UnsafeMutablePointer<Float>, ctx: ForwardContext) {
    let h = ctx.config.hiddenSize
    let b = ctx.buf
    let R = ctx.rows
    let e = router.experts, k = router.perToken
    var t0 = ctx.phaseStart()
    let logits = b.routerLogits
    Kernels.linear(logits, ldy: e, x, ldx: h, tokens: R, weights.router.kernel, pool: ctx.pool)
    for t in 0..<R {
      if ctx.replaying, let ri = ctx.segment(t).replay?.expertIds {
        // Replayed route (RoutingReplay): the host's experts, and its weights or the router's.
        let seg = ctx.segment(t)
        let o = ((ctx.position(t) - seg.start) * moeCount + moeIndex) * k
        (b.routeIds + t * k).update(from: ri + o, count: k)
        if let rw = seg.replay?.expertWeights {
          (b.routeWeights + t * k).update(from: rw + o, count: k)
        } else {
          router.weigh(logits: logits + t * e, ids: b.routeIds + t * k, weights: b.routeWeights + t * k)
        }
        continue
      }
      router.route(logits: logits + t * e, ids: b.routeIds + t * k, weights: b.routeWeights + t * k,
                   scratch: b.routerScratch, heap: b.routerHeap)
    }
    if ctx.recording {
      for t in 0..<R {
        ctx.segment(t).record?.recordRoute(position: ctx.position(t), layer: l, ids: b.routeIds + t * k, weights: b.routeWeights + t * k)
      }
    }

    // Rows per expert, then each used expert once over its rows, packed one expert after another
    // in ascending expert id and, within an expert, ascending row.
    let count = b.expertCount, offset = b.expertOffset, used = b.usedExperts
    for ex in 0..<e { count[ex] = 0 }
    for i in 0..<(R * k) { count[Int(b.routeIds[i])] += 1 }
    var nUsed = 0, n: Int32 = 0
    var maxRows: Int32 = 0
    for ex in 0..<e {
      offset[ex] = n
      if count[ex] > 0 { used[nUsed] = Int32(ex); nUsed += 1; n += count[ex]; maxRows = max(maxRows, count[ex]) }
      count[ex] = 0  // reused as the fill level below
    }
    for t in 0..<R {
      for slot in 0..<k {
        let ex = Int(b.routeIds[t * k + slot])
        let i = Int(offset[ex] + count[ex])
        count[ex] += 1
        b.packedRow[i] = Int32(t)
        b.routeSlot[t * k + slot] = Int32(i)
        (b.xe + i * h).update(from: x + t * h, count: h)
      }
    }
    let we = router.experts > 0 ? weights.experts[0].gate.outFeatures : 0
    let shared = weights.shared
    @inline(__always) func runExpert(_ ex: Int, _ pool: ThreadPool) {
      let o = Int(offset[ex])
      swiGLU(weights.experts[ex], x: b.xe + o * h, ldx: h, y: b.ye + o * h, ldy: h, tokens: Int(count[ex]),
             gate: b.eg + o * we, up: b.eu + o * we, pool: pool)
    }
    @inline(__always) func runShared(_ pool: ThreadPool) {
      if let shared { swiGLU(shared, x: x, ldx: h, y: b.sharedOut, ldy: h, tokens: R, gate: b.sg, up: b.su, pool: pool) }
    }
    // Decode and short prefills: a few rows per expert, so the experts (and the shared one) run
    // side by side, each on one thread; longer steps split each expert's rows instead. Every row
    // is computed the same way either way (row-invariant kernels), so results do not change.
    ctx.profile?.lap(.router, &t0)
    let tasks = nUsed + (shared == nil ? 0 : 1)
    if maxRows <= 4 && ctx.pool.threads > 1 && tasks > 1 {
      ctx.pool.parallelFor(tasks) { i in
        if i < nUsed { runExpert(Int(used[i]), .serial) } else { runShared(.serial) }
      }
    } else {
      for i in 0..<nUsed { runExpert(Int(used[i]), ctx.pool) }
      runShared(ctx.pool)
    }
    // y[t] = Σ over its experts in ascending id of w · expert output, then + shared.
    for t in 0..<R {
      let yt = y + t * h
      for j in 0..<h { yt[j] = 0 }
      for slot in 0..<k {
        let src = b.ye + Int(b.routeSlot[t * k + slot]) * h
        let w = b.routeWeights[t * k + slot]
        for j in 0..<h { yt[j] += src[j] * w }
      }
      if shared != nil {
        let sh = b.sharedOut + t * h
        for j in 0..<h { yt[j] += sh[j] }
      }
    }
    ctx.profile?.lap(.experts, &t0)
  }
}
