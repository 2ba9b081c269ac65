// Sampling that hands each token to the caller as soon as its step ends (a CLI that prints text
// as it comes, a host that watches for a stop string): one sampleBatch call with a step callback,
// so the result is that call's, bit for bit, speculation included (SpeculativeDecoding.swift).
// Returning false stops right after that token, as a call asking for exactly those tokens would.

import GLM5Core

extension SampleResult {
  /// The first c tokens of the result (their logprobs and alternatives).
  func prefix(_ c: Int) -> SampleResult {
    var r = self
    guard c < tokens.count else { return r }
    r.tokens = Array(tokens.prefix(c))
    r.logprobs = Array(logprobs.prefix(c))
    r.scaledLogprobs = Array(scaledLogprobs.prefix(c))
    r.processedLogprobs = Array(processedLogprobs.prefix(c))
    r.topIds = Array(topIds.prefix(c * topN))
    r.topLogprobs = Array(topLogprobs.prefix(c * topN))
    r.finishReason = .none
    r.stopTokenId = nil
    return r
  }
}

extension Session {
  /// Sample as `sample(params)` does; `onToken` gets the result so far after each token (its
  /// last token is the new one) and returns false to stop there (finish reason cancelled, unless
  /// that token ended the call anyway). Returns what `sample(params)` returns (bitwise), unless
  /// stopped so. An error thrown by `onToken` stops sampling after that token and is rethrown.
  public func sampleStreaming(_ params: SamplingParams,
                              onToken: (SampleResult) throws(GLM5Error) -> Bool) throws(GLM5Error) -> SampleResult {
    var failure: GLM5Error? = nil
    let r = try withoutActuallyEscaping(onToken) { (onToken) throws(GLM5Error) -> [SampleResult] in
      try model.sampleBatch([self], [params]) { _, r, c in
        do throws(GLM5Error) {
          return try onToken(r.prefix(c))
        } catch {
          failure = error
          return false
        }
      }
    }
    if let failure { throw failure }
    return r[0]
  }
}
