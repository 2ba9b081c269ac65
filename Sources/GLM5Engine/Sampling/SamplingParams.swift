// How a session samples (glm5_sampling_params in include/glm5.h, which documents the exact
// semantics: processing order, tie rules, the generator, the three logprobs).

import GLM5Core

public struct SamplingParams: Sendable, Equatable {
  /// 0 = greedy.
  public var temperature: Float = 1
  /// 0 = off.
  public var topK: Int = 0
  /// 1 = off; in (0, 1].
  public var topP: Float = 1
  /// 0 = off; in [0, 1).
  public var minP: Float = 0
  public var seed: UInt64 = 0
  public var maxNewTokens: Int = 128
  /// Stop ids besides the model's end-of-sequence ids.
  public var stopTokenIds: [Int32] = []
  /// The model's end-of-sequence ids do not stop.
  public var ignoreEOS: Bool = false
  /// Alternatives reported per token (0 ..= maxTopLogprobs).
  public var topLogprobs: Int = 0
  /// Tokens the MTP layer drafts per step (0 = no speculation; 1 ..= maxSpeculative). Changes no
  /// result: every token is the one plain decoding draws (SpeculativeDecoding.swift).
  public var speculative: Int = 0

  public static let maxTopLogprobs = 64
  public static let maxSpeculative = 8
  public static let maxStopTokenIds = 4096

  public init(temperature: Float = 1, topK: Int = 0, topP: Float = 1, minP: Float = 0, seed: UInt64 = 0,
              maxNewTokens: Int = 128, stopTokenIds: [Int32] = [], ignoreEOS: Bool = false, topLogprobs: Int = 0,
              speculative: Int = 0) {
    self.temperature = temperature
    self.topK = topK
    self.topP = topP
    self.minP = minP
    self.seed = seed
    self.maxNewTokens = maxNewTokens
    self.stopTokenIds = stopTokenIds
    self.ignoreEOS = ignoreEOS
    self.topLogprobs = topLogprobs
    self.speculative = speculative
  }

  /// Greedy decoding with no stop ids (what `Session.generate` does).
  public static func greedy(_ n: Int) -> SamplingParams {
    SamplingParams(temperature: 0, maxNewTokens: n, ignoreEOS: true)
  }

  /// Check every field; the message names the field (and `context`, e.g. "session 3: ").
  public func validate(vocab: Int, context: String = "") throws(GLM5Error) {
    func bad(_ m: String) -> GLM5Error { .invalidArgument(context + m) }
    guard temperature.isFinite && temperature >= 0 else { throw bad("temperature is \(temperature), must be finite and >= 0 (0 = greedy)") }
    guard topK >= 0 else { throw bad("top_k is \(topK), must be >= 0 (0 = off)") }
    guard topP > 0 && topP <= 1 else { throw bad("top_p is \(topP), must be in (0, 1] (1 = off)") }
    guard minP >= 0 && minP < 1 else { throw bad("min_p is \(minP), must be in [0, 1) (0 = off)") }
    guard maxNewTokens >= 0 else { throw bad("max_new_tokens is \(maxNewTokens), must be >= 0") }
    guard topLogprobs >= 0 && topLogprobs <= SamplingParams.maxTopLogprobs else {
      throw bad("n_top_logprobs is \(topLogprobs), must be in [0, \(SamplingParams.maxTopLogprobs)]")
    }
    guard speculative >= 0 && speculative <= SamplingParams.maxSpeculative else {
      throw bad("speculative is \(speculative), must be in [0, \(SamplingParams.maxSpeculative)] (0 = off)")
    }
    guard stopTokenIds.count <= SamplingParams.maxStopTokenIds else {
      throw bad("n_stop_token_ids is \(stopTokenIds.count), must be at most \(SamplingParams.maxStopTokenIds)")
    }
    for (i, id) in stopTokenIds.enumerated() where id < 0 || Int(id) >= vocab {
      throw bad("stop_token_ids[\(i)] is \(id), outside [0, \(vocab))")
    }
  }
}

/// Why sampling stopped (glm5_finish_reason; raw values pinned there).
public enum FinishReason: Int32, Sendable {
  case none = 0, length = 1, stop = 2, cancelled = 3
}

/// What one sampling call produced.
public struct SampleResult: Sendable {
  public var tokens: [Int32] = []
  public var logprobs: [Float] = []
  public var scaledLogprobs: [Float] = []
  public var processedLogprobs: [Float] = []
  /// [tokens, topN] row-major.
  public var topIds: [Int32] = []
  public var topLogprobs: [Float] = []
  public var topN: Int = 0
  public var finishReason: FinishReason = .none
  public var stopTokenId: Int32? = nil
  /// The version of the weights every token of this call was produced with (a call runs on the
  /// snapshot in force when it started).
  public var weightVersion: String = ""
  /// With speculation: draft tokens accepted at each verification step (0 ..= speculative);
  /// empty otherwise. The step also draws one token itself, so it made accepted + 1 (fewer when it ends the call).
  public var accepted: [Int32] = []
  public init() {}
}
