#!/usr/bin/env python3
"""Generate tiny GLM-5 (`glm_moe_dsa`) reference fixtures with Hugging Face transformers, and the rest of the
DSA family (family.py): DeepSeek-V3.2 (`deepseek_v32`, tiny-v32) and GLM-5.2 shared indexer layers
(tiny-dsa-shared).

Quantized presets (tiny-fp8-block, tiny-int4-*) store FP8 block-scaled or compressed-tensors INT4
pack-quantized checkpoints (quant_formats.py); their golden outputs are computed in float32 from the exactly
dequantized weights.

Usage:
    /work/venv-ref/bin/python tools/reference/make_fixtures.py --out Tests/Fixtures [--preset NAME ...]

For every preset this writes Tests/Fixtures/<preset>/ containing
  * an HF model folder (config.json, generation_config.json, safetensors weights with per-expert
    checkpoint names and an extra random MTP layer `model.layers.{num_hidden_layers}.*`),
  * golden.safetensors (reference outputs of the float32 eager transformers model),
  * golden.json (human-readable summary, margins, sensitivity checks).
Second-weights presets (<base>-v2: tiny-dsa-v2, tiny-int4-g32-v2) derive from the written <base> folder in --out
(same config, sparsely perturbed weights, the base's token sequences); see second_weights_preset / perturb_state.
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

import family as FAM
import quant_formats as QF

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

# --------------------------------------------------------------------------------------
# Quantized presets: non-quantized tensors bf16 (e_score_correction_bias f32); golden outputs computed in
# float32 from the DEQUANTIZED weights (see quant_formats.py and the README).
# --------------------------------------------------------------------------------------

_QINIT = dict(emb_std=0.1, lm_gain=2.0, router_gain=1.5, bias_std=0.15, lat_gain=0.25, wk_gain=0.05)
_QCOMMON = dict(
    num_hidden_layers=2,
    first_k_dense_replace=1,
    index_n_heads=16,
    n_shared_experts=1,
    routed_scaling_factor=2.5,
    norm_topk_prob=True,
    max_position_embeddings=256,
    tie_word_embeddings=False,
    bos_token_id=0,
    eos_token_id=1,
)
CT_BASE_IGNORE = QF.CT_ALWAYS_IGNORE

PRESETS.update(
    {
        # FP8 e4m3 with 128x128 block scales (GLM-5-FP8 layout). Every quantized matrix has a partial edge
        # block in at least one dimension; most have 2x2 scale grids, wq_b 4x2, wk and expert gate/up 1x2,
        # expert down 2x1.
        "tiny-fp8-block": dict(
            seed=5150,
            storage="bfloat16",
            num_shards=1,
            seq_lens=[5, 13, 25],
            greedy_prompt_len=10,
            greedy_new_tokens=8,
            init=_QINIT,
            quant=dict(method="fp8", weight_block_size=[128, 128]),
            config=dict(
                _QCOMMON,
                vocab_size=256,
                hidden_size=160,
                intermediate_size=200,
                moe_intermediate_size=56,
                num_attention_heads=4,
                num_key_value_heads=4,
                q_lora_rank=136,
                kv_lora_rank=144,
                qk_nope_head_dim=24,
                qk_rope_head_dim=16,
                v_head_dim=36,
                index_head_dim=32,
                index_topk=6,
                n_routed_experts=6,
                num_experts_per_tok=2,
                n_group=2,
                topk_group=1,
                rms_norm_eps=1e-5,
                rope_parameters={"rope_type": "default", "rope_theta": 10000.0},
            ),
        ),
        # INT4 pack-quantized, symmetric, group 32, everything quantized except the always-ignored modules;
        # config written by ModelCompressor.from_pretrained_model (ignore = exact names of the unquantized
        # Linear modules), MTP layer quantized like a decoder layer.
        "tiny-int4-g32": dict(
            seed=3232,
            storage="bfloat16",
            num_shards=1,
            seq_lens=[6, 19],
            greedy_prompt_len=9,
            greedy_new_tokens=8,
            init=_QINIT,
            quant=dict(method="compressed-tensors", group_size=32, symmetric=True, ignore=CT_BASE_IGNORE,
                       keep_ignore_as_given=False),
            config=dict(
                _QCOMMON,
                vocab_size=256,
                hidden_size=64,
                intermediate_size=96,
                moe_intermediate_size=32,
                num_attention_heads=2,
                num_key_value_heads=2,
                q_lora_rank=64,
                kv_lora_rank=32,
                qk_nope_head_dim=16,
                qk_rope_head_dim=16,
                v_head_dim=32,
                index_head_dim=32,
                index_topk=6,
                n_routed_experts=8,
                num_experts_per_tok=2,
                n_group=2,
                topk_group=1,
                rms_norm_eps=1e-5,
                rope_parameters={"rope_type": "default", "rope_theta": 10000.0},
            ),
        ),
        # INT4 asymmetric, group 64: weight_zero_point packed along the OUTPUT dim; q_b (68 rows), kv_a (84),
        # kv_b (156) and wk (36) are not multiples of 8, so their last zero-point word is partly padding.
        # 1, 2 (q_b, wq_b, o_proj) or 3 (dense down_proj) groups per row.
        "tiny-int4-g64-asym": dict(
            seed=6464,
            storage="bfloat16",
            num_shards=1,
            seq_lens=[6, 19],
            greedy_prompt_len=9,
            greedy_new_tokens=8,
            init=_QINIT,
            quant=dict(method="compressed-tensors", group_size=64, symmetric=False, ignore=CT_BASE_IGNORE,
                       keep_ignore_as_given=False),
            config=dict(
                _QCOMMON,
                vocab_size=256,
                hidden_size=64,
                intermediate_size=192,
                moe_intermediate_size=64,
                num_attention_heads=2,
                num_key_value_heads=2,
                q_lora_rank=128,
                kv_lora_rank=64,
                qk_nope_head_dim=14,
                qk_rope_head_dim=20,
                v_head_dim=64,
                index_head_dim=36,
                index_topk=6,
                n_routed_experts=8,
                num_experts_per_tok=3,
                n_group=4,
                topk_group=2,
                rms_norm_eps=1e-5,
                rope_parameters={"rope_type": "default", "rope_theta": 10000.0},
            ),
        ),
        # INT4 symmetric, group 128: Linear modules whose input size is not a multiple of 128 stay bf16
        # (kv_b_proj: in 64; dense down_proj: in 192; routed AND shared expert down_proj: in 32), i.e. experts
        # with quantized gate/up and bf16 down in the same checkpoint (the GLM-5.1 AWQ-style mixed layout).
        "tiny-int4-g128": dict(
            seed=1280,
            storage="bfloat16",
            num_shards=1,
            seq_lens=[6, 19],
            greedy_prompt_len=9,
            greedy_new_tokens=8,
            init=_QINIT,
            quant=dict(method="compressed-tensors", group_size=128, symmetric=True, ignore=CT_BASE_IGNORE,
                       keep_ignore_as_given=False),
            config=dict(
                _QCOMMON,
                vocab_size=192,
                hidden_size=128,
                intermediate_size=192,
                moe_intermediate_size=32,
                num_attention_heads=2,
                num_key_value_heads=2,
                q_lora_rank=128,
                kv_lora_rank=64,
                qk_nope_head_dim=16,
                qk_rope_head_dim=16,
                v_head_dim=64,
                index_head_dim=32,
                index_topk=6,
                n_routed_experts=8,
                num_experts_per_tok=2,
                n_group=1,
                topk_group=1,
                rms_norm_eps=1e-5,
                rope_parameters={"rope_type": "default", "rope_theta": 10000.0},
            ),
        ),
        # INT4 symmetric group 32 with an ignore list of exact names and re: patterns written verbatim:
        # layer-0 dense MLP, all shared experts, one kv_b_proj, one indexer.wk and the whole MTP layer
        # (compressed-tensors' own MTP convention `re:^<mtp prefix>`) stay bf16.
        "tiny-int4-partial": dict(
            seed=4747,
            storage="bfloat16",
            num_shards=1,
            seq_lens=[6, 19],
            greedy_prompt_len=9,
            greedy_new_tokens=8,
            init=_QINIT,
            quant=dict(
                method="compressed-tensors",
                group_size=32,
                symmetric=True,
                ignore=CT_BASE_IGNORE
                + [
                    "re:^model\\.layers\\.0\\.mlp\\.",
                    "model.layers.1.self_attn.kv_b_proj",
                    "model.layers.0.self_attn.indexer.wk",
                    "re:.*\\.shared_experts\\.",
                    "re:^model\\.layers\\.2\\.",
                ],
                keep_ignore_as_given=True,
            ),
            config=dict(
                _QCOMMON,
                vocab_size=256,
                hidden_size=64,
                intermediate_size=96,
                moe_intermediate_size=32,
                num_attention_heads=2,
                num_key_value_heads=2,
                q_lora_rank=64,
                kv_lora_rank=32,
                qk_nope_head_dim=16,
                qk_rope_head_dim=16,
                v_head_dim=32,
                index_head_dim=32,
                index_topk=6,
                n_routed_experts=8,
                num_experts_per_tok=2,
                n_group=2,
                topk_group=1,
                rms_norm_eps=1e-5,
                rope_parameters={"rope_type": "default", "rope_theta": 10000.0},
            ),
        ),
    }
)

# --------------------------------------------------------------------------------------
# Second-weights presets ("same config, different weights", as one RL trainer step produces): <base>-v2 is the
# COMMITTED <base> fixture's checkpoint (rebuilt from its recorded seed and asserted bit-identical to the files)
# with a sparse perturbation of every floating tensor (perturb_state), quantized again with the base's procedure
# for quantized bases; config.json / generation_config.json byte-identical to the base's; goldens computed as for
# every preset on the base's token sequences and greedy prompt (the perturbation is redrawn until all margins
# hold). Needs <out>/<base>/ (config, weights, golden.*) to exist.
# --------------------------------------------------------------------------------------

# density: fraction of the elements of every floating tensor changed; scale: perturbation std in units of the
# tensor's rms; seed: first perturbation seed (seed + attempt on redraws).
SECOND_WEIGHTS_DEFAULT = dict(density=0.03, scale=0.1, seed=9001)


def second_weights_preset(base, **overrides):
    p = copy.deepcopy(PRESETS[base])
    p["second_weights"] = dict(SECOND_WEIGHTS_DEFAULT, base=base, **overrides)
    return p


PRESETS.update(FAM.PRESETS)

# tiny-dsa: at scale 0.1 none of 200 perturbations kept every margin on tiny-dsa's tokens; at 0.5 the 6th does.
PRESETS["tiny-dsa-v2"] = second_weights_preset("tiny-dsa", scale=0.5)
PRESETS["tiny-int4-g32-v2"] = second_weights_preset("tiny-int4-g32")

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
            if FAM.is_moe(layer.mlp):
                self.handles.append(layer.mlp.gate.register_forward_hook(self._post_router(li)))
            self.handles.append(layer.register_forward_hook(self._post_layer(li)))
        self.handles.append(model.model.norm.register_forward_hook(self._post_norm()))
        self.shared = FAM.SharedSelections(model, self.events)  # GLM-5.2 shared layers: the reused top-k

    def __enter__(self):
        torch.Tensor.topk = self.patched_topk
        return self

    def __exit__(self, *exc):
        torch.Tensor.topk = self.orig_topk
        for h in self.handles:
            h.remove()
        self.shared.remove()

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
    last_full = None  # (layer, indices) of the latest full indexer in this forward
    for ev in events:
        if ev["kind"] == "indexer":
            a, r, rows = indexer_margins(ev)
            margins.upd("indexer_abs", a)
            margins.upd("indexer_rel", r)
            topk[ev["layer"]] = rows
            last_full = (ev["layer"], ev["indices"])
        elif ev["kind"] == "shared":
            # the selection transformers applied on a shared layer: the nearest full layer's (checked)
            topk[ev["layer"]] = topk[FAM.check_shared(ev, last_full)]
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
        if FAM.is_moe(layer.mlp):
            layer.mlp.gate.e_score_correction_bias.zero_()
    res["no_correction_bias_logits_maxdiff"] = diff(m)
    res["no_correction_bias_expert_sets_changed"] = expert_changes(m)

    if model.config.n_group > 1:
        m = copy.deepcopy(model)
        for layer in m.model.layers:
            if FAM.is_moe(layer.mlp):
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
        if FAM.is_rmsnorm(mod) and mod.variance_epsilon == model.config.rms_norm_eps:
            mod.variance_epsilon = 1e-6 if model.config.rms_norm_eps != 1e-6 else 1e-5
    res["rms_norm_eps_changed_logits_maxdiff"] = diff(m)

    m = copy.deepcopy(model)
    for layer in m.model.layers:
        if layer.self_attn.indexer is not None:
            layer.self_attn.indexer.k_norm.eps = 1e-3
    res["indexer_k_norm_eps_1e-3_logits_maxdiff"] = diff(m)

    Mm = FAM.module_of(model)  # the MLA's RoPE (and GLM's indexer's): half-split instead of interleaved
    saved = Mm.apply_rotary_pos_emb_interleave
    try:
        Mm.apply_rotary_pos_emb_interleave = half_split_rope
        res["half_split_rope_logits_maxdiff"] = diff(model)
    finally:
        Mm.apply_rotary_pos_emb_interleave = saved

    m = copy.deepcopy(model)
    for layer in m.model.layers:
        if FAM.is_moe(layer.mlp):
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
    res.update(FAM.sensitivity(model, diff))
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
    if f"{src}self_attn.indexer.wk.weight" not in state:
        # GLM-5.2: the last decoder layer shares its indexer; the MTP block has its own (shapes of a full layer's)
        full = max(i for i, k in enumerate(getattr(cfg, "indexer_types", [])) if k == "full")
        fsrc = f"model.layers.{full}.self_attn.indexer."
        for name, t in state.items():
            if name.startswith(fsrc):
                new = f"model.layers.{N}.self_attn.indexer." + name[len(fsrc):]
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


def full_checkpoint(model, gen, preset):
    """The checkpoint-named state a folder stores before any quantization: save_pretrained's tensors (per-expert
    names) plus the random MTP layer model.layers.{N}.* drawn from `gen`, in the storage dtype
    (e_score_correction_bias float32); with the config dict and generation_config.json text save_pretrained
    wrote. Draws from `gen`, so call it once per model (write_model_folder / quantize_model / apply_second_weights);
    a second-weights model returns the perturbed state apply_second_weights cached on it."""
    cached = getattr(model, "fixture_checkpoint", None)
    if cached is not None:
        return cached
    cfg = model.config
    storage_dtype = STORAGE_DTYPES[preset["storage"]]
    state, config, gen_cfg = saved_checkpoint(model)
    # save_pretrained must have un-fused the experts into checkpoint names
    first_moe = cfg.first_k_dense_replace
    assert f"model.layers.{first_moe}.mlp.experts.0.gate_proj.weight" in state
    assert f"model.layers.{first_moe}.mlp.gate.e_score_correction_bias" in state
    # saved values equal the (already storage-rounded) runtime values
    fused = model.model.layers[first_moe].mlp.experts.gate_up_proj
    I = cfg.moe_intermediate_size
    assert torch.equal(state[f"model.layers.{first_moe}.mlp.experts.1.gate_proj.weight"], fused[1, :I])
    assert torch.equal(state[f"model.layers.{first_moe}.mlp.experts.1.up_proj.weight"], fused[1, I:])
    state.update(make_mtp_tensors(state, cfg, gen, preset["init"], storage_dtype))
    return to_storage(state, storage_dtype), config, gen_cfg


def write_model_folder(model, folder, preset, gen):
    state, config, gen_cfg = full_checkpoint(model, gen, preset)
    with open(os.path.join(folder, "generation_config.json"), "w") as f:
        f.write(gen_cfg)
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
    m, info = FAM.classes_of_folder(folder)[1].from_pretrained(
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
    config_cls, model_cls, _ = FAM.classes(preset)
    cfg = config_cls(**preset["config"])
    torch.manual_seed(seed)
    model = model_cls._from_config(
        cfg, attn_implementation="eager", experts_implementation="eager", dtype=torch.float32
    )
    model.eval()
    gen = torch.Generator().manual_seed(seed)
    init_model(model, gen, preset["init"], STORAGE_DTYPES[preset["storage"]])
    if "second_weights" in preset:
        apply_second_weights(model, gen, preset)
    if "quant" in preset:
        quantize_model(model, gen, preset)
    return model, gen


# --------------------------------------------------------------------------------------
# Second weights (sparse perturbation of a base checkpoint)
# --------------------------------------------------------------------------------------

_INT_VIEW = {1: torch.uint8, 2: torch.int16, 4: torch.int32, 8: torch.int64}


def bits(t):
    """Flat integer view of a tensor's bytes (for bitwise comparisons)."""
    return t.contiguous().view(-1).view(_INT_VIEW[t.element_size()])


