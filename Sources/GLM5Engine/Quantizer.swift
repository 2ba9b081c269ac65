// `glm5 quantize`: a BF16/F16/F32/FP8 checkpoint → a compressed-tensors `pack-quantized` INT4
// checkpoint (W4A16, groups of 32, 64 or 128, symmetric or asymmetric) that transformers
// (with compressed-tensors), vLLM and SGLang load too.
//
// Quantized: every Linear of attention (q_a, q_b, kv_a, kv_b, o_proj, indexer wq_b and wk), the
// dense MLPs, routed and shared experts, and the MTP block's. Kept as they are: embeddings,
// lm_head, the router, the indexer's weights_proj, the MTP glue (eh_proj), norms, biases. A module
// whose input size is not a multiple of the group stays unquantized and joins the ignore list.
// Streaming: one output file per input file, tensor by tensor; memory is bounded by the largest
// tensor, not the model.

import GLM5Core
import GLM5Kernels
import GLM5Model

public struct QuantizeOptions: Sendable {
  public var groupSize: Int = 32
  public var symmetric: Bool = true
  public init(groupSize: Int = 32, symmetric: Bool = true) {
    self.groupSize = groupSize
    self.symmetric = symmetric
  }
}

public struct QuantizeProgress: Sendable {
  public var tensorsDone: Int, tensorsTotal: Int
  public var bytesDone: Int, bytesTotal: Int
}

public struct QuantizeReport: Sendable {
  public var quantizedModules = 0
  public var keptModules: [String] = []
  public var inputBytes = 0
  public var outputBytes = 0
}

public enum Quantizer {
  public static func run(input: String, output: String, options o: QuantizeOptions,
                         progress: (QuantizeProgress) -> Void = { _ in }) throws(GLM5Error) -> QuantizeReport {
    guard [32, 64, 128].contains(o.groupSize) else {
      throw .invalidArgument("group size \(o.groupSize) is not supported (32, 64, 128)")
    }
    let ck = try Checkpoint(folder: input)
    if case .int4Group? = ck.quant { throw .unsupported("\(input) is already INT4 (compressed-tensors); quantize the float or FP8 original") }
    guard !sameFolder(input, output) else { throw .invalidArgument("the output folder must differ from the input folder") }
    try makeDirectory(output)

    // Decide every Linear: quantize, or keep (and then list it in `ignore`).
    let linears = Dictionary(uniqueKeysWithValues: ck.linearModules.map { ($0.name, $0.linear) })
    var quantize = Set<String>()
    var report = QuantizeReport()
    for (name, q, l) in ck.linearModules {
      if q && l.inFeatures % o.groupSize == 0 { quantize.insert(name); report.quantizedModules += 1 } else { report.keptModules.append(name) }
    }

    // Plan each output file: its tensors in input order, with quantized ones replaced.
    let scaleDType: (DType) -> DType = { $0 == .f8e4m3 ? .bf16 : $0 }
    var plans: [(file: SafeTensorsFile, specs: [TensorSpec])] = []
    var totalTensors = 0, totalBytes = 0
    for f in ck.store.files {
      var specs: [TensorSpec] = []
      for t in f.tensors {
        let (module, suffix) = split(t.name)
        if suffix == "weight_scale_inv" { continue }  // FP8 scales are folded into what replaces the weight
        if suffix == "weight", let l = linears[module] {
          if quantize.contains(module) {
            let g = l.inFeatures / o.groupSize
            specs.append(TensorSpec(name: module + ".weight_packed", dtype: .i32, shape: [l.outFeatures, (l.inFeatures + 7) / 8]))
            specs.append(TensorSpec(name: module + ".weight_scale", dtype: scaleDType(t.dtype), shape: [l.outFeatures, g]))
            specs.append(TensorSpec(name: module + ".weight_shape", dtype: .i64, shape: [2]))
            if !o.symmetric {
              specs.append(TensorSpec(name: module + ".weight_zero_point", dtype: .i32, shape: [(l.outFeatures + 7) / 8, g]))
            }
          } else {
            specs.append(TensorSpec(name: t.name, dtype: t.dtype == .f8e4m3 ? .bf16 : t.dtype, shape: t.shape))
          }
        } else {
          specs.append(TensorSpec(name: t.name, dtype: t.dtype, shape: t.shape))
        }
        totalTensors += 1
        totalBytes += t.byteCount
      }
      plans.append((f, specs))
    }

    // Stream.
    var done = QuantizeProgress(tensorsDone: 0, tensorsTotal: totalTensors, bytesDone: 0, bytesTotal: totalBytes)
    var weightMap: [String: JSON] = [:]
    for (f, specs) in plans {
      let name = basename(f.path)
      let w = try SafeTensorsWriter(path: joinPath(output, name), specs: specs)
      let byName = Dictionary(uniqueKeysWithValues: f.tensors.map { ($0.name, $0) })
      var i = 0
      while i < specs.count {
        let s = specs[i]
        weightMap[s.name] = .string(name)
        let (module, suffix) = split(s.name)
        if suffix == "weight_packed", let l = linears[module] {
          let n = o.symmetric ? 3 : 4
          for k in 1..<n { weightMap[specs[i + k].name] = .string(name) }
          try writeQuantized(l, module: module, specs: Array(specs[i..<(i + n)]), options: o, to: w)
          done.bytesDone += l.weight.byteCount
          i += n
        } else if let t = byName[s.name] {
          if t.dtype != s.dtype, let l = linears[module] {
            try writeDequantized(l, spec: s, to: w)  // FP8 kept module → BF16
          } else {
            try w.write(s.name, UnsafeRawBufferPointer(start: t.data, count: t.byteCount))
          }
          done.bytesDone += t.byteCount
          i += 1
        } else {
          throw .internal("quantizer: no source for \(s.name)")
        }
        done.tensorsDone += 1
        progress(done)
      }
      try w.finish()
      report.outputBytes += w.file.bytesWritten
    }
    report.inputBytes = totalBytes

    // config.json with the quantization_config compressed-tensors writes; other files copied.
    try writeConfig(from: input, to: output, options: o, ignore: report.keptModules)
    if ck.store.files.count > 1 {
      let tensorBytes = plans.reduce(0) { $0 + $1.specs.reduce(0) { $0 + $1.byteCount } }  // HF: tensor data only
      let index: JSON = .object(["metadata": .object(["total_size": .number(Double(tensorBytes))]), "weight_map": .object(weightMap)])
      let fw = try FileWriter(path: joinPath(output, "model.safetensors.index.json"))
      try fw.write(index.serialized + "\n")
      try fw.close()
    }
    for extra in ["generation_config.json", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "chat_template.jinja"] {
      let p = joinPath(input, extra)
      if fileKind(p) == .file {
        let fw = try FileWriter(path: joinPath(output, extra))
        try fw.write(try readTextFile(p))
        try fw.close()
      }
    }
    return report
  }

