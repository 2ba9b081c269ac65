// Quantized weights: dequantization bit for bit against plain decoders written from the format
// definitions (every row of every quantized Linear of every quantized fixture, and random weights
// of every format), the fused kernels against the plain reference on seeded random odd shapes,
// row slices, and row invariance (token splits, thread counts) with guard values.

import Foundation
import GLM5Core
import GLM5Engine
import CGLM5Kernels
@testable import GLM5Kernels
@testable import GLM5Model
import Testing

/// FP8 shapes: (N, K, block rows, block cols); N and K mostly not multiples of the block.
let fp8Cases: [(n: Int, k: Int, br: Int, bc: Int)] = [
  (1, 1, 128, 128), (5, 7, 128, 128), (37, 200, 128, 128), (130, 300, 128, 128), (24, 256, 128, 128),
  (33, 41, 16, 8), (24, 64, 16, 8), (17, 23, 5, 3), (9, 13, 1, 1), (3, 260, 2, 129),
]

/// INT4 shapes: (N, groups, group, symmetric, scale dtype); K = groups × group. N mostly not a
/// multiple of 8 (zero-point padding). Group == K with K odd is the per-channel strategy.
let int4Cases: [(n: Int, groups: Int, group: Int, sym: Bool, dt: DType)] = [
  (1, 1, 32, true, .bf16), (13, 3, 32, true, .bf16), (29, 2, 32, false, .f16), (16, 4, 32, false, .f32),
  (7, 1, 64, false, .bf16), (45, 3, 64, true, .f32), (9, 2, 64, false, .f16),
  (19, 2, 128, false, .f32), (8, 1, 128, true, .f16), (21, 3, 128, false, .bf16),
  (11, 5, 8, false, .bf16), (3, 1, 8, true, .f32), (26, 7, 8, false, .f16),
  (10, 1, 37, false, .f16), (5, 1, 203, true, .bf16),
]

let quantTokens = [1, 2, 3, 5, 17]

func randomQuantWeights(seed: UInt64) -> [RandomQuantWeight] {
  var rng = KernelRNG(seed: seed)
  var out: [RandomQuantWeight] = []
  for c in fp8Cases { out.append(RandomQuantWeight(fp8: c.n, c.k, blockRows: c.br, blockCols: c.bc, rng: &rng)) }
  for c in int4Cases {
    out.append(RandomQuantWeight(int4: c.n, groups: c.groups, group: c.group, symmetric: c.sym, scaleDType: c.dt, rng: &rng))
  }
  return out
}

/// Row slices worth checking for `rows` rows: inside one block, crossing 8-row zero-point words
/// and 128-row scale blocks, the last row alone.
func sliceStarts(_ rows: Int) -> [(start: Int, count: Int)] {
  var s: [(Int, Int)] = [(0, rows)]
  for (a, c) in [(1, 3), (3, 9), (7, 2), (9, 30), (rows / 2, rows - rows / 2), (rows - 1, 1), (127, 5)] where a >= 0 && c > 0 && a + c <= rows {
    s.append((a, c))
  }
  return s
}

@Suite("Quantized kernels") struct QuantKernelTests {
  // MARK: - Scalar decoding

  @Test("f8e4m3ToFloat matches the e4m3 table for all 256 codes")
  func fp8ScalarDecoding() {
    var bad: [String] = []
    for code in 0..<256 where !sameFloat(f8e4m3ToFloat(UInt8(code)), e4m3Table[code]) {
      bad.append("0x\(String(code, radix: 16)): \(f8e4m3ToFloat(UInt8(code))) vs \(e4m3Table[code])")
    }
    #expect(bad.isEmpty, "f8e4m3ToFloat differs from the definition: \(bad)")
    // The table itself: the corner values of e4m3fn.
    #expect(e4m3Table[0x7E] == 448 && e4m3Table[0xFE] == -448)
    #expect(e4m3Table[0x01] == 0x1p-9 && e4m3Table[0x08] == 0x1p-6 && e4m3Table[0x38] == 1)
    #expect(e4m3Table[0x80].bitPattern == (-0.0 as Float).bitPattern)
    #expect(e4m3Table[0x7F].isNaN && e4m3Table[0xFF].isNaN)
    #expect(e4m3Table.filter(\.isNaN).count == 2)
  }

