#!/usr/bin/env python3
"""Interoperability fixture for `glm5 quantize`: Tests/Fixtures/glm5-quantized/{source,int4}.

    make build   # .build/release/glm5
    /work/venv-ref/bin/python tools/reference/make_glm5_quantized.py [--out Tests/Fixtures] [--glm5 .build/release/glm5]

(also run by `make_fixtures.py` without --preset, or with --preset glm5-quantized.)

1. Builds a small random GLM-5-shaped float model (bf16 storage, 2 safetensors shards + index, MTP layer
   model.layers.2.*) in which EVERY quantizable Linear has an input size that is a multiple of 32 (so with
   --group 32 nothing but the always-kept modules stays unquantized and every expert projection is INT4),
   and writes it as glm5-quantized/source/.
2. Runs `glm5 quantize source int4 --group 32` (symmetric; transformers 5.24 cannot load asymmetric
   pack-quantized GLM folders, see README).
3. Loads int4/ in transformers + compressed-tensors through check_quantized.prepare_model (default expert
   workaround "f32-scales": transformers' fused-expert decompression is given float32 scales, see
   check_quantized.py), fails on any loading problem, and compares every weight transformers produced with
   the exact dequantization of the folder.
4. Picks token sequences / a greedy prompt on which every decision (indexer top-k, router, greedy argmax) of
   THAT model has a relative margin >= 1e-3 (else reseeds the source model) and writes int4/golden.safetensors
   + int4/golden.json with make_fixtures.py's tensor names. The goldens are the float32 forward of
   transformers' load of our folder.
5. Records in golden.json: max |logit| difference between that model and (a) an independent NumPy exact
   dequantization of the folder (check_fixtures.load_weights) run in transformers' float32 eager model,
   (b) check_fixtures.py's float64 NumPy forward, (c) transformers' unpatched load (bf16 experts);
   and a comparison of int4/ with compressed-tensors' own quantization of source/ (ct_quantize_folder.py):
   tensor names, dtypes, shapes, config block, scales and nibbles.

The int4/ weight files and config.json are exactly what glm5 wrote; this script only adds golden.*.
"""

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import numpy as np  # noqa: E402
import torch  # noqa: E402
import transformers  # noqa: E402
from safetensors import safe_open  # noqa: E402
from safetensors.torch import save_file  # noqa: E402
from transformers import GlmMoeDsaConfig, GlmMoeDsaForCausalLM  # noqa: E402
from transformers.cache_utils import DynamicCache  # noqa: E402

import check_fixtures as CF  # noqa: E402
import check_quantized as CQ  # noqa: E402
import ct_quantize_folder as CTQ  # noqa: E402
import make_fixtures as MF  # noqa: E402
import quant_formats as QF  # noqa: E402

NAME = "glm5-quantized"
GROUP = 32

# GLM-5 proportions where they are cheap: qk_nope : qk_rope : v = 3 : 1 : 4 (192 : 64 : 256),
# q_lora_rank > kv_lora_rank, n_group 1 (no group-limited routing), 1 shared expert, scaling 2.5,
# norm_topk_prob, index_topk below every sequence length (DSA sparse path active).
PRESET = dict(
    seed=5005,
    storage="bfloat16",
    num_shards=2,
    seq_lens=[7, 23],
    greedy_prompt_len=10,
    greedy_new_tokens=8,
    init=MF._QINIT,
    config=dict(
        MF._QCOMMON,
        vocab_size=128,
        hidden_size=64,  # q_a, kv_a, wk, dense gate/up, expert gate/up inputs
        intermediate_size=96,  # dense down_proj input
        moe_intermediate_size=32,  # routed and shared expert down_proj input
        num_attention_heads=4,
        num_key_value_heads=4,
        q_lora_rank=64,  # q_b, indexer wq_b inputs
        kv_lora_rank=32,  # kv_b input
        qk_nope_head_dim=24,
        qk_rope_head_dim=8,
        v_head_dim=32,  # o_proj input = 4 * 32 = 128
        index_head_dim=32,
        index_n_heads=8,
        index_topk=6,
        n_routed_experts=8,
        num_experts_per_tok=2,
        n_group=1,
        topk_group=1,
        rms_norm_eps=1e-5,
        rope_parameters={"rope_type": "default", "rope_theta": 1000000.0},
    ),
)


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        h.update(f.read())
    return h.hexdigest()


