// glm5_model_*: loading and describing checkpoints.
//
// glm5_model_params_init, glm5_model_info_init and glm5_session_params_init are `static inline`
// in include/glm5.h, not exported: a host always fills struct_size with the size of the struct it
// was compiled with, and the functions here accept any size from the first version's up.

import CGLM5
import GLM5Core
import GLM5Engine
import GLM5Model

@c @implementation
public func glm5_model_load(_ path: UnsafePointer<CChar>?, _ params: UnsafePointer<glm5_model_params>?,
                            _ outModel: UnsafeMutablePointer<OpaquePointer?>?) -> glm5_status {
  guarded("glm5_model_load") { () throws(GLM5Error) in
    guard let path else { throw .invalidArgument("path is NULL") }
    guard let outModel else { throw .invalidArgument("out_model is NULL") }
    var threads: Int32 = 0
    if let params {
      try checkStructSize("glm5_model_load", "glm5_model_params", params.pointee.struct_size, minimum: 8)
      threads = params.pointee.n_threads
    }
    let model = try Model(path: String(cString: path), threads: Int(threads))
    outModel.pointee = makeHandle(model, kind: "model")
  }
}

@c @implementation
public func glm5_model_free(_ model: OpaquePointer?) {
  release(model, Model.self, kind: "model")
}

@c @implementation
public func glm5_model_get_info(_ model: OpaquePointer?, _ info: UnsafeMutablePointer<glm5_model_info>?) -> glm5_status {
  guarded("glm5_model_get_info") { () throws(GLM5Error) in
    let m = try object(model, Model.self, kind: "model", param: "model")
    guard let info else { throw .invalidArgument("info is NULL") }
    let firstVersion = MemoryLayout<glm5_model_info>.offset(of: \glm5_model_info.updated_weight_bytes)!
    try checkStructSize("glm5_model_get_info", "glm5_model_info", info.pointee.struct_size, minimum: firstVersion)
    let c = m.config
    let snap = m.weights
    let ck = snap.checkpoint
    var v = glm5_model_info()
    v.struct_size = info.pointee.struct_size
    v.vocab_size = UInt32(c.vocabSize)
    v.hidden_size = UInt32(c.hiddenSize)
    v.n_layers = UInt32(c.numHiddenLayers)
    v.n_dense_layers = UInt32(c.numDenseLayers)
    v.n_moe_layers = UInt32(c.numMoELayers)
    v.n_heads = UInt32(c.numAttentionHeads)
    v.q_lora_rank = UInt32(c.qLoraRank)
    v.kv_lora_rank = UInt32(c.kvLoraRank)
    v.qk_nope_head_dim = UInt32(c.qkNopeHeadDim)
    v.qk_rope_head_dim = UInt32(c.qkRopeHeadDim)
    v.v_head_dim = UInt32(c.vHeadDim)
    v.n_routed_experts = UInt32(c.nRoutedExperts)
    v.n_experts_per_tok = UInt32(c.numExpertsPerTok)
    v.n_shared_experts = UInt32(c.nSharedExperts)
    v.index_n_heads = UInt32(c.indexNHeads)
    v.index_head_dim = UInt32(c.indexHeadDim)
    v.index_topk = UInt32(c.indexTopK)
    v.max_position_embeddings = UInt32(c.maxPositionEmbeddings)
    v.has_mtp = ck.weights.mtp.isEmpty ? 0 : 1
    v.n_mtp_layers = UInt32(ck.weights.mtp.count)
    v.weight_dtypes = ck.dtypeMask
    v.n_parameters = UInt64(ck.parameterCount)
    v.weight_file_bytes = UInt64(ck.tensorBytes)
    v.weight_formats = ck.formatMask
    v.resident_weight_bytes = UInt64(ck.tensorBytes + snap.transformer.ownedBytes)
    v.updated_weight_bytes = UInt64(ck.store.ownedBytes)
    v.n_weight_updates = UInt64(snap.epoch)
    // Only the bytes the host's struct has room for (it may be an older, shorter version).
    withUnsafeBytes(of: &v) { src in
      UnsafeMutableRawPointer(info).copyMemory(from: src.baseAddress!, byteCount: min(src.count, Int(info.pointee.struct_size)))
    }
  }
}