  /// Quantize one Linear module (WeightEncoding.int4) and write its tensors in spec order
  /// (weight_packed, weight_scale, weight_shape, weight_zero_point).
  static func writeQuantized(_ l: Linear, module: String, specs: [TensorSpec], options o: QuantizeOptions,
                             to w: SafeTensorsWriter) throws(GLM5Error) {
    let enc = try WeightEncoding.int4(l, group: o.groupSize, symmetric: o.symmetric, scaleDType: specs[1].dtype)
    for (spec, t) in zip(specs, enc) {
      guard module + "." + t.suffix == spec.name else { throw .internal("quantizer: \(spec.name) planned, \(t.suffix) encoded") }
      try w.write(spec.name, UnsafeRawBufferPointer(t.data.bytes))
    }
  }

  /// A kept FP8 module written back as BF16.
  static func writeDequantized(_ l: Linear, spec: TensorSpec, to w: SafeTensorsWriter) throws(GLM5Error) {
    let enc = try WeightEncoding.float(l, dtype: .bf16)
    try w.write(spec.name, UnsafeRawBufferPointer(enc[0].data.bytes))
  }

  static func writeConfig(from input: String, to output: String, options o: QuantizeOptions, ignore: [String]) throws(GLM5Error) {
    let bytes = try readTextFile(joinPath(input, "config.json"))
    guard case .object(var config) = try withBytes(bytes, { (b) throws(GLM5Error) -> JSON in try JSON.parse(b) }) else {
      throw .badFormat("\(input)/config.json is not an object")
    }
    let weights: JSON = .object([
      "num_bits": .number(4), "type": .string("int"), "symmetric": .bool(o.symmetric), "strategy": .string("group"),
      "group_size": .number(Double(o.groupSize)), "dynamic": .bool(false), "actorder": .null, "block_structure": .null,
      "observer": .string("minmax"), "observer_kwargs": .object([:]),
    ])
    config["quantization_config"] = .object([
      "quant_method": .string("compressed-tensors"),
      "format": .string("pack-quantized"),
      "quantization_status": .string("compressed"),
      "config_groups": .object(["group_0": .object([
        "targets": .array([.string("Linear")]), "weights": weights,
        "input_activations": .null, "output_activations": .null, "format": .string("pack-quantized"),
      ])]),
      "ignore": .array(ignore.map { .string($0) }),
      "kv_cache_scheme": .null,
      "global_compression_ratio": .null,
      "sparsity_config": .object([:]),
      "transform_config": .object([:]),
    ])
    let fw = try FileWriter(path: joinPath(output, "config.json"))
    try fw.write(JSON.object(config).serialized + "\n")
    try fw.close()
  }

  /// "a.b.c.weight" → ("a.b.c", "weight")
  static func split(_ name: String) -> (String, String) {
    guard let dot = name.lastIndex(of: ".") else { return (name, "") }
    return (String(name[..<dot]), String(name[name.index(after: dot)...]))
  }

  static func basename(_ path: String) -> String {
    path.split(separator: "/").last.map(String.init) ?? path
  }

  static func sameFolder(_ a: String, _ b: String) -> Bool {
    func norm(_ p: String) -> String { p.hasSuffix("/") ? String(p.dropLast()) : p }
    return norm(a) == norm(b)
  }
}
