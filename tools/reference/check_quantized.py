#!/usr/bin/env python3
"""Check a compressed-tensors `pack-quantized` GLM-5 folder (as written by `glm5 quantize`) against
transformers and write golden outputs for it.

    /work/venv-ref/bin/python tools/reference/check_quantized.py QUANT_FOLDER SOURCE_FIXTURE OUT_GOLDEN

QUANT_FOLDER   quantized HF folder (config.json with a compressed-tensors quantization_config)
SOURCE_FIXTURE the fixture it was made from (Tests/Fixtures/<preset>, with golden.safetensors)
OUT_GOLDEN     golden.safetensors path to write (golden.json is written beside it); a directory is taken as
               DIR/golden.safetensors

Steps
 1. GlmMoeDsaForCausalLM.from_pretrained(QUANT_FOLDER, dtype=float32, attn_implementation="eager",
    experts_implementation="eager") with compressed-tensors installed; asserts no missing / mismatched keys
    and no unexpected keys outside the MTP layer model.layers.{N}.*.
 2. Works around transformers 5.24 + compressed-tensors 0.20.1 on CPU: transformers decompresses the fused
    routed experts while loading (integrations/compressed_tensors.py, CompressedTensorsDequantize.convert,
    experts branch) with the checkpoint's `weight_scale` as stored (bf16/f16), so (q - zp) * scale is computed
    and kept in bf16/f16 (up to 0.3 % relative weight error) and, unlike the dense branch, the result is not
    cast to the requested dtype: the float32 forward then fails ("expected m1 and m2 to have the same dtype").
    --experts (default f32-scales): wrap that convert() during from_pretrained so every `weight_scale` it
    receives is cast to float32 first; transformers' own loader (key mapping, per-expert decompression,
    gate/up concatenation, expert stacking) then produces the exact float32 experts, nothing is replaced.
    --experts replace: load unpatched, cast the bf16 experts to float32 and overwrite them with the exact
    float32 dequantization computed by compressed-tensors from the folder. --experts transformers: load
    unpatched and only cast (bf16-rounded experts; logits move by ~1e-2). In every mode any other parameter
    left in a 16-bit dtype is cast to float32 (recorded), and every weight transformers produced is compared
    with compressed-tensors' exact dequantization of the folder (decompress with weight_scale cast to
    float32: (q - zp) * scale is exact in float32); a relative difference > 1e-2 (a wrongly loaded tensor)
    is an error.
 3. Runs the source fixture's sequences and greedy prompt (same tokens) and writes the same golden tensors as
    make_fixtures.py (seq{i}.tokens/logits/logprobs/topk/experts/expert_weights/hidden, greedy.*).
 4. Reports logits differences vs the source fixture's golden (= quantization error) and decision agreement.
"""

import argparse
import contextlib
import json
import os
import sys
import warnings

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import numpy as np  # noqa: E402
import safetensors  # noqa: E402
import torch  # noqa: E402
import transformers  # noqa: E402
from safetensors import safe_open  # noqa: E402
from safetensors.torch import save_file  # noqa: E402
from transformers import GlmMoeDsaForCausalLM  # noqa: E402

import make_fixtures as MF  # noqa: E402
import quant_formats as QF  # noqa: E402


EXPERT_MODES = ("f32-scales", "replace", "transformers")


def load_golden(folder):
    g = {}
    with safe_open(os.path.join(folder, "golden.safetensors"), "pt") as f:
        for k in f.keys():
            g[k] = f.get_tensor(k)
    return g


@contextlib.contextmanager
def f32_expert_scales():
    """While active, transformers' CompressedTensorsDequantize.convert (the load-time decompression of the
    fused MoE experts, and of any dense module that goes through the generic converter) receives every
    `weight_scale` tensor cast to float32, so compressed-tensors' decompress computes (q - zp) * scale exactly
    in float32 instead of in the stored scale dtype. Yields a list of records of what was cast."""
    from transformers.integrations import compressed_tensors as tct

    cls = tct.CompressedTensorsDequantize
    orig = cls.convert
    calls = []

    def convert(self, input_dict, *args, **kwargs):
        fixed = {}
        for k, v in input_dict.items():
            if "weight_scale" in k:
                vs = v if isinstance(v, list) else [v]
                calls.append({"layer": kwargs.get("full_layer_name"), "key": k, "tensors": len(vs),
                              "scale_dtype": str(vs[0].dtype).replace("torch.", "")})
                vs = [t.to(torch.float32) for t in vs]
                v = vs if isinstance(v, list) else vs[0]
            fixed[k] = v
        return orig(self, fixed, *args, **kwargs)

    cls.convert = convert
    try:
        yield calls
    finally:
        cls.convert = orig


