#!/usr/bin/env python3
"""Generate tiny GLM-5 (`glm_moe_dsa`) reference fixtures with Hugging Face transformers.

Usage:
    /work/venv-ref/bin/python tools/reference/make_fixtures.py --out Tests/Fixtures [--preset NAME ...]

For every preset this writes Tests/Fixtures/<preset>/ containing
  * an HF model folder (config.json, generation_config.json, safetensors weights with per-expert
    checkpoint names and an extra random MTP layer `model.layers.{num_hidden_layers}.*`),
  * golden.safetensors (reference outputs of the float32 eager transformers model),
  * golden.json (human-readable summary, margins, sensitivity checks).
See tools/reference/README.md.
"""

import argparse
import copy
import json
import math
import os
import shutil
import sys
import tempfile

import numpy as np
import safetensors
import torch
import torch.nn.functional as F
import transformers
from safetensors import safe_open
from safetensors.torch import save_file
from transformers import GlmMoeDsaConfig, GlmMoeDsaForCausalLM
from transformers.cache_utils import DynamicCache
from transformers.models.glm_moe_dsa import modeling_glm_moe_dsa as M

MARGIN_MIN_REL = 1e-3  # reject any golden decision whose relative margin is below this
MASKED = -1e30  # index scores below this are masked (causal mask adds finfo(float32).min)

# --------------------------------------------------------------------------------------
# Presets
# --------------------------------------------------------------------------------------

PRESETS = {
    # float32 weights, single model.safetensors, DSA sparse path active, group-limited routing.
    "tiny-dsa": dict(
        seed=1234,
        storage="float32",
        num_shards=1,
        seq_lens=[5, 17, 29],
        greedy_prompt_len=11,
        greedy_new_tokens=8,
        init=dict(emb_std=0.1, lm_gain=2.0, router_gain=1.5, bias_std=0.15, lat_gain=0.25, wk_gain=0.05),
        config=dict(
            vocab_size=320,
            hidden_size=64,
            intermediate_size=96,
            moe_intermediate_size=18,
            num_hidden_layers=3,
            first_k_dense_replace=1,
            num_attention_heads=4,
            num_key_value_heads=4,
            q_lora_rank=48,
            kv_lora_rank=32,
            qk_nope_head_dim=24,
            qk_rope_head_dim=16,
            v_head_dim=20,
            index_head_dim=28,
            index_n_heads=16,
            index_topk=6,
            n_routed_experts=16,
            num_experts_per_tok=4,
            n_group=4,
            topk_group=2,
            n_shared_experts=1,
            routed_scaling_factor=2.5,
            norm_topk_prob=True,
            rms_norm_eps=1e-3,
            rope_parameters={"rope_type": "default", "rope_theta": 10000.0},
            max_position_embeddings=256,
            tie_word_embeddings=False,
            bos_token_id=0,
            eos_token_id=1,
        ),
    ),
    # bf16 weights, sharded over 3 files + index; different dims, norm_topk_prob False, 2 shared experts.
    "tiny-dsa-bf16-sharded": dict(
        seed=2024,
        storage="bfloat16",
        num_shards=3,
        seq_lens=[5, 13, 24],
        greedy_prompt_len=9,
        greedy_new_tokens=8,
        init=dict(emb_std=0.1, lm_gain=2.0, router_gain=1.5, bias_std=0.15, lat_gain=0.25, wk_gain=0.05),
        config=dict(
            vocab_size=288,
            hidden_size=64,
            intermediate_size=80,
            moe_intermediate_size=16,
            num_hidden_layers=3,
            first_k_dense_replace=1,
            num_attention_heads=2,
            num_key_value_heads=2,
            q_lora_rank=40,
            kv_lora_rank=24,
            qk_nope_head_dim=20,
            qk_rope_head_dim=12,
            v_head_dim=28,
            index_head_dim=32,
            index_n_heads=16,
            index_topk=5,
            n_routed_experts=8,
            num_experts_per_tok=2,
            n_group=2,
            topk_group=1,
            n_shared_experts=2,
            routed_scaling_factor=1.5,
            norm_topk_prob=False,
            rms_norm_eps=1e-5,
            rope_parameters={"rope_type": "default", "rope_theta": 1000000.0},
            max_position_embeddings=256,
            tie_word_embeddings=False,
            bos_token_id=0,
            eos_token_id=1,
        ),
    ),
    # YaRN RoPE (DeepSeek-V3.2-style rope_parameters): inv_freq blend, cos/sin attention factor
    # and the softmax mscale; sequences run past original_max_position_embeddings.
    "tiny-dsa-yarn": dict(
        seed=4242,
        storage="float32",
        num_shards=1,
        seq_lens=[9, 41],
        greedy_prompt_len=30,
        greedy_new_tokens=8,
        init=dict(emb_std=0.1, lm_gain=2.0, router_gain=1.5, bias_std=0.15, lat_gain=0.25, wk_gain=0.05),
        config=dict(
            vocab_size=192,
            hidden_size=40,
            intermediate_size=56,
            moe_intermediate_size=12,
            num_hidden_layers=2,
            first_k_dense_replace=1,
            num_attention_heads=2,
            num_key_value_heads=2,
            q_lora_rank=24,
            kv_lora_rank=20,
            qk_nope_head_dim=12,
            qk_rope_head_dim=16,
            v_head_dim=14,
            index_head_dim=22,
            index_n_heads=16,
            index_topk=7,
            n_routed_experts=8,
            num_experts_per_tok=2,
            n_group=1,
            topk_group=1,
            n_shared_experts=1,
            routed_scaling_factor=2.5,
            norm_topk_prob=True,
            rms_norm_eps=1e-4,
            rope_parameters={"rope_type": "yarn", "rope_theta": 10000.0, "factor": 4.0,
                             "original_max_position_embeddings": 16, "beta_fast": 32.0, "beta_slow": 1.0,
                             "mscale": 1.0, "mscale_all_dim": 1.0},
            max_position_embeddings=64,
            tie_word_embeddings=False,
            bos_token_id=0,
            eos_token_id=1,
        ),
    ),
    # f16 weights, index_topk larger than every sequence (dense MLA path), no group limiting.
    "tiny-dense-f16": dict(
        seed=77,
        storage="float16",
        num_shards=1,
        seq_lens=[6, 20],
        greedy_prompt_len=7,
        greedy_new_tokens=8,
        init=dict(emb_std=0.1, lm_gain=2.0, router_gain=1.5, bias_std=0.15, lat_gain=0.25, wk_gain=0.05),
        config=dict(
            vocab_size=256,
            hidden_size=48,
            intermediate_size=72,
            moe_intermediate_size=20,
            num_hidden_layers=2,
            first_k_dense_replace=1,
            num_attention_heads=2,
            num_key_value_heads=2,
            q_lora_rank=32,
            kv_lora_rank=24,
            qk_nope_head_dim=16,
            qk_rope_head_dim=8,
            v_head_dim=12,
            index_head_dim=20,
            index_n_heads=16,
            index_topk=64,
            n_routed_experts=8,
            num_experts_per_tok=2,
            n_group=1,
            topk_group=1,
            n_shared_experts=1,
            routed_scaling_factor=2.5,
            norm_topk_prob=True,
            rms_norm_eps=1e-6,
            rope_parameters={"rope_type": "default", "rope_theta": 1000000.0},
            max_position_embeddings=128,
            tie_word_embeddings=False,
            bos_token_id=0,
            eos_token_id=1,
        ),
    ),
}

