// glm5 quantize: float or FP8 checkpoint → compressed-tensors pack-quantized INT4.

import ArgumentParser
import GLM5Core
import GLM5Engine
#if canImport(Glibc)
import Glibc
#endif

struct Quantize: ParsableCommand {
  static let configuration = CommandConfiguration(
    abstract: "Write an INT4 (W4A16) compressed-tensors pack-quantized copy of a checkpoint.",
    discussion: """
      Input: a Hugging Face GLM-5 folder with BF16, F16, F32 or FP8 (block-scaled) weights.
      Output: a folder that glm5, transformers (with compressed-tensors), vLLM and SGLang load.
      Quantized to INT4: the attention projections (q_a, q_b, kv_a, kv_b, o_proj, indexer wq_b and
      wk), the dense MLPs, the routed and shared experts, and the MTP block's. Kept unquantized:
      embeddings, lm_head, the MoE router, the indexer's weights_proj, the MTP eh_proj, all norms
      and biases (FP8 ones are written back as BF16). A module whose input size is not a multiple
      of the group size is kept too and listed in the config's `ignore`.
      Streams tensor by tensor: memory stays bounded by the largest tensor.
      """)

  @Argument(help: "Input model folder.")
  var input: String

  @Argument(help: "Output folder (created if missing).")
  var output: String

  @Option(help: "Group size: 32, 64 or 128.")
  var group: Int = 32

  @Flag(help: "Asymmetric groups (with zero points); symmetric by default.")
  var asymmetric = false

  func run() throws {
    let tty = isatty(2) != 0
    var last = -1.0
    let t0 = now()
    let report = try runOrExit { () throws(GLM5Error) -> QuantizeReport in
      try Quantizer.run(input: input, output: output, options: QuantizeOptions(groupSize: group, symmetric: !asymmetric)) { p in
        let frac = p.bytesTotal > 0 ? Double(p.bytesDone) / Double(p.bytesTotal) : 1
        let final = p.tensorsDone == p.tensorsTotal
        // Redraw at most every 1 % on a terminal, every 25 % into a log, and always at the end.
        guard final || frac - last >= (tty ? 0.01 : 0.25) else { return }
        last = frac
        let width = 30
        let filled = Int(frac * Double(width))
        let bar = String(repeating: "#", count: filled) + String(repeating: ".", count: width - filled)
        let line = "[\(bar)] \(fmt(frac * 100, 0))%  tensors \(p.tensorsDone)/\(p.tensorsTotal)  \(fmt(Double(p.bytesDone) / 1e6, 1))/\(fmt(Double(p.bytesTotal) / 1e6, 1)) MB"
        let text = tty ? "\r" + line + (final ? "\n" : "") : line + "\n"
        _ = text.withCString { write(2, $0, strlen($0)) }
      }
    }
    print("quantized \(report.quantizedModules) modules to INT4 (group \(group), \(asymmetric ? "asymmetric" : "symmetric")); kept \(report.keptModules.count) unquantized")
    print("\(fmt(Double(report.inputBytes) / 1e6, 2)) MB -> \(fmt(Double(report.outputBytes) / 1e6, 2)) MB in \(fmt(now() - t0, 2)) s; written to \(output)")
  }
}