def load_in_transformers(folder, experts="f32-scales"):
    assert experts in EXPERT_MODES, experts
    with contextlib.ExitStack() as stack:
        calls = stack.enter_context(f32_expert_scales()) if experts == "f32-scales" else None
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model, info = GlmMoeDsaForCausalLM.from_pretrained(
                folder,
                dtype=torch.float32,
                attn_implementation="eager",
                experts_implementation="eager",
                output_loading_info=True,
            )
    model.eval()
    N = model.config.num_hidden_layers
    mtp = f"model.layers.{N}."
    problems = []
    if info["missing_keys"]:
        problems.append(f"missing keys: {sorted(info['missing_keys'])}")
    if info.get("mismatched_keys"):
        problems.append(f"mismatched keys: {sorted(info['mismatched_keys'])}")
    bad_unexp = sorted(k for k in info["unexpected_keys"] if not k.startswith(mtp))
    if bad_unexp:
        problems.append(f"unexpected non-MTP keys: {bad_unexp}")
    if info.get("error_msgs"):
        problems.append(f"errors: {info['error_msgs']}")
    summary = {
        "missing_keys": len(info["missing_keys"]),
        "mismatched_keys": len(info.get("mismatched_keys") or []),
        "unexpected_keys": len(info["unexpected_keys"]),
        "unexpected_keys_all_mtp": not bad_unexp,
        "experts_mode": experts,
    }
    if calls is not None:
        kinds = sorted({(c["key"], c["scale_dtype"]) for c in calls})
        summary["f32_expert_scales_patch"] = {
            "weight_scale_inputs_cast": len(calls),
            "scale_tensors_cast_to_float32": sum(c["tensors"] for c in calls),
            "keys_and_stored_dtypes": [f"{k}: {d}" for k, d in kinds],
            "layers": sorted({c["layer"] for c in calls if c["layer"]}),
        }
    return model, summary, problems


def cast_16bit_params(model):
    cast = []
    with torch.no_grad():
        for n, p in model.named_parameters():
            if p.is_floating_point() and p.dtype != torch.float32:
                cast.append(f"{n}: {str(p.dtype).replace('torch.', '')}")
                p.data = p.data.float()
    return cast


def fix_and_check_weights(model, folder, experts="f32-scales"):
    """Cast non-float32 params to float32; compare every weight with compressed-tensors' exact dequantization
    of the folder; with experts="replace" overwrite the fused experts by the exact values. Must run after one
    forward (compressed-tensors decompresses dense modules on the first forward)."""
    config = json.load(open(os.path.join(folder, "config.json")))
    qdict = config["quantization_config"]
    tensors = MF.read_folder_tensors(folder)
    deq, quantized = QF.ct_dequantize_tensors(tensors, qdict, scale_dtype=torch.float32)
    ref_model = GlmMoeDsaForCausalLM._from_config(
        model.config, attn_implementation="eager", experts_implementation="eager", dtype=torch.float32
    )
    QF.assign_checkpoint_weights(ref_model, deq)
    ref = dict(ref_model.named_parameters())
    res = {"quantized_modules": len(quantized), "cast_to_float32": cast_16bit_params(model),
           "experts_replaced_by_exact_dequant": []}
    worst, gross, compared, per = 0.0, [], 0, {}
    with torch.no_grad():
        for n, p in model.named_parameters():
            if n not in ref or p.shape != ref[n].shape or not p.is_floating_point():
                continue
            compared += 1
            rel = float((p.detach() - ref[n]).abs().max() / ref[n].abs().max().clamp_min(1e-30))
            per[n] = rel
            worst = max(worst, rel)
            if rel > 1e-2:
                gross.append(n)
            if rel > 0 and ".mlp.experts." in n and experts == "replace":
                p.data.copy_(ref[n])
                res["experts_replaced_by_exact_dequant"].append(f"{n} (rel diff {rel:.3g})")
    res["weights_compared"] = compared
    res["weights_compared_names_missing_in_transformers"] = sorted(set(ref) - {n for n, _ in model.named_parameters()})
    res["weights_max_rel_diff_transformers_vs_exact"] = float(f"{worst:.4g}")
    res["weights_nonzero_diff"] = {k: float(f"{v:.3g}") for k, v in per.items() if v > 0}
    return res, gross, qdict


class LoadError(RuntimeError):
    pass