  @Test("kernel FP8 lane decoding times its fixed power-of-two factor equals the table for every non-NaN code")
  func fp8LaneDecoding() {
    // The lane decoders may return the e4m3 value times a constant power of two that the kernel
    // folds into the block scale (2^-8 with the binary16 trick); find it from code 0x38 (= 1).
    let one = QuantKernels.fp8x1(0x38)
    let factor = 1 / one
    #expect(one > 0 && factor.significandBitPattern == 0 && factor.exponent.magnitude <= 126 && factor * one == 1,
            "fp8x1(0x38) = \(one) is not a power of two")
    var codes = [UInt8](0...255)
    codes += [0, 0, 0, 0, 0, 0, 0, 0]  // padding for an unaligned load of the last lanes
    var bad: [Int] = []
    codes.withUnsafeBytes { p in
      for start in stride(from: 0, to: 256, by: 8) {
        // Aligned and unaligned 8-byte loads.
        for shift in [0, 3] where start + shift + 8 <= codes.count {
          let lanes = QuantKernels.fp8x8(p.baseAddress! + start + shift)
          for j in 0..<8 {
            let code = start + shift + j
            guard code < 256, !e4m3Table[code].isNaN else { continue }
            if !sameFloat(lanes[j] * factor, e4m3Table[code]) { bad.append(code) }
          }
        }
      }
    }
    for code in 0..<256 where !e4m3Table[code].isNaN {
      if !sameFloat(QuantKernels.fp8x1(UInt8(code)) * factor, e4m3Table[code]) { bad.append(code) }
    }
    #expect(bad.isEmpty, "codes decoded wrongly by fp8x8/fp8x1 (factor \(factor)): \(Set(bad).sorted().map { String($0, radix: 16) })")
  }

  @Test("kernel INT4 lane decoding gives u − 8 for every nibble in every position")
  func int4LaneDecoding() {
    var rng = KernelRNG(seed: 0x4A)
    var words: [UInt32] = (0..<16).map { u in (0..<8).reduce(UInt32(0)) { $0 | UInt32(u) << (4 * UInt32($1)) } }
    for _ in 0..<200 { words.append(UInt32(truncatingIfNeeded: rng.next())) }
    words.append(0x7654_3210)
    words.append(0xFEDC_BA98)
    for w in words {
      let lanes = QuantKernels.int4x8(w)
      withUnsafeBytes(of: w.littleEndian) { p in
        for j in 0..<8 {
          let u = Int((w >> (4 * UInt32(j))) & 0xF)
          #expect(lanes[j] == Float(u - 8), "word \(String(w, radix: 16)) lane \(j)")
          #expect(Int4.nibble(p.baseAddress!, j) == Int32(u), "Int4.nibble word \(String(w, radix: 16)) lane \(j)")
        }
      }
    }
  }

  @Test("glm5k_int4_lanes gives q = u − 8 − zp of every column in the permuted order (even columns, then odd, per 16)")
  func int4LaneDecoding16() {
    var rng = KernelRNG(seed: 0x4B)
    for (sym, group) in [(true, 32), (false, 64), (false, 16)] {
      let w = RandomQuantWeight(int4: 19, groups: 5, group: group, symmetric: sym, scaleDType: .bf16, rng: &rng)
      guard case .int4(let plainW) = w.plain, let plan = QuantKernels.Plan(w.weight) else { Issue.record("no plan"); continue }
      let k = w.weight.cols
      var out = [Float](repeating: .nan, count: k)
      var bad: [String] = []
      for r in 0..<w.weight.rows {
        for (g0, g1) in [(0, 5), (1, 3), (4, 5)] {
          out.withUnsafeMutableBufferPointer { plan.decodeBlocks(r, g0, g1, into: $0.baseAddress!) }
          var c = g0 * group
          while c < g1 * group {
            for i in 0..<8 {
              let base = c - g0 * group
              let qe = Float(plainW.u(r, c + 2 * i) - 8 - plainW.zp(r, (c + 2 * i) / group))
              let qo = Float(plainW.u(r, c + 2 * i + 1) - 8 - plainW.zp(r, (c + 2 * i + 1) / group))
              if out[base + i] != qe || out[base + 8 + i] != qo { bad.append("row \(r) cols \(c + 2 * i): \(out[base + i]), \(out[base + 8 + i])") }
            }
            c += 16
          }
        }
      }
      #expect(bad.isEmpty, "\(w.describe): \(bad.prefix(5))")
    }
  }

  // MARK: - Dequantization of the fixtures, bit for bit

  @Test("fixtures: every row of every quantized Linear dequantizes exactly as the plain decoder", arguments: quantizedFixtures)
  func fixtureDequantization(fixture: String) throws {
    let ck = try Checkpoint(folder: fixturesFolder() + "/" + fixture)
    var checked = 0
    for m in ck.linearModules {
      let l = m.linear
      guard let plain = plainQuant(ck, module: m.name, linear: l) else {
        guard case .float = l.format else { Issue.record("\(fixture) \(m.name): quantized but no raw tensors found"); continue }
        continue
      }
      checked += 1
      #expect(plain.rows == l.outFeatures && plain.cols == l.inFeatures, "\(fixture) \(m.name)")
      let kernel = l.kernel
      #expect(kernel.rows == l.outFeatures && kernel.cols == l.inFeatures)
      let cols = l.inFeatures
      let a = UnsafeMutablePointer<Float>.allocate(capacity: cols + 1)
      let b = UnsafeMutablePointer<Float>.allocate(capacity: cols + 1)
      defer { a.deallocate(); b.deallocate() }
      var bad = 0, firstBad = ""
      func check(_ got: UnsafeMutablePointer<Float>, _ want: [Float], _ what: String) {
        for c in 0..<cols where !sameFloat(got[c], want[c]) {
          bad += 1
          if firstBad.isEmpty { firstBad = "\(what) col \(c): \(got[c]) vs plain \(want[c])" }
        }
      }
      for r in 0..<l.outFeatures {
        let want = plain.row(r)
        a[cols] = TestFloats.sentinel
        b[cols] = TestFloats.sentinel
        kernel.dequantizeRow(r, into: a)
        check(a, want, "dequantizeRow row \(r)")
        l.copyRowAsFloat(r, to: b)
        check(b, want, "copyRowAsFloat row \(r)")
        #expect(a[cols].bitPattern == TestFloats.sentinel.bitPattern && b[cols].bitPattern == TestFloats.sentinel.bitPattern,
                "\(fixture) \(m.name) row \(r): wrote past the row")
        if case .int4Group(let s, let zp, let g) = l.format {
          for c in 0..<cols {
            let v = Int4.dequantize(packed: l.weight.data!, row: r, col: c, cols: cols, scale: s.data!, scaleDType: s.dtype,
                                    group: g, zeroPacked: zp?.data)
            if !sameFloat(v, want[c]) {
              bad += 1
              if firstBad.isEmpty { firstBad = "Int4.dequantize row \(r) col \(c): \(v) vs plain \(want[c])" }
            }
          }
        }
      }
      // Row slices keep reading the right block scales / zero points.
      for (start, count) in sliceStarts(l.outFeatures) where start > 0 {
        let slice = kernel.rows(start, count)
        #expect(slice.rows == count && slice.cols == cols)
        for i in 0..<count {
          slice.dequantizeRow(i, into: a)
          check(a, plain.row(start + i), "rows(\(start), \(count)) row \(i)")
        }
      }
      #expect(bad == 0, "\(fixture) \(m.name): \(bad) elements differ; first: \(firstBad)")
    }
    #expect(checked > 0, "\(fixture) has no quantized Linear")
  }

  @Test("fixtures: Kernels.linear on every quantized Linear matches the plain reference", arguments: quantizedFixtures)
  func fixtureKernels(fixture: String) throws {
    let ck = try Checkpoint(folder: fixturesFolder() + "/" + fixture)
    var rng = KernelRNG(seed: 0x5EED)
    let pool = ThreadPool(threads: 2)
    for m in ck.linearModules {
      guard let plain = plainQuant(ck, module: m.name, linear: m.linear) else { continue }
      for T in [1, 4] {
        let x = TestFloats(rows: T, cols: plain.cols, fill: .nan, rng: &rng)
        let y = TestFloats(rows: T, cols: plain.rows)
        Kernels.linear(y.pointer, ldy: y.ld, x.pointer, ldx: x.ld, tokens: T, m.linear.kernel, pool: pool)
        let what = "\(fixture) \(m.name) T \(T) seed \(rng.seed)"
        checkAgainstPlain(y, x, plain, what: what)
      }
    }
  }

  // MARK: - Dequantization of random weights, bit for bit

  @Test("random weights of every format: dequantizeRow (and on row slices) equals the plain decoder")
  func randomDequantization() {
    for w in randomQuantWeights(seed: 0xD0) {
      let cols = w.weight.cols
      let out = UnsafeMutablePointer<Float>.allocate(capacity: cols + 1)
      defer { out.deallocate() }
      for (start, count) in sliceStarts(w.weight.rows) {
        let slice = w.weight.rows(start, count)
        var bad = 0, first = ""
        for i in 0..<count {
          out[cols] = TestFloats.sentinel
          slice.dequantizeRow(i, into: out)
          let want = w.plain.row(start + i)
          for c in 0..<cols where !sameFloat(out[c], want[c]) {
            bad += 1
            if first.isEmpty { first = "row \(i) col \(c): \(out[c]) vs \(want[c])" }
          }
          #expect(out[cols].bitPattern == TestFloats.sentinel.bitPattern, "\(w.describe): wrote past the row")
        }
        #expect(bad == 0, "\(w.describe) rows(\(start), \(count)): \(bad) elements differ; first: \(first)")
      }
    }
  }

  // MARK: - Fused kernels against the reference

  @Test("Kernels.linear matches Reference.linear and the plain product; slices; gaps and guards untouched")
  func linearMatchesReference() {
    #expect(quantTokens.contains { $0 < Kernels.decodeRowAbove } && quantTokens.contains { $0 >= Kernels.decodeRowAbove },
            "token counts must cover both the per-token decode path and the decoded-row path")
    var rng = KernelRNG(seed: 0xA1)
    let pool = ThreadPool(threads: 2)
    for w in randomQuantWeights(seed: 0xA0) {
      let (n, k) = (w.weight.rows, w.weight.cols)
      for T in quantTokens {
        let x = TestFloats(rows: T, cols: k, fill: .nan, rng: &rng)
        let y = TestFloats(rows: T, cols: n)
        let r = TestFloats(rows: T, cols: n)
        Kernels.linear(y.pointer, ldy: y.ld, x.pointer, ldx: x.ld, tokens: T, w.weight, pool: pool)
        Reference.linear(r.pointer, ldy: r.ld, x.pointer, ldx: x.ld, tokens: T, w.weight)
        let what = "\(w.describe) T \(T) x seed \(rng.seed)"
        let plain = checkAgainstPlain(y, x, w.plain, what: what)
        // Reference.linear is the Double sum of the same exact dequantized values.
        var refBad = 0
        for t in 0..<T { for j in 0..<n where r[t, j] != Float(plain.y[t][j]) { refBad += 1 } }
        #expect(refBad == 0, "\(what): Reference.linear differs from the plain product in \(refBad) elements")
        #expect(r.damaged == 0, "\(what): Reference.linear wrote outside y")

        // Row slices: the same bits as the full product's columns, and the reference sliced.
        for (start, count) in sliceStarts(n) where start > 0 {
          let s = w.weight.rows(start, count)
          let ys = TestFloats(rows: T, cols: count)
          let rs = TestFloats(rows: T, cols: count)
          Kernels.linear(ys.pointer, ldy: ys.ld, x.pointer, ldx: x.ld, tokens: T, s, pool: pool)
          Reference.linear(rs.pointer, ldy: rs.ld, x.pointer, ldx: x.ld, tokens: T, s)
          var diff = 0, refDiff = 0
          for t in 0..<T {
            for j in 0..<count {
              if ys[t, j].bitPattern != y[t, start + j].bitPattern { diff += 1 }
              if rs[t, j].bitPattern != r[t, start + j].bitPattern { refDiff += 1 }
            }
          }
          #expect(diff == 0, "\(what) rows(\(start), \(count)): \(diff) elements differ from the full product's")
          #expect(refDiff == 0, "\(what) rows(\(start), \(count)): Reference.linear differs from the full reference in \(refDiff)")
          #expect(ys.damaged == 0 && rs.damaged == 0, "\(what) rows(\(start), \(count)): gap/guard values overwritten")
        }
      }
    }
  }

  @Test("Kernels.linearTransposed matches a plain transposed product (and on row slices)")
  func linearTransposedMatchesPlain() {
    var rng = KernelRNG(seed: 0xB1)
    for w in randomQuantWeights(seed: 0xB0) {
      for (start, count) in sliceStarts(w.weight.rows) {
        let s = w.weight.rows(start, count)
        let k = s.cols
        for T in [1, 3, 5] {
          let x = TestFloats(rows: T, cols: count, fill: .nan, rng: &rng)
          let y = TestFloats(rows: T, cols: k)
          Kernels.linearTransposed(y.pointer, ldy: y.ld, x.pointer, ldx: x.ld, tokens: T, s)
          let what = "\(w.describe) rows(\(start), \(count)) T \(T) x seed \(rng.seed)"
          var st = ErrorStats()
          for t in 0..<T {
            for c in 0..<k {
              var want: Double = 0, mag: Double = 0
              for i in 0..<count {
                let v = Double(x[t, i]) * Double(w.plain.element(start + i, c))
                want += v
                mag += abs(v)
              }
              st.add(y[t, c], Float(want), bound: Double(count + 2) * u24 * mag + u24 * abs(want), at: t * k + c)
            }
          }
          #expect(st.nans == 0 && !y.values.contains { $0.isNaN }, "\(what): NaN in the output")
          #expect(st.worst <= 1, "\(what): error \(st.worst)× its bound at \(st.worstAt)")
          #expect(y.damaged == 0, "\(what): \(y.damaged) gap/guard values overwritten")
        }
      }
    }
  }

  // MARK: - Row invariance

  @Test("Kernels.linear is row-invariant: any token split and 1, 2, 3 threads give the same bits")
  func linearRowInvariance() {
    var rng = KernelRNG(seed: 0xC1)
    // Large enough that one token is already split over threads (N·K ≥ 2^15).
    let weights = [
      RandomQuantWeight(fp8: 70, 650, blockRows: 128, blockCols: 128, rng: &rng),
      RandomQuantWeight(fp8: 53, 700, blockRows: 16, blockCols: 8, rng: &rng),
      RandomQuantWeight(fp8: 41, 803, blockRows: 5, blockCols: 3, rng: &rng),
      RandomQuantWeight(int4: 70, groups: 20, group: 32, symmetric: true, scaleDType: .bf16, rng: &rng),
      RandomQuantWeight(int4: 61, groups: 9, group: 64, symmetric: false, scaleDType: .f16, rng: &rng),
      RandomQuantWeight(int4: 45, groups: 6, group: 128, symmetric: false, scaleDType: .f32, rng: &rng),
      RandomQuantWeight(int4: 37, groups: 100, group: 8, symmetric: false, scaleDType: .bf16, rng: &rng),
    ]
    let T = 17
    let splits: [[Int]] = [[17], [2, 15], [1, 2, 3, 4, 7], [5, 12], [3, 3, 3, 3, 3, 2], [16, 1], [2, 2, 2, 2, 2, 2, 2, 2, 1]]
    for w in weights {
      let (n, k) = (w.weight.rows, w.weight.cols)
      let x = TestFloats(rows: T, cols: k, fill: .nan, rng: &rng)
      let what = "\(w.describe) x seed \(rng.seed)"
      // Each token alone (the decode path) is the baseline.
      let alone = TestFloats(rows: T, cols: n)
      for t in 0..<T {
        Kernels.linear(alone.row(t), ldy: alone.ld, x.row(t), ldx: x.ld, tokens: 1, w.weight, pool: ThreadPool(threads: 2))
      }
      #expect(alone.damaged == 0, "\(what): single-token calls wrote outside y")
      checkAgainstPlain(alone, x, w.plain, what: what + " (tokens alone)")
      for threads in [1, 2, 3] {
        let pool = ThreadPool(threads: threads)
        for split in splits {
          #expect(split.reduce(0, +) == T)
          let y = TestFloats(rows: T, cols: n)
          var t0 = 0
          for part in split {
            Kernels.linear(y.row(t0), ldy: y.ld, x.row(t0), ldx: x.ld, tokens: part, w.weight, pool: pool)
            t0 += part
          }
          var diff = 0
          for t in 0..<T { for j in 0..<n where y[t, j].bitPattern != alone[t, j].bitPattern { diff += 1 } }
          #expect(diff == 0, "\(what) threads \(threads) split \(split): \(diff) elements differ from tokens alone")
          #expect(y.damaged == 0, "\(what) threads \(threads) split \(split): gap/guard values overwritten")
        }
        // Without kernel scratch (KernelScratch.take gives nil) and with room for x only: the
        // scratch-free paths, the same bits.
        for limit in [0, 4 * w.weight.cols * Kernels.quantTokenBlock] {
          let y = TestFloats(rows: T, cols: n)
          KernelScratch.withLimit(limit) {
            Kernels.linear(y.pointer, ldy: y.ld, x.pointer, ldx: x.ld, tokens: T, w.weight, pool: pool)
          }
          var diff = 0
          for t in 0..<T { for j in 0..<n where y[t, j].bitPattern != alone[t, j].bitPattern { diff += 1 } }
          #expect(diff == 0, "\(what) threads \(threads) scratch limit \(limit): \(diff) elements differ from tokens alone")
          #expect(y.damaged == 0, "\(what) threads \(threads) scratch limit \(limit): gap/guard values overwritten")
        }
      }
    }
  }
}