def perturb_state(state, density, scale, seed):
    """Sparse perturbation of a checkpoint-named state (storage dtypes).

    Tensors are visited in natural name order with one torch.Generator(seed). In every floating tensor,
    m = max(1, round(density * numel)) distinct flat positions (the first m of torch.randperm) get
    w + scale * rms(w) * z, z ~ N(0, 1) (float32 arithmetic, then rounded to the tensor's dtype), rms over the
    whole tensor; a position whose stored bits would not change (rounding) is set to w * (1 + sign(z) / 16)
    (w = 0: scale * rms * sign(z)) instead, so exactly m elements of every floating tensor change bitwise.
    Integer tensors are left alone. Returns (new state, summary)."""
    gen = torch.Generator().manual_seed(seed)
    out, changed, total, nudged, ntensors = {}, 0, 0, 0, 0
    for k in sorted(state, key=natural_key):
        t = state[k]
        if not t.is_floating_point():
            out[k] = t
            continue
        n = t.numel()
        m = max(1, round(density * n))
        idx = torch.randperm(n, generator=gen)[:m]
        z = torch.randn(m, generator=gen, dtype=torch.float32)
        flat = t.contiguous().view(-1).clone()
        old = flat[idx].to(torch.float32)
        rms = float(t.to(torch.float32).pow(2).mean().sqrt())
        rms = rms if rms > 0 else 1.0
        new = (old + scale * rms * z).to(t.dtype)
        same = bits(new) == bits(flat[idx])
        if bool(same.any()):
            sgn = torch.where(z >= 0, 1.0, -1.0)
            alt = torch.where(old != 0, old * (1 + sgn / 16), scale * rms * sgn).to(t.dtype)
            new = torch.where(same, alt, new)
            nudged += int(same.sum())
        assert not bool((bits(new) == bits(flat[idx])).any()), k
        flat[idx] = new
        out[k] = flat.view(t.shape)
        changed += m
        total += n
        ntensors += 1
    summary = {
        "floating_tensors_perturbed": ntensors,
        "elements_changed": changed,
        "elements_total": total,
        "fraction_changed": float(f"{changed / total:.5g}"),
        "nudged_after_rounding": nudged,
    }
    return out, summary


