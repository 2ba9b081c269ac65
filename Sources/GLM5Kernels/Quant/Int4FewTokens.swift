// INT4 Linear for a few tokens at once (2 ≤ T ≤ fewTokensMax): the shape batched decode gives the
// dense layers and the experts (a step of B sessions puts ~B·k/E rows on each expert). Each
// weight row is decoded once per 4 tokens (AVX2: 2 for the last one or two; AVX-512: tiles of
// 4 rows × 4 tokens, a pair of rows per vector, and a 1-3 token tile for the last block), straight
// from the packed bytes into registers,
// and multiplied into 4 token chains (glm5k_int4_linear), against one
// decode pass per token (the weights streamed again each time) or the prefill path's
// decode-to-scratch and 6-token tiles (a third of them wasted at T = 4).
//
// Row invariance: every y[t, n] is the sequence of the one-token kernel (glm5_kernels.h).

import CGLM5Kernels
import GLM5Core

extension Kernels {
  /// Largest token count that takes this path.
  static let fewTokensMax = 8
  /// Output rows per work item (fixed: results never depend on the split anyway).
  static let fewTokensRowsPerChunk = 16

  /// y [T, N] (ldy) for x prepared ([T, K], ld K).
  static func int4FewTokens(_ plan: QuantKernels.Plan, _ y: UnsafeMutablePointer<Float>, ldy: Int, _ x: UnsafePointer<Float>,
                            tokens T: Int, pool: ThreadPool) {
    let n = plan.rows
    let chunks = (n + fewTokensRowsPerChunk - 1) / fewTokensRowsPerChunk
    withUnsafePointer(to: plan.int4) { w in
      pool.parallelFor(chunks) { ci in
        let r0 = ci * fewTokensRowsPerChunk, r1 = min(n, r0 + fewTokensRowsPerChunk)
        glm5k_int4_linear(w, Int64(r0), Int64(r1), x, Int64(T), y, Int64(ldy))
      }
    }
  }
}