extension QuantKernelTests {
  @Test("Kernels.linear on large shapes: several K-blocks, row chunks and token blocks, tails; every split and thread count gives the bits of tokens alone")
  func linearLargeShapes() {
    var rng = KernelRNG(seed: 0xE1)
    let weights = [
      RandomQuantWeight(fp8: 61, 2312, blockRows: 128, blockCols: 128, rng: &rng),  // partial last block, 2 K-blocks
      RandomQuantWeight(fp8: 50, 2100, blockRows: 16, blockCols: 128, rng: &rng),   // tail columns in the last block
      RandomQuantWeight(fp8: 30, 2090, blockRows: 7, blockCols: 100, rng: &rng),    // tails in every block
      RandomQuantWeight(int4: 53, groups: 70, group: 32, symmetric: true, scaleDType: .bf16, rng: &rng),
      RandomQuantWeight(int4: 45, groups: 20, group: 128, symmetric: false, scaleDType: .f16, rng: &rng),
      RandomQuantWeight(int4: 40, groups: 150, group: 16, symmetric: false, scaleDType: .f32, rng: &rng),
    ]
    let T = Kernels.quantTokenBlock + 5
    let splits: [[Int]] = [[T], [T - 3, 3], [1, T - 1], [2, T - 2], [Kernels.quantTokenBlock, 5], [7, 6, T - 13]]
    for w in weights {
      let (n, k) = (w.weight.rows, w.weight.cols)
      let x = TestFloats(rows: T, cols: k, fill: .nan, rng: &rng)
      let what = "\(w.describe) x seed \(rng.seed)"
      let alone = TestFloats(rows: T, cols: n)
      for t in 0..<T {
        Kernels.linear(alone.row(t), ldy: alone.ld, x.row(t), ldx: x.ld, tokens: 1, w.weight, pool: ThreadPool(threads: 2))
      }
      checkAgainstPlain(alone, x, w.plain, what: what + " (tokens alone)")
      for threads in [1, 2, 3] {
        let pool = ThreadPool(threads: threads)
        for split in splits {
          let y = TestFloats(rows: T, cols: n)
          var t0 = 0
          for part in split {
            Kernels.linear(y.row(t0), ldy: y.ld, x.row(t0), ldx: x.ld, tokens: part, w.weight, pool: pool)
            t0 += part
          }
          var diff = 0
          for t in 0..<T { for j in 0..<n where y[t, j].bitPattern != alone[t, j].bitPattern { diff += 1 } }
          #expect(diff == 0, "\(what) threads \(threads) split \(split): \(diff) elements differ from tokens alone")
          #expect(y.damaged == 0, "\(what) threads \(threads) split \(split): gap/guard values overwritten")
        }
      }
    }
  }
}

