"""The rest of the DSA family for make_fixtures.py: DeepSeek-V3.2 (`deepseek_v32`, transformers'
own `DeepseekV32ForCausalLM`) and GLM-5.2 shared indexer layers (`glm_moe_dsa` with `indexer_types`
mixing "full" and "shared").

make_fixtures.py builds every preset through `classes(preset)` / `classes_of_folder(folder)`, recognises
MoE blocks and RMSNorms with `is_moe` / `is_rmsnorm` (the class names differ per model), records the
selection each shared layer reuses (`SharedSelections`: transformers' GlmMoeDsaAttention returns the
top-k it applied as its third output) and adds the family's own sensitivity checks (`sensitivity`).

transformers 5.24's glm_moe_dsa implements the shared layers itself (GlmMoeDsaConfig.indexer_types,
GlmMoeDsaAttention.skip_topk: a shared layer has no indexer module and reuses `prev_topk_indices`, the
selection the previous layer applied, so the nearest preceding full layer's); nothing is patched.
"""

import torch
from transformers import DeepseekV32Config, DeepseekV32ForCausalLM, GlmMoeDsaConfig, GlmMoeDsaForCausalLM
from transformers.models.deepseek_v32 import modeling_deepseek_v32 as M32
from transformers.models.glm_moe_dsa import modeling_glm_moe_dsa as MGLM

ARCHS = {
    "glm_moe_dsa": (GlmMoeDsaConfig, GlmMoeDsaForCausalLM, MGLM),
    "deepseek_v32": (DeepseekV32Config, DeepseekV32ForCausalLM, M32),
}

_INIT = dict(emb_std=0.1, lm_gain=2.0, router_gain=1.5, bias_std=0.15, lat_gain=0.25, wk_gain=0.05)

PRESETS = {
    # DeepSeek-V3.2 from transformers' DeepseekV32ForCausalLM: half-split indexer RoPE, YaRN with an
    # attention factor != 1 (mscale != mscale_all_dim) and the softmax mscale², group-limited routing
    # (4 groups keep 2), DSA sparse (index_topk 6 < lengths), sequences past original_max_position_embeddings.
    # rms_norm_eps / q_lora_rank / index_n_heads / n_group / topk_group given explicitly (tiny values);
    # the V3.2 defaults of the absent keys are tested in the Swift ConfigTests.
    "tiny-v32": dict(
        arch="deepseek_v32",
        seed=3200,
        storage="float32",
        num_shards=1,
        seq_lens=[5, 17, 29],
        greedy_prompt_len=11,
        greedy_new_tokens=8,
        init=_INIT,
        config=dict(
            vocab_size=256,
            hidden_size=64,
            intermediate_size=96,
            moe_intermediate_size=20,
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
            index_n_heads=8,
            index_topk=6,
            n_routed_experts=16,
            num_experts_per_tok=4,
            n_group=4,
            topk_group=2,
            n_shared_experts=1,
            routed_scaling_factor=2.5,
            norm_topk_prob=True,
            rms_norm_eps=1e-6,
            rope_parameters={"rope_type": "yarn", "rope_theta": 10000.0, "factor": 4.0,
                             "original_max_position_embeddings": 16, "beta_fast": 32.0, "beta_slow": 1.0,
                             "mscale": 1.0, "mscale_all_dim": 0.8},
            max_position_embeddings=64,
            tie_word_embeddings=False,
            bos_token_id=0,
            eos_token_id=1,
        ),
    ),
    # DeepSeek-V3.2 as released: FP8 e4m3 with 128x128 block scales (the GLM-5-FP8 layout, partial edge blocks
    # everywhere), rest bf16, legacy-free rope_parameters with YaRN; goldens from the dequantized weights.
    "tiny-v32-fp8": dict(
        arch="deepseek_v32",
        seed=3280,
        storage="bfloat16",
        num_shards=1,
        seq_lens=[5, 13, 25],
        greedy_prompt_len=10,
        greedy_new_tokens=8,
        init=_INIT,
        quant=dict(method="fp8", weight_block_size=[128, 128]),
        config=dict(
            vocab_size=256,
            hidden_size=160,
            intermediate_size=200,
            moe_intermediate_size=56,
            num_hidden_layers=2,
            first_k_dense_replace=1,
            num_attention_heads=4,
            num_key_value_heads=4,
            q_lora_rank=136,
            kv_lora_rank=144,
            qk_nope_head_dim=24,
            qk_rope_head_dim=16,
            v_head_dim=36,
            index_head_dim=32,
            index_n_heads=16,
            index_topk=6,
            n_routed_experts=8,
            num_experts_per_tok=2,
            n_group=4,
            topk_group=2,
            n_shared_experts=1,
            routed_scaling_factor=2.5,
            norm_topk_prob=True,
            rms_norm_eps=1e-6,
            rope_parameters={"rope_type": "yarn", "rope_theta": 10000.0, "factor": 4.0,
                             "original_max_position_embeddings": 16, "beta_fast": 32.0, "beta_slow": 1.0,
                             "mscale": 1.0, "mscale_all_dim": 1.0},
            max_position_embeddings=64,
            tie_word_embeddings=False,
            bos_token_id=0,
            eos_token_id=1,
        ),
    ),
    # GLM-5.2 shared indexer layers: F S S F S — layers 1 and 2 reuse layer 0's selection (2 through a
    # shared layer), layer 4 reuses layer 3's (the nearest full layer, not the first); DSA sparse.
    "tiny-dsa-shared": dict(
        seed=5200,
        storage="float32",
        num_shards=1,
        seq_lens=[6, 19, 27],
        greedy_prompt_len=10,
        greedy_new_tokens=8,
        init=_INIT,
        config=dict(
            vocab_size=224,
            hidden_size=48,
            intermediate_size=72,
            moe_intermediate_size=16,
            num_hidden_layers=5,
            first_k_dense_replace=1,
            num_attention_heads=2,
            num_key_value_heads=2,
            q_lora_rank=40,
            kv_lora_rank=24,
            qk_nope_head_dim=16,
            qk_rope_head_dim=12,
            v_head_dim=18,
            index_head_dim=20,
            index_n_heads=8,
            index_topk=5,
            indexer_types=["full", "shared", "shared", "full", "shared"],
            n_routed_experts=8,
            num_experts_per_tok=2,
            n_group=2,
            topk_group=1,
            n_shared_experts=1,
            routed_scaling_factor=2.5,
            norm_topk_prob=True,
            rms_norm_eps=1e-5,
            rope_parameters={"rope_type": "default", "rope_theta": 10000.0},
            max_position_embeddings=128,
            tie_word_embeddings=False,
            bos_token_id=0,
            eos_token_id=1,
        ),
    ),
}


