// Sampling one token at a time, handing each to the caller as soon as it is drawn (a CLI that
// prints text as it comes, a host that watches for a stop string).
//
// Why this equals one `sample(params)` call bit for bit: a draw is a pure function of (logits,
// parameters, seed, position), where position is the session's token count (include/glm5.h
// "Sampling"); appends are split-invariant, so the logits at each position are the same bits
// whether the tokens came from one call or many. What one call does besides drawing is redone
// here in the same order: the checks of the whole request before the first token, then per
// token "max_new_tokens reached" before "stop id drawn" (SGLang's check_finished), the stop set
// being stop_token_ids plus the model's eos ids unless ignore_eos. Each step is a sample call
// of one token with no stop ids, whose finish reason is therefore length, or cancelled.
//
// Difference: one call runs all its tokens on the weights in force when it starts; here each
// token runs on the weights in force when its step starts (a weight update between tokens is
// seen from the next token on). `weightVersion` is the first step's.

import GLM5Core

extension Session {
  /// Sample as `sample(params)` does, one token per engine call; `onToken` gets the result so far
  /// after each token (its last token is the new one) and returns false to stop there (finish
  /// reason cancelled). Returns what `sample(params)` returns (bitwise), unless stopped so.
  public func sampleStreaming(_ params: SamplingParams,
                              onToken: (SampleResult) throws(GLM5Error) -> Bool) throws(GLM5Error) -> SampleResult {
    try model.checkSample(self, params, context: "")
    try reserve(count + params.maxNewTokens)
    var stops = Set(params.stopTokenIds)
    if !params.ignoreEOS { stops.formUnion(model.eosTokenIds) }
    var step = params
    step.maxNewTokens = 1
    step.stopTokenIds = []
    step.ignoreEOS = true

    var r = SampleResult()
    r.topN = params.topLogprobs
    r.weightVersion = model.weightVersion
    if params.maxNewTokens == 0 {
      r.finishReason = .length
      return r
    }
    while true {
      let t = try sample(step)
      if r.tokens.isEmpty { r.weightVersion = t.weightVersion }
      guard t.finishReason != .cancelled, let id = t.tokens.first else {
        r.finishReason = .cancelled
        return r
      }
      r.tokens.append(id)
      r.logprobs.append(t.logprobs[0])
      r.scaledLogprobs.append(t.scaledLogprobs[0])
      r.processedLogprobs.append(t.processedLogprobs[0])
      r.topIds += t.topIds
      r.topLogprobs += t.topLogprobs
      if r.tokens.count == params.maxNewTokens {
        r.finishReason = .length  // first, as sampleBatch
      } else if stops.contains(id) {
        r.finishReason = .stop
        r.stopTokenId = id
      }
      let more = try onToken(r)
      if r.finishReason != .none { return r }
      if !more {
        r.finishReason = .cancelled
        return r
      }
    }
  }
}
