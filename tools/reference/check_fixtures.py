#!/usr/bin/env python3
"""Independent NumPy (float64) re-implementation of the GLM-5 forward pass, used to cross-check the
fixtures written by make_fixtures.py. It reads only the fixture folder (config.json + checkpoint-named
safetensors, per-expert weights) and golden.safetensors; it does not use transformers.

    /work/venv-ref/bin/python tools/reference/check_fixtures.py Tests/Fixtures   # every folder with a golden,
                                                                                 # one level down too
    /work/venv-ref/bin/python tools/reference/check_fixtures.py Tests/Fixtures/glm5-quantized/int4

With --glm5 .build/release/libglm5.so it also runs glm5 (bindings/python) on the golden's token ids and prints, per
fixture, transformers' (the golden's) and glm5's distance to the float64 answer, max |d| and RMS, and their ratio;
--json FILE writes the figures (see "float64 distance report" in README.md).

It doubles as a compact, readable spec of what the Swift implementation must compute.
"""

import argparse
import json
import os
import sys

import numpy as np
from safetensors import safe_open


def load_weights(folder):
    """Load all tensors as float64 from model.safetensors or the shard index. bf16/f16 are upcast exactly;
    quantized checkpoints (config.json `quantization_config`) are dequantized here with NumPy only."""
    import torch  # only used to read bf16 / fp8 bytes

    idx = os.path.join(folder, "model.safetensors.index.json")
    files = sorted(set(json.load(open(idx))["weight_map"].values())) if os.path.exists(idx) else ["model.safetensors"]
    raw = {}
    for fn in files:
        with safe_open(os.path.join(folder, fn), "pt") as f:
            for k in f.keys():
                t = f.get_tensor(k)
                if t.dtype == torch.float8_e4m3fn:
                    raw[k] = ("e4m3", t.view(torch.uint8).numpy())
                elif t.dtype in (torch.bfloat16, torch.float16):
                    raw[k] = t.to(torch.float64).numpy()
                else:
                    raw[k] = t.numpy()
    q = json.load(open(os.path.join(folder, "config.json"))).get("quantization_config")
    if q is None:
        return {k: v.astype(np.float64) for k, v in raw.items()}
    if q["quant_method"] == "fp8":
        return dequant_fp8_block(raw, q)
    assert q["quant_method"] == "compressed-tensors" and q["format"] == "pack-quantized", q
    return dequant_pack_quantized(raw, q)


def e4m3_table():
    """float32 value of each float8_e4m3fn byte: 1 sign, 4 exponent (bias 7), 3 mantissa bits; no inf;
    0x7F / 0xFF are NaN; exponent 0 is subnormal (m/8 * 2^-6)."""
    b = np.arange(256)
    sign = np.where(b & 0x80, -1.0, 1.0)
    e, m = (b >> 3) & 0xF, b & 0x7
    val = np.where(e == 0, m / 8.0 * 2.0**-6, (1 + m / 8.0) * 2.0 ** (e - 7.0)) * sign
    val[(b & 0x7F) == 0x7F] = np.nan
    return val.astype(np.float32)


def dequant_fp8_block(raw, q):
    """W[r, c] = fp8[r, c] * weight_scale_inv[r // 128, c // 128], one float32 multiply (as the golden)."""
    b0, b1 = q["weight_block_size"]
    lut, w = e4m3_table(), {}
    for k, v in raw.items():
        if k.endswith(".weight_scale_inv"):
            continue
        if isinstance(v, tuple):
            vals = lut[v[1]]
            s = raw[k[: -len("weight")] + "weight_scale_inv"].astype(np.float32)
            s = np.repeat(np.repeat(s, b0, 0), b1, 1)[: vals.shape[0], : vals.shape[1]]
            w[k] = (vals * s).astype(np.float64)
        else:
            w[k] = v.astype(np.float64)
    # every Linear the config does not exclude must be FP8 (transformers' modules_to_not_convert syntax:
    # regex anchored at the start ending at a module boundary, or a plain suffix)
    import re

    def skipped(name):
        return any(re.match(rf"(?:{p})(?:(?<=\.)|(?=\.|$))", name) or name.endswith(p) for p in q["modules_to_not_convert"])

    for k, v in raw.items():
        if k.endswith(".weight") and not k.endswith("embed_tokens.weight") and np.ndim(v if not isinstance(v, tuple) else v[1]) == 2:
            assert isinstance(v, tuple) == (not skipped(k[: -len(".weight")])), f"{k}: layout vs modules_to_not_convert"
    return w


