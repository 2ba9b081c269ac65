#!/usr/bin/env python3
"""Writes the seed inputs of the fuzz targets (Tests/fuzz/<target>/seed-*) from the fixtures and
small hand-made files, and the dictionaries (Tests/fuzz/<target>.dict). The session seeds are
saved sessions, written by Swift: GLM5_FUZZ_WRITE_SEEDS=1 swift test --filter FuzzCorpusTests.
Run from the repository root; it replaces only seed-* files (crash regressions are kept)."""
import glob, json, os, struct, sys

try:
    import zstandard
except ImportError:
    zstandard = None

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FIX = os.path.join(ROOT, "Tests", "Fixtures")
OUT = os.path.join(ROOT, "Tests", "fuzz")


def put(target, name, data):
    d = os.path.join(OUT, target)
    os.makedirs(d, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    with open(os.path.join(d, "seed-" + name), "wb") as f:
        f.write(data)


def clear(target):
    for p in glob.glob(os.path.join(OUT, target, "seed-*")):
        os.remove(p)


def safetensors(tensors, metadata=None):
    """tensors: [(name, dtype, shape, raw bytes)] -> file bytes."""
    header, data = {}, b""
    if metadata is not None:
        header["__metadata__"] = metadata
    for name, dtype, shape, raw in tensors:
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [len(data), len(data) + len(raw)]}
        data += raw
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    return struct.pack("<Q", len(h)) + h + data


SIZES = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I16": 2, "I8": 1, "U8": 1,
         "BOOL": 1, "F8_E4M3": 1, "F8_E5M2": 1, "U16": 2, "U32": 4, "U64": 8}

# -- safetensors
clear("safetensors")
put("safetensors", "empty-header", safetensors([]))
put("safetensors", "two", safetensors([("a.weight", "F32", [2, 3], bytes(range(24))),
                                         ("b", "BF16", [4], bytes(8))], {"format": "pt"}))
put("safetensors", "every-dtype", safetensors([("t_" + d, d, [2, 1], bytes(2 * s)) for d, s in SIZES.items()]
                                                + [("scalar", "F32", [], bytes(4)), ("zero", "F16", [0, 5], b"")]))
# tiny-dsa's real tensor names and dtypes, each shrunk to one element.
with open(os.path.join(FIX, "tiny-dsa", "model.safetensors"), "rb") as f:
    n = struct.unpack("<Q", f.read(8))[0]
    hdr = json.loads(f.read(n))
meta = hdr.pop("__metadata__", None)
put("safetensors", "tiny-dsa-names", safetensors(
    [(k, v["dtype"], [1] * len(v["shape"]), bytes(SIZES[v["dtype"]])) for k, v in sorted(hdr.items())][:40], meta))

# -- safetensors-index: the sharded fixture's, and a small one
clear("safetensors-index")
idx = json.load(open(os.path.join(FIX, "tiny-dsa-bf16-sharded", "model.safetensors.index.json")))
idx["weight_map"] = dict(sorted(idx["weight_map"].items())[:30])
put("safetensors-index", "tiny-dsa-bf16-sharded", json.dumps(idx, indent=1))
put("safetensors-index", "small", '{"metadata": {"total_size": 16}, "weight_map": {"a": "model-1.safetensors", "b": "model-2.safetensors"}}')

# -- config, quantization, generation-config
for t in ["config", "quantization", "generation-config"]:
    clear(t)
seen = set()
for cfg in sorted(glob.glob(os.path.join(FIX, "*", "config.json")) + [os.path.join(ROOT, "models", "glm5-tiny", "config.json")]):
    name = os.path.basename(os.path.dirname(cfg))
    text = open(cfg, "rb").read()
    put("config", name, text)
    q = json.loads(text).get("quantization_config")
    if q is not None:
        s = json.dumps(q, indent=1)
        if s not in seen:
            seen.add(s)
            put("quantization", name, s)
    gen = os.path.join(os.path.dirname(cfg), "generation_config.json")
    if os.path.exists(gen):
        g = open(gen, "rb").read()
        if g not in seen:
            seen.add(g)
            put("generation-config", name, g)