extension QuantKernelTests {
  @Test("Kernels.linearTransposed is row-invariant: tokens together give the bits of tokens alone, every ISA")
  func linearTransposedRowInvariance() {
    defer { InstructionSet.force(nil) }
    var rng = KernelRNG(seed: 0xE2)
    for isa in [InstructionSet.avx2, .avx512] {
    let used = InstructionSet.force(isa)
    for w in randomQuantWeights(seed: 0xE3) {
      let (n, k) = (w.weight.rows, w.weight.cols)
      // 7 tokens (INT4: per token; FP8: the dequantized slice), 40 (the slice for both), and 40
      // without kernel scratch (per token for both).
      for (T, limit) in [(7, Int.max), (Kernels.transposedPerTokenMax + 8, Int.max), (Kernels.transposedPerTokenMax + 8, 0)] {
        let x = TestFloats(rows: T, cols: n, fill: .nan, rng: &rng)
        let all = TestFloats(rows: T, cols: k), alone = TestFloats(rows: T, cols: k)
        KernelScratch.withLimit(limit) {
          Kernels.linearTransposed(all.pointer, ldy: all.ld, x.pointer, ldx: x.ld, tokens: T, w.weight)
        }
        for t in 0..<T { Kernels.linearTransposed(alone.row(t), ldy: alone.ld, x.row(t), ldx: x.ld, tokens: 1, w.weight) }
        var diff = 0
        for t in 0..<T { for j in 0..<k where all[t, j].bitPattern != alone[t, j].bitPattern { diff += 1 } }
        #expect(diff == 0, "\(w.describe) \(used): \(diff) elements differ between \(T) tokens together (scratch limit \(limit)) and alone")
        #expect(all.damaged == 0 && alone.damaged == 0, "\(w.describe): gap/guard values overwritten")
      }
    }
    }
  }
}

