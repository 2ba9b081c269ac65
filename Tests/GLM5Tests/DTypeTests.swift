// DType names and sizes, and the reference scalar conversions against known bit patterns and
// against tables produced by torch 2.x (`torch.arange(256).to(uint8).view(float8_*).float()`).

import GLM5Core
import Testing

@Suite struct DTypeTests {
  // MARK: - Names and sizes

  @Test func namesRoundTrip() {
    for d in DType.allCases {
      #expect(DType(safetensorsName: "\(d.name)") == d)
    }
    #expect(DType(safetensorsName: "bf16") == nil)  // names are case-sensitive
    #expect(DType(safetensorsName: "Q4_K") == nil)
    #expect(DType(safetensorsName: "") == nil)
    #expect(Set(DType.allCases.map { "\($0.name)" }).count == DType.allCases.count)
  }

  @Test func pinnedRawValuesAndSizes() {
    let expected: [(DType, Int32, String, Int)] = [
      (.f32, 0, "F32", 4), (.bf16, 1, "BF16", 2), (.f16, 2, "F16", 2), (.f8e4m3, 3, "F8_E4M3", 1),
      (.f8e5m2, 4, "F8_E5M2", 1), (.i8, 5, "I8", 1), (.u8, 6, "U8", 1), (.i16, 7, "I16", 2),
      (.i32, 8, "I32", 4), (.i64, 9, "I64", 8), (.f64, 10, "F64", 8), (.bool, 11, "BOOL", 1),
      (.u16, 12, "U16", 2), (.u32, 13, "U32", 4), (.u64, 14, "U64", 8),
    ]
    #expect(expected.count == DType.allCases.count)
    for (d, raw, name, size) in expected {
      #expect(d.rawValue == raw)
      #expect("\(d.name)" == name)
      #expect(d.byteSize == size)
    }
  }

  @Test func floatWeights() {
    #expect(DType.allCases.filter(\.isFloatWeight) == [.f32, .bf16, .f16])
  }

  // MARK: - bf16

  @Test func bf16ToFloatKnownPatterns() {
    #expect(bf16ToFloat(0x3F80) == 1.0)
    #expect(bf16ToFloat(0xBF80) == -1.0)
    #expect(bf16ToFloat(0x4049) == 3.140625)
    #expect(bf16ToFloat(0x0000) == 0 && bf16ToFloat(0x8000).sign == .minus)
    #expect(bf16ToFloat(0x7F80) == .infinity)
    #expect(bf16ToFloat(0xFF80) == -.infinity)
    #expect(bf16ToFloat(0x7FC0).isNaN)
    #expect(bf16ToFloat(0x7F7F) == Float(bitPattern: 0x7F7F_0000))  // largest finite
    #expect(bf16ToFloat(0x0001) == Float(bitPattern: 0x0001_0000))  // subnormal
  }

  @Test func floatToBF16RoundsToNearestEven() {
    #expect(floatToBF16(1.0) == 0x3F80)
    #expect(floatToBF16(-2.0) == 0xC000)
    // Ties: 1 + 2^-8 is exactly between 0x3F80 and 0x3F81 → even 0x3F80;
    // 1 + 3·2^-8 is between 0x3F81 and 0x3F82 → even 0x3F82.
    #expect(Float(bitPattern: 0x3F80_8000) == 1 + 0x1p-8)
    #expect(floatToBF16(1 + 0x1p-8) == 0x3F80)
    #expect(floatToBF16(1 + 3 * 0x1p-8) == 0x3F82)
    // Just above a tie rounds up; just below rounds down.
    #expect(floatToBF16(Float(bitPattern: 0x3F80_8001)) == 0x3F81)
    #expect(floatToBF16(Float(bitPattern: 0x3F80_7FFF)) == 0x3F80)
    // Overflow of the largest float goes to infinity, as torch does.
    #expect(floatToBF16(.greatestFiniteMagnitude) == 0x7F80)
    #expect(floatToBF16(.infinity) == 0x7F80)
    #expect(floatToBF16(-.infinity) == 0xFF80)
    #expect(floatToBF16(-0.0) == 0x8000)
    #expect(floatToBF16(65504) == 0x4780)
    #expect(floatToBF16(Float(bitPattern: 0x0001_16C2)) == 0x0001)  // 1e-40, subnormal
    // NaN stays NaN (quiet), never becomes infinity.
    #expect(bf16ToFloat(floatToBF16(.nan)).isNaN)
    #expect(bf16ToFloat(floatToBF16(Float(bitPattern: 0x7F80_0001))).isNaN)  // signalling NaN, low payload
    #expect(bf16ToFloat(floatToBF16(Float(bitPattern: 0xFF80_0001))).isNaN)
  }

