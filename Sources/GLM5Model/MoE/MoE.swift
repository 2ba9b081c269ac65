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
    // Per (token, slot) outputs, summed afterwards in ascending expert order.
    let slots = try FloatBuffer(count: T * k * h, what: "expert outputs")
    let xe = try FloatBuffer(count: T * h, what: "expert inputs")
    let ye = try FloatBuffer(count: T * h, what: "expert outputs")
    for ex in 0..<e where !tokensOf[ex].isEmpty {
      let rows = tokensOf[ex]
      for (i, t) in rows.enumerated() { (xe.pointer + i * h).update(from: x + t * h, count: h) }
      try swiGLU(weights.experts[ex], x: xe.pointer, ldx: h, y: ye.pointer, ldy: h, tokens: rows.count, pool: ctx.pool)
      for (i, t) in rows.enumerated() {
        guard let slot = ids[t].firstIndex(of: Int32(ex)) else { continue }
        let w = wts[t][slot]
        let dst = slots.pointer + (t * k + slot) * h
        let src = ye.pointer + i * h
        for j in 0..<h { dst[j] = src[j] * w }
      }
    }
    for t in 0..<T {
      let yt = y + t * h
      for j in 0..<h { yt[j] = 0 }
      for slot in 0..<ids[t].count {
        let src = slots.pointer + (t * k + slot) * h
        for j in 0..<h { yt[j] += src[j] }
      }
    }
    if let shared = weights.shared {
      try swiGLU(shared, x: x, ldx: h, y: ye.pointer, ldy: h, tokens: T, pool: ctx.pool)
      for i in 0..<(T * h) { y[i] += ye.pointer[i] }
    }
  }
}