put("quantization", "fp8-minimal", '{"quant_method": "fp8", "weight_block_size": [128, 128]}')
put("quantization", "int4-channel", json.dumps({"quant_method": "compressed-tensors", "format": "pack-quantized",
    "config_groups": {"group_0": {"weights": {"num_bits": 4, "type": "int", "strategy": "channel", "symmetric": False}}}}))
put("generation-config", "list", '{"eos_token_id": [1, 2, 3], "bos_token_id": 0}')

# -- tokenizer: glm5-tiny's, cut to its byte alphabet and the merges among the kept tokens.
clear("tokenizer")
tok = json.load(open(os.path.join(ROOT, "models", "glm5-tiny", "tokenizer.json")))
vocab = tok["model"]["vocab"]
keep = {k: v for k, v in vocab.items() if v < 256}
merges = []
for m in tok["model"]["merges"]:
    a, b = m if isinstance(m, list) else m.split(" ", 1)
    if a in keep and b in keep and a + b in vocab and len(merges) < 120:
        keep[a + b] = vocab[a + b]
        merges.append([a, b])
ids = sorted(keep.values())
remap = {old: new for new, old in enumerate(ids)}
tok["model"]["vocab"] = {k: remap[v] for k, v in keep.items()}
tok["model"]["merges"] = merges
for i, t in enumerate(tok["added_tokens"]):
    t["id"] = len(ids) + i
put("tokenizer", "glm5-tiny-cut", json.dumps(tok, ensure_ascii=False))
# Other shapes the parser accepts: NFC, Digits, a string Split, merges as strings, byte fallback,
# a decoder sequence; and a word-level file without ByteLevel.
t2 = json.loads(json.dumps(tok))
t2["normalizer"] = {"type": "Sequence", "normalizers": [{"type": "NFC"}]}
t2["pre_tokenizer"] = {"type": "Sequence", "pretokenizers": [
    {"type": "Digits", "individual_digits": True},
    {"type": "Split", "pattern": {"String": " "}, "behavior": "MergedWithPrevious", "invert": False},
    {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True}]}
t2["model"]["merges"] = [a + " " + b for a, b in merges]
t2["model"]["ignore_merges"] = True
t2["decoder"] = {"type": "Sequence", "decoders": [{"type": "ByteLevel"}, {"type": "Fuse"},
    {"type": "Strip", "content": " ", "start": 1, "stop": 0}]}
put("tokenizer", "nfc-digits-split", json.dumps(t2, ensure_ascii=False))
words = ["<unk>", "a", "b", "ab", "Hello", "world", "▁"] + ["<0x%02X>" % i for i in range(256)]
t3 = {"version": "1.0", "added_tokens": [{"id": 0, "content": "<unk>", "single_word": False, "lstrip": False,
      "rstrip": False, "normalized": False, "special": True}], "normalizer": None,
      "pre_tokenizer": {"type": "Split", "pattern": {"Regex": "\\s+|\\p{L}+|\\p{N}|[^\\s\\p{L}\\p{N}]+"},
                        "behavior": "Isolated", "invert": False},
      "post_processor": None,
      "decoder": {"type": "Sequence", "decoders": [{"type": "Replace", "pattern": {"String": "▁"}, "content": " "},
                                                   {"type": "ByteFallback"}, {"type": "Fuse"}]},
      "model": {"type": "BPE", "dropout": None, "unk_token": "<unk>", "continuing_subword_prefix": None,
                "end_of_word_suffix": None, "fuse_unk": True, "byte_fallback": True, "ignore_merges": False,
                "vocab": {w: i for i, w in enumerate(words)}, "merges": [["a", "b"]]}}
put("tokenizer", "byte-fallback", json.dumps(t3, ensure_ascii=False))

# -- tokenizer-config: the fixtures', and the forms of a token the reader accepts.
clear("tokenizer-config")
for p in [os.path.join(ROOT, "models", "glm5-tiny", "tokenizer_config.json"),
          os.path.join(FIX, "tokenizers", "glm5-like-32k", "tokenizer_config.json")]:
    put("tokenizer-config", os.path.basename(os.path.dirname(p)), open(p, "rb").read())