def apply_second_weights(model, gen, preset):
    """Perturb the base checkpoint (save_pretrained + MTP layer, drawn from `gen` exactly as the base preset
    draws it) and load the result into `model`; the perturbed state is cached on the model for
    write_model_folder / quantize_model."""
    sw = preset["second_weights"]
    state, config, gen_cfg = full_checkpoint(model, gen, preset)
    new, summary = perturb_state(state, sw["density"], sw["scale"], sw["seed"])
    QF.assign_checkpoint_weights(model, {k: v.to(torch.float32) for k, v in new.items()})
    model.fixture_checkpoint = (new, config, gen_cfg)
    model.fixture_second_weights = summary


def base_checkpoint_reproduced(base, seed, base_dir):
    """Rebuild the base preset's checkpoint at its recorded seed and assert it is bit-identical to the committed
    weight files (so a -v2 fixture is a perturbation of exactly those files)."""
    bp = PRESETS[base]
    model, gen = build_model(bp, seed)
    state = QUANT[id(model)]["stored"] if "quant" in bp else full_checkpoint(model, gen, bp)[0]
    disk = read_folder_tensors(base_dir)
    assert sorted(disk) == sorted(state), f"{base}: tensor names differ from the rebuilt checkpoint"
    for k, t in disk.items():
        assert t.dtype == state[k].dtype and t.shape == state[k].shape, (k, t.dtype, state[k].dtype)
        assert torch.equal(bits(t), bits(state[k])), f"{base}: {k} differs from the rebuilt checkpoint"
    return len(disk)