STORAGE_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}

# --------------------------------------------------------------------------------------
# Weight initialisation (scaled so activations are O(1))
# --------------------------------------------------------------------------------------


def init_tensor(name, shape, gen, cfg, ini):
    """Random value for a parameter given its (runtime or checkpoint) name. Fan-in = last dim."""

    def normal(std):
        return torch.randn(shape, generator=gen, dtype=torch.float32) * std

    def uniform(lo, hi):
        return lo + (hi - lo) * torch.rand(shape, generator=gen, dtype=torch.float32)

    if name.endswith("embed_tokens.weight"):
        return normal(ini["emb_std"])
    if name.endswith("lm_head.weight"):
        return normal(ini["lm_gain"] / math.sqrt(shape[-1]))
    if name.endswith("e_score_correction_bias"):
        return normal(ini["bias_std"])
    if name.endswith("k_norm.bias"):
        return normal(0.3)
    if name.endswith("norm.weight") or name.endswith("layernorm.weight"):
        # RMSNorm / LayerNorm gains (incl. enorm, hnorm, shared_head.norm, k_norm)
        return uniform(0.6, 1.4)
    fan_in = shape[-1]
    if name.endswith("q_a_proj.weight"):
        # small latent so that q_a_layernorm's hard-coded eps 1e-6 vs rms_norm_eps is visible
        return normal(ini["lat_gain"] / math.sqrt(fan_in))
    if name.endswith("kv_a_proj_with_mqa.weight"):
        t = normal(1.0 / math.sqrt(fan_in))
        t[: cfg.kv_lora_rank] *= ini["lat_gain"]  # latent rows small, k_rope rows O(1)
        return t
    if name.endswith("indexer.wk.weight"):
        # small pre-LayerNorm key so the indexer k_norm eps (1e-6) matters
        return normal(ini["wk_gain"] / math.sqrt(fan_in))
    if name.endswith("mlp.gate.weight"):
        return normal(ini["router_gain"] / math.sqrt(fan_in))
    assert len(shape) in (2, 3), name
    return normal(1.0 / math.sqrt(fan_in))


