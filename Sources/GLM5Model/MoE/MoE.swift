// The feed-forward half of a decoder layer: the dense SwiGLU MLP of the first
// first_k_dense_replace layers, or the MoE (routed experts + shared expert) of the rest.
//   SwiGLU(x) = down( silu(gate(x)) ⊙ up(x) )
//   MoE(x)    = Σ_{e ∈ routed(x), ascending e} w_e · Expert_e(x)  +  Shared(x)
// Tokens routed to the same expert are computed together (one weight read per step), each token's
// row with the same row-invariant kernels as alone.

import GLM5Core
import GLM5Kernels

/// down(silu(gate(x)) ⊙ up(x)) for T rows.   x [T, H] → y [T, H]
func swiGLU(_ w: SwiGLUWeights, x: UnsafePointer<Float>, ldx: Int, y: UnsafeMutablePointer<Float>, ldy: Int,
            tokens T: Int, pool: ThreadPool) throws(GLM5Error) {
  let width = w.gate.outFeatures
  let g = try FloatBuffer(count: T * width, what: "MLP gate")
  let u = try FloatBuffer(count: T * width, what: "MLP up")
  Kernels.linear(g.pointer, ldy: width, x, ldx: ldx, tokens: T, w.gate.kernel, pool: pool)
  Kernels.linear(u.pointer, ldy: width, x, ldx: ldx, tokens: T, w.up.kernel, pool: pool)
  Kernels.swiglu(g.pointer, u.pointer, T * width)
  Kernels.linear(y, ldy: ldy, g.pointer, ldx: width, tokens: T, w.down.kernel, pool: pool)
}

struct MoE {
  let weights: MoEWeights
  let router: Router

  init(_ w: MoEWeights, config c: ModelConfig) {
    weights = w
    router = Router(w, config: c)
  }

  /// y [T, H] = MoE(x [T, H]).
  func forward(layer l: Int, x: UnsafePointer<Float>, y: UnsafeMutablePointer<Float>, tokens T: Int, start: Int,
               ctx: ForwardContext) throws(GLM5Error) {
    let h = ctx.config.hiddenSize
    let e = router.experts
    let logits = try FloatBuffer(count: T * e, what: "router logits")
    Kernels.linear(logits.pointer, ldy: e, x, ldx: h, tokens: T, weights.router.kernel, pool: ctx.pool)
    var ids = [[Int32]](repeating: [], count: T)
    var wts = [[Float]](repeating: [], count: T)
    for t in 0..<T { router.route(logits: logits.pointer + t * e, ids: &ids[t], weights: &wts[t]) }
    ctx.recorder?.recordRoutes(layer: l, start: start, ids, wts)

    // Tokens per expert, then each used expert once over its tokens.
    var tokensOf = [[Int]](repeating: [], count: e)
    for t in 0..<T { for id in ids[t] { tokensOf[Int(id)].append(t) } }
    let k = router.perToken
    let used = (0..<e).filter { !tokensOf[$0].isEmpty }
    // Inputs and outputs of each used expert, packed one after another: [Σ n_e, H] each.
    var offset = [Int](repeating: 0, count: e)
    var n = 0
    for ex in used { offset[ex] = n; n += tokensOf[ex].count }
    let xe = try FloatBuffer(count: n * h, what: "expert inputs")
    let ye = try FloatBuffer(count: n * h, what: "expert outputs")
    let sharedOut = try FloatBuffer(count: weights.shared == nil ? 0 : T * h, what: "shared expert output")
    for ex in used {
      for (i, t) in tokensOf[ex].enumerated() { (xe.pointer + (offset[ex] + i) * h).update(from: x + t * h, count: h) }
    }
    // Decode and short prefills: a few tokens per expert, so the experts (and the shared one) run
    // side by side, each on one thread; longer prefills split each expert's rows instead. Every
    // row is computed the same way either way (row-invariant kernels), so results do not change.
    let maxRows = used.map { tokensOf[$0].count }.max() ?? 0
    let tasks = used.count + (weights.shared == nil ? 0 : 1)
    if maxRows <= 4 && ctx.pool.threads > 1 && tasks > 1 {
      var failures = [GLM5Error?](repeating: nil, count: tasks)
      failures.withUnsafeMutableBufferPointer { fail in
        let failBase = fail.baseAddress!
        ctx.pool.parallelFor(tasks) { i in
          do throws(GLM5Error) {
            if i < used.count {
              let ex = used[i]
              try swiGLU(weights.experts[ex], x: xe.pointer + offset[ex] * h, ldx: h, y: ye.pointer + offset[ex] * h, ldy: h,
                         tokens: tokensOf[ex].count, pool: .serial)
            } else if let shared = weights.shared {
              try swiGLU(shared, x: x, ldx: h, y: sharedOut.pointer, ldy: h, tokens: T, pool: .serial)
            }
          } catch {
            failBase[i] = error
          }
        }
      }
      if let f = failures.compactMap({ $0 }).first { throw f }
    } else {
      for ex in used {
        try swiGLU(weights.experts[ex], x: xe.pointer + offset[ex] * h, ldx: h, y: ye.pointer + offset[ex] * h, ldy: h,
                   tokens: tokensOf[ex].count, pool: ctx.pool)
      }
      if let shared = weights.shared {
        try swiGLU(shared, x: x, ldx: h, y: sharedOut.pointer, ldy: h, tokens: T, pool: ctx.pool)
      }
    }
    // y[t] = Σ over its experts in ascending id of w · expert output, then + shared.
    for t in 0..<T {
      let yt = y + t * h
      for j in 0..<h { yt[j] = 0 }
      for (slot, id) in ids[t].enumerated() {
        let ex = Int(id)
        guard let i = tokensOf[ex].firstIndex(of: t) else { continue }
        let src = ye.pointer + (offset[ex] + i) * h
        let w = wts[t][slot]
        for j in 0..<h { yt[j] += src[j] * w }
      }
      if weights.shared != nil {
        let sh = sharedOut.pointer + t * h
        for j in 0..<h { yt[j] += sh[j] }
      }
    }
  }
}
