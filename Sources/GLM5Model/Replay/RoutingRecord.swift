// Rollout Routing Replay ("R3"), the record half: the discrete choices every token made, kept
// per session in flat buffers so that a trainer can replay exactly those routes.
//
//   topk          [tokens, L, K]   int32  the keys each layer's attention read (DSA selection),
//                                         ascending, padded with -1 (K = index_topk, L = layers)
//   expertIds     [tokens, M, k]   int32  the routed experts of each MoE layer, ascending
//   expertWeights [tokens, M, k]   float  their final combine weights (after normalisation and
//                                         routed_scaling_factor), aligned with the ids
//
// Row t is the token at absolute position t of the session. Storage grows geometrically with use
// and never past `maxBytes`: reserving beyond it fails with Status.recordFull before anything
// changes. A session without a record pays nothing (the forward checks one optional).

import GLM5Core

public final class RoutingRecord: @unchecked Sendable {
  /// Decoder layers recorded (the main stack; the MTP layer is not).
  public let layers: Int
  /// index_topk: entries per (token, layer) of topk.
  public let topK: Int
  /// MoE layers, in layer order, and the MoE index of each layer (-1 for dense layers).
  public let moeLayers: Int
  public let moeIndex: [Int]
  /// num_experts_per_tok.
  public let perToken: Int
  /// Most bytes the record may hold.
  public let maxBytes: Int
  let topk: Int32Buffer
  let expertIds: Int32Buffer
  let expertWeights: FloatBuffer
  /// Rows that are valid (the session's token count).
  public internal(set) var count = 0
  public private(set) var capacity = 0

  /// Default bound: 1 GiB (about 1 700 tokens of a full-size GLM-5, 78 layers × 2048 keys).
  public static let defaultMaxBytes = 1 << 30

  public init(config c: ModelConfig, maxBytes: Int = RoutingRecord.defaultMaxBytes) throws(GLM5Error) {
    guard maxBytes > 0 else { throw .invalidArgument("record_max_bytes is \(maxBytes), must be > 0") }
    layers = c.numHiddenLayers
    topK = c.indexTopK
    var idx: [Int] = []
    var m = 0
    for l in 0..<c.numHiddenLayers {
      if c.mlpLayerTypes[l] == .sparse { idx.append(m); m += 1 } else { idx.append(-1) }
    }
    moeIndex = idx
    moeLayers = m
    perToken = m > 0 ? c.numExpertsPerTok : 0
    self.maxBytes = maxBytes
    topk = try Int32Buffer(count: 0, what: "top-k record")
    expertIds = try Int32Buffer(count: 0, what: "expert record")
    expertWeights = try FloatBuffer(count: 0, what: "expert-weight record")
  }

  /// Ints per token of topk, and of expertIds (= floats of expertWeights).
  public var topkStride: Int { layers * topK }
  public var routeStride: Int { moeLayers * perToken }
  /// Bytes one recorded token takes.
  public var bytesPerToken: Int { 4 * topkStride + 8 * routeStride }
  /// Bytes held now.
  public var bytes: Int { capacity * bytesPerToken }

  /// Make room for `tokens` rows (no-op when there is room); rows [0, count) are kept.
  public func reserve(_ tokens: Int) throws(GLM5Error) {
    guard tokens > capacity else { return }
    let limit = maxBytes / max(bytesPerToken, 1)
    guard tokens <= limit else {
      throw .init(.recordFull, "recording \(tokens) tokens needs \(tokens * bytesPerToken) bytes, above the session's record bound of \(maxBytes) bytes (\(limit) tokens)")
    }
    let newCap = min(limit, max(tokens, capacity * 2, 64))
    try topk.grow(to: newCap * topkStride, what: "top-k record")
    try expertIds.grow(to: newCap * routeStride, what: "expert record")
    try expertWeights.grow(to: newCap * routeStride, what: "expert-weight record")
    capacity = newCap
  }

