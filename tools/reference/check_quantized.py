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
 2. Works around transformers 5.24 + compressed-tensors 0.20.1 on CPU: the fused routed experts come out
    dequantized in the checkpoint's scale dtype (bf16/f16), not in float32 (the float32 forward then fails with
    "expected m1 and m2 to have the same dtype"). They are cast to float32 and, unless --transformers-experts,
    replaced by the exact float32 dequantization computed by compressed-tensors itself from the folder
    (decompress with weight_scale cast to float32: (q - zp) * scale is exact in float32). Every other
    weight transformers produced is compared with that exact dequantization; a relative difference
    > 1e-2 (a wrongly loaded tensor) is an error.
 3. Runs the source fixture's sequences and greedy prompt (same tokens) and writes the same golden tensors as
    make_fixtures.py (seq{i}.tokens/logits/logprobs/topk/experts/expert_weights/hidden, greedy.*).
 4. Reports logits differences vs the source fixture's golden (= quantization error) and decision agreement.
"""

import argparse
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


def load_golden(folder):
    g = {}
    with safe_open(os.path.join(folder, "golden.safetensors"), "pt") as f:
        for k in f.keys():
            g[k] = f.get_tensor(k)
    return g


def load_in_transformers(folder):
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
    }
    return model, summary, problems


def fix_and_check_weights(model, folder, keep_transformers_experts):
    """Cast non-float32 params to float32; compare every weight with compressed-tensors' exact dequantization
    of the folder; optionally replace the fused experts by the exact values. Must run after one forward
    (compressed-tensors decompresses dense modules on the first forward)."""
    config = json.load(open(os.path.join(folder, "config.json")))
    qdict = config["quantization_config"]
    tensors = MF.read_folder_tensors(folder)
    deq, quantized = QF.ct_dequantize_tensors(tensors, qdict, scale_dtype=torch.float32)
    ref_model = GlmMoeDsaForCausalLM._from_config(
        model.config, attn_implementation="eager", experts_implementation="eager", dtype=torch.float32
    )
    QF.assign_checkpoint_weights(ref_model, deq)
    ref = dict(ref_model.named_parameters())
    res = {"quantized_modules": len(quantized), "cast_to_float32": [], "experts_replaced_by_exact_dequant": []}
    worst, gross, compared, per = 0.0, [], 0, {}
    with torch.no_grad():
        for n, p in model.named_parameters():
            if p.is_floating_point() and p.dtype != torch.float32:
                res["cast_to_float32"].append(f"{n}: {str(p.dtype).replace('torch.', '')}")
                p.data = p.data.float()
            if n not in ref or p.shape != ref[n].shape or not p.is_floating_point():
                continue
            compared += 1
            rel = float((p.detach() - ref[n]).abs().max() / ref[n].abs().max().clamp_min(1e-30))
            per[n] = rel
            worst = max(worst, rel)
            if rel > 1e-2:
                gross.append(n)
            if rel > 0 and ".mlp.experts." in n and not keep_transformers_experts:
                p.data.copy_(ref[n])
                res["experts_replaced_by_exact_dequant"].append(f"{n} (rel diff {rel:.3g})")
    res["weights_compared"] = compared
    res["weights_max_rel_diff_transformers_vs_exact"] = float(f"{worst:.4g}")
    res["weights_nonzero_diff"] = {k: float(f"{v:.3g}") for k, v in per.items() if v > 0}
    return res, gross, qdict


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("quant_folder")
    ap.add_argument("source_fixture")
    ap.add_argument("out_golden")
    ap.add_argument("--transformers-experts", action="store_true",
                    help="keep transformers' own (bf16-rounded) fused expert weights instead of the exact dequantization")
    a = ap.parse_args()
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(1)
    transformers.logging.set_verbosity_error()

    out = a.out_golden
    if os.path.isdir(out) or not out.endswith(".safetensors"):
        os.makedirs(out, exist_ok=True)
        out = os.path.join(out, "golden.safetensors")
    out_json = os.path.splitext(out)[0] + ".json"

    src_g = load_golden(a.source_fixture)
    qcfg = json.load(open(os.path.join(a.quant_folder, "config.json"))).get("quantization_config") or {}
    known = QF.transformers_known_limitations(qcfg, MF.read_folder_tensors(a.quant_folder))
    try:
        model, load_summary, problems = load_in_transformers(a.quant_folder)
    except Exception as e:  # noqa: BLE001
        print(f"FAIL: transformers could not load the folder: {type(e).__name__}: {str(e).splitlines()[0]}")
        for k in known:
            print("  known transformers limitation: " + k)
        sys.exit(1)
    if problems:
        print("FAIL: transformers did not load the folder cleanly:\n  " + "\n  ".join(problems))
        for k in known:
            print("  known transformers limitation: " + k)
        sys.exit(1)
    # First forward: compressed-tensors' hook decompresses the dense modules. It needs float32 experts.
    cast = []
    with torch.no_grad():
        for n, p in model.named_parameters():
            if p.is_floating_point() and p.dtype != torch.float32:
                cast.append(f"{n}: {str(p.dtype).replace('torch.', '')}")
                p.data = p.data.float()
    MF.full_forward(model, src_g["seq0.tokens"].long()[:2])
    wcheck, gross, qdict = fix_and_check_weights(model, a.quant_folder, a.transformers_experts)
    wcheck["cast_to_float32"] = cast + wcheck["cast_to_float32"]
    if gross:
        print(f"FAIL: transformers' weights differ from the library's dequantization (rel > 1e-2): {gross}")
        sys.exit(1)

    golden, report, total = {}, {"sequences": []}, MF.Margins()
    i = 0
    while f"seq{i}.tokens" in src_g:
        tokens = src_g[f"seq{i}.tokens"].long()
        logits, topk, experts, ew, hidden, final, m = MF.run_sequence(model, tokens)
        total.merge(m)
        T = tokens.numel()
        golden[f"seq{i}.tokens"] = tokens.to(torch.int32)
        golden[f"seq{i}.logits"] = logits.contiguous()
        golden[f"seq{i}.logprobs"] = MF.seq_logprobs(logits, tokens)
        agree = {}
        for L, rows in topk.items():
            t = torch.tensor(rows, dtype=torch.int32)
            golden[f"seq{i}.topk.layer{L}"] = t
            if f"seq{i}.topk.layer{L}" in src_g:
                agree[f"topk.layer{L}_rows_equal"] = f"{int((t == src_g[f'seq{i}.topk.layer{L}']).all(-1).sum())}/{T}"
        for L, ids in experts.items():
            t = torch.tensor(ids, dtype=torch.int32)
            golden[f"seq{i}.experts.layer{L}"] = t
            golden[f"seq{i}.expert_weights.layer{L}"] = torch.tensor(ew[L], dtype=torch.float32)
            if f"seq{i}.experts.layer{L}" in src_g:
                agree[f"experts.layer{L}_rows_equal"] = f"{int((t == src_g[f'seq{i}.experts.layer{L}']).all(-1).sum())}/{T}"
        for L, h in hidden.items():
            golden[f"seq{i}.hidden.layer{L}"] = h.contiguous()
        golden[f"seq{i}.hidden.final_norm"] = final.contiguous()
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
        i += 1

    prompt = src_g["greedy.prompt"].long()
    n_new = src_g["greedy.tokens"].numel()
    toks, lps, step_logits, gm = MF.greedy(model, prompt, n_new)
    total.merge(gm)
    golden["greedy.prompt"] = prompt.to(torch.int32)
    golden["greedy.tokens"] = torch.tensor(toks, dtype=torch.int32)
    golden["greedy.logprobs"] = torch.tensor(lps, dtype=torch.float32)
    golden["greedy.logits"] = step_logits.contiguous()
    src_toks = src_g["greedy.tokens"].tolist()
    first_div = next((j for j in range(n_new) if toks[j] != src_toks[j]), None)
    report["greedy"] = {
        "tokens": toks,
        "source_tokens": src_toks,
        "first_divergence": first_div,
        "step0_logits_maxdiff_vs_source": float(f"{float((step_logits[0] - src_g['greedy.logits'][0]).abs().max()):.4g}"),
    }
    save_file(golden, out, metadata={"format": "pt"})

    mj = total.json()
    low = [k for k, v in mj.items() if k.endswith("_rel") and v is not None and v < MF.MARGIN_MIN_REL]
    import compressed_tensors

    summary = {
        "quantized_folder": os.path.abspath(a.quant_folder),
        "source_fixture": os.path.abspath(a.source_fixture),
        "quantization_config": qdict,
        "load": load_summary,
        "weights": wcheck,
        "golden_computed_in": "float32 eager transformers model loaded from the quantized folder"
        + ("" if a.transformers_experts else "; fused routed experts replaced by the exact float32 dequantization"),
        "margins_min": mj,
        "margins_below_threshold": low,
        "margin_threshold_rel": MF.MARGIN_MIN_REL,
        **report,
        "versions": {
            "transformers": transformers.__version__,
            "compressed_tensors": compressed_tensors.__version__,
            "torch": torch.__version__,
            "safetensors": safetensors.__version__,
            "numpy": np.__version__,
            "python": sys.version.split()[0],
        },
        "golden_tensors": {k: {"dtype": str(v.dtype).replace("torch.", ""), "shape": list(v.shape)} for k, v in golden.items()},
    }
    with open(out_json, "w") as f:
        json.dump(summary, f, indent=2)
        f.write("\n")

    mx = max(s["logits_maxdiff_vs_source"] for s in report["sequences"])
    rms = max(s["logits_rmsdiff_vs_source"] for s in report["sequences"])
    print(f"loaded OK ({load_summary}); {wcheck['quantized_modules']} quantized modules")
    if wcheck["cast_to_float32"]:
        print(f"  transformers left {len(wcheck['cast_to_float32'])} params in a 16-bit dtype (cast to float32); "
              f"max rel weight diff transformers vs exact dequant {wcheck['weights_max_rel_diff_transformers_vs_exact']}")
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
