"""Quantized checkpoint formats used by the quantized fixtures (make_fixtures.py) and check_quantized.py.

* FP8 block-scaled (DeepSeek-V3 / zai-org GLM-5-FP8 layout, `quant_method: fp8`): written by our own code
  (there is no writer library for it); `<m>.weight` float8_e4m3fn [out, in] and `<m>.weight_scale_inv`
  float32 [ceil(out/128), ceil(in/128)], W = fp8 * scale[r // 128, c // 128].
* INT4 compressed-tensors `pack-quantized`: quantized, packed and dequantized by the compressed-tensors
  library itself (apply_quantization_config + its min-max qparams + ModelCompressor.compress_model;
  decompression through the library's PackedQuantizationCompressor).

All functions work on checkpoint-named state dicts (per-expert `mlp.experts.E.{gate,up,down}_proj.weight`,
MTP layer `model.layers.{N}.*` included).
"""

import copy
import math

import torch
from torch import nn

FP8_MAX = 448.0  # torch.finfo(torch.float8_e4m3fn).max

# INT4 presets / reference quantizer: Linear modules never quantized (router gate and indexer weights_proj are
# Linear in the checkpoint layout; eh_proj is the MTP glue). compressed-tensors `ignore` syntax.
CT_ALWAYS_IGNORE = ["lm_head", "re:.*mlp\\.gate$", "re:.*self_attn\\.indexer\\.weights_proj$", "re:.*\\.eh_proj$"]


def linear_module_names(state):
    """Checkpoint modules that are Linear layers: every 2-D `<m>.weight` except the embedding."""
    return sorted(
        k[: -len(".weight")]
        for k, t in state.items()
        if k.endswith(".weight") and t.ndim == 2 and not k.endswith("embed_tokens.weight")
    )


# --------------------------------------------------------------------------------------
# FP8 block-scaled
# --------------------------------------------------------------------------------------


def fp8_modules_to_not_convert(mtp_layer):
    """`modules_to_not_convert` for the FP8 config.json.

    Written in transformers' syntax (quantizers_utils.should_convert_module): an entry matches a module name
    as a regex anchored at the start and ending at a module boundary, or as a plain suffix. The first
    three entries are the ones transformers' own GLM-5-FP8 integration test passes; `model.embed_tokens`
    is listed for completeness (transformers never FP8-converts embeddings anyway) and the MTP `eh_proj`
    is an exact name (transformers does not build the MTP layer; other loaders must honour it).
    """
    return [
        "lm_head",
        "model.embed_tokens",
        "model.layers.*.mlp.gate$",
        "model.layers.*.self_attn.indexer.weights_proj$",
        f"model.layers.{mtp_layer}.eh_proj",
    ]


def fp8_should_quantize(module_name, modules_to_not_convert):
    from transformers.quantizers.quantizers_utils import should_convert_module

    return should_convert_module(module_name, modules_to_not_convert)


def fp8_block_quantize(w, block):
    """w float32 [out, in] -> (float8_e4m3fn [out, in], float32 scale_inv [ceil(out/b0), ceil(in/b1)]).

    scale = amax(|block|) / 448 (float32; partial edge blocks use their own amax),
    q = fp8(clamp(w / scale, -448, 448)) with torch's round-to-nearest-even cast.
    """
    assert w.dtype == torch.float32 and w.ndim == 2
    b0, b1 = block
    out_f, in_f = w.shape
    nr, nc = math.ceil(out_f / b0), math.ceil(in_f / b1)
    scale = torch.empty(nr, nc, dtype=torch.float32)
    for i in range(nr):
        for j in range(nc):
            amax = w[i * b0 : (i + 1) * b0, j * b1 : (j + 1) * b1].abs().max()
            scale[i, j] = amax / FP8_MAX if amax > 0 else 1.0
    s_full = expand_blocks(scale, block, w.shape)
    q = torch.clamp(w / s_full, -FP8_MAX, FP8_MAX).to(torch.float8_e4m3fn)
    return q, scale


def expand_blocks(scale, block, shape):
    b0, b1 = block
    return scale.repeat_interleave(b0, 0).repeat_interleave(b1, 1)[: shape[0], : shape[1]]