put("tokenizer-config", "forms", json.dumps({"eos_token": {"content": "<|endoftext|>", "lstrip": False},
    "bos_token": "ab", "pad_token": None, "unk_token": "a"}))

# -- delta: the small fixture file, and hand-made files of each encoding.
clear("delta")
for p in sorted(glob.glob(os.path.join(FIX, "deltas", "*", "weight_v*", "*.safetensors"))):
    if os.path.getsize(p) <= 4096:
        put("delta", os.path.basename(os.path.dirname(os.path.dirname(p))), open(p, "rb").read())


def delta(encoding, positions, values, params, compress=False):
    f = safetensors([("__positions__", "U8", [len(positions)], positions), ("__values__", values[0], [values[1]], values[2])],
                    {"encoding": encoding, "params": json.dumps(params), "prev_version": "1", "current_version": "2"})
    if compress and zstandard:
        f = zstandard.ZstdCompressor().compress(f)
    return f


pi = struct.pack("<3i", 0, 5, 7)
put("delta", "indices", delta("indices", pi, ("F32", 3, bytes(12)), [
    {"name": "w", "dtype": "torch.float32", "shape": [2, 4], "pos_start": 0, "pos_end": 12, "pos_width": 4, "val_start": 0, "val_end": 3}]))
pd = struct.pack("<4H", 0, 4, 1, 0)
put("delta", "deltas-u16-two", delta("deltas", pd, ("BF16", 4, bytes(8)), [
    {"name": "a", "dtype": "bfloat16", "shape": [8], "pos_start": 0, "pos_end": 4, "pos_width": 2, "val_start": 0, "val_end": 2},
    {"name": "b", "dtype": "bfloat16", "shape": [2, 2], "pos_start": 4, "pos_end": 8, "pos_width": 2, "val_start": 2, "val_end": 4}]))
put("delta", "deltas-promoted", delta("deltas", struct.pack("<2I", 1, 0), ("F32", 2, struct.pack("<2f", 1.5, -2.0)), [
    {"name": "c", "dtype": "bfloat16", "shape": [4], "pos_start": 0, "pos_end": 8, "pos_width": 4, "val_start": 0, "val_end": 2}]))
if zstandard:
    put("delta", "deltas-zstd", delta("deltas_zstd", pd[:4], ("F16", 2, bytes(4)), [
        {"name": "a", "dtype": "float16", "shape": [8], "pos_start": 0, "pos_end": 4, "pos_width": 2, "val_start": 0, "val_end": 2}], compress=True))

# -- serve
clear("serve")
for name, body in [
    ("single", {"input_ids": [1, 2, 3], "sampling_params": {"temperature": 0.7, "top_p": 0.9, "top_k": 20, "min_p": 0.05,
                "max_new_tokens": 8, "stop_token_ids": [1], "ignore_eos": False, "sampling_seed": 3}, "rid": "r1",
                "return_logprob": True, "logprob_start_len": 0, "top_logprobs_num": 2, "stream": False}),
    ("batch", {"input_ids": [[1, 2], [3]], "sampling_params": [{"max_new_tokens": 1}, {"temperature": 0}], "rid": ["a", "b"],
               "return_logprob": [True, False], "return_routed_experts": True, "return_dsa_topk": False,
               "weight_version": {"exact_version": "default", "min_required_version": 0}}),
    ("text", {"text": "hello"}),
    ("update", {"model_path": "/tmp/x", "weight_version": "2", "load_format": "delta", "abort_all_requests": True}),
    ("abort", {"rid": "r1", "abort_all": False}),
    ("pause", {"mode": "in_place"}),
]:
    put("serve", name, json.dumps(body))

# -- dictionaries
def dictionary(target, words):
    with open(os.path.join(OUT, target + ".dict"), "w") as f:
        f.write("# libFuzzer dictionary of the %s target (tools/fuzz/make_seeds.py)\n" % target)
        for i, w in enumerate(sorted(set(words))):
            b = w.encode("latin-1") if all(ord(c) < 256 for c in w) else w.encode()
            esc = "".join(chr(c) if 0x20 <= c < 0x7F and c not in b'"\\' else "\\x%02X" % c for c in b)
            f.write('kw%d="%s"\n' % (i, esc))

