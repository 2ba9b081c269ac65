// The fast kernels (Sources/GLM5Kernels/CPU) against their Reference twins on seeded random
// inputs and odd shapes, plus the row-invariance rule: an output element never depends on how
// many tokens share the call, how they are split, or how many threads run it.
// Seeds are fixed; every failure message names its seed and shape.

import CGLM5Kernels
import GLM5Core
@testable import GLM5Kernels
import Testing

let kernelDTypes: [DType] = [.f32, .bf16, .f16]

/// (N out, K in): K around the 8-lane blocks, the 2048 K-block and its tails; N around the tile
/// heights (2, 3, 4, 8) and the 24-row chunk; short rows with N ≥ 128 take the decode tile's
/// spread rows (Kernels.decodeSpread > 1), with a partial last group.
let linearShapes: [(n: Int, k: Int)] = [
  (1, 1), (1, 8), (3, 7), (5, 9), (8, 16), (17, 31), (24, 33), (25, 100), (49, 257), (7, 2049), (3, 4103),
  (300, 100), (203, 24),
]
/// Token counts covering every remainder of the 6-token tile (and 1 alone).
let linearTokens = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 17]

@Suite("Kernels") struct KernelTests {
  // MARK: - linear

  @Test("linear matches Reference.linear; gaps, guards and padding untouched", arguments: kernelDTypes)
  func linearMatchesReference(dtype: DType) {
    var rng = KernelRNG(seed: 0x11 + UInt64(dtype.rawValue))
    let pool = ThreadPool(threads: 2)
    for (n, k) in linearShapes {
      let w = TestWeights(dtype: dtype, rows: n, cols: k, rng: &rng)
      for T in linearTokens {
        let x = TestFloats(rows: T, cols: k, fill: .nan, rng: &rng)
        let y = TestFloats(rows: T, cols: n)
        let r = TestFloats(rows: T, cols: n)
        Kernels.linear(y.pointer, ldy: y.ld, x.pointer, ldx: x.ld, tokens: T, w.matrix, pool: pool)
        Reference.linear(r.pointer, ldy: r.ld, x.pointer, ldx: x.ld, tokens: T, w.matrix)
        let what = "seed \(rng.seed) \(dtype.name) N \(n) K \(k) T \(T)"
        var st = ErrorStats()
        var notDot = 0
        for t in 0..<T {
          for j in 0..<n {
            var absSum: Double = 0
            for c in 0..<k { absSum += abs(Double(x[t, c]) * Double(w.matrix.element(j, c))) }
            // Depth of the fma chain per element: K/8 lane steps, 3 reduction adds, K mod 8 tail.
            let bound = Double(k / 8 + 3 + k % 8 + 1) * u24 * absSum + u24 * abs(Double(r[t, j]))
            st.add(y[t, j], r[t, j], bound: bound, at: t * n + j)
            // Every element is exactly the 1 × 1 sequence, whatever tile computed it.
            let d = Kernels.dot(x.row(t), w.matrix.data + j * w.matrix.rowStride * dtype.byteSize, k, dtype)
            if d.bitPattern != y[t, j].bitPattern { notDot += 1 }
          }
        }
        #expect(st.nans == 0 && !y.values.contains { $0.isNaN }, "\(what): NaN in the output")
        #expect(st.worst <= 1, "\(what): error \(st.worst)× its bound at \(st.worstAt)")
        #expect(st.nmse <= 1e-10, "\(what): NMSE \(st.nmse)")
        #expect(notDot == 0, "\(what): \(notDot) elements differ from Kernels.dot")
        #expect(y.damaged == 0, "\(what): \(y.damaged) gap/guard values overwritten")
      }
    }
  }

  @Test("linear: a NaN in x poisons only its token's row; a NaN weight only its column", arguments: kernelDTypes)
  func linearNaNPropagation(dtype: DType) {
    var rng = KernelRNG(seed: 0x21 + UInt64(dtype.rawValue))
    let (n, k, T) = (29, 2061, 9)
    let w = TestWeights(dtype: dtype, rows: n, cols: k, rng: &rng)
    let x = TestFloats(rows: T, cols: k, fill: .nan, rng: &rng)
    let clean = TestFloats(rows: T, cols: n)
    let pool = ThreadPool(threads: 2)
    Kernels.linear(clean.pointer, ldy: clean.ld, x.pointer, ldx: x.ld, tokens: T, w.matrix, pool: pool)
    let what = "seed \(rng.seed) \(dtype.name)"

    for (t, c) in [(0, 0), (4, 1000), (8, k - 1)] {
      let saved = x[t, c]
      x[t, c] = .nan
      let y = TestFloats(rows: T, cols: n)
      Kernels.linear(y.pointer, ldy: y.ld, x.pointer, ldx: x.ld, tokens: T, w.matrix, pool: pool)
      x[t, c] = saved
      for tt in 0..<T {
        for j in 0..<n {
          if tt == t {
            #expect(y[tt, j].isNaN, "\(what): x[\(t), \(c)] = NaN but y[\(tt), \(j)] = \(y[tt, j])")
          } else {
            #expect(y[tt, j].bitPattern == clean[tt, j].bitPattern, "\(what): x NaN at token \(t) changed token \(tt)")
          }
        }
      }
      #expect(y.damaged == 0)
    }
    for (j, c) in [(0, 0), (13, 2048), (n - 1, k - 1)] {
      let saved = w.matrix.element(j, c)
      w.setNaN(j, c)
      let y = TestFloats(rows: T, cols: n)
      Kernels.linear(y.pointer, ldy: y.ld, x.pointer, ldx: x.ld, tokens: T, w.matrix, pool: pool)
      for tt in 0..<T {
        for jj in 0..<n {
          if jj == j {
            #expect(y[tt, jj].isNaN, "\(what): W[\(j), \(c)] = NaN but y[\(tt), \(jj)] = \(y[tt, jj])")
          } else {
            #expect(y[tt, jj].bitPattern == clean[tt, jj].bitPattern, "\(what): W NaN in row \(j) changed column \(jj)")
          }
        }
      }
      w.set(j, c, saved)
    }
  }