def fp8_block_dequantize(q, scale_inv, block):
    """float32 W = float(q) * scale_inv[r // b0, c // b1] (one float32 multiply per element)."""
    return q.to(torch.float32) * expand_blocks(scale_inv.to(torch.float32), block, q.shape)


def fp8_quantize_state(state, block, modules_to_not_convert):
    """state: checkpoint name -> tensor (bf16/f32). Returns (stored tensors, dequantized float32 state,
    sorted list of quantized module names)."""
    stored, deq, quantized = {}, {}, []
    lin = set(linear_module_names(state))
    for k, t in state.items():
        m = k[: -len(".weight")] if k.endswith(".weight") else None
        if m in lin and fp8_should_quantize(m, modules_to_not_convert):
            q, s = fp8_block_quantize(t.to(torch.float32), block)
            stored[k] = q
            stored[m + ".weight_scale_inv"] = s
            deq[k] = fp8_block_dequantize(q, s, block)
            quantized.append(m)
        else:
            stored[k] = t
            deq[k] = t.to(torch.float32)
    return stored, deq, sorted(quantized)


def fp8_dequantize_tensors(tensors, quantization_config):
    """Dequantize an FP8 block folder's tensors (name -> tensor) to float32 checkpoint names."""
    block = tuple(quantization_config["weight_block_size"])
    out = {}
    for k, t in tensors.items():
        if k.endswith(".weight_scale_inv"):
            continue
        m = k[: -len(".weight")] if k.endswith(".weight") else None
        if t.dtype == torch.float8_e4m3fn:
            out[k] = fp8_block_dequantize(t, tensors[m + ".weight_scale_inv"], block)
        else:
            out[k] = t.to(torch.float32)
    return out


# --------------------------------------------------------------------------------------
# compressed-tensors pack-quantized INT4
# --------------------------------------------------------------------------------------


def _set_submodule(root, path, mod):
    cur = root
    parts = path.split(".")
    for p in parts[:-1]:
        if not hasattr(cur, p):
            cur.add_module(p, nn.Module())
        cur = getattr(cur, p)
    cur.add_module(parts[-1], mod)


def build_linear_tree(state, names):
    """A plain module tree with one bias-free nn.Linear per checkpoint Linear (checkpoint names, the
    storage dtype). This is the checkpoint layout compressed-tensors targets: every routed expert
    projection is its own Linear (transformers' runtime model fuses them into 3-D parameters, which
    compressed-tensors' apply_quantization_config does not target)."""
    root = nn.Module()
    for n in names:
        w = state[n + ".weight"]
        lin = nn.Linear(w.shape[1], w.shape[0], bias=False, dtype=w.dtype)
        with torch.no_grad():
            lin.weight.copy_(w)
        lin.weight.requires_grad_(False)
        _set_submodule(root, n, lin)
    return root