json_tokens = ["{", "}", "[", "]", ":", ",", "\"", "true", "false", "null", "-0", "1e309", "\\u0000", "\\ud800", "\\udc00"]
dictionary("safetensors", json_tokens + ['"%s"' % d for d in SIZES] + ['"dtype"', '"shape"', '"data_offsets"', '"__metadata__"'])
config_keys = sorted({k for p in glob.glob(os.path.join(FIX, "*", "config.json")) for k in json.load(open(p))})
dictionary("config", json_tokens + ['"%s"' % k for k in config_keys] + ['"glm_moe_dsa"', '"deepseek_v32"', '"yarn"', '"dense"', '"sparse"', '"full"', '"shared"'])
dictionary("quantization", json_tokens + ['"%s"' % k for k in ["quant_method", "fp8", "compressed-tensors", "pack-quantized", "fmt", "e4m3",
    "activation_scheme", "dynamic", "weight_block_size", "modules_to_not_convert", "format", "quantization_status", "compressed",
    "config_groups", "weights", "num_bits", "type", "int", "input_activations", "actorder", "static", "strategy", "group", "channel",
    "symmetric", "group_size", "ignore"]])
dictionary("generation-config", json_tokens + ['"eos_token_id"'])
dictionary("safetensors-index", json_tokens + ['"weight_map"', '"metadata"', '"total_size"', '".safetensors"', '"/"'])
dictionary("tokenizer-config", json_tokens + ['"%s"' % k for k in ["eos_token", "bos_token", "pad_token", "unk_token", "content",
    "<|endoftext|>", "<|user|>", "a", "b", "ab"]])
dictionary("tokenizer", json_tokens + ['"%s"' % k for k in ["added_tokens", "normalizer", "pre_tokenizer", "post_processor", "decoder",
    "model", "type", "vocab", "merges", "Sequence", "pretokenizers", "normalizers", "decoders", "Split", "pattern", "Regex", "String",
    "behavior", "Isolated", "Removed", "MergedWithPrevious", "MergedWithNext", "Contiguous", "invert", "ByteLevel", "Digits", "NFC",
    "ByteFallback", "Fuse", "Strip", "Replace", "content", "start", "stop", "id", "special", "lstrip", "rstrip", "single_word",
    "normalized", "BPE", "unk_token", "byte_fallback", "fuse_unk", "ignore_merges", "add_prefix_space", "use_regex",
    "individual_digits", "continuing_subword_prefix", "end_of_word_suffix", "dropout"]]
    + ["(?:", "(?i:", "(?=", "(?!", "(?>", "\\\\p{L}", "\\\\p{N}", "\\\\s", "\\\\S", "\\\\w", "{1,3}", "*?", "++", "[^", "\\\\b"])
dictionary("delta", json_tokens + ['"%s"' % k for k in ["encoding", "indices", "deltas", "deltas_zstd", "params", "name", "dtype", "shape",
    "pos_start", "pos_end", "pos_width", "val_start", "val_end", "checksum", "prev_version", "current_version", "__positions__",
    "__values__", "float32", "bfloat16", "float16", "int32", "torch.float32"]] + ['"%s"' % d for d in SIZES] + ["\x28\xb5\x2f\xfd"])
dictionary("serve", json_tokens + ['"%s"' % k for k in ["input_ids", "text", "input_embeds", "sampling_params", "rid", "stream",
    "return_logprob", "logprob_start_len", "top_logprobs_num", "return_routed_experts", "return_dsa_topk", "return_indexer_topk",
    "weight_version", "exact_version", "min_required_version", "temperature", "top_p", "top_k", "min_p", "max_new_tokens",
    "stop_token_ids", "ignore_eos", "no_stop_trim", "skip_special_tokens", "sampling_seed", "model_path", "load_format",
    "abort_all_requests", "abort_all", "mode", "in_place"]])
print("seeds written under", OUT)