def draw_tokens(name, model, preset, tok_gen, seed, max_seq_attempts):
    """Random sequences / greedy prompt with all margins >= MARGIN_MIN_REL on `model`, or None."""
    cfg = model.config
    total = Margins()
    seqs = []
    for i, T in enumerate(preset["seq_lens"]):
        for sa in range(max_seq_attempts):
            tokens = torch.randint(0, cfg.vocab_size, (T,), generator=tok_gen, dtype=torch.int64)
            res = run_sequence(model, tokens)
            if res[-1].ok():
                break
            print(f"  [{name}] seed {seed} seq{i} attempt {sa}: margins too small {res[-1].json()}")
        else:
            return None
        total.merge(res[-1])
        seqs.append((tokens, res))
    for ga in range(max_seq_attempts):
        prompt = torch.randint(0, cfg.vocab_size, (preset["greedy_prompt_len"],), generator=tok_gen, dtype=torch.int64)
        g = greedy(model, prompt, preset["greedy_new_tokens"])
        if g[-1].ok() and cfg.eos_token_id not in g[0]:
            break
        print(f"  [{name}] seed {seed} greedy attempt {ga}: margins too small {g[-1].json()} or EOS in {g[0]}")
    else:
        return None
    total.merge(g[-1])
    assert total.ok()
    return seqs, prompt, g, total


def fixed_tokens_margins(name, model, preset, seq_tokens, prompt):
    """Margins of `model` on given sequences / greedy prompt: (seqs, g, total) if all hold, else None."""
    total = Margins()
    seqs = []
    for i, tokens in enumerate(seq_tokens):
        try:
            res = run_sequence(model, tokens)
        except AssertionError as e:  # exact tie in a selection
            print(f"  [{name}] seq{i}: {e}")
            return None
        if not res[-1].ok():
            print(f"  [{name}] seq{i}: margins too small {res[-1].json()}")
            return None
        total.merge(res[-1])
        seqs.append((tokens, res))
    try:
        g = greedy(model, prompt, preset["greedy_new_tokens"])
    except AssertionError as e:
        print(f"  [{name}] greedy: {e}")
        return None
    if not g[-1].ok():
        print(f"  [{name}] greedy: margins too small {g[-1].json()}")
        return None
    if model.config.eos_token_id in g[0]:
        # generate(min_new_tokens=N) would suppress EOS, so the golden's greedy run must not pick it
        print(f"  [{name}] greedy: picks EOS {g[0]}")
        return None
    total.merge(g[-1])
    return seqs, g, total


def base_fixture(out_root, base):
    folder = os.path.join(out_root, base)
    if not os.path.exists(os.path.join(folder, "golden.json")):
        raise RuntimeError(f"{folder}/golden.json not found: a -v2 preset derives from the written {base} fixture "
                           f"(use --out Tests/Fixtures, or generate {base} into --out first)")
    from safetensors.torch import load_file

    return folder, json.load(open(os.path.join(folder, "golden.json"))), load_file(os.path.join(folder, "golden.safetensors"))