def unpack_int4(words, n, axis):
    """int32 words, 8 nibbles each, lowest nibble = lowest index along `axis`; returns signed q = nibble - 8."""
    u = words.astype(np.int64) & 0xFFFFFFFF
    nib = np.stack([(u >> (4 * j)) & 0xF for j in range(8)], axis=axis + 1)  # [..., words, 8] along axis
    shape = list(words.shape)
    shape[axis] *= 8
    nib = nib.reshape(shape)
    return np.take(nib, np.arange(n), axis=axis) - 8


def dequant_pack_quantized(raw, q):
    """compressed-tensors pack-quantized INT4: W[o, i] = (q[o, i] - zp[o, i // G]) * scale[o, i // G]."""
    import re

    groups = list(q["config_groups"].values())

    def scheme(name):  # targets "Linear" (class) or names / re: patterns; ignore likewise
        def m(t):
            return t == "Linear" or (t[3:] and re.match(t[3:], name) is not None if t.startswith("re:") else t == name)

        if any(m(i) for i in q.get("ignore") or [] if i != "Linear"):
            return None
        return next((g for g in groups if any(m(t) for t in g["targets"])), None)

    w = {}
    packed = {k[: -len(".weight_packed")] for k in raw if k.endswith(".weight_packed")}
    for k, v in raw.items():
        if k.endswith(".weight") and v.ndim == 2 and not k.endswith("embed_tokens.weight"):
            assert scheme(k[: -len(".weight")]) is None, f"{k} should be quantized per config"
        if not k.endswith((".weight_packed", ".weight_scale", ".weight_shape", ".weight_zero_point")):
            w[k] = v.astype(np.float64)
    for m in packed:
        g = scheme(m)
        assert g is not None, f"{m} is packed but the config does not quantize it"
        a = g["weights"]
        assert a["num_bits"] == 4 and a["type"] == "int" and a["strategy"] == "group", a
        G = a["group_size"]
        out_f, in_f = (int(x) for x in raw[m + ".weight_shape"])
        qv = unpack_int4(raw[m + ".weight_packed"], in_f, axis=1)
        scale = raw[m + ".weight_scale"].astype(np.float64)
        assert scale.shape == (out_f, in_f // G)
        if a["symmetric"]:
            assert m + ".weight_zero_point" not in raw
            zp = np.zeros_like(scale)
        else:
            zp = unpack_int4(raw[m + ".weight_zero_point"], out_f, axis=0).astype(np.float64)
        col = np.arange(in_f) // G
        w[m + ".weight"] = (qv - zp[:, col]) * scale[:, col]
    return w


def load_golden(folder):
    g = {}
    with safe_open(os.path.join(folder, "golden.safetensors"), "np") as f:
        for k in f.keys():
            g[k] = f.get_tensor(k)
    return g


def rms_norm(x, w, eps):
    return x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + eps) * w


def layer_norm(x, w, b, eps):
    mu = x.mean(-1, keepdims=True)
    var = ((x - mu) ** 2).mean(-1, keepdims=True)
    return (x - mu) / np.sqrt(var + eps) * w + b


