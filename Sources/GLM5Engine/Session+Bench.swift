// Bench-only: a session whose context is synthetic. Decode cost depends on the cache's size, not
// its contents, so `glm5 bench --preset glm5-bench` measures decode at depth 8192 this way instead
// of a 9-minute prefill. Not part of the public API nor of the C ABI (`@_spi(Bench)`); nothing it
// produces is a model output.

import GLM5Core
import GLM5Model

extension Session {
  /// Replace the session's context with `positions` synthetic positions: random cache rows in
  /// every layer (latent, rope key, indexer key; uniform with unit variance, the scale of the
  /// normed rows a prefill writes), `positions` random token ids recorded, and a random unit-RMS
  /// hidden row for the next token's logits. Sampling then decodes at depth `positions`.
  @_spi(Bench) public func setSyntheticContext(positions n: Int, seed: UInt64 = 1) throws(GLM5Error) {
    guard n >= 1 && n <= maxTokens else { throw .invalidArgument("synthetic context of \(n) positions: must be in [1, \(maxTokens)]") }
    try cache.reserve(n)
    var state = seed | 1
    let a = Float(3).squareRoot()
    @inline(__always) func fill(_ p: UnsafeMutablePointer<Float>, _ count: Int) {
      for i in 0..<count {
        state ^= state << 13; state ^= state >> 7; state ^= state << 17
        p[i] = (Float(state >> 40) / Float(1 << 24) * 2 - 1) * a
      }
    }
    for layer in cache.layers {
      fill(layer.latent.pointer, n * cache.rkv)
      fill(layer.kRope.pointer, n * cache.dr)
      if let k = layer.indexKey { fill(k.pointer, n * cache.di) }
    }
    cache.count = n
    tokens = (0..<n).map { _ in
      state ^= state << 13; state ^= state >> 7; state ^= state << 17
      return Int32(truncatingIfNeeded: (state >> 33) % UInt64(vocab))
    }
    fill(hidden.pointer, hiddenSize)
    hiddenRows = 1
    kept = nil
    keptRows = 0
  }

  /// Room for `tokens` cache entries now, so that a timed decode does not include the one-time
  /// doubling of the cache (a copy of every row, amortised O(1) per token in real use).
  @_spi(Bench) public func reserveForBench(_ tokens: Int) throws(GLM5Error) {
    try reserve(min(tokens, maxTokens))
  }
}