def folder_files(folder):
    return {fn: {"bytes": os.path.getsize(os.path.join(folder, fn)), "sha256": sha256(os.path.join(folder, fn))}
            for fn in sorted(os.listdir(folder))}


def check_dims(state, cfg):
    """Every Linear glm5 may quantize has an input size that is a multiple of GROUP."""
    always = ("lm_head", ".mlp.gate", ".indexer.weights_proj", ".eh_proj")
    lin = QF.linear_module_names(state)
    kept = [m for m in lin if m == "lm_head" or m.endswith(always[1:])]
    bad = [m for m in lin if m not in kept and state[m + ".weight"].shape[1] % GROUP]
    assert not bad, f"input sizes not multiples of {GROUP}: {bad}"
    assert cfg.index_topk < min(PRESET["seq_lens"] + [PRESET["greedy_prompt_len"]])
    return lin, kept


def run_glm5_quantize(glm5, src, out):
    cmd = [glm5, "quantize", src, out, "--group", str(GROUP)]
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({r.returncode}):\n{r.stdout}\n{r.stderr}")
    return cmd


def pick_tokens(model, cfg, seed, max_attempts=30):
    """Random sequences / greedy prompt whose decisions on `model` all have relative margins >= 1e-3."""
    tok_gen = torch.Generator().manual_seed(seed + 1)
    seqs = []
    for i, T in enumerate(PRESET["seq_lens"]):
        for sa in range(max_attempts):
            tokens = torch.randint(0, cfg.vocab_size, (T,), generator=tok_gen, dtype=torch.int64)
            try:
                m = MF.run_sequence(model, tokens)[-1]
            except AssertionError as e:  # exact tie in a selection (margin 0)
                print(f"  seed {seed} seq{i} attempt {sa}: {e}")
                continue
            if m.ok():
                break
            print(f"  seed {seed} seq{i} attempt {sa}: margins too small {m.json()}")
        else:
            return None
        seqs.append(tokens)
    for ga in range(max_attempts):
        prompt = torch.randint(0, cfg.vocab_size, (PRESET["greedy_prompt_len"],), generator=tok_gen, dtype=torch.int64)
        try:
            g = MF.greedy(model, prompt, PRESET["greedy_new_tokens"])
        except AssertionError as e:
            print(f"  seed {seed} greedy attempt {ga}: {e}")
            continue
        if g[-1].ok():
            return seqs, prompt
        print(f"  seed {seed} greedy attempt {ga}: margins too small {g[-1].json()}")
    return None


def attempt(seed, work, glm5):
    """Source model for `seed` -> work/source, glm5 quantize -> work/int4, transformers load, tokens."""
    for d in ("source", "int4"):
        if os.path.isdir(os.path.join(work, d)):
            shutil.rmtree(os.path.join(work, d))
    src, q = os.path.join(work, "source"), os.path.join(work, "int4")
    os.makedirs(src)
    model, gen = MF.build_model(PRESET, seed)
    MF.write_model_folder(model, src, PRESET, gen)
    cmd = run_glm5_quantize(glm5, src, q)
    qmodel, load_summary, wcheck = CQ.prepare_model(q, "f32-scales")
    picked = pick_tokens(qmodel, qmodel.config, seed)
    return model, qmodel, load_summary, wcheck, picked, cmd


# --------------------------------------------------------------------------------------
# Cross-checks
# --------------------------------------------------------------------------------------


def logits_of(model, golden):
    """Logits of `model` on every golden sequence (full forward) and of the cached greedy decode of the
    golden prompt (as the golden greedy.logits)."""
    out = {}
    i = 0
    while f"seq{i}.tokens" in golden:
        out[f"seq{i}.logits"] = MF.full_forward(model, golden[f"seq{i}.tokens"].long())
        i += 1
    out["greedy.logits"] = forced_decode(model, golden["greedy.prompt"].long(), golden["greedy.tokens"].long())
    return out