def ct_quantize_state(state, group_size, symmetric, ignore, keep_ignore_as_given):
    """Quantize all Linear modules of a checkpoint-named state with compressed-tensors (INT4, group
    strategy, weight-only) and compress them to pack-quantized.

    ignore: the `ignore` list given to the library (exact names and `re:` patterns). Modules whose input
    size is not a multiple of group_size are added as exact names (the library cannot group them).
    keep_ignore_as_given: if True the written config keeps this ignore list verbatim
    (ModelCompressor(quantization_config=...)); otherwise the library infers the config from the
    quantized modules (ModelCompressor.from_pretrained_model, as llm-compressor saves), which lists every
    unquantized Linear by exact name.

    Returns (stored tensors, quantization_config dict as written to config.json, ModelCompressor,
    sorted quantized module names, sorted unquantized Linear names).
    """
    from compressed_tensors.compressors import ModelCompressor
    from compressed_tensors.quantization import (
        QuantizationArgs,
        QuantizationConfig,
        QuantizationScheme,
        apply_quantization_config,
    )
    from compressed_tensors.quantization.utils.helpers import compute_dynamic_scales_and_zp
    from compressed_tensors.utils.match import is_match

    names = linear_module_names(state)
    tree = build_linear_tree(state, names)
    ignore = list(ignore)
    for n in names:
        mod = tree.get_submodule(n)
        if mod.in_features % group_size != 0 and is_match(n, mod, ["Linear"], ignore):
            ignore.append(n)
    args = QuantizationArgs(num_bits=4, type="int", symmetric=symmetric, strategy="group", group_size=group_size)
    scheme = QuantizationScheme(targets=["Linear"], weights=args, format="pack-quantized")
    qconfig = QuantizationConfig(config_groups={"group_0": scheme}, ignore=ignore, format="pack-quantized")
    apply_quantization_config(tree, qconfig, show_progress=False)

    quantized, unquantized = [], []
    for n in names:
        mod = tree.get_submodule(n)
        sch = getattr(mod, "quantization_scheme", None)
        if sch is None:
            unquantized.append(n)
            continue
        quantized.append(n)
        # the library's own min-max qparams (what a memoryless min-max observer computes)
        s, z = compute_dynamic_scales_and_zp(mod.weight, sch.weights, mod)
        with torch.no_grad():
            mod.weight_scale.copy_(s)
            if hasattr(mod, "weight_zero_point"):
                mod.weight_zero_point.copy_(z)

    if keep_ignore_as_given:
        compressor = ModelCompressor(quantization_config=copy.deepcopy(qconfig))
    else:
        compressor = ModelCompressor.from_pretrained_model(tree, quantization_format="pack-quantized")
    compressor.compress_model(tree)
    compressor.remove_decompression_hook(tree)

    stored = {}
    for k, t in state.items():
        m = k[: -len(".weight")] if k.endswith(".weight") else None
        if m not in names:
            stored[k] = t
    for k, t in tree.state_dict().items():
        stored[k] = t.detach().clone().contiguous()
    qdict = written_ct_config(compressor)
    return stored, qdict, compressor, sorted(quantized), sorted(unquantized)


def written_ct_config(compressor):
    """The quantization_config block ModelCompressor.update_config writes (without touching a file)."""
    import json
    import os
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        with open(os.path.join(tmp, "config.json"), "w") as f:
            json.dump({}, f)
        compressor.update_config(tmp)
        with open(os.path.join(tmp, "config.json")) as f:
            return json.load(f)["quantization_config"]


def ct_parse_config(qdict):
    from compressed_tensors.quantization import QuantizationConfig

    fields = set(QuantizationConfig.model_fields)
    return QuantizationConfig.model_validate({k: v for k, v in qdict.items() if k in fields})


def ct_scheme_for(name, qconfig):
    """The config group whose targets match the Linear module `name` and that `ignore` does not exclude
    (library matching: exact name, `re:` regex via re.match, or class name), else None."""
    from compressed_tensors.utils.match import is_match

    dummy = nn.Linear(1, 1, bias=False, device="meta")
    for scheme in qconfig.config_groups.values():
        if is_match(name, dummy, scheme.targets, qconfig.ignore or []):
            return scheme
    return None


def ct_dequantize_tensors(tensors, qdict, scale_dtype=torch.float32):
    """Decompress a pack-quantized checkpoint (name -> tensor) with compressed-tensors' own
    PackedQuantizationCompressor.decompress; returns float32 checkpoint-named weights and the list of
    quantized modules. Also asserts that the config (targets/ignore) and the tensor layout agree.

    scale_dtype: weight_scale is cast to it before decompression. float32 gives the exact value
    (q - zp) * scale (a <= 5-bit integer times a bf16 scale is exact in float32); the checkpoint dtype
    (bf16) reproduces what the library does natively (product rounded to bf16).
    """
    from compressed_tensors.compressors import BaseCompressor

    qconfig = ct_parse_config(qdict)
    out, quantized = {}, []
    packed = {k[: -len(".weight_packed")] for k in tensors if k.endswith(".weight_packed")}
    plain_linear = {
        k[: -len(".weight")]
        for k, t in tensors.items()
        if k.endswith(".weight") and t.ndim == 2 and not k.endswith("embed_tokens.weight")
    }
    for m in sorted(packed | plain_linear):
        scheme = ct_scheme_for(m, qconfig)
        assert (scheme is not None) == (m in packed), f"{m}: config says quantized={scheme is not None}, file says {m in packed}"
    aux = (".weight_packed", ".weight_scale", ".weight_shape", ".weight_zero_point")
    for k, t in tensors.items():
        if k.endswith(aux):
            continue
        out[k] = t.to(torch.float32)
    for m in sorted(packed):
        scheme = ct_scheme_for(m, qconfig)
        fmt = scheme.format or qconfig.format
        comp = BaseCompressor.get_value_from_registry(fmt)
        sd = {
            "weight_packed": tensors[m + ".weight_packed"],
            "weight_scale": tensors[m + ".weight_scale"].to(scale_dtype),
            "weight_shape": tensors[m + ".weight_shape"],
        }
        if m + ".weight_zero_point" in tensors:
            sd["weight_zero_point"] = tensors[m + ".weight_zero_point"]
        res = comp.decompress(sd, scheme)
        out[m + ".weight"] = res["weight"].to(torch.float32)
        quantized.append(m)
    return out, quantized


