// Conveniences over one forward pass, without a session.

import GLM5Core
import GLM5Model

extension Model {
  /// Logits [T, V] (row-major) of a whole sequence from an empty cache.
  public func fullForwardLogits(_ tokens: [Int32], record: RoutingRecord? = nil) throws(GLM5Error) -> [Float] {
    let c = config
    let cache = try LatentKVCache(config: c, hasIndexer: transformer.layersWithIndexer, maxTokens: max(tokens.count, 1))
    let hidden = try FloatBuffer(count: tokens.count * c.hiddenSize, what: "hidden states")
    try transformer.forward(tokens: tokens, cache: cache, hidden: hidden.pointer, pool: pool, record: record)
    var out = [Float](repeating: 0, count: tokens.count * c.vocabSize)
    out.withUnsafeMutableBufferPointer { o in
      transformer.logits(hidden: hidden.pointer, rows: tokens.count, into: o.baseAddress!, pool: pool)
    }
    return out
  }
}