def forced_decode(model, prompt, tokens):
    """Cached decode as MF.greedy (prefill, then one token per step) but feeding the golden tokens instead of
    each step's argmax (identical to greedy for a model that picks them)."""
    steps = []
    with torch.no_grad():
        cache = DynamicCache(config=model.config)
        out = model(input_ids=prompt.view(1, -1), cache=cache, use_cache=True)
        for j in range(tokens.numel()):
            steps.append(out.logits[0, -1].float().clone())
            if j + 1 < tokens.numel():
                out = model(input_ids=tokens[j].view(1, 1), cache=cache, use_cache=True)
    return torch.stack(steps)


def maxdiff(a, b):
    return max(float((a[k] - b[k]).abs().max()) for k in a)


def independent_dequant_check(qfolder, golden, cfg_dict):
    """NumPy unpacking of our folder (check_fixtures.load_weights: own nibble decoding, own ignore matching),
    float32 weights into transformers' eager model; and check_fixtures' float64 forward."""
    w64 = CF.load_weights(qfolder)
    ck = {k: torch.from_numpy(v.astype(np.float32)) for k, v in w64.items()}
    assert all(np.array_equal(ck[k].double().numpy(), v) for k, v in w64.items()), "dequant not exact in float32"
    # the same values as compressed-tensors' own decompress (scale cast to float32)
    deq_ct, _ = QF.ct_dequantize_tensors(MF.read_folder_tensors(qfolder), cfg_dict["quantization_config"])
    assert ck.keys() == deq_ct.keys() and all(torch.equal(ck[k], deq_ct[k]) for k in ck), "numpy != compressed-tensors"
    cfg = GlmMoeDsaConfig(**QF.strip_quant_config(cfg_dict))
    m = GlmMoeDsaForCausalLM._from_config(cfg, attn_implementation="eager", experts_implementation="eager",
                                          dtype=torch.float32)
    m.eval()
    QF.assign_checkpoint_weights(m, ck)
    gold = {k: v for k, v in golden.items() if k.endswith(".logits")}
    d32 = maxdiff(logits_of(m, golden), gold)
    return m, d32


def transformers_unpatched_diff(qfolder, golden, experts):
    model, _s, w = CQ.prepare_model(qfolder, experts)
    gold = {k: v for k, v in golden.items() if k.endswith(".logits")}
    return maxdiff(logits_of(model, golden), gold), w


def nibbles(words, n):
    return CF.unpack_int4(words.numpy(), n, axis=1)