def round_to(t, storage_dtype):
    return t.to(storage_dtype).to(torch.float32)


def init_model(model, gen, ini, storage_dtype):
    cfg = model.config
    with torch.no_grad():
        for name, p in list(model.named_parameters()) + [
            (n, b) for n, b in model.named_buffers() if n.endswith("e_score_correction_bias")
        ]:
            v = init_tensor(name, tuple(p.shape), gen, cfg, ini)
            if not name.endswith("e_score_correction_bias"):
                v = round_to(v, storage_dtype)
            p.copy_(v)


# --------------------------------------------------------------------------------------
# Capture of indexer scores / router decisions
# --------------------------------------------------------------------------------------


class Recorder:
    def __init__(self, model):
        self.model = model
        self.cur_indexer = None
        self.pending_scores = None
        self.events = []  # dicts: kind, layer, ...
        self.handles = []
        self.orig_topk = torch.Tensor.topk
        rec = self

        def patched_topk(self_t, *args, **kwargs):
            out = rec.orig_topk(self_t, *args, **kwargs)
            if rec.cur_indexer is not None:
                assert rec.pending_scores is None, "indexer called topk twice"
                rec.pending_scores = self_t.detach().clone()
            return out

        self.patched_topk = patched_topk
        for li, layer in enumerate(model.model.layers):
            idx = layer.self_attn.indexer
            if idx is not None:
                self.handles.append(idx.register_forward_pre_hook(self._pre(li)))
                self.handles.append(idx.register_forward_hook(self._post_indexer(li)))
            if isinstance(layer.mlp, M.GlmMoeDsaMoE):
                self.handles.append(layer.mlp.gate.register_forward_hook(self._post_router(li)))
            self.handles.append(layer.register_forward_hook(self._post_layer(li)))
        self.handles.append(model.model.norm.register_forward_hook(self._post_norm()))

    def __enter__(self):
        torch.Tensor.topk = self.patched_topk
        return self

    def __exit__(self, *exc):
        torch.Tensor.topk = self.orig_topk
        for h in self.handles:
            h.remove()

    def _pre(self, li):
        def hook(mod, args):
            self.cur_indexer = li
            self.pending_scores = None

        return hook

    def _post_indexer(self, li):
        def hook(mod, args, out):
            assert self.pending_scores is not None
            self.events.append(dict(kind="indexer", layer=li, scores=self.pending_scores, indices=out.detach().clone()))
            self.cur_indexer = None
            self.pending_scores = None

        return hook

    def _post_router(self, li):
        def hook(mod, args, out):
            router_logits, w, idx = out
            self.events.append(
                dict(
                    kind="router",
                    layer=li,
                    logits=router_logits.detach().clone(),
                    weights=w.detach().clone(),
                    indices=idx.detach().clone(),
                    bias=mod.e_score_correction_bias.detach().clone(),
                    n_group=mod.num_group,
                    topk_group=mod.topk_group,
                    top_k=mod.top_k,
                )
            )

        return hook

    def _post_layer(self, li):
        def hook(mod, args, out):
            h = out[0] if isinstance(out, tuple) else out
            self.events.append(dict(kind="hidden", layer=li, value=h.detach().clone()))

        return hook

    def _post_norm(self):
        def hook(mod, args, out):
            self.events.append(dict(kind="final_norm", value=out.detach().clone()))

        return hook


def indexer_margins(ev):
    """Check HF's selection against the captured scores; return (min abs margin, min rel margin, rows)."""
    scores = ev["scores"][0]  # [S, T]
    idx = ev["indices"][0].long()  # [S, k]
    k = idx.shape[-1]
    min_abs, min_rel = math.inf, math.inf
    rows = []
    for s in range(scores.shape[0]):
        row = scores[s]
        valid = row > MASKED
        nvalid = int(valid.sum())
        sel = set(idx[s].tolist())
        valid_ids = torch.nonzero(valid).flatten().tolist()
        sel_valid = sorted(i for i in sel if valid[i])
        if nvalid <= k:
            assert sel_valid == valid_ids, "indexer did not select all valid keys"
        else:
            v = row[valid]
            order = torch.argsort(v, descending=True, stable=True)
            top = sorted(torch.tensor(valid_ids)[order[:k]].tolist())
            assert top == sel_valid, f"indexer selection mismatch {top} vs {sel_valid}"
            vs = v[order]
            m = float(vs[k - 1] - vs[k])
            scale = float(v.abs().max())
            min_abs = min(min_abs, m)
            min_rel = min(min_rel, m / max(scale, 1e-30))
        rows.append(sel_valid + [-1] * (k - len(sel_valid)))
    return min_abs, min_rel, rows


