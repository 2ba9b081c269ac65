// The per-sequence cache of the compressed attention state, one entry per token and layer:
//   latent   [T, Rkv]  c_t after kv_a_layernorm            (512 at GLM-5 size)
//   kRope    [T, Dr]   the shared RoPE key, after RoPE     (64)
//   indexKey [T, Di]   the DSA indexer key, after LayerNorm and RoPE (128; absent on "shared" layers)
// Keys are never re-expanded through kv_b_proj: attention runs in the absorbed form (MLA.swift).
// Storage grows geometrically up to the session's maximum, so a long maximum costs nothing until
// it is used.

import GLM5Core

public final class LatentKVCache: @unchecked Sendable {
  public struct Layer {
    public let latent: FloatBuffer
    public let kRope: FloatBuffer
    public let indexKey: FloatBuffer?
  }

  public let rkv: Int, dr: Int, di: Int
  public let maxTokens: Int
  public private(set) var layers: [Layer] = []
  /// Tokens whose entries are valid, in every main layer.
  public var count: Int = 0
  /// Positions whose MTP-layer entries are valid (MultiTokenPrediction.swift): computed from the
  /// main model's hidden state there and the token after it, so at most count - 1. 0 when the
  /// cache keeps no MTP layer.
  public var mtpCount: Int = 0
  public private(set) var capacity: Int = 0

  /// - Parameter hasIndexer: per layer (main layers then MTP layers), whether it keeps indexer keys.
  public init(config c: ModelConfig, hasIndexer: [Bool], maxTokens: Int) throws(GLM5Error) {
    rkv = c.kvLoraRank
    dr = c.qkRopeHeadDim
    di = c.indexHeadDim
    self.maxTokens = maxTokens
    for (l, h) in hasIndexer.enumerated() {
      layers.append(Layer(latent: try FloatBuffer(count: 0, what: "latent cache of layer \(l)"),
                          kRope: try FloatBuffer(count: 0, what: "rope-key cache of layer \(l)"),
                          indexKey: h ? try FloatBuffer(count: 0, what: "indexer-key cache of layer \(l)") : nil))
    }
  }

  /// Make room for `tokens` entries per layer (no-op when there is room). Fails without changing
  /// anything visible: entries [0, count) are kept.
  public func reserve(_ tokens: Int) throws(GLM5Error) {
    guard tokens > capacity else { return }
    guard tokens <= maxTokens else {
      throw .init(.contextFull, "\(tokens) tokens exceed the session's maximum of \(maxTokens)")
    }
    let newCap = min(maxTokens, max(tokens, capacity * 2, 64))
    for (l, layer) in layers.enumerated() {
      try layer.latent.grow(to: newCap * rkv, what: "latent cache of layer \(l)")
      try layer.kRope.grow(to: newCap * dr, what: "rope-key cache of layer \(l)")
      try layer.indexKey?.grow(to: newCap * di, what: "indexer-key cache of layer \(l)")
    }
    capacity = newCap
  }

  /// Become a copy of `other`'s valid entries (a fork). `other` may keep an MTP layer that this
  /// cache does not. Fails without changing anything visible.
  public func copy(from other: LatentKVCache) throws(GLM5Error) {
    guard other.layers.count >= layers.count, other.rkv == rkv, other.dr == dr, other.di == di else {
      throw .internal("copying a cache of another shape")
    }
    try reserve(other.count)
    let n = other.count
    for (layer, o) in zip(layers, other.layers) {
      layer.latent.pointer.update(from: o.latent.pointer, count: n * rkv)
      layer.kRope.pointer.update(from: o.kRope.pointer, count: n * dr)
      if let k = layer.indexKey, let ok = o.indexKey { k.pointer.update(from: ok.pointer, count: n * di) }
    }
    count = n
    mtpCount = other.layers.count == layers.count ? other.mtpCount : 0
  }

  /// Bytes held per token over all layers (for reporting).
  public var bytesPerToken: Int {
    layers.reduce(0) { $0 + 4 * (rkv + dr + ($1.indexKey == nil ? 0 : di)) }
  }
}
