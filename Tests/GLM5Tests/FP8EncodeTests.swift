// float → e4m3 encoding (used to write FP8 checkpoints for benchmarks and tests).

import Testing
import GLM5Core

@Suite("FP8 encode")
struct FP8EncodeTests {
  @Test("every finite e4m3 value encodes back to itself")
  func roundTrip() {
    for v in 0..<256 where v & 0x7F != 0x7F {
      let f = f8e4m3ToFloat(UInt8(v))
      #expect(floatToF8E4M3(f) == UInt8(v), "code \(v): \(f) → \(floatToF8E4M3(f))")
    }
  }

  @Test("midpoints round to even, large values saturate, NaN stays NaN")
  func rounding() {
    // 1.0 = 0x38, next 1.125 = 0x39, 1.25 = 0x3A: midpoints 1.0625 → 1.0 (even), 1.1875 → 1.25 (even)
    #expect(floatToF8E4M3(1.0625) == 0x38)
    #expect(floatToF8E4M3(1.1875) == 0x3A)
    #expect(floatToF8E4M3(1000) == 0x7E)
    #expect(floatToF8E4M3(-1000) == 0xFE)
    #expect(floatToF8E4M3(464) == 0x7E)  // past 448 saturates (no infinity in e4m3fn)
    #expect(f8e4m3ToFloat(floatToF8E4M3(.nan)).isNaN)
    // smallest subnormal 2^-9 and half of it (ties to even → 0)
    #expect(floatToF8E4M3(0x1p-9) == 0x01)
    #expect(floatToF8E4M3(0x1p-10) == 0x00)
    #expect(floatToF8E4M3(0x1.8p-9) == 0x02)
  }
}
