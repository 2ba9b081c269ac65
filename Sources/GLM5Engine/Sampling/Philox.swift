// Philox4x32-10 (Salmon, Moraes, Dror, Shaw, "Parallel random numbers: as easy as 1, 2, 3",
// SC'11), the counter-based generator of Random123, numpy's Philox and curand. The sampler's draw
// for a position is one block: counter = (pos lo, pos hi, 0, 0), key = (seed lo, seed hi), so it
// is a pure function of (seed, position), whatever the batch, thread count or call split.

public enum Philox {
  static let m0: UInt32 = 0xD251_1F53, m1: UInt32 = 0xCD9E_8D57
  static let w0: UInt32 = 0x9E37_79B9, w1: UInt32 = 0xBB67_AE85

  /// One 4x32 block after 10 rounds.
  public static func block(counter c: (UInt32, UInt32, UInt32, UInt32), key k: (UInt32, UInt32)) -> (UInt32, UInt32, UInt32, UInt32) {
    var (c0, c1, c2, c3) = c
    var (k0, k1) = k
    for round in 0..<10 {
      let p0 = UInt64(m0) * UInt64(c0), p1 = UInt64(m1) * UInt64(c2)
      let hi0 = UInt32(truncatingIfNeeded: p0 >> 32), lo0 = UInt32(truncatingIfNeeded: p0)
      let hi1 = UInt32(truncatingIfNeeded: p1 >> 32), lo1 = UInt32(truncatingIfNeeded: p1)
      (c0, c1, c2, c3) = (hi1 ^ c1 ^ k0, lo1, hi0 ^ c3 ^ k1, lo0)
      if round < 9 { k0 &+= w0; k1 &+= w1 }
    }
    return (c0, c1, c2, c3)
  }

  /// The sampler's uniform for (seed, position): ((x1 << 32 | x0) >> 11) · 2^-53 ∈ [0, 1).
  public static func uniform(seed: UInt64, position: Int) -> Double {
    let p = UInt64(position)
    let x = block(counter: (UInt32(truncatingIfNeeded: p), UInt32(truncatingIfNeeded: p >> 32), 0, 0),
                  key: (UInt32(truncatingIfNeeded: seed), UInt32(truncatingIfNeeded: seed >> 32)))
    let bits = (UInt64(x.1) << 32 | UInt64(x.0)) >> 11
    return Double(bits) * 0x1p-53
  }
}