  @Test func bf16RoundTripsEveryFiniteValue() {
    for bits in UInt16.min...UInt16.max {
      let f = bf16ToFloat(bits)
      if f.isNaN { #expect(bf16ToFloat(floatToBF16(f)).isNaN); continue }
      if floatToBF16(f) != bits { Issue.record("bf16 0x\(String(bits, radix: 16)) does not round-trip"); return }
    }
  }

  // MARK: - f16

  @Test func f16KnownPatterns() {
    #expect(f16ToFloat(0x3C00) == 1.0)
    #expect(f16ToFloat(0xC000) == -2.0)
    #expect(f16ToFloat(0x7BFF) == 65504)
    #expect(f16ToFloat(0x0001) == 0x1p-24)
    #expect(f16ToFloat(0x0400) == 0x1p-14)
    #expect(f16ToFloat(0x3555) == Float(bitPattern: 0x3EAA_A000))  // 0.33325195
    #expect(f16ToFloat(0x7C00) == .infinity)
    #expect(f16ToFloat(0xFC00) == -.infinity)
    #expect(f16ToFloat(0x7E00).isNaN)
    #expect(f16ToFloat(0x8000) == 0 && f16ToFloat(0x8000).sign == .minus)
  }

  // MARK: - f8

  @Test func f8e4m3KnownPatterns() {
    #expect(f8e4m3ToFloat(0x38) == 1.0)
    #expect(f8e4m3ToFloat(0xB8) == -1.0)
    #expect(f8e4m3ToFloat(0x7E) == 448)       // largest finite
    #expect(f8e4m3ToFloat(0xFE) == -448)
    #expect(f8e4m3ToFloat(0x77) == 240)
    #expect(f8e4m3ToFloat(0x01) == 0x1p-9)    // smallest subnormal
    #expect(f8e4m3ToFloat(0x07) == 7 * 0x1p-9)
    #expect(f8e4m3ToFloat(0x08) == 0x1p-6)    // smallest normal
    #expect(f8e4m3ToFloat(0x00) == 0)
    #expect(f8e4m3ToFloat(0x80) == 0 && f8e4m3ToFloat(0x80).sign == .minus)
    #expect(f8e4m3ToFloat(0x7F).isNaN)        // no infinities in e4m3fn
    #expect(f8e4m3ToFloat(0xFF).isNaN)
    #expect(f8e4m3ToFloat(0x78) == 256)       // exponent 15 is finite except m = 7
  }

  @Test func f8e5m2KnownPatterns() {
    #expect(f8e5m2ToFloat(0x3C) == 1.0)
    #expect(f8e5m2ToFloat(0xC0) == -2.0)
    #expect(f8e5m2ToFloat(0x7B) == 57344)     // largest finite
    #expect(f8e5m2ToFloat(0x01) == 0x1p-16)   // smallest subnormal
    #expect(f8e5m2ToFloat(0x04) == 0x1p-14)   // smallest normal
    #expect(f8e5m2ToFloat(0x7C) == .infinity)
    #expect(f8e5m2ToFloat(0xFC) == -.infinity)
    #expect(f8e5m2ToFloat(0x7D).isNaN)
    #expect(f8e5m2ToFloat(0xFF).isNaN)
  }

  @Test func f8e4m3MatchesTorch() {
    for v in 0...255 {
      let got = f8e4m3ToFloat(UInt8(v))
      let want = Float(bitPattern: Self.torchE4M3[v])
      #expect(got.bitPattern == want.bitPattern || (got.isNaN && want.isNaN), "e4m3 0x\(String(v, radix: 16)): \(got), torch \(want)")
    }
  }

  @Test func f8e5m2MatchesTorch() {
    for v in 0...255 {
      let got = f8e5m2ToFloat(UInt8(v))
      let want = Float(bitPattern: Self.torchE5M2[v])
      #expect(got.bitPattern == want.bitPattern || (got.isNaN && want.isNaN), "e5m2 0x\(String(v, radix: 16)): \(got), torch \(want)")
    }
  }

  static let torchE4M3: [UInt32] = [
    0x00000000, 0x3B000000, 0x3B800000, 0x3BC00000, 0x3C000000, 0x3C200000, 0x3C400000, 0x3C600000,
    0x3C800000, 0x3C900000, 0x3CA00000, 0x3CB00000, 0x3CC00000, 0x3CD00000, 0x3CE00000, 0x3CF00000,
    0x3D000000, 0x3D100000, 0x3D200000, 0x3D300000, 0x3D400000, 0x3D500000, 0x3D600000, 0x3D700000,
    0x3D800000, 0x3D900000, 0x3DA00000, 0x3DB00000, 0x3DC00000, 0x3DD00000, 0x3DE00000, 0x3DF00000,
    0x3E000000, 0x3E100000, 0x3E200000, 0x3E300000, 0x3E400000, 0x3E500000, 0x3E600000, 0x3E700000,
    0x3E800000, 0x3E900000, 0x3EA00000, 0x3EB00000, 0x3EC00000, 0x3ED00000, 0x3EE00000, 0x3EF00000,
    0x3F000000, 0x3F100000, 0x3F200000, 0x3F300000, 0x3F400000, 0x3F500000, 0x3F600000, 0x3F700000,
    0x3F800000, 0x3F900000, 0x3FA00000, 0x3FB00000, 0x3FC00000, 0x3FD00000, 0x3FE00000, 0x3FF00000,
    0x40000000, 0x40100000, 0x40200000, 0x40300000, 0x40400000, 0x40500000, 0x40600000, 0x40700000,
    0x40800000, 0x40900000, 0x40A00000, 0x40B00000, 0x40C00000, 0x40D00000, 0x40E00000, 0x40F00000,
    0x41000000, 0x41100000, 0x41200000, 0x41300000, 0x41400000, 0x41500000, 0x41600000, 0x41700000,
    0x41800000, 0x41900000, 0x41A00000, 0x41B00000, 0x41C00000, 0x41D00000, 0x41E00000, 0x41F00000,
    0x42000000, 0x42100000, 0x42200000, 0x42300000, 0x42400000, 0x42500000, 0x42600000, 0x42700000,
    0x42800000, 0x42900000, 0x42A00000, 0x42B00000, 0x42C00000, 0x42D00000, 0x42E00000, 0x42F00000,
    0x43000000, 0x43100000, 0x43200000, 0x43300000, 0x43400000, 0x43500000, 0x43600000, 0x43700000,
    0x43800000, 0x43900000, 0x43A00000, 0x43B00000, 0x43C00000, 0x43D00000, 0x43E00000, 0x7FF00000,
    0x80000000, 0xBB000000, 0xBB800000, 0xBBC00000, 0xBC000000, 0xBC200000, 0xBC400000, 0xBC600000,
    0xBC800000, 0xBC900000, 0xBCA00000, 0xBCB00000, 0xBCC00000, 0xBCD00000, 0xBCE00000, 0xBCF00000,
    0xBD000000, 0xBD100000, 0xBD200000, 0xBD300000, 0xBD400000, 0xBD500000, 0xBD600000, 0xBD700000,
    0xBD800000, 0xBD900000, 0xBDA00000, 0xBDB00000, 0xBDC00000, 0xBDD00000, 0xBDE00000, 0xBDF00000,
    0xBE000000, 0xBE100000, 0xBE200000, 0xBE300000, 0xBE400000, 0xBE500000, 0xBE600000, 0xBE700000,
    0xBE800000, 0xBE900000, 0xBEA00000, 0xBEB00000, 0xBEC00000, 0xBED00000, 0xBEE00000, 0xBEF00000,
    0xBF000000, 0xBF100000, 0xBF200000, 0xBF300000, 0xBF400000, 0xBF500000, 0xBF600000, 0xBF700000,
    0xBF800000, 0xBF900000, 0xBFA00000, 0xBFB00000, 0xBFC00000, 0xBFD00000, 0xBFE00000, 0xBFF00000,
    0xC0000000, 0xC0100000, 0xC0200000, 0xC0300000, 0xC0400000, 0xC0500000, 0xC0600000, 0xC0700000,
    0xC0800000, 0xC0900000, 0xC0A00000, 0xC0B00000, 0xC0C00000, 0xC0D00000, 0xC0E00000, 0xC0F00000,
    0xC1000000, 0xC1100000, 0xC1200000, 0xC1300000, 0xC1400000, 0xC1500000, 0xC1600000, 0xC1700000,
    0xC1800000, 0xC1900000, 0xC1A00000, 0xC1B00000, 0xC1C00000, 0xC1D00000, 0xC1E00000, 0xC1F00000,
    0xC2000000, 0xC2100000, 0xC2200000, 0xC2300000, 0xC2400000, 0xC2500000, 0xC2600000, 0xC2700000,
    0xC2800000, 0xC2900000, 0xC2A00000, 0xC2B00000, 0xC2C00000, 0xC2D00000, 0xC2E00000, 0xC2F00000,
    0xC3000000, 0xC3100000, 0xC3200000, 0xC3300000, 0xC3400000, 0xC3500000, 0xC3600000, 0xC3700000,
    0xC3800000, 0xC3900000, 0xC3A00000, 0xC3B00000, 0xC3C00000, 0xC3D00000, 0xC3E00000, 0xFFF00000,
  ]
  static let torchE5M2: [UInt32] = [
    0x00000000, 0x37800000, 0x38000000, 0x38400000, 0x38800000, 0x38A00000, 0x38C00000, 0x38E00000,
    0x39000000, 0x39200000, 0x39400000, 0x39600000, 0x39800000, 0x39A00000, 0x39C00000, 0x39E00000,
    0x3A000000, 0x3A200000, 0x3A400000, 0x3A600000, 0x3A800000, 0x3AA00000, 0x3AC00000, 0x3AE00000,
    0x3B000000, 0x3B200000, 0x3B400000, 0x3B600000, 0x3B800000, 0x3BA00000, 0x3BC00000, 0x3BE00000,
    0x3C000000, 0x3C200000, 0x3C400000, 0x3C600000, 0x3C800000, 0x3CA00000, 0x3CC00000, 0x3CE00000,
    0x3D000000, 0x3D200000, 0x3D400000, 0x3D600000, 0x3D800000, 0x3DA00000, 0x3DC00000, 0x3DE00000,
    0x3E000000, 0x3E200000, 0x3E400000, 0x3E600000, 0x3E800000, 0x3EA00000, 0x3EC00000, 0x3EE00000,
    0x3F000000, 0x3F200000, 0x3F400000, 0x3F600000, 0x3F800000, 0x3FA00000, 0x3FC00000, 0x3FE00000,
    0x40000000, 0x40200000, 0x40400000, 0x40600000, 0x40800000, 0x40A00000, 0x40C00000, 0x40E00000,
    0x41000000, 0x41200000, 0x41400000, 0x41600000, 0x41800000, 0x41A00000, 0x41C00000, 0x41E00000,
    0x42000000, 0x42200000, 0x42400000, 0x42600000, 0x42800000, 0x42A00000, 0x42C00000, 0x42E00000,
    0x43000000, 0x43200000, 0x43400000, 0x43600000, 0x43800000, 0x43A00000, 0x43C00000, 0x43E00000,
    0x44000000, 0x44200000, 0x44400000, 0x44600000, 0x44800000, 0x44A00000, 0x44C00000, 0x44E00000,
    0x45000000, 0x45200000, 0x45400000, 0x45600000, 0x45800000, 0x45A00000, 0x45C00000, 0x45E00000,
    0x46000000, 0x46200000, 0x46400000, 0x46600000, 0x46800000, 0x46A00000, 0x46C00000, 0x46E00000,
    0x47000000, 0x47200000, 0x47400000, 0x47600000, 0x7F800000, 0x7FE00000, 0x7FC00000, 0x7FE00000,
    0x80000000, 0xB7800000, 0xB8000000, 0xB8400000, 0xB8800000, 0xB8A00000, 0xB8C00000, 0xB8E00000,
    0xB9000000, 0xB9200000, 0xB9400000, 0xB9600000, 0xB9800000, 0xB9A00000, 0xB9C00000, 0xB9E00000,
    0xBA000000, 0xBA200000, 0xBA400000, 0xBA600000, 0xBA800000, 0xBAA00000, 0xBAC00000, 0xBAE00000,
    0xBB000000, 0xBB200000, 0xBB400000, 0xBB600000, 0xBB800000, 0xBBA00000, 0xBBC00000, 0xBBE00000,
    0xBC000000, 0xBC200000, 0xBC400000, 0xBC600000, 0xBC800000, 0xBCA00000, 0xBCC00000, 0xBCE00000,
    0xBD000000, 0xBD200000, 0xBD400000, 0xBD600000, 0xBD800000, 0xBDA00000, 0xBDC00000, 0xBDE00000,
    0xBE000000, 0xBE200000, 0xBE400000, 0xBE600000, 0xBE800000, 0xBEA00000, 0xBEC00000, 0xBEE00000,
    0xBF000000, 0xBF200000, 0xBF400000, 0xBF600000, 0xBF800000, 0xBFA00000, 0xBFC00000, 0xBFE00000,
    0xC0000000, 0xC0200000, 0xC0400000, 0xC0600000, 0xC0800000, 0xC0A00000, 0xC0C00000, 0xC0E00000,
    0xC1000000, 0xC1200000, 0xC1400000, 0xC1600000, 0xC1800000, 0xC1A00000, 0xC1C00000, 0xC1E00000,
    0xC2000000, 0xC2200000, 0xC2400000, 0xC2600000, 0xC2800000, 0xC2A00000, 0xC2C00000, 0xC2E00000,
    0xC3000000, 0xC3200000, 0xC3400000, 0xC3600000, 0xC3800000, 0xC3A00000, 0xC3C00000, 0xC3E00000,
    0xC4000000, 0xC4200000, 0xC4400000, 0xC4600000, 0xC4800000, 0xC4A00000, 0xC4C00000, 0xC4E00000,
    0xC5000000, 0xC5200000, 0xC5400000, 0xC5600000, 0xC5800000, 0xC5A00000, 0xC5C00000, 0xC5E00000,
    0xC6000000, 0xC6200000, 0xC6400000, 0xC6600000, 0xC6800000, 0xC6A00000, 0xC6C00000, 0xC6E00000,
    0xC7000000, 0xC7200000, 0xC7400000, 0xC7600000, 0xFF800000, 0xFFE00000, 0xFFC00000, 0xFFE00000,
  ]
}
