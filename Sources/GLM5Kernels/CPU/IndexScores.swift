// DSA lightning-indexer scores of one query against a run of cached keys (C kernel,
// CGLM5Kernels/indexer.c; plain form Reference.indexScores, which it matches bit for bit):
//   scores[j] = Σ_h in order: d = (q_h · k_j, one fma chain in column order) · scale;
//               if d > 0: s = fma(w_h, d, s)
//   q [heads, dim], w [heads] (the head weights, already · heads^-0.5), keys [·, dim]

import CGLM5Kernels

extension Kernels {
  public static func indexScores(query q: UnsafePointer<Float>, headWeights w: UnsafePointer<Float>, heads: Int, dim: Int,
                                 keys: UnsafePointer<Float>, from j0: Int, to j1: Int, scale: Float,
                                 scores: UnsafeMutablePointer<Float>) {
    glm5k_index_scores(q, w, Int64(heads), Int64(dim), keys, Int64(j0), Int64(j1), scale, scores)
  }
}