def compare_with_library(src, qfolder, lib_folder):
    """glm5's int4/ vs compressed-tensors' own quantization of the same source (ct_quantize_folder.py)."""
    CTQ.quantize_folder(src, lib_folder, group_size=GROUP, symmetric=True)
    ours, lib = MF.read_folder_tensors(qfolder), MF.read_folder_tensors(lib_folder)
    src_t = MF.read_folder_tensors(src)
    res = {}
    res["tensor_names_equal"] = sorted(ours) == sorted(lib)
    res["names_only_in_glm5"] = sorted(set(ours) - set(lib))
    res["names_only_in_library"] = sorted(set(lib) - set(ours))
    common = sorted(set(ours) & set(lib))
    res["dtype_or_shape_differences"] = [
        f"{k}: glm5 {ours[k].dtype}{list(ours[k].shape)} vs library {lib[k].dtype}{list(lib[k].shape)}"
        for k in common if ours[k].dtype != lib[k].dtype or ours[k].shape != lib[k].shape
    ]
    res["kinds"] = sorted({f"{k.rsplit('.', 1)[-1]}: {str(v.dtype).replace('torch.', '')}" for k, v in ours.items()})
    plain = [k for k in common if not k.endswith((".weight_packed", ".weight_scale", ".weight_shape"))]
    res["unquantized_tensors_bitwise_equal"] = f"{sum(torch.equal(ours[k], lib[k]) for k in plain)}/{len(plain)}"
    res["weight_shape_equal"] = all(torch.equal(ours[k], lib[k]) for k in common if k.endswith(".weight_shape"))
    sc = [k for k in common if k.endswith(".weight_scale")]
    n_sc = sum(ours[k].numel() for k in sc)
    d_sc = sum(int((ours[k].view(torch.int16) != lib[k].view(torch.int16)).sum()) for k in sc)
    res["scales_total"], res["scales_differing"] = n_sc, d_sc
    # nibbles, and why they differ: the library rounds w / scale to bf16 before rounding to an integer
    # (compressed-tensors quantize() runs in the weight dtype); glm5 rounds the float32 quotient.
    n_tot = n_diff = explained = 0
    max_step = 0
    worst_modules = {}
    err_ours = err_lib = 0.0
    for k in common:
        if not k.endswith(".weight_packed"):
            continue
        m = k[: -len(".weight_packed")]
        out_f, in_f = (int(x) for x in ours[m + ".weight_shape"])
        qo, ql = nibbles(ours[k], in_f), nibbles(lib[k], in_f)
        n_tot += qo.size
        diff = qo != ql
        nd = int(diff.sum())
        n_diff += nd
        if nd:
            worst_modules[m] = nd
        max_step = max(max_step, int(np.abs(qo - ql).max()))
        w = src_t[m + ".weight"].float()
        s = ours[m + ".weight_scale"].float().repeat_interleave(GROUP, 1)
        r32 = torch.clamp(torch.round(w / s), -8, 7).numpy()
        rbf = torch.clamp(torch.round((w.bfloat16() / ours[m + ".weight_scale"].repeat_interleave(GROUP, 1)).float()), -8, 7).numpy()
        if torch.equal(ours[m + ".weight_scale"], lib[m + ".weight_scale"]):
            explained += int((diff & (qo == r32) & (ql == rbf)).sum())
        err_ours += float(((torch.from_numpy(qo).float() * s - w) ** 2).sum())
        err_lib += float(((torch.from_numpy(ql).float() * s - w) ** 2).sum())
    res["nibbles_total"], res["nibbles_differing"] = n_tot, n_diff
    res["nibbles_differing_fraction"] = float(f"{n_diff / n_tot:.4g}")
    res["nibble_max_abs_step"] = max_step
    res["nibble_differences_explained_by_bf16_rounding_of_w_over_scale"] = f"{explained}/{n_diff}"
    res["squared_quantization_error_glm5_vs_library"] = [float(f"{err_ours:.6g}"), float(f"{err_lib:.6g}")]
    res["modules_with_differing_nibbles"] = f"{len(worst_modules)}/{sum(1 for k in common if k.endswith('.weight_packed'))}"
    # config block
    qo = json.load(open(os.path.join(qfolder, "config.json")))
    ql = json.load(open(os.path.join(lib_folder, "config.json")))
    a, b = qo["quantization_config"], ql["quantization_config"]

    def flat(d, p=""):
        out = {}
        for k, v in d.items():
            if isinstance(v, dict) and v:
                out.update(flat(v, p + k + "."))
            else:
                out[p + k] = v
        return out

    fa, fb = flat(a), flat(b)
    cdiff = {}
    for k in sorted(set(fa) | set(fb)):
        va, vb = fa.get(k, "<absent>"), fb.get(k, "<absent>")
        if k == "ignore":
            va, vb = sorted(va), sorted(vb)
        if va != vb:
            cdiff[k] = {"glm5": fa.get(k, "<absent>"), "library": fb.get(k, "<absent>")}
    res["quantization_config_differences"] = cdiff
    res["ignore_same_set"] = sorted(a["ignore"]) == sorted(b["ignore"])
    res["other_config_keys_differing"] = sorted(
        k for k in set(qo) | set(ql) if k != "quantization_config" and qo.get(k) != ql.get(k))
    # file-level: header metadata, index, tensor order
    res["files_glm5"] = sorted(f for f in os.listdir(qfolder) if f.endswith((".safetensors", ".json")) and not f.startswith("golden"))
    res["files_library"] = sorted(os.listdir(lib_folder))
    metas = set()
    for fn in res["files_glm5"]:
        if fn.endswith(".safetensors"):
            with safe_open(os.path.join(qfolder, fn), "pt") as f:
                metas.add(json.dumps(f.metadata(), sort_keys=True))
    res["glm5_safetensors_metadata"] = sorted(metas)
    idx = os.path.join(qfolder, "model.safetensors.index.json")
    if os.path.exists(idx):
        shards = sorted(set(json.load(open(idx))["weight_map"].values()))
        tensor_bytes = sum(t.numel() * t.element_size() for t in ours.values())
        file_bytes = sum(os.path.getsize(os.path.join(qfolder, fn)) for fn in shards)
        res["glm5_index_total_size"] = {
            "written": json.load(open(idx))["metadata"]["total_size"],
            "sum_of_tensor_bytes (HF convention, as save_pretrained writes)": tensor_bytes,
            "sum_of_file_bytes (incl. headers)": file_bytes,
        }
    return res