def prepare_model(folder, experts="f32-scales", probe_tokens=None):
    """Load QUANT folder in transformers (see module doc, steps 1-2). Returns (model, load summary, weight
    check). Raises LoadError (with the known transformers limitations) if the folder does not load cleanly."""
    qcfg = json.load(open(os.path.join(folder, "config.json"))).get("quantization_config") or {}
    known = QF.transformers_known_limitations(qcfg, MF.read_folder_tensors(folder))
    try:
        model, load_summary, problems = load_in_transformers(folder, experts)
    except Exception as e:  # noqa: BLE001
        raise LoadError(f"transformers could not load the folder: {type(e).__name__}: {str(e).splitlines()[0]}", known) from e
    if problems:
        raise LoadError("transformers did not load the folder cleanly:\n  " + "\n  ".join(problems), known)
    # First forward: compressed-tensors' hook decompresses the dense modules. It needs float32 experts.
    cast = cast_16bit_params(model)
    if probe_tokens is None:
        probe_tokens = torch.tensor([0, 1])
    MF.full_forward(model, probe_tokens.long())
    wcheck, gross, _qdict = fix_and_check_weights(model, folder, experts)
    wcheck["cast_to_float32"] = cast + wcheck["cast_to_float32"]
    if gross:
        raise LoadError(f"transformers' weights differ from the library's dequantization (rel > 1e-2): {gross}", known)
    return model, load_summary, wcheck


def golden_from_model(model, seq_tokens, prompt, n_new):
    """Run the sequences (full forward, no cache) and the cached greedy decode; return (golden tensors with
    make_fixtures.py names, Margins over everything, greedy tokens)."""
    golden, total = {}, MF.Margins()
    for i, tokens in enumerate(seq_tokens):
        tokens = tokens.long()
        logits, topk, experts, ew, hidden, final, m = MF.run_sequence(model, tokens)
        total.merge(m)
        golden[f"seq{i}.tokens"] = tokens.to(torch.int32)
        golden[f"seq{i}.logits"] = logits.contiguous()
        golden[f"seq{i}.logprobs"] = MF.seq_logprobs(logits, tokens)
        for L, rows in topk.items():
            golden[f"seq{i}.topk.layer{L}"] = torch.tensor(rows, dtype=torch.int32)
        for L, ids in experts.items():
            golden[f"seq{i}.experts.layer{L}"] = torch.tensor(ids, dtype=torch.int32)
            golden[f"seq{i}.expert_weights.layer{L}"] = torch.tensor(ew[L], dtype=torch.float32)
        for L, h in hidden.items():
            golden[f"seq{i}.hidden.layer{L}"] = h.contiguous()
        golden[f"seq{i}.hidden.final_norm"] = final.contiguous()
    prompt = prompt.long()
    toks, lps, step_logits, gm = MF.greedy(model, prompt, n_new)
    total.merge(gm)
    golden["greedy.prompt"] = prompt.to(torch.int32)
    golden["greedy.tokens"] = torch.tensor(toks, dtype=torch.int32)
    golden["greedy.logprobs"] = torch.tensor(lps, dtype=torch.float32)
    golden["greedy.logits"] = step_logits.contiguous()
    return golden, total, toks