extension QuantKernelTests {
  @Test("Kernels.linearTransposed on INT4 gives the bits of its sequence (y = 0; y[c] = fma(x[r], round(q · s), y[c]) per row in order), every ISA, on row slices")
  func linearTransposedInt4Sequence() {
    defer { InstructionSet.force(nil) }
    var rng = KernelRNG(seed: 0xE4)
    for isa in [InstructionSet.avx2, .avx512] {
      let used = InstructionSet.force(isa)
      for w in randomQuantWeights(seed: 0xE5) {
        guard case .int4(let plain) = w.plain else { continue }
        for (start, count) in sliceStarts(w.weight.rows) {
          let s = w.weight.rows(start, count)
          let k = s.cols
          let x = TestFloats(rows: 1, cols: count, fill: .nan, rng: &rng)
          let y = TestFloats(rows: 1, cols: k)
          Kernels.linearTransposed(y.pointer, ldy: y.ld, x.pointer, ldx: x.ld, tokens: 1, s)
          var diff = 0
          for c in 0..<k {
            var want: Float = 0
            for i in 0..<count { want = want.addingProduct(x[0, i], plain.element(start + i, c)) }
            if want.bitPattern != y[0, c].bitPattern { diff += 1 }
          }
          #expect(diff == 0, "\(w.describe) rows(\(start), \(count)) \(used): \(diff) of \(k) outputs are not the sequence's bits")
          #expect(y.damaged == 0, "\(w.describe): gap/guard values overwritten")
        }
      }
    }
  }
}