def make_second_weights(name, preset, out_root, max_attempts=200, max_seq_attempts=30):
    """Second-weights preset: the base's seed and token sequences, perturbation redrawn (seed + attempt) until every
    margin holds on the base's tokens; if none does, new tokens are drawn on the first perturbation."""
    sw = preset["second_weights"]
    base_dir, base_json, base_golden = base_fixture(out_root, sw["base"])
    seed = base_json["seed"]
    n = base_checkpoint_reproduced(sw["base"], seed, base_dir)
    print(f"  [{name}] base {sw['base']} (seed {seed}): rebuilt checkpoint = committed files ({n} tensors)")
    seq_tokens = [base_golden[f"seq{i}.tokens"].to(torch.int64) for i in range(len(preset["seq_lens"]))]
    assert [t.numel() for t in seq_tokens] == preset["seq_lens"]
    prompt = base_golden["greedy.prompt"].to(torch.int64)
    for a in range(max_attempts):
        p = dict(preset, second_weights=dict(sw, seed=sw["seed"] + a))
        model, gen = build_model(p, seed)
        r = fixed_tokens_margins(f"{name} perturbation seed {sw['seed'] + a}", model, preset, seq_tokens, prompt)
        if r is not None:
            seqs, g, total = r
            model.fixture_second_weights.update(perturbation_seed=sw["seed"] + a, attempt=a,
                                                tokens=f"identical to {sw['base']} (seq*.tokens, greedy.prompt)")
            return model, gen, seed, seqs, prompt, g, total
    p = dict(preset, second_weights=dict(sw, seed=sw["seed"]))
    model, gen = build_model(p, seed)
    r = draw_tokens(name, model, preset, torch.Generator().manual_seed(sw["seed"] + 1), seed, max_seq_attempts)
    if r is None:
        raise RuntimeError(f"{name}: no perturbation / tokens with sufficient margins")
    seqs, prompt, g, total = r
    model.fixture_second_weights.update(perturbation_seed=sw["seed"], attempt=0,
                                        tokens=f"REDRAWN (torch.Generator({sw['seed'] + 1})): no perturbation in "
                                        f"{max_attempts} attempts kept all margins on {sw['base']}'s tokens")
    return model, gen, seed, seqs, prompt, g, total


def tensor_change_stats(old_dir, new_dir):
    """Bytewise comparison of two folders' weights, grouped by tensor kind (last name component) and dtype."""
    a, b = read_folder_tensors(old_dir), read_folder_tensors(new_dir)
    assert sorted(a) == sorted(b)
    kinds = {}
    for k in sorted(a, key=natural_key):
        assert a[k].dtype == b[k].dtype and a[k].shape == b[k].shape, k
        kind = f"{k.rsplit('.', 1)[-1]} ({str(a[k].dtype).replace('torch.', '')})"
        d = kinds.setdefault(kind, {"tensors": 0, "tensors_changed": 0, "elements": 0, "elements_changed": 0})
        c = int((bits(a[k]) != bits(b[k])).sum())
        d["tensors"] += 1
        d["tensors_changed"] += c > 0
        d["elements"] += a[k].numel()
        d["elements_changed"] += c
    for d in kinds.values():
        d["fraction_changed"] = float(f"{d['elements_changed'] / d['elements']:.4g}")
    return kinds


# --------------------------------------------------------------------------------------
# Quantized presets
# --------------------------------------------------------------------------------------

QUANT = {}  # id(model) -> quantization artefacts of a quantized preset's model


def saved_checkpoint(model):
    """save_pretrained -> (checkpoint-named state, config dict, generation_config.json text)."""
    with tempfile.TemporaryDirectory() as tmp:
        model.save_pretrained(tmp)
        state = {}
        for fn in sorted(f for f in os.listdir(tmp) if f.endswith(".safetensors")):
            with safe_open(os.path.join(tmp, fn), "pt") as f:
                for k in f.keys():
                    state[k] = f.get_tensor(k)
        config = json.load(open(os.path.join(tmp, "config.json")))
        gen_cfg = open(os.path.join(tmp, "generation_config.json")).read()
    assert not any("gate_up_proj" in k for k in state), "save_pretrained wrote fused experts"
    return state, config, gen_cfg


def quantize_model(model, gen, preset):
    """Quantize the (storage-rounded) random checkpoint incl. a random MTP layer, then load the
    DEQUANTIZED weights into `model`, so that every golden output and margin refers to them."""
    cfg = model.config
    src = copy.deepcopy(model)
    state, config, gen_cfg = full_checkpoint(model, gen, preset)
    q = preset["quant"]
    if q["method"] == "fp8":
        block = tuple(q["weight_block_size"])
        mtnc = QF.fp8_modules_to_not_convert(cfg.num_hidden_layers)
        stored, deq, quantized = QF.fp8_quantize_state(state, block, mtnc)
        qdict = {
            "quant_method": "fp8",
            "fmt": "e4m3",
            "activation_scheme": "dynamic",
            "weight_block_size": list(block),
            "modules_to_not_convert": mtnc,
        }
        deq2 = QF.fp8_dequantize_tensors(stored, qdict)
    else:
        stored, qdict, _comp, quantized, _unq = QF.ct_quantize_state(
            state, q["group_size"], q["symmetric"], q["ignore"], q["keep_ignore_as_given"]
        )
        deq, quantized2 = QF.ct_dequantize_tensors(stored, qdict)
        assert quantized2 == quantized
        deq2 = deq
    assert all(torch.equal(deq[k], deq2[k]) for k in deq)
    QF.assign_checkpoint_weights(model, deq)
    QUANT[id(model)] = dict(src=src, state=state, stored=stored, qdict=qdict, quantized=quantized, deq=deq,
                            config=config, gen_cfg=gen_cfg)


def write_quant_folder(model, folder, preset):
    qs = QUANT[id(model)]
    cfg = model.config
    with open(os.path.join(folder, "generation_config.json"), "w") as f:
        f.write(qs["gen_cfg"])
    config = dict(qs["config"])
    config["num_nextn_predict_layers"] = 1
    config["dtype"] = preset["storage"]
    config["quantization_config"] = qs["qdict"]
    with open(os.path.join(folder, "config.json"), "w") as f:
        json.dump(config, f, indent=2, sort_keys=True)
        f.write("\n")
    stored = qs["stored"]
    names = sorted(stored.keys(), key=natural_key)
    save_file({k: stored[k].contiguous() for k in names}, os.path.join(folder, "model.safetensors"),
              metadata={"format": "pt"})
    N = cfg.num_hidden_layers
    assert any(k.startswith(f"model.layers.{N}.") and k.endswith("enorm.weight") for k in names)
    return ["model.safetensors"], stored


def read_folder_tensors(folder):
    idx = os.path.join(folder, "model.safetensors.index.json")
    files = sorted(set(json.load(open(idx))["weight_map"].values())) if os.path.exists(idx) else ["model.safetensors"]
    t = {}
    for fn in files:
        with safe_open(os.path.join(folder, fn), "pt") as f:
            for k in f.keys():
                t[k] = f.get_tensor(k)
    return t