def versions():
    import compressed_tensors

    return {
        "transformers": transformers.__version__,
        "compressed_tensors": compressed_tensors.__version__,
        "torch": torch.__version__,
        "safetensors": safetensors.__version__,
        "numpy": np.__version__,
        "python": sys.version.split()[0],
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("quant_folder")
    ap.add_argument("source_fixture")
    ap.add_argument("out_golden")
    ap.add_argument("--experts", choices=EXPERT_MODES, default="f32-scales",
                    help="how to get float32 fused experts out of transformers (see step 2)")
    ap.add_argument("--transformers-experts", action="store_true", help="same as --experts transformers")
    a = ap.parse_args()
    if a.transformers_experts:
        a.experts = "transformers"
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(1)
    transformers.logging.set_verbosity_error()

    out = a.out_golden
    if os.path.isdir(out) or not out.endswith(".safetensors"):
        os.makedirs(out, exist_ok=True)
        out = os.path.join(out, "golden.safetensors")
    out_json = os.path.splitext(out)[0] + ".json"

    src_g = load_golden(a.source_fixture)
    try:
        model, load_summary, wcheck = prepare_model(a.quant_folder, a.experts, src_g["seq0.tokens"][:2])
    except LoadError as e:
        print(f"FAIL: {e.args[0]}")
        for k in e.args[1]:
            print("  known transformers limitation: " + k)
        sys.exit(1)
    qdict = json.load(open(os.path.join(a.quant_folder, "config.json")))["quantization_config"]

    seq_tokens = []
    while f"seq{len(seq_tokens)}.tokens" in src_g:
        seq_tokens.append(src_g[f"seq{len(seq_tokens)}.tokens"])
    prompt = src_g["greedy.prompt"]
    n_new = src_g["greedy.tokens"].numel()
    golden, total, toks = golden_from_model(model, seq_tokens, prompt, n_new)

    report = {"sequences": []}
    for i, tokens in enumerate(seq_tokens):
        T = tokens.numel()
        logits = golden[f"seq{i}.logits"]
        agree = {}
        for k in sorted(golden):
            if k.startswith(f"seq{i}.topk.") or k.startswith(f"seq{i}.experts."):
                if k in src_g:
                    agree[k.split(".", 1)[1] + "_rows_equal"] = f"{int((golden[k] == src_g[k]).all(-1).sum())}/{T}"
        d = logits - src_g[f"seq{i}.logits"]
        report["sequences"].append({
            "index": i,
            "length": T,
            "logits_maxdiff_vs_source": float(f"{float(d.abs().max()):.4g}"),
            "logits_rmsdiff_vs_source": float(f"{float(d.pow(2).mean().sqrt()):.4g}"),
            "source_logits_std": float(f"{float(src_g[f'seq{i}.logits'].std()):.4g}"),
            "argmax_equal": f"{int((logits.argmax(-1) == src_g[f'seq{i}.logits'].argmax(-1)).sum())}/{T}",
            **agree,
        })
    src_toks = src_g["greedy.tokens"].tolist()
    first_div = next((j for j in range(n_new) if toks[j] != src_toks[j]), None)
    step_logits = golden["greedy.logits"]
    report["greedy"] = {
        "tokens": toks,
        "source_tokens": src_toks,
        "first_divergence": first_div,
        "step0_logits_maxdiff_vs_source": float(f"{float((step_logits[0] - src_g['greedy.logits'][0]).abs().max()):.4g}"),
    }
    save_file(golden, out, metadata={"format": "pt"})

    mj = total.json()
    low = [k for k, v in mj.items() if k.endswith("_rel") and v is not None and v < MF.MARGIN_MIN_REL]
    summary = {
        "quantized_folder": os.path.abspath(a.quant_folder),
        "source_fixture": os.path.abspath(a.source_fixture),
        "quantization_config": qdict,
        "load": load_summary,
        "weights": wcheck,
        "golden_computed_in": "float32 eager transformers model loaded from the quantized folder"
        + {"f32-scales": "; fused routed experts decompressed by transformers with weight_scale cast to float32",
           "replace": "; fused routed experts replaced by the exact float32 dequantization",
           "transformers": "; fused routed experts as transformers decompressed them (bf16), cast to float32"}[a.experts],
        "margins_min": mj,
        "margins_below_threshold": low,
        "margin_threshold_rel": MF.MARGIN_MIN_REL,
        **report,
        "versions": versions(),
        "golden_tensors": {k: {"dtype": str(v.dtype).replace("torch.", ""), "shape": list(v.shape)} for k, v in golden.items()},
    }
    with open(out_json, "w") as f:
        json.dump(summary, f, indent=2)
        f.write("\n")

    mx = max(s["logits_maxdiff_vs_source"] for s in report["sequences"])
    rms = max(s["logits_rmsdiff_vs_source"] for s in report["sequences"])
    print(f"loaded OK ({load_summary}); {wcheck['quantized_modules']} quantized modules")
    if wcheck["cast_to_float32"]:
        print(f"  transformers left {len(wcheck['cast_to_float32'])} params in a 16-bit dtype (cast to float32)")
    print(f"  max rel weight diff transformers vs exact dequant {wcheck['weights_max_rel_diff_transformers_vs_exact']}")
    for s in report["sequences"]:
        print(f"  seq{s['index']} T={s['length']}: logits max|diff| {s['logits_maxdiff_vs_source']} "
              f"rms {s['logits_rmsdiff_vs_source']} (source std {s['source_logits_std']}), argmax {s['argmax_equal']}")
    print(f"  greedy {toks} vs source {src_toks}")
    print(f"  max logit difference vs source golden: {mx} (rms {rms})")
    if low:
        print(f"  WARNING: decision margins below {MF.MARGIN_MIN_REL}: { {k: mj[k] for k in low} } "
              "(tokens are fixed by the source fixture; golden decisions there are fragile)")
    print(f"wrote {out} and {out_json}")


if __name__ == "__main__":
    main()