def classes(preset):
    """(config class, model class, modeling module) of a preset (default glm_moe_dsa)."""
    return ARCHS[preset.get("arch", "glm_moe_dsa")]


def classes_of_folder(folder):
    import json
    import os

    return ARCHS[json.load(open(os.path.join(folder, "config.json")))["model_type"]]


def module_of(model):
    return ARCHS[model.config.model_type][2]


def is_moe(mlp):
    return type(mlp).__name__.endswith("MoE")


def is_rmsnorm(mod):
    return type(mod).__name__.endswith("RMSNorm")


def shared_layers(model):
    return [i for i, layer in enumerate(model.model.layers) if layer.self_attn.indexer is None]


class SharedSelections:
    """Forward hooks on the attention of every shared layer: the top-k it applied (its third output)."""

    def __init__(self, model, events):
        self.handles = []
        for li in shared_layers(model):
            self.handles.append(model.model.layers[li].self_attn.register_forward_hook(self._hook(li, events)))

    @staticmethod
    def _hook(li, events):
        def hook(mod, args, out):
            assert mod.indexer is None and isinstance(out, tuple) and len(out) == 3, "not a shared GlmMoeDsaAttention"
            events.append(dict(kind="shared", layer=li, indices=out[2].detach().clone()))

        return hook

    def remove(self):
        for h in self.handles:
            h.remove()


def check_shared(ev, last_full):
    """A shared layer's applied top-k must be the nearest preceding full layer's, bit for bit."""
    assert last_full is not None, f"shared layer {ev['layer']} before any full layer"
    full_layer, full_indices = last_full
    assert full_layer < ev["layer"]
    assert torch.equal(ev["indices"], full_indices), f"shared layer {ev['layer']} did not reuse layer {full_layer}'s top-k"
    return full_layer


def sensitivity(model, diff):
    """Family checks: each difference must move the logits of the longest sequence."""
    import copy

    res = {}
    Mm = module_of(model)
    if model.config.model_type == "deepseek_v32":
        # the indexer's half-split layout: run it interleaved instead (MLA untouched)
        saved = Mm.apply_rotary_pos_emb
        try:
            Mm.apply_rotary_pos_emb = Mm.apply_rotary_pos_emb_interleave
            res["v32_indexer_rope_interleaved_logits_maxdiff"] = diff(model)
        finally:
            Mm.apply_rotary_pos_emb = saved
    if model.config.rope_parameters.get("rope_type", "default") == "yarn":
        m = copy.deepcopy(model)
        for layer in m.model.layers:
            layer.self_attn.scaling = m.config.qk_head_dim**-0.5
        res["yarn_softmax_mscale_dropped_logits_maxdiff"] = diff(m)
        m = copy.deepcopy(model)
        m.model.rotary_emb.attention_scaling = 1.0
        res["yarn_attention_factor_dropped_logits_maxdiff"] = diff(m)
    shared = shared_layers(model)
    if shared:
        # "nearest preceding full layer": hand every shared layer the FIRST layer's selection instead
        m = copy.deepcopy(model)
        first = {}

        def keep(mod, args, out):
            first["topk"] = out[2]

        def swap(mod, args, kwargs):
            kwargs["prev_topk_indices"] = first["topk"]
            return args, kwargs

        hs = [m.model.layers[0].self_attn.register_forward_hook(keep)]
        hs += [m.model.layers[li].self_attn.register_forward_pre_hook(swap, with_kwargs=True) for li in shared]
        try:
            res["shared_layers_given_layer0_selection_logits_maxdiff"] = diff(m)
        finally:
            for h in hs:
                h.remove()
    return res
