// glm5 serve: the response schema, SGLang's answer object {text, output_ids, meta_info} as its
// tokenizer manager writes it, plus glm5's extras under their own names (routed_experts, dsa_topk,
// the raw and processed logprob variants). Floats are printed exactly (JSONWriter).

import GLM5Core
import GLM5Engine
import GLM5Serve

/// What a job has produced so far (a snapshot the scheduler hands to the HTTP side).
struct JobOutput: Sendable {
  var rid: String
  var promptTokens: Int
  var tokens: [Int32] = []
  var raw: [Float] = []
  var scaled: [Float] = []
  var processed: [Float] = []
  var topN = 0
  var topIds: [Int32] = []
  var topLogprobs: [Float] = []
  /// Scaled logprobs of the prompt tokens from logprobStart on (NaN for position 0).
  var inputLogprobs: [Float] = []
  var inputIds: [Int32] = []
  var finish: Finish? = nil
  var weightVersion = ""
  var latency = 0.0
  /// Top-N (ids, scaled logprobs) of the prompt positions from logprobStart on, [positions, N]
  /// flat; a position without them (position 0) has ids -1 and is written as null.
  var inputTopIds: [Int32] = []
  var inputTopLogprobs: [Float] = []
  var inputTop = false
  /// Prompt tokens whose caches came from an earlier request (prefix reuse).
  var cachedTokens = 0
  /// int32 [tokens - 1, layers, experts_per_tok], -1 rows for dense layers.
  var routedExperts: [Int32]? = nil
  /// int32 [tokens - 1, layers, index_topk], the DSA selections, -1 padded.
  var dsaTopk: [Int32]? = nil
  var returnLogprob = false

  /// SGLang's answer object {text, output_ids, meta_info}.
  func write(_ w: inout JSONWriter, index: Int?) {
    w.object { w in
      w.field("text", "")
      w.key("output_ids")
      w.array { w in for t in tokens { w.value(Int(t)) } }
      w.key("meta_info")
      w.object { w in
        w.field("id", rid)
        w.key("finish_reason")
        if let finish { finish.write(&w) } else { w.null() }
        w.field("prompt_tokens", promptTokens)
        w.field("completion_tokens", tokens.count)
        w.field("cached_tokens", cachedTokens)
        w.field("weight_version", weightVersion)
        w.field("e2e_latency", latency)
        if returnLogprob {
          func triples(_ lps: [Float], _ ids: [Int32], _ w: inout JSONWriter) {
            w.array { w in
              for (lp, id) in zip(lps, ids) {
                w.array { w in
                  if lp.isNaN { w.null() } else { w.value(lp) }
                  w.value(Int(id))
                  w.null()
                }
              }
            }
          }
          w.key("input_token_logprobs"); triples(inputLogprobs, inputIds, &w)
          w.key("output_token_logprobs"); triples(scaled, tokens, &w)
          w.key("output_token_logprobs_raw"); triples(raw, tokens, &w)
          w.key("output_token_logprobs_processed"); triples(processed, tokens, &w)
          if inputTop {
            // SGLang: one list per prompt position from logprob_start_len; null where none.
            w.key("input_top_logprobs")
            w.array { w in
              for p in 0..<(inputTopIds.count / max(topN, 1)) {
                let ids = Array(inputTopIds[(p * topN)..<((p + 1) * topN)])
                if ids.first == -1 { w.null(); continue }
                triples(Array(inputTopLogprobs[(p * topN)..<((p + 1) * topN)]), ids, &w)
              }
            }
          }
          if topN > 0 {
            w.key("output_top_logprobs")
            w.array { w in
              for t in tokens.indices {
                triples(Array(topLogprobs[(t * topN)..<((t + 1) * topN)]), Array(topIds[(t * topN)..<((t + 1) * topN)]), &w)
              }
            }
          }
        }
        if let routedExperts {
          w.field("routed_experts", base64(routedExperts))
        }
        if let dsaTopk {
          w.field("dsa_topk", base64(dsaTopk))
        }
      }
      if let index { w.field("index", index) }
    }
  }
}

/// Standard base64 of little-endian int32s.
func base64(_ v: [Int32]) -> String {
  var bytes: [UInt8] = []
  bytes.reserveCapacity(v.count * 4)
  for x in v {
    let u = UInt32(bitPattern: x.littleEndian)
    bytes.append(UInt8(u & 0xff)); bytes.append(UInt8((u >> 8) & 0xff))
    bytes.append(UInt8((u >> 16) & 0xff)); bytes.append(UInt8(u >> 24))
  }
  let table = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".utf8)
  var out: [UInt8] = []
  out.reserveCapacity((bytes.count + 2) / 3 * 4)
  var i = 0
  while i + 2 < bytes.count {
    let n = UInt32(bytes[i]) << 16 | UInt32(bytes[i + 1]) << 8 | UInt32(bytes[i + 2])
    out += [table[Int(n >> 18)], table[Int((n >> 12) & 63)], table[Int((n >> 6) & 63)], table[Int(n & 63)]]
    i += 3
  }
  let rest = bytes.count - i
  if rest == 1 {
    let n = UInt32(bytes[i]) << 16
    out += [table[Int(n >> 18)], table[Int((n >> 12) & 63)], UInt8(ascii: "="), UInt8(ascii: "=")]
  } else if rest == 2 {
    let n = UInt32(bytes[i]) << 16 | UInt32(bytes[i + 1]) << 8
    out += [table[Int(n >> 18)], table[Int((n >> 12) & 63)], table[Int((n >> 6) & 63)], UInt8(ascii: "=")]
  }
  return String(decoding: out, as: UTF8.self)
}
