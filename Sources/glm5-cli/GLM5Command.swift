// glm5 — the command-line driver over GLM5Engine (llama2.c `run.c` in spirit). generate and
// chat run the bundled models/glm5-tiny when no folder is given (ModelFolder.swift).
//
//   glm5 info <model-folder>                 print a checkpoint's facts
//   glm5 generate [<model-folder>] --prompt TEXT | --ids ID... [-n N] [--temperature T --top-p P
//                 --top-k K --min-p M --seed S] [--json] [--show-logprobs] [--ignore-eos]
//                                            a continuation, streamed as text (or ids, JSON, logprobs)
//   glm5 chat [<model-folder>] [--system TEXT]
//                                            interactive chat in GLM's turn format (one line a turn)
//   glm5 serve <model-folder>                HTTP rollout server (SGLang native API)
//   glm5 bench [<model-folder>]              prefill / decode tokens per second
//   glm5 quantize <in> <out> [--group 32]    INT4 compressed-tensors copy of a checkpoint

import ArgumentParser
import GLM5Core
import GLM5Engine
import GLM5Model

@main
struct GLM5Command: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "glm5",
    abstract: "Run GLM-5 (glm_moe_dsa) checkpoints on the CPU.",
    subcommands: [Info.self, Generate.self, Chat.self, Serve.self, Bench.self, Quantize.self])
}

/// Turn a library error into a clean exit with its message.
func runOrExit<T>(_ body: () throws(GLM5Error) -> T) throws -> T {
  do {
    return try body()
  } catch {
    throw ValidationError(error.description)
  }
}

struct Info: ParsableCommand {
  static let configuration = CommandConfiguration(abstract: "Load a Hugging Face model folder and print its facts.")

  @Argument(help: "Folder with config.json and safetensors weights.")
  var model: String

  @Option(help: "Compute threads (0 = one per CPU).")
  var threads: Int = 0

  func run() throws {
    let m = try runOrExit { () throws(GLM5Error) in try Model(path: model, threads: threads) }
    let c = m.config
    let ck = m.checkpoint
    let dtypes = DType.allCases.filter { ck.dtypeMask & (1 << UInt32($0.rawValue)) != 0 }.map { "\($0.name)" }
    print("model            \(model)")
    print("model_type       \(c.modelType)")
    print("vocab            \(c.vocabSize)")
    print("hidden           \(c.hiddenSize)")
    print("layers           \(c.numHiddenLayers) (\(c.numDenseLayers) dense, \(c.numMoELayers) MoE)")
    print("attention        \(c.numAttentionHeads) heads, q_lora \(c.qLoraRank), kv_lora \(c.kvLoraRank), qk \(c.qkNopeHeadDim)+\(c.qkRopeHeadDim), v \(c.vHeadDim)")
    print("indexer          \(c.indexNHeads) heads x \(c.indexHeadDim), top-k \(c.indexTopK)")
    print("experts          \(c.nRoutedExperts) routed, \(c.numExpertsPerTok) per token, \(c.nSharedExperts) shared, groups \(c.nGroup)/\(c.topkGroup)")
    print("max positions    \(c.maxPositionEmbeddings)")
    print("MTP layers       \(ck.weights.mtp.count)")
    print("weight dtypes    \(dtypes.joined(separator: ", "))")
    print("parameters       \(ck.parameterCount)")
    print("weight bytes     \(ck.tensorBytes)")
    let formats = [(UInt32(1), "float"), (2, "fp8-block"), (4, "int4-group")].filter { ck.formatMask & $0.0 != 0 }.map(\.1)
    print("linear formats   \(formats.joined(separator: ", "))\(ck.quant.map { " (\($0))" } ?? "")")
    print("resident weights \(ck.tensorBytes + m.transformer.ownedBytes) bytes once all are used")
  }
}