def library_model_logits_diff(lib_folder, golden):
    m, _ = MF.dequantized_model_from_folder(lib_folder)
    gold = {k: v for k, v in golden.items() if k.endswith(".logits")}
    return maxdiff(logits_of(m, golden), gold)


def glm5_info(glm5, folder):
    r = subprocess.run([glm5, "info", folder], capture_output=True, text=True)
    return {"returncode": r.returncode, "output_tail": (r.stdout + r.stderr).strip().splitlines()[-3:]}


# --------------------------------------------------------------------------------------


def make(out_root, glm5, max_seeds=20):
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(1)
    transformers.logging.set_verbosity_error()
    glm5 = os.path.abspath(glm5)
    assert os.path.exists(glm5), f"{glm5} not found: run `make build` first"
    print(f"== {NAME}")
    with tempfile.TemporaryDirectory() as work:
        for wa in range(max_seeds):
            seed = PRESET["seed"] + 1000 * wa
            src_model, qmodel, load_summary, wcheck, picked, cmd = attempt(seed, work, glm5)
            if picked is not None:
                break
            print(f"  seed {seed}: no tokens with sufficient margins on the int4 model, reseeding")
        else:
            raise RuntimeError("no seed with sufficient margins")
        seq_tokens, prompt = picked
        src, q = os.path.join(work, "source"), os.path.join(work, "int4")
        cfg = qmodel.config
        state = MF.read_folder_tensors(src)
        lin, kept = check_dims(state, cfg)
        cfg_dict = json.load(open(os.path.join(q, "config.json")))
        qcfg = cfg_dict["quantization_config"]
        assert sorted(qcfg["ignore"]) == sorted(kept), (qcfg["ignore"], kept)
        quant_files = folder_files(q)
        src_files = folder_files(src)

        golden, margins, toks = CQ.golden_from_model(qmodel, seq_tokens, prompt, PRESET["greedy_new_tokens"])
        assert margins.ok(), margins.json()
        for k, v in golden.items():
            if ".topk." in k:
                T = golden[k.split(".")[0] + ".tokens"].numel()
                assert v.shape == (T, min(cfg.index_topk, T))

        # greedy cross-checks: cached run == full forward argmax == generate()
        P = prompt.numel()
        full = MF.full_forward(qmodel, torch.cat([prompt, torch.tensor(toks[:-1])]))
        assert torch.equal(full[P - 1:].argmax(-1), torch.tensor(toks)), "cached greedy != full forward argmax"
        cache_vs_full = float((full[P - 1:] - golden["greedy.logits"]).abs().max())
        with torch.no_grad():
            gen_out = qmodel.generate(prompt.view(1, -1), attention_mask=torch.ones(1, P, dtype=torch.long),
                                      max_new_tokens=len(toks), min_new_tokens=len(toks), do_sample=False, pad_token_id=0)
        assert gen_out[0, P:].tolist() == toks, "generate() != own greedy loop"

        # independent dequantization, unpatched transformers, replace mode
        ind_model, d_ind32 = independent_dequant_check(q, golden, cfg_dict)
        d_native, w_native = transformers_unpatched_diff(q, golden, "transformers")
        d_replace, _ = transformers_unpatched_diff(q, golden, "replace")
        longest = max(range(len(seq_tokens)), key=lambda i: seq_tokens[i].numel())
        src_err = MF.full_forward(src_model, seq_tokens[longest]) - golden[f"seq{longest}.logits"]

        # compressed-tensors' own quantization of the same source
        lib_folder = os.path.join(work, "library-int4")
        lib = compare_with_library(src, q, lib_folder)
        lib["logits_maxdiff_library_quantized_vs_golden"] = float(f"{library_model_logits_diff(lib_folder, golden):.4g}")
        info = glm5_info(glm5, q)
        sens = MF.sensitivity(qmodel, seq_tokens[longest], golden[f"seq{longest}.logits"],
                              {L: golden[f"seq{longest}.experts.layer{L}"].tolist()
                               for L in range(cfg.first_k_dense_replace, cfg.num_hidden_layers)})

        # write
        folder = os.path.join(out_root, NAME)
        if os.path.isdir(folder):
            shutil.rmtree(folder)
        os.makedirs(folder)
        shutil.copytree(src, os.path.join(folder, "source"))
        shutil.copytree(q, os.path.join(folder, "int4"))
        qdst = os.path.join(folder, "int4")
        save_file(golden, os.path.join(qdst, "golden.safetensors"), metadata={"format": "pt"})

        # float64 NumPy forward on the written fixture (reads golden.safetensors)
        cf_worst, _n = CF.check(qdst)
        assert all(v <= 1e-4 for v in cf_worst.values()), cf_worst

        mj = margins.json()
        summary = {
            "fixture": NAME,
            "what": "source/ = random bf16 GLM-5-shaped HF folder; int4/ = `glm5 quantize source int4 --group 32` "
            "output, unchanged, plus these goldens. Goldens = float32 eager forward of transformers' "
            "from_pretrained(int4/) with compressed-tensors (CPU), expert workaround f32-scales.",
            "seed": seed,
            "source_storage_dtype": PRESET["storage"],
            "config": PRESET["config"],
            "derived": {"qk_head_dim": cfg.qk_head_dim, "mlp_layer_types": cfg.mlp_layer_types,
                        "mtp_layer_index": cfg.num_hidden_layers, "attention_scaling": cfg.qk_head_dim ** -0.5},
            "init": PRESET["init"],
            "quantizer": {
                "command": "glm5 quantize source int4 --group 32",
                "source_files": src_files,
                "int4_files": quant_files,
                "quantization_config": qcfg,
                "linear_modules": len(lin),
                "quantized_modules": len(lin) - len(kept),
                "kept_modules": kept,
            },
            "transformers_load": {
                "call": "GlmMoeDsaForCausalLM.from_pretrained(int4, dtype=float32, attn_implementation='eager', "
                "experts_implementation='eager') with check_quantized.f32_expert_scales() active",
                "load": load_summary,
                "weights": wcheck,
                "weights_unpatched_load": {k: w_native[k] for k in ("cast_to_float32", "weights_max_rel_diff_transformers_vs_exact")},
            },
            "checks": {
                "logits_maxdiff_transformers_vs_independent_numpy_dequant_float32": float(f"{d_ind32:.4g}"),
                "logits_maxdiff_transformers_vs_check_fixtures_float64": float(f"{cf_worst['logits']:.4g}"),
                "check_fixtures_float64_max_abs_diffs": {k: float(f"{v:.4g}") for k, v in cf_worst.items()},
                "logits_maxdiff_transformers_unpatched_bf16_experts_vs_golden": float(f"{d_native:.4g}"),
                "logits_maxdiff_experts_replace_mode_vs_golden": float(f"{d_replace:.4g}"),
                "greedy_cached_vs_full_forward_logits_maxdiff": float(f"{cache_vs_full:.3g}"),
                "greedy_matches_generate_do_sample_false": True,
                "quantization_error_logits_maxdiff_vs_source_bf16_model": float(f"{float(src_err.abs().max()):.4g}"),
                "quantization_error_logits_rmsdiff_vs_source_bf16_model": float(f"{float(src_err.pow(2).mean().sqrt()):.4g}"),
            },
            "vs_compressed_tensors_quantizer": lib,
            "sequences": [{"index": i, "length": t.numel(), "logits_std": round(float(golden[f"seq{i}.logits"].std()), 4)}
                          for i, t in enumerate(seq_tokens)],
            "greedy": {"prompt_length": P, "new_tokens": len(toks), "tokens": toks},
            "margins_min": mj,
            "margin_threshold_rel": MF.MARGIN_MIN_REL,
            "margin_definitions": "as make_fixtures.py (indexer top-k boundary, router expert choice, greedy top-1 vs "
            "top-2; relative to the row's max |score|); no group margin (n_group 1)",
            "sensitivity_on_longest_sequence": sens,
            "versions": CQ.versions(),
            "golden_tensors": {k: {"dtype": str(v.dtype).replace("torch.", ""), "shape": list(v.shape)} for k, v in golden.items()},
        }
        with open(os.path.join(qdst, "golden.json"), "w") as f:
            json.dump(summary, f, indent=2)
            f.write("\n")
        print(f"  seed {seed}; {len(lin) - len(kept)}/{len(lin)} Linear modules INT4; load {load_summary}")
        print(f"  margins {mj}")
        print(f"  logits max|diff| transformers vs independent numpy dequant (f32 eager) {d_ind32:.3g}, "
              f"vs check_fixtures float64 {cf_worst['logits']:.3g}, unpatched bf16 experts {d_native:.3g}")
        print(f"  vs compressed-tensors quantizer: names equal {lib['tensor_names_equal']}, dtype/shape diffs "
              f"{len(lib['dtype_or_shape_differences'])}, scales differing {lib['scales_differing']}/{lib['scales_total']}, "
              f"nibbles differing {lib['nibbles_differing']}/{lib['nibbles_total']}, config diffs "
              f"{list(lib['quantization_config_differences'])}")
        print(f"  glm5 info: {info}")
        print(f"  wrote {folder}")


