// The rows of one MTP step gathered from many sessions (GLM5Model/MultiTokenPrediction.swift):
// each session's positions, the tokens after them and their hidden inputs, copied into buffers
// reserved before the call, then run as one Transformer.draft.

import GLM5Core
import GLM5Model

final class DraftRows {
  let capacity: Int
  let h: Int
  /// Hidden inputs and outputs [capacity, H].
  let input: FloatBuffer, output: FloatBuffer
  private var tokens: [Int32]
  private var parts: [(cache: LatentKVCache, start: Int, first: Int, count: Int)] = []
  private(set) var rows = 0

  init(model: Model, rows capacity: Int, segments: Int) throws(GLM5Error) {
    self.capacity = max(capacity, 1)
    h = model.config.hiddenSize
    input = try FloatBuffer(count: self.capacity * h, what: "MTP hidden rows")
    output = try FloatBuffer(count: self.capacity * h, what: "MTP output rows")
    tokens = [Int32](repeating: 0, count: self.capacity)
    parts.reserveCapacity(segments)
  }

  /// Add rows at positions start..<start+n: `token(i)` follows position start+i, `hidden(i)` is
  /// its hidden input. Returns the index of the first row. The caller keeps rows <= capacity.
  @discardableResult
  func add(cache: LatentKVCache, start: Int, count n: Int, token: (Int) -> Int32,
           hidden: (Int) -> UnsafePointer<Float>) throws(GLM5Error) -> Int {
    guard rows + n <= capacity else { throw .internal("DraftRows: \(rows + n) rows, sized for \(capacity)") }
    let first = rows
    for i in 0..<n {
      tokens[first + i] = token(i)
      (input.pointer + (first + i) * h).update(from: hidden(i), count: h)
    }
    parts.append((cache, start, first, n))
    rows += n
    return first
  }

  /// Output row i (valid after run).
  func out(_ i: Int) -> UnsafeMutablePointer<Float> { output.pointer + i * h }

  /// Run every gathered row as one MTP step.
  func run(_ transformer: Transformer, arena: ScratchArena, pool: ThreadPool) throws(GLM5Error) {
    guard rows > 0 else { return }
    let segs = parts.map { DraftSegment(cache: $0.cache, start: $0.start, tokens: tokens[$0.first..<($0.first + $0.count)]) }
    try transformer.draft(segs, hidden: input.pointer, out: output.pointer, arena: arena, pool: pool)
  }

  func reset() {
    parts.removeAll(keepingCapacity: true)
    rows = 0
  }
}