def dequantized_model_from_folder(folder, scale_dtype=torch.float32):
    """Independent re-read of a quantized fixture folder: dequantize the files (FP8: own code; INT4: the
    compressed-tensors library) and build a float32 eager model on them."""
    config = json.load(open(os.path.join(folder, "config.json")))
    qdict = config["quantization_config"]
    tensors = read_folder_tensors(folder)
    if qdict["quant_method"] == "fp8":
        deq = QF.fp8_dequantize_tensors(tensors, qdict)
    else:
        deq, _ = QF.ct_dequantize_tensors(tensors, qdict, scale_dtype=scale_dtype)
    config_cls, model_cls, _ = FAM.classes_of_folder(folder)
    cfg = config_cls(**QF.strip_quant_config(config))
    m = model_cls._from_config(cfg, attn_implementation="eager", experts_implementation="eager", dtype=torch.float32)
    m.eval()
    QF.assign_checkpoint_weights(m, deq)
    return m, deq


def transformers_direct_load(folder, seqs, ref_model, fp8_dequantize=False):  # noqa: C901
    """Informational: load the quantized folder with transformers' own quantizer integration (CPU), run it
    in float32 and compare logits and (after the first forward, which decompresses compressed-tensors
    modules) weights with the golden model. Never used for golden values (README, architecture doc §13)."""
    import warnings

    res = {}
    try:
        kwargs = {}
        if fp8_dequantize:
            from transformers import FineGrainedFP8Config

            qd = json.load(open(os.path.join(folder, "config.json")))["quantization_config"]
            kwargs["quantization_config"] = FineGrainedFP8Config(
                dequantize=True,
                weight_block_size=tuple(qd["weight_block_size"]),
                modules_to_not_convert=qd["modules_to_not_convert"],
            )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            m, info = FAM.classes_of_folder(folder)[1].from_pretrained(
                folder, dtype=torch.float32, attn_implementation="eager", experts_implementation="eager",
                output_loading_info=True, **kwargs,
            )
        m.eval()
        N = m.config.num_hidden_layers
        res["missing_keys"] = len(info["missing_keys"])
        res["unexpected_non_mtp_keys"] = len([k for k in info["unexpected_keys"] if not k.startswith(f"model.layers.{N}.")])
        odd = sorted({str(p.dtype) for p in m.parameters() if p.is_floating_point() and p.dtype != torch.float32})
        if odd:
            # transformers' compressed-tensors expert path dequantizes the fused experts in the checkpoint's
            # scale dtype (bf16) and does not cast them to the requested float32 (the forward then fails
            # with a dtype mismatch); model.float() is refused for quantized models, so cast in place.
            res["non_float32_params_cast_to_float32"] = odd
            with torch.no_grad():
                for p in m.parameters():
                    if p.is_floating_point() and p.dtype != torch.float32:
                        p.data = p.data.float()
        d = 0.0
        for tokens, r in seqs:
            d = max(d, float((full_forward(m, tokens) - r[0]).abs().max()))
        res["logits_maxdiff_vs_golden"] = float(f"{d:.4g}")
        ref = dict(ref_model.named_parameters())
        worst, gross, compared = 0.0, [], 0
        for n, p in m.named_parameters():
            if n in ref and p.shape == ref[n].shape and p.is_floating_point():
                compared += 1
                rel = float((p.detach().float() - ref[n]).abs().max() / ref[n].abs().max().clamp_min(1e-30))
                worst = max(worst, rel)
                if rel > 1e-2:
                    gross.append(n)
        res["weights_compared"] = compared
        res["weights_max_rel_diff"] = float(f"{worst:.4g}")
        res["weights_rel_diff_above_1e-2"] = f"{len(gross)}/{compared}" + (f" e.g. {gross[:3]}" if gross else "")
    except Exception as e:  # noqa: BLE001 - recorded, not fatal
        res["error"] = f"{type(e).__name__}: {str(e).splitlines()[0][:300]}"
    qd = json.load(open(os.path.join(folder, "config.json")))["quantization_config"]
    if qd.get("quant_method") == "compressed-tensors":
        known = QF.transformers_known_limitations(qd, read_folder_tensors(folder))
        if known:
            res["known_transformers_limitations"] = known
    else:
        res["known_transformers_limitations"] = [
            "FP8 block folders on CPU are dequantized at load time (also with dequantize=True) by Fp8Dequantize, "
            "which derives the block size as (rows // scale_rows, cols // scale_cols) instead of using "
            "weight_block_size: wrong for every tensor with a partial edge block"
        ]
    return res


def quant_summary(model, preset, folder):
    qs = QUANT[id(model)]
    q = preset["quant"]
    stored = qs["stored"]
    lin = QF.linear_module_names(qs["state"])
    unq = [n for n in lin if n not in qs["quantized"]]
    out = {"method": q["method"], "quantization_config": qs["qdict"]}
    if q["method"] == "fp8":
        out["format"] = {
            "weight": "float8_e4m3fn [out, in]",
            "weight_scale_inv": "float32 [ceil(out/128), ceil(in/128)], = block amax / 448 (a multiplier)",
            "dequant": "W[r, c] = float32(fp8[r, c]) * weight_scale_inv[r // 128, c // 128] (one f32 multiply)",
            "quantize": "fp8 = to_e4m3_rne(clamp(W / scale, -448, 448)), W = bf16-rounded random weight",
        }
        out["scale_shapes"] = {
            m: list(stored[m + ".weight_scale_inv"].shape)
            for m in qs["quantized"]
            if ".experts." not in m or ".experts.0." in m
        }
    else:
        zp = [m for m in qs["quantized"] if m + ".weight_zero_point" in stored]
        out["format"] = {
            "bits": 4,
            "group_size": q["group_size"],
            "symmetric": q["symmetric"],
            "weight_packed": "int32 [out, in/8], 8 signed int4 per word stored as q+8, lowest nibble = lowest column",
            "weight_scale": f"{str(stored[qs['quantized'][0] + '.weight_scale'].dtype).replace('torch.', '')} [out, in/group_size]",
            "weight_shape": f"{str(stored[qs['quantized'][0] + '.weight_shape'].dtype).replace('torch.', '')} [2] = (out, in)",
            "weight_zero_point": (
                "int32 [ceil(out/8), in/group_size], signed int4 zero points packed along dim 0 (output rows), "
                "row 8k+j in nibble j of word k, stored as zp+8"
                if zp
                else "absent (symmetric)"
            ),
            "dequant": "W[o, i] = (q[o, i] - zp[o, i // G]) * weight_scale[o, i // G], q = nibble - 8, zp = 0 if symmetric",
            "qparams": "compressed-tensors min-max per group (compute_dynamic_scales_and_zp): sym scale = max|w| / 7.5; "
            "asym scale = (max(w,0) - min(w,0)) / 15, zp = round(-8 - min/scale) clamped to [-8, 7]",
            "ignore_written": "verbatim (exact names + re: patterns)" if q["keep_ignore_as_given"]
            else "inferred by ModelCompressor.from_pretrained_model (exact names of all unquantized Linear modules)",
            "ignore_given_to_library": q["ignore"],
        }
        out["modules_with_zero_point"] = len(zp)
    out["quantized_modules"] = qs["quantized"]
    out["unquantized_linear_modules"] = unq
    out["mtp_layer_quantized_modules"] = [m for m in qs["quantized"] if m.startswith(f"model.layers.{model.config.num_hidden_layers}.")]
    out["stored_tensor_kinds"] = sorted({f"{k.rsplit('.', 1)[-1]}: {str(v.dtype).replace('torch.', '')}" for k, v in stored.items()})
    return out