  /// Forget rows past n (truncation).
  public func truncate(_ n: Int) { count = min(count, n) }

  /// Become a copy of other's valid rows (a fork). Fails without changing anything visible.
  public func copy(from other: RoutingRecord) throws(GLM5Error) {
    guard other.topkStride == topkStride, other.routeStride == routeStride else { throw .internal("copying a record of another shape") }
    try reserve(other.count)
    topk.pointer.update(from: other.topk.pointer, count: other.count * topkStride)
    expertIds.pointer.update(from: other.expertIds.pointer, count: other.count * routeStride)
    expertWeights.pointer.update(from: other.expertWeights.pointer, count: other.count * routeStride)
    count = other.count
  }

  /// Become rows [0, n) given in the record's layout (a restored session). Fails without
  /// changing anything visible.
  public func load(topk t: UnsafePointer<Int32>, expertIds ids: UnsafePointer<Int32>, expertWeights w: UnsafePointer<Float>,
                   count n: Int) throws(GLM5Error) {
    try reserve(n)
    topk.pointer.update(from: t, count: n * topkStride)
    expertIds.pointer.update(from: ids, count: n * routeStride)
    expertWeights.pointer.update(from: w, count: n * routeStride)
    count = n
  }

  // MARK: - Writing (the forward) and reading (hosts)

  /// Row of (position, layer) in topk: K ints.
  @inline(__always) func topkRow(_ position: Int, _ layer: Int) -> UnsafeMutablePointer<Int32> {
    topk.pointer + (position * layers + layer) * topK
  }
  /// Offset of (position, MoE index) in expertIds / expertWeights: k entries.
  @inline(__always) func routeOffset(_ position: Int, _ moe: Int) -> Int { (position * moeLayers + moe) * perToken }

  func recordSelection(position: Int, layer: Int, _ keys: UnsafePointer<Int32>, count n: Int) {
    let row = topkRow(position, layer)
    let m = min(n, topK)
    row.update(from: keys, count: m)
    if m < topK { (row + m).update(repeating: -1, count: topK - m) }
  }

  func recordRoute(position: Int, layer: Int, ids: UnsafePointer<Int32>, weights: UnsafePointer<Float>) {
    let m = moeIndex[layer]
    guard m >= 0 else { return }
    let o = routeOffset(position, m)
    (expertIds.pointer + o).update(from: ids, count: perToken)
    (expertWeights.pointer + o).update(from: weights, count: perToken)
  }

  /// The rows [first, first + n) of topk, [n, L, K].
  public func topk(first: Int, count n: Int) -> UnsafeBufferPointer<Int32> {
    UnsafeBufferPointer(start: topk.pointer + first * topkStride, count: n * topkStride)
  }
  /// The rows [first, first + n) of the routes, [n, M, k] each.
  public func routes(first: Int, count n: Int) -> (ids: UnsafeBufferPointer<Int32>, weights: UnsafeBufferPointer<Float>) {
    (UnsafeBufferPointer(start: expertIds.pointer + first * routeStride, count: n * routeStride),
     UnsafeBufferPointer(start: expertWeights.pointer + first * routeStride, count: n * routeStride))
  }

  /// The selected keys of (position, layer): the entries before the first -1.
  public func selection(position: Int, layer: Int) -> [Int32] {
    let row = topkRow(position, layer)
    var out: [Int32] = []
    for i in 0..<topK where row[i] >= 0 { out.append(row[i]) }
    return out
  }
  /// The experts and weights of (position, layer); nil for a dense layer.
  public func route(position: Int, layer: Int) -> (experts: [Int32], weights: [Float])? {
    let m = moeIndex[layer]
    guard m >= 0 else { return nil }
    let o = routeOffset(position, m)
    return (Array(UnsafeBufferPointer(start: expertIds.pointer + o, count: perToken)),
            Array(UnsafeBufferPointer(start: expertWeights.pointer + o, count: perToken)))
  }
}