def rope_inv_freq(cfg):
    """(inverse frequencies [Dr/2], cos/sin factor) for rope_type default or yarn (transformers' formulas)."""
    rp = cfg["rope_parameters"]
    theta, d = rp["rope_theta"], cfg["qk_rope_head_dim"]
    inv = 1.0 / (theta ** (np.arange(0, d, 2, dtype=np.float64) / d))
    if rp.get("rope_type", "default") == "default":
        return inv, 1.0
    assert rp["rope_type"] == "yarn", rp
    factor, orig = rp["factor"], rp["original_max_position_embeddings"]
    ms, msa = rp.get("mscale"), rp.get("mscale_all_dim")
    att = rp.get("attention_factor")
    if att is None:
        att = yarn_mscale(factor, ms) / yarn_mscale(factor, msa) if ms and msa else yarn_mscale(factor)
    bf, bs = rp.get("beta_fast") or 32, rp.get("beta_slow") or 1

    def corr_dim(rot):
        return d * np.log(orig / (rot * 2 * np.pi)) / (2 * np.log(theta))

    lo, hi = corr_dim(bf), corr_dim(bs)
    if rp.get("truncate", True):
        lo, hi = np.floor(lo), np.ceil(hi)
    lo, hi = max(lo, 0), min(hi, d - 1)
    if lo == hi:
        hi += 0.001
    ramp = np.clip((np.arange(d // 2, dtype=np.float64) - lo) / (hi - lo), 0, 1)
    extra = 1 - ramp  # weight of the un-scaled (extrapolated) frequency
    return inv / factor * (1 - extra) + inv * extra, att


def yarn_mscale(scale, mscale=1.0):
    return 1.0 if scale <= 1 else 0.1 * mscale * np.log(scale) + 1.0


def attention_scale(cfg):
    """MLA softmax scale: qk_head_dim^-0.5, times mscale(factor, mscale_all_dim)^2 for non-default RoPE."""
    s = (cfg["qk_nope_head_dim"] + cfg["qk_rope_head_dim"]) ** -0.5
    rp = cfg["rope_parameters"]
    if rp.get("rope_type", "default") != "default" and rp.get("mscale_all_dim"):
        s *= yarn_mscale(rp["factor"], rp["mscale_all_dim"]) ** 2
    return s


def rope_interleaved(x, pos, rope):
    """Rotate pairs (x[2i], x[2i+1]) by angle pos*inv_freq[i] (cos/sin scaled by the rope attention factor).
    Output keeps the interleaved layout."""
    inv, att = rope
    d = x.shape[-1]
    ang = pos[:, None] * inv[None, :]  # [T, d/2]
    shape = (len(pos),) + (1,) * (x.ndim - 2) + (d // 2,)
    c, s = (np.cos(ang) * att).reshape(shape), (np.sin(ang) * att).reshape(shape)
    x0, x1 = x[..., 0::2], x[..., 1::2]
    y = np.empty_like(x)
    y[..., 0::2] = x0 * c - x1 * s
    y[..., 1::2] = x1 * c + x0 * s
    return y


def rope_half_split(x, pos, rope):
    """Rotate the halves (x[i], x[i + d/2]) by angle pos*inv_freq[i] (DeepSeek-V3.2's indexer)."""
    inv, att = rope
    d = x.shape[-1]
    ang = pos[:, None] * inv[None, :]
    shape = (len(pos),) + (1,) * (x.ndim - 2) + (d // 2,)
    c, s = (np.cos(ang) * att).reshape(shape), (np.sin(ang) * att).reshape(shape)
    x0, x1 = x[..., : d // 2], x[..., d // 2 :]
    return np.concatenate([x0 * c - x1 * s, x1 * c + x0 * s], -1)


def indexer_types(cfg):
    """Per layer "full" / "shared" (GLM-5.2; DeepSeek-V3.2 and GLM-5: every layer full)."""
    return cfg.get("indexer_types") or ["full"] * cfg["num_hidden_layers"]


def silu(x):
    return x / (1.0 + np.exp(-x))


def mlp(x, w, p):
    return (silu(x @ w[p + "gate_proj.weight"].T) * (x @ w[p + "up_proj.weight"].T)) @ w[p + "down_proj.weight"].T


def forward(cfg, w, tokens):
    T = len(tokens)
    pos = np.arange(T, dtype=np.float64)
    rope = rope_inv_freq(cfg)  # (inv_freq, cos/sin factor)
    eps = cfg["rms_norm_eps"]
    Nh, Dn, Dr, Dv = cfg["num_attention_heads"], cfg["qk_nope_head_dim"], cfg["qk_rope_head_dim"], cfg["v_head_dim"]
    R = cfg["kv_lora_rank"]
    Hi, Di = cfg["index_n_heads"], cfg["index_head_dim"]
    E, K, G, TG = cfg["n_routed_experts"], cfg["num_experts_per_tok"], cfg["n_group"], cfg["topk_group"]
    causal = np.tril(np.ones((T, T), dtype=bool))
    rec = {"topk": {}, "experts": {}, "expert_weights": {}, "hidden": {}}
    # the indexer's RoPE layout: interleaved (GLM) or half-split (DeepSeek-V3.2); the MLA is interleaved in both
    irope = rope_half_split if cfg["model_type"] == "deepseek_v32" else rope_interleaved
    kinds = indexer_types(cfg)

    x = w["model.embed_tokens.weight"][tokens]
    for L in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{L}."
        a = rms_norm(x, w[p + "input_layernorm.weight"], eps)
        # --- MLA ---
        qlat = rms_norm(a @ w[p + "self_attn.q_a_proj.weight"].T, w[p + "self_attn.q_a_layernorm.weight"], 1e-6)
        q = (qlat @ w[p + "self_attn.q_b_proj.weight"].T).reshape(T, Nh, Dn + Dr)
        qn, qr = q[..., :Dn], rope_interleaved(q[..., Dn:], pos, rope)
        ckv = a @ w[p + "self_attn.kv_a_proj_with_mqa.weight"].T
        c = rms_norm(ckv[:, :R], w[p + "self_attn.kv_a_layernorm.weight"], 1e-6)
        kr = rope_interleaved(ckv[:, R:], pos, rope)  # [T, Dr], shared by all heads
        kv = (c @ w[p + "self_attn.kv_b_proj.weight"].T).reshape(T, Nh, Dn + Dv)
        kn, v = kv[..., :Dn], kv[..., Dn:]
        scores = (np.einsum("shd,thd->hst", qn, kn) + np.einsum("shd,td->hst", qr, kr)) * attention_scale(cfg)
        # --- DSA indexer (a "shared" layer keeps the previous layer's selection: the nearest full layer's) ---
        if kinds[L] == "full":
            ip = p + "self_attn.indexer."
            qi = (qlat @ w[ip + "wq_b.weight"].T).reshape(T, Hi, Di)
            qi = np.concatenate([irope(qi[..., :Dr], pos, rope), qi[..., Dr:]], -1)  # rope part FIRST
            ki = layer_norm(a @ w[ip + "wk.weight"].T, w[ip + "k_norm.weight"], w[ip + "k_norm.bias"], 1e-6)
            ki = np.concatenate([irope(ki[:, :Dr], pos, rope), ki[:, Dr:]], -1)
            s = np.maximum(np.einsum("shd,td->sht", qi, ki) / np.sqrt(Di), 0.0)
            hw = (a @ w[ip + "weights_proj.weight"].T) / np.sqrt(Hi)  # [T, Hi]
            iscore = np.einsum("sh,sht->st", hw, s)
            iscore = np.where(causal, iscore, -np.inf)
            k = min(cfg["index_topk"], T)
            rows, allowed = [], np.zeros((T, T), dtype=bool)
            for t in range(T):
                valid = np.nonzero(causal[t])[0]
                sel = valid if len(valid) <= k else valid[np.argsort(-iscore[t, valid], kind="stable")[:k]]
                sel = np.sort(sel)
                allowed[t, sel] = True
                rows.append(list(sel) + [-1] * (k - len(sel)))
        rec["topk"][L] = np.array(rows, dtype=np.int32)
        scores = np.where(allowed[None], scores, -np.inf)
        scores -= scores.max(-1, keepdims=True)
        pr = np.exp(scores)
        pr /= pr.sum(-1, keepdims=True)
        o = np.einsum("hst,thd->shd", pr, v).reshape(T, Nh * Dv)
        x = x + o @ w[p + "self_attn.o_proj.weight"].T
        # --- MLP / MoE ---
        m = rms_norm(x, w[p + "post_attention_layernorm.weight"], eps)
        if L < cfg["first_k_dense_replace"]:
            y = mlp(m, w, p + "mlp.")
        else:
            sc = 1.0 / (1.0 + np.exp(-(m @ w[p + "mlp.gate.weight"].T)))  # [T, E]
            sfc = sc + w[p + "mlp.gate.e_score_correction_bias"]
            y = mlp(m, w, p + "mlp.shared_experts.")
            ids_all, wts_all = [], []
            for t in range(T):
                gs = np.sort(sfc[t].reshape(G, E // G), axis=-1)[:, -2:].sum(-1)
                groups = np.argsort(-gs, kind="stable")[:TG]
                cand = np.array([e for e in range(E) if e // (E // G) in groups])
                ids = np.sort(cand[np.argsort(-sfc[t, cand], kind="stable")[:K]])
                wt = sc[t, ids]
                if cfg["norm_topk_prob"]:
                    wt = wt / (wt.sum() + 1e-20)
                wt = wt * cfg["routed_scaling_factor"]
                for e, we in zip(ids, wt):
                    y[t] += we * mlp(m[t : t + 1], w, p + f"mlp.experts.{e}.")[0]
                ids_all.append(ids)
                wts_all.append(wt)
            rec["experts"][L] = np.array(ids_all, dtype=np.int32)
            rec["expert_weights"][L] = np.array(wts_all)
        x = x + y
        rec["hidden"][L] = x.copy()
    h = rms_norm(x, w["model.norm.weight"], eps)
    return h @ w["lm_head.weight"].T, rec


def log_softmax(z):
    z = z - z.max(-1, keepdims=True)
    return z - np.log(np.exp(z).sum(-1, keepdims=True))


def check(folder):
    """Re-derive the golden of `folder` in float64. Returns (max abs diffs, number of sequences, the float64
    outputs as `golden_outputs` arranges the golden's: for the float64 distance report)."""
    cfg = json.load(open(os.path.join(folder, "config.json")))
    w = load_weights(folder)
    g = load_golden(folder)
    worst = {"logits": 0.0, "logprobs": 0.0, "expert_weights": 0.0, "hidden": 0.0}
    f64 = {q: [] for q in QUANTITIES}
    i = 0
    while f"seq{i}.tokens" in g:
        toks = g[f"seq{i}.tokens"].astype(np.int64)
        logits, rec = forward(cfg, w, toks)
        worst["logits"] = max(worst["logits"], np.abs(logits - g[f"seq{i}.logits"]).max())
        lp = log_softmax(logits)
        mine = np.array([np.nan] + [lp[t - 1, toks[t]] for t in range(1, len(toks))])
        gold = g[f"seq{i}.logprobs"]
        assert np.isnan(gold[0])
        worst["logprobs"] = max(worst["logprobs"], np.abs(mine[1:] - gold[1:]).max())
        f64["logits"].append(logits)
        f64["logprobs"].append(mine[1:])
        for L in range(cfg["num_hidden_layers"]):
            assert np.array_equal(rec["topk"][L], g[f"seq{i}.topk.layer{L}"]), f"seq{i} topk layer {L}"
            worst["hidden"] = max(worst["hidden"], np.abs(rec["hidden"][L] - g[f"seq{i}.hidden.layer{L}"]).max())
            if L >= cfg["first_k_dense_replace"]:
                assert np.array_equal(rec["experts"][L], g[f"seq{i}.experts.layer{L}"]), f"seq{i} experts {L}"
                d = np.abs(rec["expert_weights"][L] - g[f"seq{i}.expert_weights.layer{L}"]).max()
                worst["expert_weights"] = max(worst["expert_weights"], d)
        i += 1
    # greedy: the cached HF run must agree with a full recompute
    prompt, gt = g["greedy.prompt"].astype(np.int64), g["greedy.tokens"].astype(np.int64)
    seq = np.concatenate([prompt, gt[:-1]])
    logits, _ = forward(cfg, w, seq)
    step = logits[len(prompt) - 1 :]
    assert np.array_equal(step.argmax(-1), gt), "greedy tokens"
    worst["greedy_logits"] = np.abs(step - g["greedy.logits"]).max()
    glp = log_softmax(step)[np.arange(len(gt)), gt]
    worst["greedy_logprobs"] = np.abs(glp - g["greedy.logprobs"]).max()
    f64["greedy_logits"].append(step)
    f64["greedy_logprobs"].append(glp)
    # MTP tensors present
    N = cfg["num_hidden_layers"]
    for s in ["enorm.weight", "hnorm.weight", "eh_proj.weight", "shared_head.norm.weight", "mlp.experts.0.gate_proj.weight"]:
        assert f"model.layers.{N}.{s}" in w, s
    return {k: float(v) for k, v in worst.items()}, i, f64


# --- float64 distance report (--glm5, --json) ------------------------------------------------------------
# The golden holds transformers' float32 outputs; the float64 forward above is the closest we have to the exact
# answer. For every fixture the report gives how far transformers' outputs (the golden) and glm5's outputs on the
# very same token ids are from it: Δ = output − float64, element-wise, pooled over every sequence (or over the
# greedy steps), as max |Δ| and RMS. glm5 is run through the Python binding (bindings/python, ctypes).

QUANTITIES = {  # what is compared, in report order: name -> what it is (the golden tensors)
    "logits": "seq{i}.logits: every row of the full-sequence forward (no cache)",
    "logprobs": "seq{i}.logprobs[1:]: log p(tok_t | tok_<t) of every position but the first",
    "greedy_logits": "greedy.logits: the prompt's last row, then one row per cached decode step",
    "greedy_logprobs": "greedy.logprobs: log p of each greedy token",
}
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def golden_inputs(g):
    """The token ids the golden was computed on: the sequences, the greedy prompt and the greedy tokens."""
    seqs, i = [], 0
    while f"seq{i}.tokens" in g:
        seqs.append(g[f"seq{i}.tokens"].astype(np.int64))
        i += 1
    return seqs, g["greedy.prompt"].astype(np.int64), g["greedy.tokens"].astype(np.int64)


def golden_outputs(g):
    """transformers' float32 outputs per quantity, as lists of arrays (one per sequence, one greedy run); check()
    returns the float64 ones in the same arrangement."""
    n = len(golden_inputs(g)[0])
    return {
        "logits": [g[f"seq{i}.logits"] for i in range(n)],
        "logprobs": [g[f"seq{i}.logprobs"][1:] for i in range(n)],  # position 0 is NaN
        "greedy_logits": [g["greedy.logits"]],
        "greedy_logprobs": [g["greedy.logprobs"]],
    }


def import_glm5(library):
    """The Python binding of this checkout (bindings/python) on the libglm5.so at `library` (the file or its
    folder). The binding picks its library once, when imported, from GLM5_LIBRARY."""
    os.environ["GLM5_LIBRARY"] = os.path.abspath(library)
    sys.path.insert(0, os.path.join(REPO, "bindings", "python"))
    import glm5

    return glm5


def glm5_outputs(glm5, folder, g, threads):
    """glm5's outputs on exactly the golden's inputs, arranged as golden_outputs, and glm5's own greedy tokens.

    * seq i: all its tokens in one append to a new session (every row of logits, and the logprobs), as the
      golden's full-sequence forward;
    * greedy: the prompt in one append (its last row is step 0), then the golden's greedy tokens one at a time
      (decode steps on the cache, as transformers' cached run), each giving its logprob and the next step's
      logits. Feeding the golden's tokens keeps the inputs identical even where glm5 would choose another one;
      glm5's own choice is generate() from the prompt, in another session.
    """
    seqs, prompt, gt = golden_inputs(g)
    out = {q: [] for q in QUANTITIES}
    with glm5.Model(folder, threads=threads) as m:
        for toks in seqs:
            with m.session() as s:
                logits, lp = s.append_with_logprobs(toks, logits="all")
            out["logits"].append(logits)
            out["logprobs"].append(lp[1:])
        with m.session() as s:
            rows, lps = [s.append(prompt, logits="last")], []
            for j, t in enumerate(gt):
                last = j == len(gt) - 1  # the logits after the last greedy token are not in the golden
                row, lp = s.append_with_logprobs([t], logits="none" if last else "last")
                if not last:
                    rows.append(row)
                lps.append(lp[0])
        out["greedy_logits"].append(np.stack(rows))
        out["greedy_logprobs"].append(np.array(lps))
        with m.session() as s:
            s.append(prompt, logits="none")
            own, _ = s.generate(len(gt))
    return out, own


def distance(outputs, f64):
    """max |Δ| and RMS of Δ = output − float64 over every element of every array of one quantity."""
    d = np.concatenate([(np.asarray(o, np.float64) - r).ravel() for o, r in zip(outputs, f64)])
    return {"max": float(np.abs(d).max()), "rms": float(np.sqrt(np.mean(d * d)))}


def ratio(a, b):
    """a / b for the glm5 / transformers column (inf if only transformers is exact, nan if both are)."""
    return a / b if b > 0 else (float("inf") if a > 0 else float("nan"))


def print_table(tf, gl, counts):
    """The per-fixture table: one row per quantity, transformers' and glm5's distance and their ratio."""
    print(f"  {'vs float64':<26} {'transformers':<21}  {'glm5':<21}  glm5 / transformers")
    print(f"  {'':<26} {'max |d|':>10} {'rms':>10}  {'max |d|':>10} {'rms':>10}  {'max':>8} {'rms':>8}")
    for q in QUANTITIES:
        t, m = tf[q], gl[q]
        label = f"{q} ({counts[q]})"
        print(f"  {label:<26} {t['max']:10.3e} {t['rms']:10.3e}  {m['max']:10.3e} {m['rms']:10.3e}"
              f"  {ratio(m['max'], t['max']):8.2f} {ratio(m['rms'], t['rms']):8.2f}")


def summary_line(name, tf, gl, tokens_note):
    """One line per fixture for a note: logits (sequences) and greedy logits, max / rms, and the ratios."""
    parts = []
    for q, what in (("logits", "logits"), ("greedy_logits", "greedy logits")):
        t, m = tf[q], gl[q]
        parts.append(f"{what} max/rms transformers {t['max']:.2e}/{t['rms']:.2e}, glm5 {m['max']:.2e}/{m['rms']:.2e}"
                     f" (x{ratio(m['max'], t['max']):.2f}/x{ratio(m['rms'], t['rms']):.2f})")
    return f"{name} vs float64: " + "; ".join(parts) + f"; {tokens_note}"


def main():
    ap = argparse.ArgumentParser(description="Re-derive the fixture goldens in float64 (NumPy); optionally report "
                                             "transformers' and glm5's distance to the float64 answer.")
    ap.add_argument("root", nargs="?", default="Tests/Fixtures",
                    help="a fixture folder, or a folder of them (one level down too); default Tests/Fixtures")
    ap.add_argument("--glm5", metavar="LIB", help="libglm5.so (or its folder): also run glm5 through bindings/python "
                                                  "on the golden's inputs and print the float64 distance table")
    ap.add_argument("--threads", type=int, default=None, help="glm5 compute threads (default: one per CPU)")
    ap.add_argument("--json", metavar="FILE", help="write the float64 distances (and the check's max abs diffs)")
    args = ap.parse_args()
    root = args.root
    ok = True
    folders = []
    for name in sorted(os.listdir(root)):
        folder = os.path.join(root, name)
        if os.path.exists(os.path.join(folder, "golden.safetensors")):
            folders.append(name)
        elif os.path.isdir(folder):  # e.g. glm5-quantized/int4 (its source/ has no golden)
            folders += [f"{name}/{sub}" for sub in sorted(os.listdir(folder))
                        if os.path.exists(os.path.join(folder, sub, "golden.safetensors"))]
    if not folders and os.path.exists(os.path.join(root, "golden.safetensors")):
        root, folders = os.path.dirname(os.path.abspath(root)), [os.path.basename(os.path.abspath(root))]
    glm5 = import_glm5(args.glm5) if args.glm5 else None
    figures, summaries = {}, []
    for name in folders:
        folder = os.path.join(root, name)
        worst, n, f64 = check(folder)
        bad = any(v > 1e-4 for v in worst.values())
        ok &= not bad
        print(f"{name}: {n} sequences, selections/experts/greedy tokens exact; max abs diffs {worst}" + (" FAIL" if bad else ""))
        if glm5 is None and args.json is None:
            continue  # the plain check
        g = load_golden(folder)
        tf = {q: distance(o, f64[q]) for q, o in golden_outputs(g).items()}
        fig = figures[name] = {"sequences": n, "greedy_steps": len(g["greedy.tokens"]), "check_max_abs_diffs": worst,
                               "transformers": tf}
        if glm5 is None:
            continue
        try:
            out, own = glm5_outputs(glm5, folder, g, args.threads)
        except glm5.Glm5Error as e:  # e.g. a format this library cannot compute from: reported, and exit 1
            print(f"  glm5 failed on {name}: {e}")
            fig["glm5_error"] = str(e)
            ok = False
            continue
        gl = {q: distance(o, f64[q]) for q, o in out.items()}
        gt = g["greedy.tokens"]
        differ = np.nonzero(own != gt)[0]
        tokens_note = ("glm5 greedy tokens = golden" if len(differ) == 0
                       else f"glm5 greedy tokens differ from step {differ[0]}")
        fig.update(glm5=gl, ratio={q: {k: ratio(gl[q][k], tf[q][k]) for k in ("max", "rms")} for q in QUANTITIES},
                   glm5_greedy_tokens=own.tolist(), glm5_greedy_tokens_equal=len(differ) == 0)
        counts = {"logits": f"{n} seqs", "logprobs": f"{n} seqs", "greedy_logits": f"{len(gt)} steps",
                  "greedy_logprobs": f"{len(gt)} steps"}
        print_table(tf, gl, counts)
        print(f"  {tokens_note}")
        summaries.append(summary_line(name, tf, gl, tokens_note))
    if summaries:
        print(f"\nglm5 {glm5.version()} ({glm5.library_path}) vs float64, one line per fixture:")
        for line in summaries:
            print(line)
    if args.json:
        report = {"root": root, "quantities": QUANTITIES, "fixtures": figures}
        if glm5 is not None:
            report.update(glm5_library=glm5.library_path, glm5_version=glm5.version(), glm5_threads=args.threads)
        with open(args.json, "w") as f:
            json.dump(report, f, indent=1)
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