/// Checks a kernel result against the plain Double product: no NaN, each element within
/// (K + 4·blocks + 8) · 2^-24 · Σ|x|·magnitude of its terms, gaps and guards untouched.
@discardableResult
func checkAgainstPlain(_ y: TestFloats, _ x: TestFloats, _ plain: PlainQuant, what: String,
                       sourceLocation: SourceLocation = #_sourceLocation) -> (y: [[Double]], scale: [[Double]]) {
  let p = plainLinear(x, plain)
  let k = plain.cols
  // Any summation order of K terms is within K·u of the exact sum; a few roundings more per block
  // (scale product, zero-point term, the reductions). The error of the INT4 zero-point term
  // scales with |zp|·Σ|x|, which `magnitude` includes.
  let depth = Double(k + 4 * plain.blocksPerRow + 8)
  var st = ErrorStats()
  for t in 0..<y.rows {
    for j in 0..<y.cols {
      st.add(y[t, j], Float(p.y[t][j]), bound: depth * u24 * p.scale[t][j] + u24 * abs(p.y[t][j]), at: t * y.cols + j)
    }
  }
  #expect(st.nans == 0 && !y.values.contains { $0.isNaN }, "\(what): NaN in the output", sourceLocation: sourceLocation)
  #expect(st.worst <= 1, "\(what): error \(st.worst)× its bound at element \(st.worstAt)", sourceLocation: sourceLocation)
  #expect(y.damaged == 0, "\(what): \(y.damaged) gap/guard values overwritten", sourceLocation: sourceLocation)
  return p
}

