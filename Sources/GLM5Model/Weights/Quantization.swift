// Quantized checkpoint formats, as config.json's `quantization_config` declares them
// (glm5-architecture.md §7, §9.1):
//
//   FP8 block  (quant_method "fp8"): <m>.weight F8_E4M3 [out, in] + <m>.weight_scale_inv F32
//              [ceil(out/Br), ceil(in/Bc)], W = fp8 · scale[r / Br, c / Bc] (the "inv" is a multiplier)
//   INT4 group (quant_method "compressed-tensors", format "pack-quantized"): <m>.weight_packed I32
//              [out, in/8] (nibble j of word w = column 8w+j, stored q+8), <m>.weight_scale
//              [out, in/G], <m>.weight_shape [2], and <m>.weight_zero_point I32 [ceil(out/8), in/G]
//              (packed along the output dim) when asymmetric: W = (u − 8 − zp) · scale
//
// Which modules are quantized is read from the tensors present (a module is FP8 if it has
// weight_scale_inv, INT4 if it has weight_packed); the config supplies block and group sizes and
// is checked against what the tensors say.

import GLM5Core

public enum QuantScheme: Sendable, Equatable, CustomStringConvertible {
  case fp8Block(blockRows: Int, blockCols: Int, modulesToNotConvert: [String])
  case int4Group(groupSize: Int?, symmetric: Bool, ignore: [String])

  public var description: String {
    switch self {
    case .fp8Block(let r, let c, _): return "FP8 e4m3 with \(r)x\(c) block scales"
    case .int4Group(let g, let s, _): return "INT4 compressed-tensors pack-quantized (\(g.map { "group \($0)" } ?? "per channel"), \(s ? "symmetric" : "asymmetric"))"
    }
  }

  /// Parse and check a `quantization_config`; every unsupported choice is named.
  public static func parse(_ q: ModelConfig.Quantization, source: String) throws(GLM5Error) -> QuantScheme {
    let raw = q.raw
    func bad(_ m: String) -> GLM5Error { .badFormat("\(source): quantization_config: \(m)") }
    func unsupported(_ m: String) -> GLM5Error { .unsupported("\(source): quantization_config: \(m)") }
    func strings(_ v: JSON?) -> [String] { v?.array?.compactMap(\.string) ?? [] }
    switch q.method {
    case "fp8":
      if let fmt = raw["fmt"]?.string, fmt != "e4m3" { throw unsupported("fmt \"\(fmt)\" is not supported (e4m3)") }
      if let act = raw["activation_scheme"]?.string, act != "dynamic" {
        throw unsupported("activation_scheme \"\(act)\" is not supported (dynamic: activations stay in float)")
      }
      guard let block = raw["weight_block_size"]?.array, block.count == 2, let br = block[0].int, let bc = block[1].int else {
        throw unsupported("FP8 without \"weight_block_size\": [rows, cols] (per-tensor FP8) is not supported")
      }
      guard br > 0 && bc > 0 && br <= 1 << 16 && bc <= 1 << 16 else { throw bad("weight_block_size [\(br), \(bc)] must be positive") }
      return .fp8Block(blockRows: br, blockCols: bc, modulesToNotConvert: strings(raw["modules_to_not_convert"]))
    case "compressed-tensors":
      let format = q.format ?? "pack-quantized"
      guard format == "pack-quantized" else {
        throw unsupported("compressed-tensors format \"\(format)\" is not supported (pack-quantized)")
      }
      if let status = raw["quantization_status"]?.string, status != "compressed" {
        throw unsupported("quantization_status \"\(status)\" is not supported (compressed)")
      }
      guard let groups = raw["config_groups"]?.object, !groups.isEmpty else { throw bad("no \"config_groups\"") }
      var scheme: (Int?, Bool)? = nil
      for name in groups.keys.sorted() {
        guard let g = groups[name], let w = g["weights"], !w.isNull else { continue }
        let bits = w["num_bits"]?.int ?? -1
        guard bits == 4 else { throw unsupported("config group \(name): num_bits \(bits) is not supported (4)") }
        let type = w["type"]?.string ?? "int"
        guard type == "int" else { throw unsupported("config group \(name): weight type \"\(type)\" is not supported (int)") }
        if let a = g["input_activations"], !a.isNull { throw unsupported("config group \(name): quantized input activations are not supported (weight-only W4A16)") }
        if let ao = w["actorder"], !ao.isNull, ao.string != "static" {
          throw unsupported("config group \(name): activation ordering (actorder \(ao.serialized)) is not supported")
        }
        let strategy = w["strategy"]?.string ?? "group"
        let symmetric = w["symmetric"]?.bool ?? true
        var gs: Int? = nil
        switch strategy {
        case "group":
          guard let size = w["group_size"]?.int else { throw bad("config group \(name): strategy group without group_size") }
          guard [32, 64, 128].contains(size) else { throw unsupported("config group \(name): group_size \(size) is not supported (32, 64, 128)") }
          gs = size
        case "channel":
          gs = nil  // one scale per output row
        default:
          throw unsupported("config group \(name): strategy \"\(strategy)\" is not supported (group, channel)")
        }
        if let s = scheme, s.0 != gs || s.1 != symmetric {
          throw unsupported("config groups with different weight schemes are not supported")
        }
        scheme = (gs, symmetric)
      }
      guard let (gs, sym) = scheme else { throw bad("no config group quantizes weights") }
      return .int4Group(groupSize: gs, symmetric: sym, ignore: strings(raw["ignore"]))
    default:
      throw .unsupported("\(source): quantization_config quant_method \"\(q.method)\" is not supported (fp8, compressed-tensors)")
    }
  }
}
