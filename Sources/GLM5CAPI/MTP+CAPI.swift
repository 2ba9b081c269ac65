// glm5_model_mtp_draft_logits (include/glm5.h "Speculative decoding (MTP)").

import CGLM5
import GLM5Core
import GLM5Engine

@c @implementation
public func glm5_model_mtp_draft_logits(_ model: OpaquePointer?, _ tokens: UnsafePointer<Int32>?, _ nTokens: Int,
                                        _ out: UnsafeMutablePointer<Float>?, _ capacity: Int) -> glm5_status {
  guarded("glm5_model_mtp_draft_logits") { () throws(GLM5Error) in
    let m = try object(model, Model.self, kind: "model", param: "model")
    let ids = try scoredTokens(m, tokens, nTokens)
    guard let out else { throw .invalidArgument("out is NULL") }
    try checkCount(capacity, "capacity")
    let (need, overflow) = Model.mtpDraftRows(ids.count).multipliedReportingOverflow(by: m.config.vocabSize)
    guard !overflow, capacity >= need else {
      throw GLM5Error(.bufferTooSmall, "capacity is \(capacity) floats, \(ids.count) tokens of draft logits need \(need)")
    }
    try m.mtpDraftLogits(ids, into: out)
  }
}
