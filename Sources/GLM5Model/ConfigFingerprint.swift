// What makes two configurations "the same model" for weight updates and saved sessions: every
// field that shapes a tensor or the forward pass, written out in a fixed text form, and its
// 64-bit FNV-1a hash. Left out: the quantization scheme (a trainer's BF16 export updates an INT4
// model) and the token ids that only stop generation (eos, bos, pad).

extension ModelConfig {
  /// The canonical text of the fields compared.
  public var fingerprintText: String {
    func d(_ x: Double) -> String { String(x.bitPattern, radix: 16) }
    let r = rope
    let parts: [String] = [
      "model_type=\(modelType)", "vocab=\(vocabSize)", "hidden=\(hiddenSize)", "layers=\(numHiddenLayers)",
      "max_pos=\(maxPositionEmbeddings)", "rms_eps=\(d(rmsNormEps))", "tie=\(tieWordEmbeddings)",
      "heads=\(numAttentionHeads)", "q_lora=\(qLoraRank)", "kv_lora=\(kvLoraRank)", "nope=\(qkNopeHeadDim)",
      "rope_dim=\(qkRopeHeadDim)", "v=\(vHeadDim)", "attn_bias=\(attentionBias)",
      "rope=\(d(r.theta)),\(r.type),\(d(r.factor)),\(r.originalMaxPositionEmbeddings),\(d(r.betaFast)),\(d(r.betaSlow)),\(d(r.mscale)),\(d(r.mscaleAllDim)),\(r.attentionFactor.map(d) ?? "-"),\(r.truncate)",
      "index_topk=\(indexTopK)", "index_dim=\(indexHeadDim)", "index_heads=\(indexNHeads)",
      "indexers=\(indexerTypes.map(\.rawValue).joined(separator: ","))",
      "inter=\(intermediateSize)", "moe_inter=\(moeIntermediateSize)", "first_dense=\(firstKDenseReplace)",
      "mlp=\(mlpLayerTypes.map(\.rawValue).joined(separator: ","))", "experts=\(nRoutedExperts)",
      "per_tok=\(numExpertsPerTok)", "shared=\(nSharedExperts)", "groups=\(nGroup)", "topk_group=\(topkGroup)",
      "scaling=\(d(routedScalingFactor))", "norm_topk=\(normTopkProb)", "act=\(hiddenAct)", "mtp=\(numNextnPredictLayers)",
    ]
    return parts.joined(separator: ";")
  }

  /// FNV-1a (64-bit) of fingerprintText.
  public var fingerprint: UInt64 {
    var h: UInt64 = 0xcbf2_9ce4_8422_2325
    for b in fingerprintText.utf8 { h = (h ^ UInt64(b)) &* 0x0000_0100_0000_01b3 }
    return h
  }
}