extension QuantKernelTests {
  @Test("INT4 kernels give the bits of the documented element sequence (Reference.int4Sequence) for 1-50 tokens, 1-3 threads, every ISA")
  func int4KernelsFollowTheSequence() {
    defer { InstructionSet.force(nil) }
    var rng = KernelRNG(seed: 0xE7)
    let weights = [
      RandomQuantWeight(int4: 70, groups: 20, group: 32, symmetric: true, scaleDType: .bf16, rng: &rng),
      RandomQuantWeight(int4: 61, groups: 9, group: 64, symmetric: false, scaleDType: .f16, rng: &rng),
      RandomQuantWeight(int4: 45, groups: 6, group: 128, symmetric: false, scaleDType: .f32, rng: &rng),
      RandomQuantWeight(int4: 300, groups: 40, group: 32, symmetric: true, scaleDType: .bf16, rng: &rng),
      RandomQuantWeight(int4: 9, groups: 150, group: 32, symmetric: false, scaleDType: .bf16, rng: &rng),  // > 128 groups a row
      RandomQuantWeight(int4: 13, groups: 3, group: 16, symmetric: false, scaleDType: .f32, rng: &rng),
    ]
    var tinyDone = Set<String>()
    for w in weights {
      let (n, k) = (w.weight.rows, w.weight.cols)
      for T in [1, 1, 2, 3, 4, 5, 8, 9, 50] {
        let x = TestFloats(rows: T, cols: k, fill: .nan, rng: &rng)
        if T == 1 && tinyDone.insert(w.describe).inserted == false {
          // The second one-token x has odd columns whose 1/16 is not exact (subnormal results):
          // the AVX-512 8-row tile must then read x unscaled (glm5k_int4_decode_prepare's form 0).
          x[0, 1] = Float(bitPattern: 0x0000_0123)
          x[0, 3] = 1.5e-37
          x[0, k - 1] = -Float.leastNormalMagnitude * 3
        }
        let ref = TestFloats(rows: T, cols: n)
        Reference.int4Sequence(ref.row(0), ldy: ref.ld, x.row(0), ldx: x.ld, tokens: T, w.weight)
        for (threads, isa) in [(1, InstructionSet.avx2), (3, .avx2), (1, .avx512), (3, .avx512)] {
          let used = InstructionSet.force(isa)
          let y = TestFloats(rows: T, cols: n)
          Kernels.linear(y.row(0), ldy: y.ld, x.row(0), ldx: x.ld, tokens: T, w.weight, pool: ThreadPool(threads: threads))
          #expect(y.damaged == 0)
          var diff = 0, first = ""
          for t in 0..<T {
            for j in 0..<n where y[t, j].bitPattern != ref[t, j].bitPattern {
              if diff == 0 { first = "t \(t) row \(j): \(y[t, j]) vs \(ref[t, j])" }
              diff += 1
            }
          }
          #expect(diff == 0, "\(w.describe) T \(T) threads \(threads) \(used): \(diff) elements differ from the sequence, first \(first)")
        }
      }
    }
  }

  @Test("INT4 one-token x: the 1/16 form only where every odd value scales exactly, only with AVX-512, zero points and groups of 32k")
  func int4DecodeForm() {
    defer { InstructionSet.force(nil) }
    var rng = KernelRNG(seed: 0x0DD)
    let k = 256
    var zeroWords = [UInt32](repeating: 0, count: k / 16)  // never read by prepare; only its presence counts
    for (isa, group) in [(InstructionSet.avx512, 32), (.avx512, 64), (.avx512, 16), (.avx2, 32)] {
      let used = InstructionSet.force(isa)
      for tiny in [false, true] {
        for asymmetric in [true, false] {
          var x = (0..<k).map { _ in rng.uniform() }
          if tiny { x[8 + 3] = 1.5e-37 }  // an odd-half value whose 1/16 is subnormal and inexact
          let before = x
          let form = zeroWords.withUnsafeMutableBytes { zb in
            var w = glm5k_int4(packed: nil, scales: nil, zeros: asymmetric ? UnsafeRawPointer(zb.baseAddress!) : nil, row_offset: 0,
                               cols: Int64(k), group: Int64(group), scale_dtype: 0)
            return x.withUnsafeMutableBufferPointer { glm5k_int4_decode_prepare(&w, $0.baseAddress!) }
          }
          // Symmetric weights' table tiles read x as permute leaves it.
          let expectOne = used == .avx512 && group % 32 == 0 && !tiny && asymmetric
          #expect(form == (expectOne ? 1 : 0), "\(used) group \(group) tiny \(tiny) asymmetric \(asymmetric): form \(form)")
          for c in 0..<k {
            let want = form == 1 && c % 16 >= 8 ? before[c] / 16 : before[c]
            #expect(x[c].bitPattern == want.bitPattern, "\(used) group \(group): column \(c)")
          }
        }
      }
    }
  }