def transformers_known_limitations(qcfg, tensors):
    """Folder features transformers 5.24 + compressed-tensors 0.20.1 cannot load (found with the fixtures)."""
    out = []
    groups = (qcfg.get("config_groups") or {}).values()
    if any(not (g.get("weights") or {}).get("symmetric", True) for g in groups):
        out.append(
            "asymmetric pack-quantized: for dense Linear modules transformers creates weight_zero_point unpacked "
            "[out, in/group] and re-initialises it on the size mismatch with the packed [ceil(out/8), in/group] "
            "checkpoint tensor; its fused-experts converter (CompressedTensorsDequantize) passes no zero point "
            "to decompress (AssertionError 'Asymmetric quant requires zero-point values')"
        )
    import re

    kinds = {}  # layer -> {"plain", "packed"} of its routed expert projections
    for k, t in tensors.items():
        mm = re.match(r"(model\.layers\.\d+)\.mlp\.experts\.\d+\.\w+_proj\.(weight|weight_packed)$", k)
        if mm:
            kinds.setdefault(mm.group(1), set()).add("plain" if mm.group(2) == "weight" else "packed")
    if any(len(v) == 2 for v in kinds.values()):
        out.append(
            "mixed expert layout (within a layer some experts.*.{gate,up,down}_proj quantized, others plain): transformers "
            "reports the plain ones' fused tensor (e.g. mlp.experts.down_proj) as missing and leaves it random"
        )
    return out



# --------------------------------------------------------------------------------------
# Runtime model <-> checkpoint names
# --------------------------------------------------------------------------------------


def assign_checkpoint_weights(model, ck):
    """Copy float32 checkpoint-named weights into transformers' runtime GlmMoeDsaForCausalLM (fusing
    per-expert gate/up into `gate_up_proj` as transformers does). Checkpoint names of the MTP layer
    (model.layers.{N}.*) are ignored; every runtime tensor must be assigned."""
    N = model.config.num_hidden_layers
    mtp = f"model.layers.{N}."
    targets = dict(model.named_parameters())
    targets.update({n: b for n, b in model.named_buffers() if n.endswith("e_score_correction_bias")})
    used = set()
    with torch.no_grad():
        for n, p in targets.items():
            if n.endswith("mlp.experts.gate_up_proj"):
                pre = n[: -len("gate_up_proj")]
                parts = []
                for e in range(p.shape[0]):
                    g, u = f"{pre}{e}.gate_proj.weight", f"{pre}{e}.up_proj.weight"
                    parts.append(torch.cat([ck[g], ck[u]], 0))
                    used.update([g, u])
                v = torch.stack(parts)
            elif n.endswith("mlp.experts.down_proj"):
                pre = n[: -len("down_proj")]
                keys = [f"{pre}{e}.down_proj.weight" for e in range(p.shape[0])]
                v = torch.stack([ck[k] for k in keys])
                used.update(keys)
            else:
                v = ck[n]
                used.add(n)
            assert v.shape == p.shape, (n, v.shape, p.shape)
            p.copy_(v.to(p.dtype))
    rest = {k for k in ck if not k.startswith(mtp)} - used
    assert not rest, f"checkpoint tensors not used: {sorted(rest)[:10]}"


def strip_quant_config(config_dict):
    d = dict(config_dict)
    d.pop("quantization_config", None)
    return d