def make_preset(name, preset, out_root, max_weight_attempts=20, max_seq_attempts=30):
    if "second_weights" in preset:
        return make_second_weights(name, preset, out_root, max_seq_attempts=max_seq_attempts)
    for wa in range(max_weight_attempts):
        seed = preset["seed"] + 1000 * wa
        model, gen = build_model(preset, seed)
        tok_gen = torch.Generator().manual_seed(seed + 1)
        r = draw_tokens(name, model, preset, tok_gen, seed, max_seq_attempts)
        if r is None:
            continue
        seqs, prompt, g, total = r
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

    quant = "quant" in preset
    if quant:
        files, state = write_quant_folder(model, folder, preset)
    else:
        files, state = write_model_folder(model, folder, preset, gen)
    save_file(golden, os.path.join(folder, "golden.safetensors"), metadata={"format": "pt"})
    second = second_weights_summary(preset, out_root, folder, golden, model) if "second_weights" in preset else None

    rt = 0.0
    if not quant:
        # Round trip: load the written folder and compare.
        m2, info = load_folder(folder)
        mtp_prefix = f"model.layers.{cfg.num_hidden_layers}."
        assert not info["missing_keys"], info["missing_keys"]
        assert all(k.startswith(mtp_prefix) for k in info["unexpected_keys"]), info["unexpected_keys"]
        assert info["unexpected_keys"], "MTP layer should be reported as unexpected (transformers has no MTP)"
        for i, (tokens, res) in enumerate(seqs):
            rt = max(rt, float((full_forward(m2, tokens) - res[0]).abs().max()))
        assert rt == 0.0, f"round trip logits differ by {rt}"
        del m2
    else:
        # Round trip: re-read the written files, dequantize them independently of the in-memory state and
        # rebuild the float32 model; the logits must be bit-identical.
        m2, deq = dequantized_model_from_folder(folder)
        qs = QUANT[id(model)]
        assert deq.keys() == qs["deq"].keys() and all(torch.equal(deq[k], qs["deq"][k]) for k in deq)
        for i, (tokens, res) in enumerate(seqs):
            rt = max(rt, float((full_forward(m2, tokens) - res[0]).abs().max()))
        assert rt == 0.0, f"round trip logits differ by {rt}"
        del m2
        longest_tokens = seqs[max(range(len(seqs)), key=lambda i: seqs[i][0].numel())][0]
        longest_logits = seqs[max(range(len(seqs)), key=lambda i: seqs[i][0].numel())][1][0]
        qerr = full_forward(qs["src"], longest_tokens) - longest_logits
        qextra = {
            "quantization_error_logits_maxdiff_vs_unquantized_bf16_model": float(f"{float(qerr.abs().max()):.4g}"),
            "quantization_error_logits_rmsdiff_vs_unquantized_bf16_model": float(f"{float(qerr.pow(2).mean().sqrt()):.4g}"),
        }
        if preset["quant"]["method"] != "fp8":
            # what the library gives when it decompresses natively in the checkpoint dtype (bf16 products)
            m3, deq3 = dequantized_model_from_folder(folder, scale_dtype=torch.bfloat16)
            wdiff = max(float((deq3[k] - deq[k]).abs().max() / deq[k].abs().max()) for k in deq if deq[k].ndim == 2)
            qextra["library_bf16_decompress_vs_exact_f32_weights_max_rel_diff"] = float(f"{wdiff:.4g}")
            qextra["library_bf16_decompress_vs_exact_f32_logits_maxdiff"] = float(
                f"{float((full_forward(m3, longest_tokens) - longest_logits).abs().max()):.4g}"
            )
            del m3
        ref_model, _ = dequantized_model_from_folder(folder)
        if preset["quant"]["method"] == "fp8":
            # Without a GPU transformers dequantizes FP8 at load time (same result with dequantize=True);
            # it derives the block size as rows // scale_rows, wrong for partial edge blocks.
            qextra["transformers_direct_load_cpu"] = transformers_direct_load(folder, seqs, ref_model)
        else:
            qextra["transformers_direct_load_cpu"] = transformers_direct_load(folder, seqs, ref_model)
        del ref_model
        print("  quantization:", qextra)

    longest = max(range(len(seqs)), key=lambda i: seqs[i][0].numel())
    sens = sensitivity(model, seqs[longest][0], seqs[longest][1][0], seqs[longest][1][2])
    print("  sensitivity:", sens)
    print("  margins:", margins.json())

    summary = {
        "preset": name,
        "seed": seed,
        "weights_storage_dtype": preset["storage"],
        "weight_files": files,
        "golden_computed_in": (
            "float32 from the DEQUANTIZED weights (exact float32 dequantization of the stored tensors; "
            "non-quantized tensors bf16; e_score_correction_bias float32)"
            if quant
            else "float32 (weights = storage-dtype-rounded values; e_score_correction_bias float32)"
        ),
        "attn_implementation": "eager",
        "experts_implementation": "eager",
        "config": {k: v for k, v in preset["config"].items()},
        "derived": {
            "qk_head_dim": cfg.qk_head_dim,
            "mlp_layer_types": cfg.mlp_layer_types,
            "indexer_types": getattr(cfg, "indexer_types", ["full"] * cfg.num_hidden_layers),
            "mtp_layer_index": cfg.num_hidden_layers,
            "attention_scaling": model.model.layers[0].self_attn.scaling,
            "rope_attention_factor": model.model.rotary_emb.attention_scaling,
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
        **(
            {
                "roundtrip_note": "quantized preset: round trip = re-read files, dequantize, rebuild float32 model "
                "(not transformers' from_pretrained, see quantization.checks.transformers_direct_load_cpu)",
                "quantization": dict(quant_summary(model, preset, folder), checks=qextra),
            }
            if quant
            else {}
        ),
        "sensitivity_on_longest_sequence": sens,
        **({"second_weights": second} if second else {}),
        "versions": {
            "transformers": transformers.__version__,
            "torch": torch.__version__,
            "safetensors": safetensors.__version__,
            "numpy": np.__version__,
            **({"compressed_tensors": _ct_version()} if quant else {}),
            "python": sys.version.split()[0],
        },
        "golden_tensors": {k: {"dtype": str(v.dtype).replace("torch.", ""), "shape": list(v.shape)} for k, v in golden.items()},
    }
    with open(os.path.join(folder, "golden.json"), "w") as f:
        json.dump(summary, f, indent=2)
        f.write("\n")


def second_weights_summary(preset, out_root, folder, golden, model):
    """golden.json `second_weights` of a -v2 fixture: derivation, what changed in the files, and how far the
    goldens moved from the base's (same tokens)."""
    sw = preset["second_weights"]
    base = sw["base"]
    base_dir, _bj, bg = base_fixture(out_root, base)
    for fn in ("config.json", "generation_config.json"):
        with open(os.path.join(base_dir, fn), "rb") as f1, open(os.path.join(folder, fn), "rb") as f2:
            assert f1.read() == f2.read(), f"{fn} differs from {base}'s"
    info = dict(model.fixture_second_weights)
    same_tokens = all(torch.equal(golden[k], bg[k]) for k in golden if k.endswith(".tokens") and k.startswith("seq")) \
        and torch.equal(golden["greedy.prompt"], bg["greedy.prompt"])
    vs = {}
    if same_tokens:
        i = 0
        while f"seq{i}.logits" in golden:
            vs[f"seq{i}.logits_max_abs_diff"] = float(f"{float((golden[f'seq{i}.logits'] - bg[f'seq{i}.logits']).abs().max()):.4g}")
            changed = {}
            for k in golden:
                if k.startswith(f"seq{i}.topk.") or k.startswith(f"seq{i}.experts."):
                    changed[k[len(f"seq{i}."):]] = f"{int((golden[k] != bg[k]).any(-1).sum())}/{golden[k].shape[0]}"
            vs[f"seq{i}.rows_with_different_choices"] = changed
            i += 1
        vs["greedy.step0_logits_max_abs_diff"] = float(f"{float((golden['greedy.logits'][0] - bg['greedy.logits'][0]).abs().max()):.4g}")
        vs["greedy.tokens_base"] = bg["greedy.tokens"].tolist()
        vs["greedy.tokens_this"] = golden["greedy.tokens"].tolist()
    return {
        "derived_from": base,
        "how": (f"the committed {base} checkpoint (rebuilt from seed {_bj['seed']}, asserted bit-identical to its "
                "files) with a sparse perturbation of every floating tensor"
                + (" of its bf16 source, quantized again with the base's procedure (compressed-tensors, same "
                   "arguments)" if "quant" in preset else "")
                + "; config.json and generation_config.json byte-identical to the base's; "
                "make_fixtures.perturb_state: per floating tensor m = max(1, round(density * numel)) distinct "
                "positions (torch.randperm), w += scale * rms(tensor) * N(0, 1), rounded to the tensor's dtype "
                "(nudged by a relative 1/16 where rounding would keep the bits), tensors in natural name order, "
                "one torch.Generator(perturbation_seed)"),
        "density": sw["density"],
        "scale_times_rms": sw["scale"],
        "perturbation_seed": info.pop("perturbation_seed"),
        "perturbation_attempt": info.pop("attempt"),
        "tokens": info.pop("tokens"),
        "float_source_perturbation": info,
        "stored_tensors_changed_vs_base": tensor_change_stats(base_dir, folder),
        "vs_base_golden": vs,
        "delta_fixtures": f"Tests/Fixtures/deltas/{os.path.basename(folder)}.*/weight_v000001/ ({base} -> this, slime "
        "delta weight sync layout; tools/reference/make_delta_fixtures.py)",
    }


def _ct_version():
    import compressed_tensors

    return compressed_tensors.__version__


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="Tests/Fixtures")
    ap.add_argument("--preset", action="append", choices=list(PRESETS) + ["glm5-quantized", "glm5-quantized/source-v2"])
    ap.add_argument("--glm5", default=".build/release/glm5",
                    help="glm5 binary for the glm5-quantized fixture (make_glm5_quantized.py; `make build`)")
    args = ap.parse_args()
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(1)
    transformers.logging.set_verbosity_error()
    os.makedirs(args.out, exist_ok=True)
    names = args.preset or list(PRESETS) + ["glm5-quantized", "glm5-quantized/source-v2"]
    for name in names:
        if name.startswith("glm5-quantized"):
            continue
        write_preset(name, PRESETS[name], args.out)
    if "glm5-quantized" in names:
        # `glm5 quantize` output loaded in transformers; needs the Swift build
        if not os.path.exists(args.glm5) and not args.preset:
            print(f"== glm5-quantized SKIPPED: {args.glm5} not found (run `make build`, or pass --glm5)")
        else:
            import make_glm5_quantized

            make_glm5_quantized.make(args.out, args.glm5)
    if "glm5-quantized/source-v2" in names:
        # derived from the written glm5-quantized/source (seed from int4/golden.json); no glm5 binary needed
        if not os.path.exists(os.path.join(args.out, "glm5-quantized", "int4", "golden.json")):
            print(f"== glm5-quantized/source-v2 SKIPPED: {args.out}/glm5-quantized not written")
        else:
            import make_glm5_quantized

            make_glm5_quantized.make_source_v2(args.out)


if __name__ == "__main__":
    main()
