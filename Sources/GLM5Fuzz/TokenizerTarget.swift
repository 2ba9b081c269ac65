// tokenizer.json: Tokenizer(json:) as Tokenizer.load builds it, then a fixed text through encode
// and decode (the regexes, merges and added tokens the file defines all run on it).

import GLM5Core
import GLM5Tokenizer

/// ASCII words, digits, whitespace runs, punctuation, GLM-5's special tokens, and non-ASCII
/// scalars of several categories (Latin-1, CJK, an emoji, a combining mark).
let fuzzTokenizerText = Array("Hello, world! [gMASK]<sop><|user|>\nx = 12345;  \t\r\n  déjà vu 漢字 🙂 e\u{301}<|endoftext|>".utf8)

@Sendable func fuzzTokenizer(_ bytes: UnsafeRawBufferPointer) {
  swallow { () throws(GLM5Error) in
    let t = try Tokenizer(json: Array(bytes), config: nil)
    let ids = try withBytes(fuzzTokenizerText) { (b) throws(GLM5Error) -> [Int32] in try t.encode(b) }
    _ = try t.decodeBytes(ids)
    _ = try t.decodeBytes(ids, skipSpecialTokens: true)
  }
}

/// A small valid tokenizer.json, for the tokenizer-config target: its tokens are what
/// tokenizer_config.json's eos/bos/pad/unk may name.
let fuzzSmallTokenizer = Array("""
  {"added_tokens": [{"id": 3, "content": "<|endoftext|>", "special": true}, {"id": 4, "content": "<|user|>", "special": true}],
   "model": {"type": "BPE", "vocab": {"a": 0, "b": 1, "ab": 2}, "merges": [["a", "b"]]}}
  """.utf8)

/// tokenizer_config.json, read with fuzzSmallTokenizer as Tokenizer.load reads the pair.
@Sendable func fuzzTokenizerConfig(_ bytes: UnsafeRawBufferPointer) {
  swallow { () throws(GLM5Error) in
    let t = try Tokenizer(json: fuzzSmallTokenizer, config: Array(bytes))
    for id in [t.eosId, t.bosId, t.padId, t.unkId] { if let id { precondition(t.tokenString(id) != nil) } }
  }
}