  @Test("linear is row-invariant: any token split and any thread count give the same bits",
        arguments: kernelDTypes, [(61, 2053), (333, 77)])
  func linearRowInvariance(dtype: DType, shape: (Int, Int)) {
    var rng = KernelRNG(seed: 0x31 + UInt64(dtype.rawValue))
    let (n, k, T) = (shape.0, shape.1, 17)
    let w = TestWeights(dtype: dtype, rows: n, cols: k, rng: &rng)
    let x = TestFloats(rows: T, cols: k, rng: &rng)
    let what = "seed \(rng.seed) \(dtype.name) N \(n) K \(k)"

    // Each token alone (the decode path) is the baseline.
    let alone = TestFloats(rows: T, cols: n)
    for t in 0..<T {
      Kernels.linear(alone.row(t), ldy: alone.ld, x.row(t), ldx: x.ld, tokens: 1, w.matrix, pool: ThreadPool(threads: 2))
    }
    let splits: [[Int]] = [[17], [6, 11], [2, 3, 4, 8], [5, 12], [7, 10], [9, 8], [1, 16], [4, 4, 4, 5], [3, 3, 3, 3, 3, 2]]
    for threads in [1, 2, 3] {
      let pool = ThreadPool(threads: threads)
      for split in splits {
        let y = TestFloats(rows: T, cols: n)
        var t0 = 0
        for part in split {
          Kernels.linear(y.row(t0), ldy: y.ld, x.row(t0), ldx: x.ld, tokens: part, w.matrix, pool: pool)
          t0 += part
        }
        let diff = zip(y.bits, alone.bits).filter { $0 != $1 }.count
        #expect(diff == 0, "\(what): split \(split) on \(threads) threads: \(diff) elements differ from one token at a time")
        #expect(y.damaged == 0)
      }
    }
  }

  @Test("linear with no tokens or no rows writes nothing")
  func linearEmpty() {
    var rng = KernelRNG(seed: 0x41)
    let w = TestWeights(dtype: .bf16, rows: 4, cols: 9, rng: &rng)
    let x = TestFloats(rows: 1, cols: 9, rng: &rng)
    let y = TestFloats(rows: 1, cols: 4)
    Kernels.linear(y.pointer, ldy: y.ld, x.pointer, ldx: x.ld, tokens: 0, w.matrix, pool: ThreadPool(threads: 2))
    Kernels.linear(y.pointer, ldy: y.ld, x.pointer, ldx: x.ld, tokens: 1, w.matrix.rows(0, 0), pool: ThreadPool(threads: 2))
    #expect(y.values.allSatisfy { $0.bitPattern == TestFloats.sentinel.bitPattern })
  }

  // MARK: - linearTransposed

  @Test("linearTransposed matches Reference and is row-invariant", arguments: kernelDTypes)
  func linearTransposed(dtype: DType) {
    var rng = KernelRNG(seed: 0x51 + UInt64(dtype.rawValue))
    // (N rows summed over, K output columns): K around 8 and the 16/64-column tiles.
    let shapes: [(n: Int, k: Int)] = [(1, 1), (3, 7), (5, 8), (2, 15), (7, 16), (9, 17), (4, 24), (192, 64), (37, 133), (13, 515)]
    for (n, k) in shapes {
      let w = TestWeights(dtype: dtype, rows: n, cols: k, rng: &rng)
      let T = 11
      let x = TestFloats(rows: T, cols: n, fill: .nan, rng: &rng)
      let what = "seed \(rng.seed) \(dtype.name) N \(n) K \(k)"
      let r = TestFloats(rows: T, cols: k)
      Reference.linearTransposed(r.pointer, ldy: r.ld, x.pointer, ldx: x.ld, tokens: T, w.matrix)
      let alone = TestFloats(rows: T, cols: k)
      for t in 0..<T { Kernels.linearTransposed(alone.row(t), ldy: alone.ld, x.row(t), ldx: x.ld, tokens: 1, w.matrix) }
      var st = ErrorStats()
      for t in 0..<T {
        for c in 0..<k {
          var absSum: Double = 0
          for j in 0..<n { absSum += abs(Double(x[t, j]) * Double(w.matrix.element(j, c))) }
          st.add(alone[t, c], r[t, c], bound: Double(n + 1) * u24 * absSum + u24 * abs(Double(r[t, c])), at: t * k + c)
          // Each element is the scalar fma chain over n in order.
          var s: Float = 0
          for j in 0..<n { s = s.addingProduct(x[t, j], w.matrix.element(j, c)) }
          #expect(s.bitPattern == alone[t, c].bitPattern, "\(what): y[\(t), \(c)] is not the in-order fma chain")
        }
      }
      #expect(st.nans == 0 && !alone.values.contains { $0.isNaN }, "\(what): NaN in the output")
      #expect(st.worst <= 1, "\(what): error \(st.worst)× its bound at \(st.worstAt)")
      #expect(st.nmse <= 1e-10, "\(what): NMSE \(st.nmse)")
      #expect(alone.damaged == 0, "\(what): gap/guard values overwritten")
      for split in [[11], [4, 7], [3, 8], [5, 6], [8, 2, 1]] {
        let y = TestFloats(rows: T, cols: k)
        var t0 = 0
        for part in split {
          Kernels.linearTransposed(y.row(t0), ldy: y.ld, x.row(t0), ldx: x.ld, tokens: part, w.matrix)
          t0 += part
        }
        let diff = zip(y.bits, alone.bits).filter { $0 != $1 }.count
        #expect(diff == 0, "\(what): split \(split): \(diff) elements differ from one token at a time")
        #expect(y.damaged == 0, "\(what): split \(split) overwrote gap/guard values")
      }
    }
  }

