// The instruction set the C kernels run (chosen once at run time from the CPU, CGLM5Kernels/isa.c;
// GLM5_ISA=avx2 forces the baseline). Every choice gives the same bits; tests run each.

import CGLM5Kernels

public enum InstructionSet: Int32, Sendable, CustomStringConvertible {
  case avx2 = 0    // GLM5K_ISA_AVX2: AVX2 + FMA (x86-64-v3), the build's baseline
  case avx512 = 1  // GLM5K_ISA_AVX512: AVX-512F

  /// The one in use.
  public static var current: InstructionSet { InstructionSet(rawValue: glm5k_isa()) ?? .avx2 }

  /// Use `isa` if the CPU has it (nil: the default choice again); returns the one now in use.
  @discardableResult
  public static func force(_ isa: InstructionSet?) -> InstructionSet {
    InstructionSet(rawValue: glm5k_set_isa(isa?.rawValue ?? -1)) ?? .avx2
  }

  public var description: String { self == .avx2 ? "AVX2+FMA" : "AVX-512F" }
}

extension InstructionSet {
  /// One thread's run of the FMA-rate probe on the widest vectors in use: (FLOPs done, a sink).
  public static func fmaProbe(iterations: Int) -> (flops: Double, sink: Float) {
    var sink: Float = 0
    let f = glm5k_fma_probe(Int64(iterations), &sink)
    return (f, sink)
  }
}