  @Test("INT4 kernels are at least as accurate as a float32 dot product with the dequantized weights (errors against float64)")
  func int4AtLeastAsAccurateAsDequantizeThenDot() {
    var rng = KernelRNG(seed: 0xACC)
    // Realistic shapes: K = 2048 (GLM-5's expert and attention widths), symmetric g32 and asymmetric g64/g128.
    let weights = [
      RandomQuantWeight(int4: 96, groups: 64, group: 32, symmetric: true, scaleDType: .bf16, rng: &rng),
      RandomQuantWeight(int4: 96, groups: 32, group: 64, symmetric: false, scaleDType: .bf16, rng: &rng),
      RandomQuantWeight(int4: 96, groups: 16, group: 128, symmetric: false, scaleDType: .f16, rng: &rng),
    ]
    for w in weights {
      let (n, k) = (w.weight.rows, w.weight.cols)
      for T in [1, 4, 20] {
        // Activations with a nonzero mean (as after SiLU or a norm), where cancellation bites.
        let x = TestFloats(rows: T, cols: k, rng: &rng)
        for t in 0..<T { for c in 0..<k { x[t, c] = x[t, c] * 0.5 + 0.75 } }
        let y = TestFloats(rows: T, cols: n)
        Kernels.linear(y.row(0), ldy: y.ld, x.row(0), ldx: x.ld, tokens: T, w.weight, pool: ThreadPool(threads: 2))
        var row = [Float](repeating: 0, count: k)
        var kernel2 = 0.0, plain2 = 0.0, kernelMax = 0.0, plainMax = 0.0
        for j in 0..<n {
          row.withUnsafeMutableBufferPointer { w.weight.dequantizeRow(j, into: $0.baseAddress!) }
          for t in 0..<T {
            var exact = 0.0
            var plain: Float = 0
            for c in 0..<k {
              exact += Double(x[t, c]) * Double(w.plain.element(j, c))
              plain = plain.addingProduct(x[t, c], row[c])
            }
            let ek = Double(y[t, j]) - exact, ep = Double(plain) - exact
            kernel2 += ek * ek; plain2 += ep * ep
            kernelMax = max(kernelMax, abs(ek)); plainMax = max(plainMax, abs(ep))
          }
        }
        let what = "\(w.describe) T \(T)"
        #expect(kernel2 <= plain2, "\(what): RMS error \((kernel2 / Double(n * T)).squareRoot()) above the plain float32 dot's \((plain2 / Double(n * T)).squareRoot())")
        #expect(kernelMax <= plainMax, "\(what): max error \(kernelMax) above the plain float32 dot's \(plainMax)")
      }
    }
  }
}

extension QuantKernelTests {
  @Test("KernelScratch: a thread's region is 64-byte aligned, kept for smaller takes, grown for larger ones, refused above the limit")
  func kernelScratchRegions() throws {
    // A thread of its own, so that the region starts empty and the figures are this test's.
    nonisolated(unsafe) var results: [String] = []
    let done = DispatchSemaphore(value: 0)
    let t = Thread {
      defer { done.signal() }
      var out: [String] = []
      if KernelScratch.threadBytes != 0 { out.append("a new thread holds \(KernelScratch.threadBytes) bytes") }
      guard let a = KernelScratch.take(1000) else { out.append("take(1000) failed"); results = out; return }
      if Int(bitPattern: a) % 64 != 0 { out.append("region not 64-byte aligned") }
      let held = KernelScratch.threadBytes
      if held < 1000 { out.append("holds \(held) bytes after take(1000)") }
      if KernelScratch.take(held) != a { out.append("a take within the region moved it") }
      if KernelScratch.take(0) != a { out.append("take(0) moved the region") }
      guard let b = KernelScratch.take(held + 1) else { out.append("growing failed"); results = out; return }
      if Int(bitPattern: b) % 64 != 0 { out.append("grown region not 64-byte aligned") }
      if KernelScratch.threadBytes < held + 1 { out.append("grown region holds \(KernelScratch.threadBytes) bytes") }
      b.storeBytes(of: 7, toByteOffset: held, as: UInt8.self)  // the last byte asked for is writable
      KernelScratch.withLimit(16) {
        if KernelScratch.take(17) != nil { out.append("take above the limit succeeded") }
      }
      if KernelScratch.take(-1) != nil || KernelScratch.take(Int.max / 2) != nil { out.append("a negative or huge take succeeded") }
      if KernelScratch.take(1) != b { out.append("the region changed after refused takes") }
      results = out
    }
    t.start()
    done.wait()
    #expect(results.isEmpty, "\(results)")
  }
}