  // MARK: - dot and axpy

  @Test("dot matches Reference.dot, does not depend on alignment, and handles n = 0")
  func dot() {
    var rng = KernelRNG(seed: 0x61)
    for n in [0, 1, 7, 8, 9, 16, 24, 31, 32, 33, 40, 56, 63, 64, 65, 100, 128, 511, 512, 576, 1000] {
      // Copies at two different offsets: the result must not depend on where the data sits.
      let buf = UnsafeMutablePointer<Float>.allocate(capacity: 2 * (n + 8))
      defer { buf.deallocate() }
      let a = buf, b = buf + n + 3
      for i in 0..<n { a[i] = rng.uniform(); b[i] = rng.uniform() }
      let a2 = UnsafeMutablePointer<Float>.allocate(capacity: n + 1)
      let b2 = UnsafeMutablePointer<Float>.allocate(capacity: n + 1)
      defer { a2.deallocate(); b2.deallocate() }
      (a2 + 1).update(from: a, count: n)
      b2.update(from: b, count: n)
      let got = Kernels.dot(a, b, n)
      let want = Reference.dot(a, b, n)
      var absSum: Double = 0
      for i in 0..<n { absSum += abs(Double(a[i]) * Double(b[i])) }
      let bound = Double(n / 32 + 2 + 3 + n % 8 + 3) * u24 * absSum + u24 * abs(Double(want))
      #expect(abs(Double(got) - Double(want)) <= bound, "seed \(rng.seed) n \(n): dot \(got) vs \(want)")
      #expect(Kernels.dot(a2 + 1, b2, n).bitPattern == got.bitPattern, "seed \(rng.seed) n \(n): depends on alignment")
      if n == 0 { #expect(got == 0) }
    }
  }

  @Test("axpy is bitwise the scalar fma loop, matches Reference, and stays in bounds")
  func axpy() {
    var rng = KernelRNG(seed: 0x71)
    for n in [0, 1, 7, 8, 9, 31, 32, 33, 63, 64, 65, 100, 512, 515] {
      for offset in [0, 1] {
        let x = TestFloats(rows: 1, cols: n + offset, rng: &rng)
        let y = TestFloats(rows: 1, cols: n + offset, rng: &rng)
        let r = TestFloats(rows: 1, cols: n + offset)
        for i in 0..<(n + offset) { r[0, i] = y[0, i] }
        let scalar = y.values
        let a = rng.uniform() * 3
        Kernels.axpy(y.pointer + offset, a, x.pointer + offset, n)
        Reference.axpy(r.pointer + offset, a, x.pointer + offset, n)
        for i in 0..<(n + offset) {
          let s = i < offset ? scalar[i] : scalar[i].addingProduct(a, x[0, i])
          #expect(y[0, i].bitPattern == s.bitPattern, "seed \(rng.seed) n \(n) offset \(offset): y[\(i)] is not the scalar fma")
          #expect(abs(Double(y[0, i]) - Double(r[0, i])) <= u24 * abs(Double(r[0, i])) * 2, "seed \(rng.seed) n \(n): y[\(i)] vs Reference")
        }
        #expect(y.damaged == 0, "seed \(rng.seed) n \(n) offset \(offset): wrote past the end")
      }
    }
  }

  // MARK: - Norms, RoPE, activations

  @Test("rmsNorm matches Reference.rmsNorm")
  func rmsNorm() {
    var rng = KernelRNG(seed: 0x81)
    for n in [1, 2, 7, 64, 100, 512, 6144] {
      for scale: Float in [1e-3, 1, 300] {
        let x = TestFloats(rows: 1, cols: n, rng: &rng, scale: scale)
        let w = TestFloats(rows: 1, cols: n, rng: &rng)
        let y = TestFloats(rows: 1, cols: n), r = TestFloats(rows: 1, cols: n)
        Kernels.rmsNorm(y.pointer, x.pointer, w.pointer, n, eps: 1e-6)
        Reference.rmsNorm(r.pointer, x.pointer, w.pointer, n, eps: 1e-6)
        var st = ErrorStats()
        // A serial Float sum of squares of depth n, then a few roundings per element.
        for i in 0..<n { st.add(y[0, i], r[0, i], bound: (Double(n) + 8) * u24 * abs(Double(r[0, i])) + 1e-38, at: i) }
        let what = "seed \(rng.seed) n \(n) scale \(scale)"
        #expect(st.nans == 0 && st.worst <= 1, "\(what): error \(st.worst)× its bound at \(st.worstAt)")
        #expect(st.nmse <= 1e-10, "\(what): NMSE \(st.nmse)")
        #expect(y.damaged == 0)
      }
    }
    // In place, as MLA calls it.
    let x = TestFloats(rows: 1, cols: 33, rng: &rng)
    let w = TestFloats(rows: 1, cols: 33, rng: &rng)
    let y = TestFloats(rows: 1, cols: 33)
    Kernels.rmsNorm(y.pointer, x.pointer, w.pointer, 33, eps: 1e-6)
    Kernels.rmsNorm(x.pointer, x.pointer, w.pointer, 33, eps: 1e-6)
    #expect(x.bits == y.bits)
  }

  @Test("layerNorm matches Reference.layerNorm, also with a large mean")
  func layerNorm() {
    var rng = KernelRNG(seed: 0x91)
    for n in [1, 2, 7, 64, 128, 1000] {
      for offset: Float in [0, 3, -50] {
        let x = TestFloats(rows: 1, cols: n, rng: &rng)
        for i in 0..<n { x[0, i] += offset }
        let w = TestFloats(rows: 1, cols: n, rng: &rng)
        let b = TestFloats(rows: 1, cols: n, rng: &rng)
        let y = TestFloats(rows: 1, cols: n), r = TestFloats(rows: 1, cols: n)
        Kernels.layerNorm(y.pointer, x.pointer, w.pointer, b.pointer, n, eps: 1e-6)
        Reference.layerNorm(r.pointer, x.pointer, w.pointer, b.pointer, n, eps: 1e-6)
        var st = ErrorStats()
        // The Float mean carries ~n·u·|offset| of error into every (x - mean), relative to the
        // spread (~0.6) of the centred values.
        let rel = (Double(n) * u24 * (1 + Double(abs(offset))) + 16 * u24) * 4
        for i in 0..<n { st.add(y[0, i], r[0, i], bound: rel * (abs(Double(w[0, i])) * 4 + abs(Double(b[0, i]))) + 1e-30, at: i) }
        let what = "seed \(rng.seed) n \(n) offset \(offset)"
        #expect(st.nans == 0 && st.worst <= 1, "\(what): error \(st.worst)× its bound at \(st.worstAt)")
        #expect(y.damaged == 0)
      }
    }
  }

  @Test("ropeInterleaved equals Reference.ropeInterleaved bitwise and touches only 2·pairs values")
  func rope() {
    var rng = KernelRNG(seed: 0xA1)
    for pairs in [0, 1, 3, 8, 16, 32, 33] {
      let x = TestFloats(rows: 1, cols: 2 * pairs, rng: &rng, scale: 5)
      let r = TestFloats(rows: 1, cols: 2 * pairs)
      for i in 0..<(2 * pairs) { r[0, i] = x[0, i] }
      let cos = TestFloats(rows: 1, cols: pairs), sin = TestFloats(rows: 1, cols: pairs)
      for i in 0..<pairs {
        let a = rng.uniform() * 100
        cos[0, i] = _cosf(a)
        sin[0, i] = _sinf(a)
      }
      Kernels.ropeInterleaved(x.pointer, cos: cos.pointer, sin: sin.pointer, pairs: pairs)
      Reference.ropeInterleaved(r.pointer, cos: cos.pointer, sin: sin.pointer, pairs: pairs)
      let diff = zip(x.bits, r.bits).filter { $0 != $1 }.count
      #expect(diff == 0, "seed \(rng.seed) pairs \(pairs): \(diff) values differ")
      #expect(x.damaged == 0, "seed \(rng.seed) pairs \(pairs): wrote past 2·pairs")
    }
  }

  @Test("ropeHalfSplit equals Reference.ropeHalfSplit (transformers' rotate_half form) bitwise, touches only 2·pairs values, and differs from interleaved")
  func ropeHalfSplit() {
    var rng = KernelRNG(seed: 0xA2)
    for pairs in [0, 1, 3, 8, 16, 32, 33] {
      let x = TestFloats(rows: 1, cols: 2 * pairs, rng: &rng, scale: 5)
      let r = TestFloats(rows: 1, cols: 2 * pairs), il = TestFloats(rows: 1, cols: 2 * pairs)
      for i in 0..<(2 * pairs) { r[0, i] = x[0, i]; il[0, i] = x[0, i] }
      let cos = TestFloats(rows: 1, cols: pairs), sin = TestFloats(rows: 1, cols: pairs)
      for i in 0..<pairs {
        let a = rng.uniform() * 100
        cos[0, i] = _cosf(a)
        sin[0, i] = _sinf(a)
      }
      Kernels.ropeHalfSplit(x.pointer, cos: cos.pointer, sin: sin.pointer, pairs: pairs)
      Reference.ropeHalfSplit(r.pointer, cos: cos.pointer, sin: sin.pointer, pairs: pairs)
      Kernels.ropeInterleaved(il.pointer, cos: cos.pointer, sin: sin.pointer, pairs: pairs)
      let diff = zip(x.bits, r.bits).filter { $0 != $1 }.count
      #expect(diff == 0, "seed \(rng.seed) pairs \(pairs): \(diff) values differ")
      #expect(x.damaged == 0, "seed \(rng.seed) pairs \(pairs): wrote past 2·pairs")
      if pairs >= 2 { #expect(x.bits != il.bits, "seed \(rng.seed) pairs \(pairs): the two layouts agree") }
    }
  }

  @Test("softmax matches Reference.softmax, including -inf entries and large logits")
  func softmax() {
    var rng = KernelRNG(seed: 0xB1)
    for n in [1, 2, 7, 64, 100, 2048] {
      for scale: Float in [1, 30, 200] {
        let x = TestFloats(rows: 1, cols: n, rng: &rng, scale: scale)
        if n > 3 { x[0, 1] = -.infinity; x[0, n - 1] = -.infinity }
        let r = TestFloats(rows: 1, cols: n)
        for i in 0..<n { r[0, i] = x[0, i] }
        Kernels.softmax(x.pointer, n)
        Reference.softmax(r.pointer, n)
        var st = ErrorStats()
        var sum: Double = 0
        for i in 0..<n {
          st.add(x[0, i], r[0, i], bound: (Double(n) + 16) * u24 * abs(Double(r[0, i])) + 1e-38, at: i)
          sum += Double(x[0, i])
        }
        let what = "seed \(rng.seed) n \(n) scale \(scale)"
        #expect(st.nans == 0 && st.worst <= 1, "\(what): error \(st.worst)× its bound at \(st.worstAt)")
        #expect(abs(sum - 1) <= Double(n + 4) * u24, "\(what): sums to \(sum)")
        if n > 3 { #expect(x[0, 1] == 0 && x[0, n - 1] == 0, "\(what): -inf logits must get probability 0") }
        #expect(x.damaged == 0)
      }
    }
  }

  @Test("swiglu matches a Reference.swiglu twin, saturating cleanly at ±large inputs")
  func swiglu() {
    var rng = KernelRNG(seed: 0xC1)
    for n in [1, 7, 64, 1000] {
      let g = TestFloats(rows: 1, cols: n, rng: &rng, scale: 12)
      let u = TestFloats(rows: 1, cols: n, rng: &rng, scale: 3)
      if n >= 7 { g[0, 0] = 100; g[0, 1] = -100; g[0, 2] = 0; g[0, 3] = -0.0; g[0, 4] = 88.8; g[0, 5] = -88.8 }
      let r = TestFloats(rows: 1, cols: n)
      for i in 0..<n { r[0, i] = g[0, i] }
      Kernels.swiglu(g.pointer, u.pointer, n)
      Reference.swiglu(r.pointer, u.pointer, n)
      var st = ErrorStats()
      // A few roundings (exp, add, divide, multiply); below 1e-30 the Float path may flush what
      // Double still resolves (silu(-100) ≈ -4e-42).
      for i in 0..<n { st.add(g[0, i], r[0, i], bound: 8 * u24 * abs(Double(r[0, i])) + 1e-30, at: i) }
      #expect(st.nans == 0 && st.worst <= 1, "seed \(rng.seed) n \(n): error \(st.worst)× its bound at \(st.worstAt)")
      #expect(g.damaged == 0)
    }
  }

  @Test("logSumExp matches a Reference.logSumExp twin, with the ±inf / NaN / empty edge cases")
  func logSumExp() {
    var rng = KernelRNG(seed: 0xD1)
    for n in [1, 2, 7, 100, 4096, 151_552] {
      for scale: Float in [1, 20, 500] {
        let x = TestFloats(rows: 1, cols: n, rng: &rng, scale: scale)
        let got = Kernels.logSumExp(x.pointer, n)
        let want = Reference.logSumExp(x.pointer, n)
        // The same Double arithmetic as the reference twin: equal.
        #expect(got == want, "seed \(rng.seed) n \(n) scale \(scale): \(got) vs \(want)")
      }
    }
    func lse(_ v: [Float]) -> (Double, Double) {
      v.withUnsafeBufferPointer { b in (Kernels.logSumExp(b.baseAddress!, v.count), Reference.logSumExp(b.baseAddress!, v.count)) }
    }
    let cases: [([Float], Double)] = [
      ([-.infinity, -.infinity], -.infinity),
      ([1, .infinity, 2], .infinity),
      ([1, .nan, 2], .nan),
      ([.nan, -.infinity], .nan),
      ([.infinity, .nan], .nan),
      ([0], 0),
      ([-.infinity, 0, -.infinity], 0),
    ]
    for (v, expected) in cases {
      let (k, r) = lse(v)
      if expected.isNaN {
        #expect(k.isNaN && r.isNaN, "\(v): kernel \(k), reference \(r)")
      } else {
        #expect(k == expected && r == expected, "\(v): kernel \(k), reference \(r), expected \(expected)")
      }
    }
    let empty = UnsafeMutablePointer<Float>.allocate(capacity: 1)
    defer { empty.deallocate() }
    #expect(Kernels.logSumExp(empty, 0) == -.infinity && Reference.logSumExp(empty, 0) == -.infinity)
  }

  // MARK: - topK

  @Test("topK equals Reference.topK exactly: ties to the lower index, NaN last, k = 0 and k > n")
  func topK() {
    var rng = KernelRNG(seed: 0xE1)
    var out: [Int32] = [99]
    for n in [0, 1, 2, 7, 64, 257, 2048] {
      for mode in 0..<4 {
        var s = [Float](repeating: 0, count: n)
        for i in 0..<n {
          switch mode {
          case 0: s[i] = rng.uniform()  // distinct (almost surely)
          case 1: s[i] = Float(rng.below(4))  // many ties
          case 2:  // ties, NaN, ±inf, ±0
            let pick = rng.below(8)
            s[i] = [Float.nan, .infinity, -.infinity, 0, -0.0, 1, 1, -1][pick]
          default: s[i] = rng.below(3) == 0 ? .nan : Float(rng.below(3))
          }
        }
        for k in Set([0, 1, 2, 3, n / 2, max(n - 1, 0), n, n + 5]) {
          let what = "seed \(rng.seed) n \(n) mode \(mode) k \(k)"
          s.withUnsafeBufferPointer { b in
            let p = b.baseAddress ?? UnsafePointer(bitPattern: 16)!
            Kernels.topK(p, n, k, into: &out)
            let want = Reference.topK(p, n, k)
            #expect(out == want, "\(what): \(out.prefix(12)) vs \(want.prefix(12))")
            #expect(out.count == min(k, n), "\(what)")
          }
        }
      }
    }
  }
}

#if canImport(Glibc)
import Glibc
func _cosf(_ x: Float) -> Float { Glibc.cosf(x) }
func _sinf(_ x: Float) -> Float { Glibc.sinf(x) }
#endif

extension KernelTests {
  @Test("multiQueryScores / multiQuerySum match their Reference twins; the sum is bitwise the per-head axpy loop; odd heads, keys and ranks; every ISA")
  func multiQuery() {
    defer { InstructionSet.force(nil) }
    for isa in [InstructionSet.avx2, .avx512] {
      InstructionSet.force(isa)
      multiQueryCases()
    }
    // Both ISAs give the same bits (scores and sums), on the shapes MLA uses and odd ones.
    var rng = KernelRNG(seed: 0x3B)
    for (H, R, Dr, n, rows) in [(16, 512, 64, 70, 100), (5, 40, 16, 3, 9), (3, 72, 12, 33, 40)] {
      let qn = (0..<(H * R)).map { _ in rng.uniform() }, qr = (0..<(H * Dr)).map { _ in rng.uniform() }
      let l = (0..<(rows * R)).map { _ in rng.uniform() }, k = (0..<(rows * Dr)).map { _ in rng.uniform() }
      let keys = (0..<n).map { _ in Int32(rng.next() % UInt64(rows)) }
      let p = (0..<(H * n)).map { _ in rng.uniform() }
      var out: [[UInt32]] = []
      for isa in [InstructionSet.avx2, .avx512] {
        InstructionSet.force(isa)
        var sc = [Float](repeating: .nan, count: H * n), o = [Float](repeating: .nan, count: H * R)
        var qt = [Float](repeating: .nan, count: (R + Dr) * H)
        Kernels.packMultiQuery(&qt, ldq: H, qn: qn, ldqn: R, qr: qr, ldqr: Dr, heads: H, rank: R, ropeDims: Dr)
        Kernels.multiQueryScores(&sc, lds: n, q: qt, ldq: H, heads: H, latent: l, rank: R, rope: k, ropeDims: Dr,
                                 keys: keys, count: n, scale: 0.05)
        Kernels.multiQuerySum(&o, ldo: R, p, ldp: n, heads: H, latent: l, rank: R, ldl: R, keys: keys, count: n)
        out.append((sc + o).map(\.bitPattern))
      }
      let diff = zip(out[0], out[1]).filter { $0 != $1 }.count
      #expect(diff == 0, "H \(H) R \(R) Dr \(Dr) n \(n): \(diff) of \(out[0].count) values differ between AVX2 and AVX-512")
    }
  }

  func multiQueryCases() {
    var rng = KernelRNG(seed: 0x3A)
    for (H, R, Dr, n, rows) in [(32, 512, 64, 37, 80), (16, 512, 64, 70, 90), (5, 40, 16, 1, 3), (4, 19, 6, 9, 12), (7, 64, 8, 200, 256), (64, 512, 64, 17, 40), (130, 24, 8, 5, 9), (20, 70, 10, 33, 50)] {
      let qn = TestFloats(rows: H, cols: R, rng: &rng), qr = TestFloats(rows: H, cols: Dr, rng: &rng)
      let lat = TestFloats(rows: rows, cols: R, rng: &rng), kr = TestFloats(rows: rows, cols: Dr, rng: &rng)
      var keys = (0..<n).map { _ in Int32(rng.next() % UInt64(rows)) }
      keys.sort()
      let scale: Float = 0.07
      var got = [Float](repeating: .nan, count: H * n), want = got
      keys.withUnsafeBufferPointer { kb in
        // Packed copies (the kernels take plain row strides).
        var l = [Float](), k = [Float](), a = [Float](), b = [Float]()
        for r in 0..<rows { for c in 0..<R { l.append(lat[r, c]) }; for c in 0..<Dr { k.append(kr[r, c]) } }
        for h in 0..<H { for c in 0..<R { a.append(qn[h, c]) }; for c in 0..<Dr { b.append(qr[h, c]) } }
        // The packed queries with a wider stride than H (a block of heads of a packed row).
        let ldq = H + 3
        var qt = [Float](repeating: .nan, count: (R + Dr) * ldq)
        Kernels.packMultiQuery(&qt, ldq: ldq, qn: a, ldqn: R, qr: b, ldqr: Dr, heads: H, rank: R, ropeDims: Dr)
        Kernels.multiQueryScores(&got, lds: n, q: qt, ldq: ldq, heads: H, latent: l, rank: R, rope: k, ropeDims: Dr,
                                 keys: kb.baseAddress!, count: n, scale: scale)
        Reference.multiQueryScores(&want, lds: n, qn: a, ldqn: R, qr: b, ldqr: Dr, heads: H, latent: l, rank: R, rope: k, ropeDims: Dr,
                                   keys: kb.baseAddress!, count: n, scale: scale)
        for i in 0..<(H * n) {
          // One fp32 FMA chain of R + Dr terms: |error| ≤ (R + Dr) · u · Σ|terms|, far below this.
          #expect(abs(got[i] - want[i]) <= 1e-5 * (1 + abs(want[i])), "H \(H) R \(R) n \(n): score \(i) \(got[i]) vs \(want[i])")
        }
        // Bitwise the sequence: one fma chain over the latent columns, then the rope columns.
        var chain = 0
        for h in 0..<H {
          for i in 0..<n {
            let j = Int(kb[i])
            var v: Float = 0
            for c in 0..<R { v = v.addingProduct(a[h * R + c], l[j * R + c]) }
            for c in 0..<Dr { v = v.addingProduct(b[h * Dr + c], k[j * Dr + c]) }
            if (v * scale).bitPattern != got[h * n + i].bitPattern { chain += 1 }
          }
        }
        #expect(chain == 0, "H \(H) R \(R) Dr \(Dr) n \(n): \(chain) scores are not the fma chain's bits")
        // The weighted sum, against the reference and against the per-head axpy loop (bitwise).
        var p = (0..<(H * n)).map { _ in rng.uniform() }
        var o = [Float](repeating: .nan, count: H * R), oRef = o, oAxpy = [Float](repeating: 0, count: H * R)
        Kernels.multiQuerySum(&o, ldo: R, &p, ldp: n, heads: H, latent: l, rank: R, ldl: R, keys: kb.baseAddress!, count: n)
        Reference.multiQuerySum(&oRef, ldo: R, &p, ldp: n, heads: H, latent: l, rank: R, ldl: R, keys: kb.baseAddress!, count: n)
        l.withUnsafeBufferPointer { lb in
          oAxpy.withUnsafeMutableBufferPointer { ob in
            for h in 0..<H { for i in 0..<n { Kernels.axpy(ob.baseAddress! + h * R, p[h * n + i], lb.baseAddress! + Int(kb[i]) * R, R) } }
          }
        }
        #expect(o.map(\.bitPattern) == oAxpy.map(\.bitPattern), "H \(H) R \(R) n \(n): the sum differs from the axpy loop")
        // Column ranges (as MLA splits the work) give the same bits.
        var oCols = [Float](repeating: .nan, count: H * R)
        var c0 = 0
        while c0 < R {
          let w = min(24, R - c0)
          l.withUnsafeBufferPointer { lb in
            oCols.withUnsafeMutableBufferPointer { ob in
              Kernels.multiQuerySum(ob.baseAddress! + c0, ldo: R, p, ldp: n, heads: H, latent: lb.baseAddress! + c0, rank: w, ldl: R,
                                    keys: kb.baseAddress!, count: n)
            }
          }
          c0 += w
        }
        #expect(oCols.map(\.bitPattern) == o.map(\.bitPattern), "H \(H) R \(R) n \(n): column ranges change the sum")
        for i in 0..<(H * R) { #expect(abs(o[i] - oRef[i]) <= 1e-5 * (1 + abs(oRef[i]))) }
      }
    }
  }
}

extension KernelTests {
  @Test("indexScores (C) gives Reference.indexScores' bits: head dims 128 and odd ones, 1-7 and 32 heads, key runs at any offset, every ISA")
  func indexScoresMatchReference() {
    defer { InstructionSet.force(nil) }
    var rng = KernelRNG(seed: 0x1D)
    for isa in [InstructionSet.avx2, .avx512] {
    let used = InstructionSet.force(isa)
    for (heads, dim) in [(32, 128), (1, 128), (2, 12), (3, 40), (4, 72), (5, 16), (7, 8), (6, 100), (3, 5), (5, 32), (7, 64), (3, 96), (33, 128)] {
      let keys = 70
      let q = (0..<(heads * dim)).map { _ in rng.uniform() }
      var w = (0..<heads).map { _ in rng.uniform() }
      w[0] = abs(w[0]) + 0.1  // mixed signs, but head 0 positive
      // Some keys parallel to a query (large positive dots), some opposite (ReLU drops them).
      var k = (0..<(keys * dim)).map { _ in rng.uniform() }
      for j in stride(from: 0, to: keys, by: 9) { for i in 0..<dim { k[j * dim + i] = (j % 2 == 0 ? 1 : -1) * q[i] } }
      let scale = 1 / Float(dim).squareRoot()
      var got = [Float](repeating: .nan, count: keys), want = got
      for (j0, j1) in [(0, keys), (3, 4), (17, 61)] {
        Kernels.indexScores(query: q, headWeights: w, heads: heads, dim: dim, keys: k, from: j0, to: j1, scale: scale, scores: &got)
        Reference.indexScores(query: q, headWeights: w, heads: heads, dim: dim, keys: k, from: j0, to: j1, scale: scale, scores: &want)
      }
      #expect(got.map(\.bitPattern) == want.map(\.bitPattern), "heads \(heads) dim \(dim) \(used)")
      #expect(!got.contains { $0.isNaN } && got.contains { $0 > 0 }, "heads \(heads) dim \(dim): scores \(got.prefix(4))")
    }
    }
  }
}

extension KernelTests {
  @Test("topKAscending picks topK's set (ties to the lower index, NaN last, −0 = +0, ±inf), in ascending order")
  func topKAscendingMatchesTopK() {
    var rng = KernelRNG(seed: 0x70C)
    for n in [1, 2, 7, 64, 300, 5000] {
      for k in [1, 2, n / 3, n / 2, n - 1, n, n + 5] where k > 0 {
        for variant in 0..<4 {
          var s = (0..<n).map { _ in rng.uniform() }
          switch variant {
          case 1: for i in 0..<n { s[i] = Float(rng.below(5)) - 2 }  // many ties, zeros
          case 2: for i in 0..<n where rng.below(4) == 0 { s[i] = [Float.nan, -0.0, 0.0, .infinity, -.infinity][rng.below(5)] }
          case 3: for i in 0..<n { s[i] = Float(bitPattern: UInt32(truncatingIfNeeded: rng.next())) }  // any bits, NaN payloads too
          default: break
          }
          var heap = [Int32](repeating: -1, count: max(k, 1))
          let m = Kernels.topK(s, n, k, heap: &heap)
          let want = Array(heap[0..<m]).sorted()
          var got = [Int32](repeating: -1, count: n)
          let c = Kernels.topKAscending(s, n, k, out: &got)
          #expect(c == m && Array(got[0..<c]) == want, "n \(n) k \(k) variant \(variant): \(c) vs \(m)")
        }
      }
    }
  }
}

extension KernelTests {
  @Test("rankOrder gives topK's rank order (ties to the lower index, NaN last, −0 = +0), and sortAscending with scratch sorts")
  func rankOrderMatchesTopK() {
    var rng = KernelRNG(seed: 0x4A7)
    for n in [1, 7, 300, 5000] {
      for k in [1, n / 3, n - 1, n, n + 5] where k > 0 {
        for variant in 0..<4 {
          var s = (0..<n).map { _ in rng.uniform() }
          switch variant {
          case 1: for i in 0..<n { s[i] = Float(rng.below(5)) - 2 }
          case 2: for i in 0..<n where rng.below(4) == 0 { s[i] = [Float.nan, -0.0, 0.0, .infinity, -.infinity][rng.below(5)] }
          case 3: for i in 0..<n { s[i] = Float(bitPattern: UInt32(truncatingIfNeeded: rng.next())) }
          default: break
          }
          var heap = [Int32](repeating: -1, count: max(k, 1))
          let m = Kernels.topK(s, n, k, heap: &heap)
          var out = [Int32](repeating: -1, count: max(k, 1)), scratch = out
          let c = Kernels.rankOrder(s, n, k, out: &out, scratch: &scratch)
          #expect(c == m && Array(out[0..<c]) == Array(heap[0..<m]), "n \(n) k \(k) variant \(variant)")
          var ids = Array(heap[0..<m]).reversed().map { $0 }
          var sc = [Int32](repeating: 0, count: max(m, 1))
          Kernels.sortAscending(&ids, m, scratch: &sc)
          #expect(ids == Array(heap[0..<m]).sorted(), "sortAscending n \(n) k \(k)")
        }
      }
    }
  }
}

extension KernelTests {
  @Test("The C expf (glm5k_exp), softmax, softmaxRows and swiglu give the plain float loops' bits with libm's expf: edge inputs, every exponent, random values, every ISA")
  func vectorExpIsLibm() {
    defer { InstructionSet.force(nil) }
    for isa in [InstructionSet.avx2, .avx512] {
    let used = InstructionSet.force(isa)
    var rng = KernelRNG(seed: 0xE7)
    // expf: the edges of its ranges, subnormal results, every exponent, and random bit patterns.
    var x: [Float] = [0, -0.0, 1, -1, .infinity, -.infinity, .nan, 88.72283, 88.72284, 88.7229, -87.33654, -103.972, -103.97208,
                      -103.9721, -104, 1e-30, -1e-30, .leastNonzeroMagnitude, .greatestFiniteMagnitude, -.greatestFiniteMagnitude]
    for e in -150...128 { for m: Float in [1, 1.2345, 1.99999] { x.append(m * Float(sign: .plus, exponent: e, significand: 1)); x.append(-x.last!) } }
    for _ in 0..<200_000 { x.append(Float(bitPattern: UInt32(truncatingIfNeeded: rng.next()))) }
    for _ in 0..<200_000 { x.append(rng.uniform() * 120 - 100) }
    var y = [Float](repeating: 0, count: x.count)
    glm5k_exp(x, &y, Int64(x.count))
    var bad = 0
    for i in 0..<x.count where y[i].bitPattern != _exp(x[i]).bitPattern && !(y[i].isNaN && _exp(x[i]).isNaN) {
      if bad < 3 { Issue.record("expf(\(x[i])) = \(_exp(x[i])), the C kernel (\(used)) gave \(y[i])") }
      bad += 1
    }
    #expect(bad == 0, "\(bad) of \(x.count) expf values differ from libm's (\(used))")
    // softmax and swiglu: the plain loops' bits (lengths past and below the 8-lane blocks).
    for n in [1, 3, 8, 13, 16, 17, 31, 64, 100, 2049] {
      for scale: Float in [1, 30, 200] {
        var a = (0..<n).map { _ in rng.uniform() * scale }
        if n > 3 { a[1] = -.infinity; a[n - 1] = -.infinity }
        var want = a
        var m = -Float.infinity
        for v in want { m = v >= m ? v : m }
        var s: Float = 0
        for i in 0..<n { let e = _exp(want[i] - m); want[i] = e; s += e }
        let inv = 1 / s
        for i in 0..<n { want[i] *= inv }
        // softmaxRows: rows of a strided block (one to eleven rows: whole and partial blocks of
        // 8 side-by-side sums), each row its own values, NaN in the gaps between rows.
        let rows = 1 + n % 11, ld = n + 3
        var block = [Float](repeating: .nan, count: rows * ld)
        var wantRows = [[Float]]()
        for r in 0..<rows {
          var row = (0..<n).map { _ in rng.uniform() * scale }
          if n > 3 && r % 3 == 1 { row[n / 2] = -.infinity }
          for i in 0..<n { block[r * ld + i] = row[i] }
          Kernels.softmax(&row, n)
          wantRows.append(row)
        }
        Kernels.softmax(&a, n)
        #expect(a.map(\.bitPattern) == want.map(\.bitPattern), "softmax n \(n) scale \(scale) \(used)")
        block.withUnsafeMutableBufferPointer { Kernels.softmaxRows($0.baseAddress!, ld: ld, rows: rows, n) }
        for r in 0..<rows {
          let got = block[(r * ld)..<(r * ld + n)].map(\.bitPattern), gap = block[(r * ld + n)..<(r * ld + ld)].filter { !$0.isNaN }
          #expect(got == wantRows[r].map(\.bitPattern), "softmaxRows n \(n) row \(r) of \(rows) \(used)")
          #expect(gap.isEmpty, "softmaxRows wrote past row \(r)'s \(n) values")
        }
        var g = (0..<n).map { _ in (rng.uniform() - 0.5) * scale }
        if n > 6 { g[0] = 100; g[1] = -100; g[2] = -0.0; g[3] = 88.8; g[4] = -88.8; g[5] = -110 }
        let u = (0..<n).map { _ in rng.uniform() * 3 }
        var gw = g
        for i in 0..<n { let z = gw[i]; gw[i] = (z / (1 + _exp(-z))) * u[i] }
        Kernels.swiglu(&g, u, n)
        #expect(g.map(\.bitPattern) == gw.map(\.bitPattern), "swiglu n \(n) scale \(scale)")
      }
    }
    }
  }
}