def router_margins(ev):
    """Return (min expert abs, min expert rel, min group abs, min group rel, sorted ids, aligned weights)."""
    logits = ev["logits"].float()
    scores = logits.sigmoid()
    sfc = scores + ev["bias"]
    n, E = sfc.shape
    G, TG, K = ev["n_group"], ev["topk_group"], ev["top_k"]
    me_abs = me_rel = mg_abs = mg_rel = math.inf
    ids_out, w_out = [], []
    for r in range(n):
        row = sfc[r]
        if G > 1:
            gs = row.view(G, E // G).topk(2, dim=-1).values.sum(-1)
            gsorted, gorder = torch.sort(gs, descending=True, stable=True)
            if TG < G:
                m = float(gsorted[TG - 1] - gsorted[TG])
                mg_abs = min(mg_abs, m)
                mg_rel = min(mg_rel, m / max(float(gs.abs().max()), 1e-30))
            groups = set(gorder[:TG].tolist())
            allowed = [e for e in range(E) if e // (E // G) in groups]
        else:
            allowed = list(range(E))
        a = row[allowed]
        asorted, aorder = torch.sort(a, descending=True, stable=True)
        chosen = sorted(allowed[i] for i in aorder[:K].tolist())
        hf = ev["indices"][r].tolist()
        assert chosen == sorted(hf), f"router mismatch {chosen} vs {hf}"
        if K < len(allowed):
            m = float(asorted[K - 1] - asorted[K])
            me_abs = min(me_abs, m)
            me_rel = min(me_rel, m / max(float(a.abs().max()), 1e-30))
        perm = sorted(range(K), key=lambda j: hf[j])
        ids_out.append([hf[j] for j in perm])
        w_out.append([float(ev["weights"][r, j]) for j in perm])
    return me_abs, me_rel, mg_abs, mg_rel, ids_out, w_out


class Margins:
    def __init__(self):
        self.v = {
            "indexer_abs": math.inf,
            "indexer_rel": math.inf,
            "router_expert_abs": math.inf,
            "router_expert_rel": math.inf,
            "router_group_abs": math.inf,
            "router_group_rel": math.inf,
            "greedy_logit_abs": math.inf,
            "greedy_logit_rel": math.inf,
        }

    def upd(self, key, val):
        self.v[key] = min(self.v[key], val)

    def merge(self, other):
        for k, val in other.v.items():
            self.upd(k, val)

    def ok(self):
        return all(v >= MARGIN_MIN_REL for k, v in self.v.items() if k.endswith("_rel"))

    def json(self):
        return {k: (None if math.isinf(v) else float(f"{v:.6g}")) for k, v in self.v.items()}


def analyse_events(events, margins):
    """Compute margins over all indexer/router events; return per-layer outputs of the LAST forward."""
    topk, experts, ew, hidden, final = {}, {}, {}, {}, None
    for ev in events:
        if ev["kind"] == "indexer":
            a, r, rows = indexer_margins(ev)
            margins.upd("indexer_abs", a)
            margins.upd("indexer_rel", r)
            topk[ev["layer"]] = rows
        elif ev["kind"] == "router":
            ea, er, ga, gr, ids, w = router_margins(ev)
            margins.upd("router_expert_abs", ea)
            margins.upd("router_expert_rel", er)
            margins.upd("router_group_abs", ga)
            margins.upd("router_group_rel", gr)
            experts[ev["layer"]] = ids
            ew[ev["layer"]] = w
        elif ev["kind"] == "hidden":
            hidden[ev["layer"]] = ev["value"][0]
        elif ev["kind"] == "final_norm":
            final = ev["value"][0]
    return topk, experts, ew, hidden, final


# --------------------------------------------------------------------------------------
# Forward helpers
# --------------------------------------------------------------------------------------


def full_forward(model, tokens):
    with torch.no_grad():
        out = model(input_ids=tokens.view(1, -1).long(), use_cache=False)
    return out.logits[0].float()


def run_sequence(model, tokens):
    margins = Margins()
    with Recorder(model) as rec:
        logits = full_forward(model, tokens)
    topk, experts, ew, hidden, final = analyse_events(rec.events, margins)
    return logits, topk, experts, ew, hidden, final, margins


def greedy(model, prompt, n_new):
    """Greedy decode with the HF DynamicCache: one prefill, then single-token steps."""
    margins = Margins()
    toks, lps, step_logits = [], [], []
    with Recorder(model) as rec, torch.no_grad():
        cache = DynamicCache(config=model.config)
        out = model(input_ids=prompt.view(1, -1).long(), cache=cache, use_cache=True)
        for step in range(n_new):
            last = out.logits[0, -1].float()
            srt = torch.sort(last, descending=True).values
            margins.upd("greedy_logit_abs", float(srt[0] - srt[1]))
            margins.upd("greedy_logit_rel", float(srt[0] - srt[1]) / float(last.abs().max()))
            nxt = int(torch.argmax(last))
            toks.append(nxt)
            lps.append(float(torch.log_softmax(last.double(), -1)[nxt]))
            step_logits.append(last.clone())
            if step + 1 < n_new:
                out = model(input_ids=torch.tensor([[nxt]]), cache=cache, use_cache=True)
    analyse_events(rec.events, margins)
    return toks, lps, torch.stack(step_logits), margins


def seq_logprobs(logits, tokens):
    ls = torch.log_softmax(logits.double(), dim=-1)
    lp = torch.full((tokens.numel(),), float("nan"), dtype=torch.float64)
    for t in range(1, tokens.numel()):
        lp[t] = ls[t - 1, int(tokens[t])]
    return lp.float()


# --------------------------------------------------------------------------------------
# Sensitivity checks: does each feature actually change the outputs?
# --------------------------------------------------------------------------------------


def half_split_rope(q, k, cos, sin, position_ids=None, unsqueeze_dim=1):
    cos = cos.unsqueeze(unsqueeze_dim)
    sin = sin.unsqueeze(unsqueeze_dim)

    def rot(x):
        x1, x2 = x[..., : x.shape[-1] // 2], x[..., x.shape[-1] // 2 :]
        return torch.cat((-x2, x1), dim=-1)

    return q * cos + rot(q) * sin, k * cos + rot(k) * sin


def sensitivity(model, tokens, ref_logits, ref_experts):
    res = {}

    def diff(m):
        return float((full_forward(m, tokens) - ref_logits).abs().max())

    def expert_changes(m):
        changed = total = 0
        with Recorder(m) as rec:
            full_forward(m, tokens)
        for ev in rec.events:
            if ev["kind"] == "router":
                for r in range(ev["indices"].shape[0]):
                    total += 1
                    changed += sorted(ev["indices"][r].tolist()) != ref_experts[ev["layer"]][r]
        return f"{changed}/{total}"

    m = copy.deepcopy(model)
    for layer in m.model.layers:
        if layer.self_attn.indexer is not None:
            layer.self_attn.indexer.index_topk = 10**9
    res["dsa_disabled_logits_maxdiff"] = diff(m)

    m = copy.deepcopy(model)
    for layer in m.model.layers:
        if isinstance(layer.mlp, M.GlmMoeDsaMoE):
            layer.mlp.gate.e_score_correction_bias.zero_()
    res["no_correction_bias_logits_maxdiff"] = diff(m)
    res["no_correction_bias_expert_sets_changed"] = expert_changes(m)

    if model.config.n_group > 1:
        m = copy.deepcopy(model)
        for layer in m.model.layers:
            if isinstance(layer.mlp, M.GlmMoeDsaMoE):
                layer.mlp.gate.num_group = 1
                layer.mlp.gate.topk_group = 1
        res["no_group_limit_logits_maxdiff"] = diff(m)
        res["no_group_limit_expert_sets_changed"] = expert_changes(m)

    m = copy.deepcopy(model)
    for layer in m.model.layers:
        layer.self_attn.q_a_layernorm.variance_epsilon = model.config.rms_norm_eps
        layer.self_attn.kv_a_layernorm.variance_epsilon = model.config.rms_norm_eps
    res["qa_kva_norm_eps_as_rms_norm_eps_logits_maxdiff"] = diff(m)

    m = copy.deepcopy(model)
    for mod in m.modules():
        if isinstance(mod, M.GlmMoeDsaRMSNorm) and mod.variance_epsilon == model.config.rms_norm_eps:
            mod.variance_epsilon = 1e-6 if model.config.rms_norm_eps != 1e-6 else 1e-5
    res["rms_norm_eps_changed_logits_maxdiff"] = diff(m)

    m = copy.deepcopy(model)
    for layer in m.model.layers:
        if layer.self_attn.indexer is not None:
            layer.self_attn.indexer.k_norm.eps = 1e-3
    res["indexer_k_norm_eps_1e-3_logits_maxdiff"] = diff(m)

    saved = M.apply_rotary_pos_emb_interleave
    try:
        M.apply_rotary_pos_emb_interleave = half_split_rope
        res["half_split_rope_logits_maxdiff"] = diff(model)
    finally:
        M.apply_rotary_pos_emb_interleave = saved

    m = copy.deepcopy(model)
    for layer in m.model.layers:
        if isinstance(layer.mlp, M.GlmMoeDsaMoE):
            layer.mlp.gate.routed_scaling_factor = 1.0
            layer.mlp.gate.norm_topk_prob = not layer.mlp.gate.norm_topk_prob
    res["scaling1_and_flipped_norm_topk_prob_logits_maxdiff"] = diff(m)

    # transformers' default experts implementation ("grouped_mm") vs the "eager" one used for golden.
    # torch's CPU grouped_mm needs 16-byte aligned strides, which odd tiny dims violate.
    m = copy.deepcopy(model)
    m.config._experts_implementation = "grouped_mm"
    try:
        res["experts_grouped_mm_vs_eager_logits_maxdiff"] = diff(m)
    except RuntimeError as e:
        res["experts_grouped_mm_vs_eager_logits_maxdiff"] = f"grouped_mm failed: {e}"
    return {k: (float(f"{v:.4g}") if isinstance(v, float) else v) for k, v in res.items()}


# --------------------------------------------------------------------------------------
# Writing the HF folder
# --------------------------------------------------------------------------------------


def make_mtp_tensors(state, cfg, gen, ini, storage_dtype):
    """Random MTP layer model.layers.{N}.* modelled on the last (MoE) decoder layer's checkpoint names."""
    N = cfg.num_hidden_layers
    assert N - 1 >= cfg.first_k_dense_replace, "need an MoE layer to copy the MTP layout from"
    src = f"model.layers.{N - 1}."
    out = {}
    for name, t in state.items():
        if name.startswith(src):
            new = f"model.layers.{N}." + name[len(src):]
            out[new] = init_tensor(new, tuple(t.shape), gen, cfg, ini)
    H = cfg.hidden_size
    for suffix, shape in [
        ("enorm.weight", (H,)),
        ("hnorm.weight", (H,)),
        ("eh_proj.weight", (H, 2 * H)),
        ("shared_head.norm.weight", (H,)),
    ]:
        out[f"model.layers.{N}.{suffix}"] = init_tensor(f"model.layers.{N}.{suffix}", shape, gen, cfg, ini)
    return out


def to_storage(state, storage_dtype):
    res = {}
    for k, v in state.items():
        v = v.contiguous()
        if k.endswith("e_score_correction_bias"):
            res[k] = v.to(torch.float32)
        else:
            res[k] = v.to(storage_dtype)
    return res


def write_model_folder(model, folder, preset, gen):
    cfg = model.config
    storage_dtype = STORAGE_DTYPES[preset["storage"]]
    with tempfile.TemporaryDirectory() as tmp:
        model.save_pretrained(tmp)
        files = sorted(f for f in os.listdir(tmp) if f.endswith(".safetensors"))
        state = {}
        for fn in files:
            with safe_open(os.path.join(tmp, fn), "pt") as f:
                for k in f.keys():
                    state[k] = f.get_tensor(k)
        config = json.load(open(os.path.join(tmp, "config.json")))
        shutil.copy(os.path.join(tmp, "generation_config.json"), os.path.join(folder, "generation_config.json"))
    # save_pretrained must have un-fused the experts into checkpoint names
    assert not any("gate_up_proj" in k for k in state), "save_pretrained wrote fused experts"
    first_moe = cfg.first_k_dense_replace
    assert f"model.layers.{first_moe}.mlp.experts.0.gate_proj.weight" in state
    assert f"model.layers.{first_moe}.mlp.gate.e_score_correction_bias" in state
    # saved values equal the (already storage-rounded) runtime values
    fused = model.model.layers[first_moe].mlp.experts.gate_up_proj
    I = cfg.moe_intermediate_size
    assert torch.equal(state[f"model.layers.{first_moe}.mlp.experts.1.gate_proj.weight"], fused[1, :I])
    assert torch.equal(state[f"model.layers.{first_moe}.mlp.experts.1.up_proj.weight"], fused[1, I:])

    state.update(make_mtp_tensors(state, cfg, gen, preset["init"], storage_dtype))
    state = to_storage(state, storage_dtype)

    config["num_nextn_predict_layers"] = 1
    config["dtype"] = preset["storage"]
    with open(os.path.join(folder, "config.json"), "w") as f:
        json.dump(config, f, indent=2, sort_keys=True)
        f.write("\n")

    names = sorted(state.keys(), key=natural_key)
    if preset["num_shards"] == 1:
        save_file(state, os.path.join(folder, "model.safetensors"), metadata={"format": "pt"})
        files = ["model.safetensors"]
    else:
        n = preset["num_shards"]
        sizes = [state[k].numel() * state[k].element_size() for k in names]
        total = sum(sizes)
        shards, cur, acc = [[] for _ in range(n)], 0, 0
        for k, sz in zip(names, sizes):
            if acc >= total * (cur + 1) / n and cur < n - 1:
                cur += 1
            shards[cur].append(k)
            acc += sz
        weight_map, files = {}, []
        for i, keys in enumerate(shards):
            fn = f"model-{i + 1:05d}-of-{n:05d}.safetensors"
            save_file({k: state[k] for k in keys}, os.path.join(folder, fn), metadata={"format": "pt"})
            files.append(fn)
            for k in keys:
                weight_map[k] = fn
        index = {"metadata": {"total_size": total}, "weight_map": {k: weight_map[k] for k in names}}
        with open(os.path.join(folder, "model.safetensors.index.json"), "w") as f:
            json.dump(index, f, indent=2)
            f.write("\n")
    return files, state


def natural_key(s):
    import re

    return [int(p) if p.isdigit() else p for p in re.split(r"(\d+)", s)]


def load_folder(folder):
    m, info = GlmMoeDsaForCausalLM.from_pretrained(
        folder,
        dtype=torch.float32,
        attn_implementation="eager",
        experts_implementation="eager",
        output_loading_info=True,
    )
    m.eval()
    return m, info


# --------------------------------------------------------------------------------------
# Main per preset
# --------------------------------------------------------------------------------------


def build_model(preset, seed):
    cfg = GlmMoeDsaConfig(**preset["config"])
    torch.manual_seed(seed)
    model = GlmMoeDsaForCausalLM._from_config(
        cfg, attn_implementation="eager", experts_implementation="eager", dtype=torch.float32
    )
    model.eval()
    gen = torch.Generator().manual_seed(seed)
    init_model(model, gen, preset["init"], STORAGE_DTYPES[preset["storage"]])
    return model, gen


def make_preset(name, preset, out_root, max_weight_attempts=20, max_seq_attempts=30):
    for wa in range(max_weight_attempts):
        seed = preset["seed"] + 1000 * wa
        model, gen = build_model(preset, seed)
        cfg = model.config
        tok_gen = torch.Generator().manual_seed(seed + 1)
        total = Margins()
        seqs = []
        failed = False
        for i, T in enumerate(preset["seq_lens"]):
            for sa in range(max_seq_attempts):
                tokens = torch.randint(0, cfg.vocab_size, (T,), generator=tok_gen, dtype=torch.int64)
                res = run_sequence(model, tokens)
                if res[-1].ok():
                    break
                print(f"  [{name}] seed {seed} seq{i} attempt {sa}: margins too small {res[-1].json()}")
            else:
                failed = True
                break
            total.merge(res[-1])
            seqs.append((tokens, res))
        if failed:
            continue
        for ga in range(max_seq_attempts):
            prompt = torch.randint(0, cfg.vocab_size, (preset["greedy_prompt_len"],), generator=tok_gen, dtype=torch.int64)
            g = greedy(model, prompt, preset["greedy_new_tokens"])
            if g[-1].ok():
                break
            print(f"  [{name}] seed {seed} greedy attempt {ga}: margins too small {g[-1].json()}")
        else:
            continue
        total.merge(g[-1])
        assert total.ok()
        return model, gen, seed, seqs, prompt, g, total
    raise RuntimeError(f"{name}: could not find a seed with sufficient margins")


def write_preset(name, preset, out_root):
    print(f"== {name}")
    model, gen, seed, seqs, prompt, g, margins = make_preset(name, preset, out_root)
    cfg = model.config
    folder = os.path.join(out_root, name)
    if os.path.isdir(folder):
        shutil.rmtree(folder)
    os.makedirs(folder)

    golden = {}
    seq_info = []
    logits_std = []
    for i, (tokens, (logits, topk, experts, ew, hidden, final, _m)) in enumerate(seqs):
        T = tokens.numel()
        golden[f"seq{i}.tokens"] = tokens.to(torch.int32)
        golden[f"seq{i}.logits"] = logits.contiguous()
        golden[f"seq{i}.logprobs"] = seq_logprobs(logits, tokens)
        for L, rows in topk.items():
            golden[f"seq{i}.topk.layer{L}"] = torch.tensor(rows, dtype=torch.int32)
            assert golden[f"seq{i}.topk.layer{L}"].shape == (T, min(cfg.index_topk, T))
        for L, ids in experts.items():
            golden[f"seq{i}.experts.layer{L}"] = torch.tensor(ids, dtype=torch.int32)
            golden[f"seq{i}.expert_weights.layer{L}"] = torch.tensor(ew[L], dtype=torch.float32)
        for L, h in hidden.items():
            golden[f"seq{i}.hidden.layer{L}"] = h.contiguous()
        golden[f"seq{i}.hidden.final_norm"] = final.contiguous()
        logits_std.append(float(logits.std()))
        seq_info.append({"index": i, "length": T, "logits_std": round(float(logits.std()), 4)})
        print(f"  seq{i} T={T} logits std {logits.std():.3f} mean {logits.mean():.3f}")

    toks, lps, step_logits, _gm = g
    golden["greedy.prompt"] = prompt.to(torch.int32)
    golden["greedy.tokens"] = torch.tensor(toks, dtype=torch.int32)
    golden["greedy.logprobs"] = torch.tensor(lps, dtype=torch.float32)
    golden["greedy.logits"] = step_logits.contiguous()

    # Cross-checks of the greedy run: full no-cache forward and HF generate().
    full_seq = torch.cat([prompt, torch.tensor(toks[:-1], dtype=torch.int64)])
    full_logits = full_forward(model, full_seq)
    P = prompt.numel()
    cache_vs_full = float((full_logits[P - 1 :] - step_logits).abs().max())
    assert torch.equal(full_logits[P - 1 :].argmax(-1), torch.tensor(toks)), "cached greedy != full forward argmax"
    with torch.no_grad():
        gen_out = model.generate(
            prompt.view(1, -1),
            attention_mask=torch.ones(1, P, dtype=torch.long),
            max_new_tokens=len(toks),
            min_new_tokens=len(toks),
            do_sample=False,
            pad_token_id=0,
        )
    gen_tokens = gen_out[0, P:].tolist()
    assert gen_tokens == toks, f"generate() {gen_tokens} != own loop {toks}"

    files, state = write_model_folder(model, folder, preset, gen)
    save_file(golden, os.path.join(folder, "golden.safetensors"), metadata={"format": "pt"})

    # Round trip: load the written folder and compare.
    m2, info = load_folder(folder)
    mtp_prefix = f"model.layers.{cfg.num_hidden_layers}."
    assert not info["missing_keys"], info["missing_keys"]
    assert all(k.startswith(mtp_prefix) for k in info["unexpected_keys"]), info["unexpected_keys"]
    assert info["unexpected_keys"], "MTP layer should be reported as unexpected (transformers has no MTP)"
    rt = 0.0
    for i, (tokens, res) in enumerate(seqs):
        rt = max(rt, float((full_forward(m2, tokens) - res[0]).abs().max()))
    assert rt == 0.0, f"round trip logits differ by {rt}"
    del m2

    longest = max(range(len(seqs)), key=lambda i: seqs[i][0].numel())
    sens = sensitivity(model, seqs[longest][0], seqs[longest][1][0], seqs[longest][1][2])
    print("  sensitivity:", sens)
    print("  margins:", margins.json())

    summary = {
        "preset": name,
        "seed": seed,
        "weights_storage_dtype": preset["storage"],
        "weight_files": files,
        "golden_computed_in": "float32 (weights = storage-dtype-rounded values; e_score_correction_bias float32)",
        "attn_implementation": "eager",
        "experts_implementation": "eager",
        "config": {k: v for k, v in preset["config"].items()},
        "derived": {
            "qk_head_dim": cfg.qk_head_dim,
            "mlp_layer_types": cfg.mlp_layer_types,
            "indexer_types": cfg.indexer_types,
            "mtp_layer_index": cfg.num_hidden_layers,
            "attention_scaling": cfg.qk_head_dim**-0.5,
            "q_a_kv_a_layernorm_eps": 1e-6,
            "indexer_k_norm": "LayerNorm eps 1e-6 with bias",
        },
        "init": preset["init"],
        "sequences": seq_info,
        "greedy": {
            "prompt_length": P,
            "new_tokens": len(toks),
            "tokens": toks,
            "cached_vs_full_forward_logits_maxdiff": float(f"{cache_vs_full:.3g}"),
            "matches_generate_do_sample_false": True,
        },
        "margins_min": margins.json(),
        "margin_threshold_rel": MARGIN_MIN_REL,
        "margin_definitions": {
            "indexer": "k-th selected minus best unselected valid index score (fp32), rel = / max|valid score| of the row; rows with <= k valid keys have no decision",
            "router_expert": "last chosen minus best unchosen (among allowed groups) of sigmoid(logit)+bias, rel = / max|.| of allowed",
            "router_group": "topk_group-th minus next group score (sum of top-2 biased scores per group), rel = / max|group score|",
            "greedy_logit": "top-1 minus top-2 logit at each greedy step, rel = / max|logit|",
            "scope": "all full-sequence forwards AND every prefill/decode step of the cached greedy run",
        },
        "logits_std": [round(s, 4) for s in logits_std],
        "roundtrip_from_pretrained_logits_maxdiff": rt,
        "sensitivity_on_longest_sequence": sens,
        "versions": {
            "transformers": transformers.__version__,
            "torch": torch.__version__,
            "safetensors": safetensors.__version__,
            "numpy": np.__version__,
            "python": sys.version.split()[0],
        },
        "golden_tensors": {k: {"dtype": str(v.dtype).replace("torch.", ""), "shape": list(v.shape)} for k, v in golden.items()},
    }
    with open(os.path.join(folder, "golden.json"), "w") as f:
        json.dump(summary, f, indent=2)
        f.write("\n")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="Tests/Fixtures")
    ap.add_argument("--preset", action="append", choices=list(PRESETS))
    args = ap.parse_args()
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(1)
    transformers.logging.set_verbosity_error()
    os.makedirs(args.out, exist_ok=True)
    for name in args.preset or list(PRESETS):
        write_preset(name, PRESETS[name], args.out)


if __name__ == "__main__":
    main()
