// Draws for many (session, position) rows: the logits of up to `rows` hidden rows at a time (one
// read of lm_head for the group), each sampled with its session's parameters on a worker, the
// results handed back in the order the rows were added. Everything is reserved at init.

import GLM5Core
import GLM5Kernels
import GLM5Model

final class DrawRows {
  let model: Model
  let transformer: Transformer
  let params: [SamplingParams]
  /// Parameters for drafts: no alternatives reported.
  let draftParams: [SamplingParams]
  let rows: Int, workers: Int, topStride: Int
  let hs: FloatBuffer, lg: FloatBuffer
  let arena = ScratchArena()
  let scratch: [SamplerScratch]
  let tids: UnsafeMutablePointer<Int32>, tlps: UnsafeMutablePointer<Float>
  private var drawn: [SampledToken]
  private var items: [(session: Int, hidden: UnsafePointer<Float>, position: Int)] = []

  init(model: Model, transformer: Transformer, params: [SamplingParams], rows: Int) throws(GLM5Error) {
    let V = model.config.vocabSize, h = model.config.hiddenSize
    self.model = model
    self.transformer = transformer
    self.params = params
    draftParams = params.map { var p = $0; p.topLogprobs = 0; return p }
    self.rows = max(rows, 1)
    workers = min(self.rows, 8)
    topStride = max(params.reduce(0) { max($0, $1.topLogprobs) }, 1)
    hs = try FloatBuffer(count: self.rows * h, what: "hidden rows")
    lg = try FloatBuffer(count: self.rows * V, what: "logits")
    try arena.reserve(workers * SamplerScratch.bytes(vocab: V) + self.rows * topStride * 8 + 256, what: "sampler scratch")
    var cv = Carver(arena: arena)
    var sc: [SamplerScratch] = []
    for _ in 0..<workers { sc.append(SamplerScratch(&cv, vocab: V)) }
    scratch = sc
    tids = cv.ints(self.rows * topStride)
    tlps = cv.floats(self.rows * topStride)
    drawn = [SampledToken](repeating: SampledToken(), count: self.rows)
    items.reserveCapacity(params.count * (SamplingParams.maxSpeculative + 1))
  }

  func begin() { items.removeAll(keepingCapacity: true) }

  /// A row to draw: session index, its hidden row (valid until run returns), and the position the
  /// drawn token takes.
  func add(_ session: Int, _ hidden: UnsafePointer<Float>, position: Int) throws(GLM5Error) {
    guard session >= 0 && session < params.count else { throw .internal("DrawRows: session \(session) of \(params.count)") }
    items.append((session, hidden, position))
  }

  /// Draw every added row (`draft`: from the MTP head's logits, without alternatives) and call
  /// body(session, token, top ids, top logprobs) for each, in the order added.
  func run(draft: Bool, _ body: (Int, SampledToken, UnsafePointer<Int32>, UnsafePointer<Float>) -> Void) {
    let V = model.config.vocabSize, h = model.config.hiddenSize
    let pool = model.pool
    var g0 = 0
    while g0 < items.count {
      let n = min(rows, items.count - g0)
      for j in 0..<n { (hs.pointer + j * h).update(from: items[g0 + j].hidden, count: h) }
      if draft {
        transformer.draftLogits(hidden: hs.pointer, rows: n, into: lg.pointer, pool: pool)
      } else {
        transformer.logits(hidden: hs.pointer, rows: n, into: lg.pointer, pool: pool)
      }
      let ps = draft ? draftParams : params
      let (lgp, tid, tlp, stride, w) = (lg.pointer, tids, tlps, topStride, min(n, workers))
      items.withUnsafeBufferPointer { it in
        drawn.withUnsafeMutableBufferPointer { d in
          let db = d.baseAddress!
          scratch.withUnsafeBufferPointer { sc in
            pool.parallelFor(w) { wk in
              var j = wk
              while j < n {
                let item = it[g0 + j]
                db[j] = Sampler.sample(lgp + j * V, vocab: V, params: ps[item.session], position: item.position,
                                       scratch: sc[wk], topIds: tid + j * stride, topLogprobs: tlp + j * stride)
                j += w
              }
            }
          }
        }
      }
      for j in 0..<n { body(items[g0 + j].session, drawn[j], tids + j * topStride, tlps + j * topStride) }
      g0 += n
    }
  }
}
