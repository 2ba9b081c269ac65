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
    ctx.profile?.lap(.router, &t0)
    if Int(maxRows) <= MoE.groupedRowsMax {
      groupedExperts(x: x, rows: R, used: used, nUsed: nUsed, count: count, offset: offset, packedRows: Int(n), width: we,
                     buf: b, pool: ctx.pool)
    } else {
      for i in 0..<nUsed {
        let ex = Int(used[i]), o = Int(offset[ex])
        swiGLU(weights.experts[ex], x: b.xe + o * h, ldx: h, y: b.ye + o * h, ldy: h, tokens: Int(count[ex]),
               gate: b.eg + o * we, up: b.eu + o * we, pool: ctx.pool)
      }
      if let shared { swiGLU(shared, x: x, ldx: h, y: b.sharedOut, ldy: h, tokens: R, gate: b.sg, up: b.su, pool: ctx.pool) }
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

  /// Steps whose busiest expert has at most this many rows (decode, batched decode) run all the
  /// step's experts as one grouped dispatch; longer ones run expert after expert, each split over
  /// the pool (its rows are enough to fill the workers and take the prefill tiles).
  static let groupedRowsMax = 16
  /// Weight rows per work item of the grouped dispatch: the largest of these that still gives
  /// every worker about 4 items of the gate/up dispatch. Each item is a Linear call with its own
  /// x preparation and tile prefetch ramp, so on 2 threads 512-row items made the one-session
  /// experts phase 1.2× faster than 128-row ones (measured with the bench's phase profile, 3 of 3
  /// alternated runs); many workers take smaller items so that all of them have work, down to
  /// one 8-row tile (the test models' narrow experts then run as several slices each).
  static let groupedItemRowsChoices = [512, 256, 128, 64, 32, 16, 8]

  static func groupedItemRows(tasks: Int, width: Int, threads: Int) -> Int {
    for rows in groupedItemRowsChoices where tasks * 2 * ((width + rows - 1) / rows) >= 4 * threads { return rows }
    return groupedItemRowsChoices[groupedItemRowsChoices.count - 1]
  }

  /// The used experts and the shared one as two dispatches over work items of the same size:
  /// gate and up rows of every expert, then (after silu(gate) ⊙ up over all packed rows) down
  /// rows of every expert. Each item is one Linear call on a row slice, in one thread: rows are
  /// computed as they would be in any other split (row-invariant kernels), so results do not
  /// change, and the load is even on any number of workers (one expert per worker would leave
  /// all but 9 idle on a many-core machine and one of 2 idle for a ninth of the step here).
  private func groupedExperts(x: UnsafePointer<Float>, rows R: Int, used: UnsafeMutablePointer<Int32>, nUsed: Int,
                              count: UnsafeMutablePointer<Int32>, offset: UnsafeMutablePointer<Int32>, packedRows: Int,
                              width we: Int, buf b: StepBuffers, pool: ThreadPool) {
    let h = weights.experts.first?.down.outFeatures ?? weights.shared?.down.outFeatures ?? 0
    let shared = weights.shared
    let ws = shared?.gate.outFeatures ?? 0
    let step = MoE.groupedItemRows(tasks: nUsed + (shared == nil ? 0 : 1), width: max(we, 1), threads: pool.threads)
    let routedChunks = (we + step - 1) / step, sharedChunks = (ws + step - 1) / step
    let downChunks = (h + step - 1) / step
    // Item i of the gate/up dispatch: routed experts first (task, projection, chunk), then shared.
    let routedUp = nUsed * 2 * routedChunks
    let upItems = routedUp + (shared == nil ? 0 : 2 * sharedChunks)
    func upItem(_ i: Int) -> GroupedItem? {
      let routed = i < routedUp
      let j = routed ? i : i - routedUp, per = routed ? routedChunks : sharedChunks
      let proj = (j / per) % 2, r0 = (j % per) * step
      let sw: SwiGLUWeights, xs: UnsafePointer<Float>, out: UnsafeMutablePointer<Float>, width: Int, T: Int
      if routed {
        let ex = Int(used[j / (2 * per)]), o = Int(offset[ex])
        sw = weights.experts[ex]; xs = UnsafePointer(b.xe + o * h); width = we; T = Int(count[ex])
        out = (proj == 0 ? b.eg : b.eu) + o * we
      } else {
        guard let shared else { return nil }
        sw = shared; xs = x; width = ws; T = R
        out = proj == 0 ? b.sg : b.su
      }
      let m = proj == 0 ? sw.gate : sw.up
      return GroupedItem(w: m.kernel.rows(r0, min(step, width - r0)), x: xs, ldx: h, y: out + r0, ldy: width, tokens: T)
    }
    MoE.runGrouped(upItems, upItem, pool: pool)
    Kernels.swiglu(b.eg, b.eu, packedRows * we)
    if shared != nil { Kernels.swiglu(b.sg, b.su, R * ws) }
    let routedDown = nUsed * downChunks
    func downItem(_ i: Int) -> GroupedItem? {
      let routed = i < routedDown
      let r0 = (i % downChunks) * step
      let sw: SwiGLUWeights, xs: UnsafePointer<Float>, out: UnsafeMutablePointer<Float>, width: Int, T: Int
      if routed {
        let ex = Int(used[i / downChunks]), o = Int(offset[ex])
        sw = weights.experts[ex]; xs = UnsafePointer(b.eg + o * we); width = we; T = Int(count[ex])
        out = b.ye + o * h
      } else {
        guard let shared else { return nil }
        sw = shared; xs = UnsafePointer(b.sg); width = ws; T = R
        out = b.sharedOut
      }
      return GroupedItem(w: sw.down.kernel.rows(r0, min(step, h - r0)), x: xs, ldx: width, y: out + r0, ldy: h, tokens: T)
    }
    MoE.runGrouped(routedDown + (shared == nil ? 0 : downChunks), downItem, pool: pool)
  }

  /// One work item of the grouped dispatch: a Linear over a row slice.
  struct GroupedItem {
    let w: LinearWeight
    let x: UnsafePointer<Float>, ldx: Int
    let y: UnsafeMutablePointer<Float>, ldy: Int
    let tokens: Int
  }

  /// Items [0, n) over the pool, each in one thread.
  static func runGrouped(_ n: Int, _ item: (Int) -> GroupedItem?, pool: ThreadPool) {
    pool.parallelFor(n) { i in
      guard let it = item(i) else { return }
      Kernels.linear(it.y, ldy: it.ldy, it.x, ldx: it.ldx, tokens: it.tokens, it.w, pool: .serial)
    }
  }
}