def make_source_v2(out_root):
    """glm5-quantized/source-v2/: the committed source/ with the -v2 sparse perturbation (make_fixtures.perturb_state,
    SECOND_WEIGHTS_DEFAULT: 3 % of the elements of every floating tensor), same config, sharding and index.
    No goldens: a Swift test quantizes it with glm5's own quantizer. Asserts that source/ is rebuilt bit for bit
    from the seed recorded in int4/golden.json first, and that config.json, generation_config.json and the index
    are byte-identical to source/'s."""
    root = os.path.join(out_root, NAME)
    src = os.path.join(root, "source")
    seed = json.load(open(os.path.join(root, "int4", "golden.json")))["seed"]
    print(f"== {NAME}/source-v2 (from {NAME}/source, seed {seed})")
    with tempfile.TemporaryDirectory() as tmp:
        model, gen = MF.build_model(PRESET, seed)
        MF.write_model_folder(model, tmp, PRESET, gen)
        assert sorted(os.listdir(tmp)) == sorted(os.listdir(src)), (os.listdir(tmp), os.listdir(src))
        for fn in os.listdir(src):
            assert sha256(os.path.join(tmp, fn)) == sha256(os.path.join(src, fn)), f"source/{fn} not reproduced"
    sw = dict(MF.SECOND_WEIGHTS_DEFAULT, base=f"{NAME}/source")
    p = dict(PRESET, second_weights=sw)
    model, gen = MF.build_model(p, seed)
    out = os.path.join(root, "source-v2")
    if os.path.isdir(out):
        shutil.rmtree(out)
    os.makedirs(out)
    MF.write_model_folder(model, out, p, gen)
    assert sorted(os.listdir(out)) == sorted(os.listdir(src))
    for fn in ("config.json", "generation_config.json", "model.safetensors.index.json"):
        assert sha256(os.path.join(out, fn)) == sha256(os.path.join(src, fn)), f"source-v2/{fn} differs from source/"
    print(f"  perturbation {sw}: {model.fixture_second_weights}")
    for kind, d in MF.tensor_change_stats(src, out).items():
        print(f"  {kind}: {d}")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="Tests/Fixtures")
    ap.add_argument("--glm5", default=".build/release/glm5")
    ap.add_argument("--source-v2", action="store_true",
                    help="only write glm5-quantized/source-v2 (from the existing source/; no glm5 binary needed)")
    a = ap.parse_args()
    if a.source_v2:
        torch.use_deterministic_algorithms(True)
        torch.set_num_threads(1)
        transformers.logging.set_verbosity_error()
        make_source_v2(a.out)
        return
    make(a.out, a.glm5)


if __name__ == "__main__":
    main()
