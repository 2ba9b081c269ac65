#!/usr/bin/env python3
"""Train the bundled GLM-5 (`models/glm5-tiny`) from scratch on CPU, from fixed seeds.

    /tmp/venv-ref/bin/python tools/reference/train_tiny.py --out /tmp/glm5-tiny-f32 --bf16-out /tmp/glm5-tiny-bf16
    .build/release/glm5 quantize /tmp/glm5-tiny-bf16 models/glm5-tiny --group 32
    /tmp/venv-ref/bin/python tools/reference/tiny_golden.py     # Tests/Fixtures/glm5-tiny golden

A small `glm_moe_dsa` model (transformers' GlmMoeDsaForCausalLM: MLA, the DSA lightning indexer,
sigmoid-routed MoE with a shared expert, a dense first layer) plus the MTP layer, trained on the
`.py` sources of CPython's standard library (tokenizer_corpus.stdlib_py_files, PSF licence)
tokenized with the bundled tokenizer (models/glm5-tiny/tokenizer.json), every file followed by
<|endoftext|>. Every 50th file (sorted order) is held out for validation.

Training follows GLM-5 / DeepSeek-V3.2 in miniature:
  1. dense   the indexer is bypassed (index_topk above the window): the main model and the MTP
             layer learn with dense attention;
  2. warm-up the rest frozen, the indexers learn to reproduce dense attention: KL(p || q) with p the
             attention distribution summed over heads (L1-normalised) and q the softmax of the
             indexer's scores over the causal keys;
  3. sparse  index_topk = TOPK (well below the window): everything trains; the indexer's KL is
             over the selected keys only and its inputs are detached (the indexer learns only from
             its KL, the model only from the language-model losses).
The MTP layer is trained the GLM-5 way: one set of parameters applied for 3 recursive prediction
steps. Step k at position i reads the embedding of token i+k and the hidden of step k-1 (step 0:
the main model's post-norm hidden; later steps: the MTP's shared_head-normed hidden, as vLLM feeds
it back at inference) and predicts token i+k+1; loss = LM + MTP_WEIGHT * mean over the 3 steps.
Load balance: DeepSeek-V3's auxiliary-loss-free bias update (e_score_correction_bias += gamma *
sign(mean load - load) after each step).

Writes a float32 HF folder (checkpoint names, MTP layer as model.layers.{L}.*, config.json,
generation_config.json, the tokenizer files, train_log.json with the losses and the MTP
acceptance on held-out text). Every random draw is seeded (torch, numpy); a rerun with the same thread count is expected to
reproduce the weights, but that was not checked (one run takes about 45 minutes).
"""

import argparse
import json
import math
import os
import random
import shutil
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from transformers import GlmMoeDsaConfig, GlmMoeDsaForCausalLM
from transformers.models.glm_moe_dsa import modeling_glm_moe_dsa as M

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tokenizer_corpus  # noqa: E402

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
TOKENIZER_DIR = os.path.join(ROOT, "models", "glm5-tiny")

SEED = 20261202
WINDOW = 256  # training sequence length
TOPK = 64  # index_topk in the sparse stage and in the released config
MTP_STEPS = 3
MTP_WEIGHT = 0.3
MTP_STRIDE = 4  # MTP loss on every 4th position
BIAS_GAMMA = 1e-3
EOS = 4087  # <|endoftext|>

CONFIG = dict(
    vocab_size=4096,
    hidden_size=192,
    intermediate_size=512,
    moe_intermediate_size=128,
    num_hidden_layers=4,
    first_k_dense_replace=1,
    num_attention_heads=6,
    num_key_value_heads=6,
    q_lora_rank=96,
    kv_lora_rank=64,
    qk_nope_head_dim=32,
    qk_rope_head_dim=16,
    v_head_dim=32,
    index_head_dim=32,
    index_n_heads=4,
    index_topk=TOPK,
    n_routed_experts=8,
    num_experts_per_tok=2,
    n_group=1,
    topk_group=1,
    n_shared_experts=1,
    routed_scaling_factor=2.5,
    norm_topk_prob=True,
    rms_norm_eps=1e-5,
    rope_parameters={"rope_type": "default", "rope_theta": 10000.0},
    max_position_embeddings=4096,
    tie_word_embeddings=False,
    bos_token_id=EOS,
    eos_token_id=EOS,
    pad_token_id=EOS,
    initializer_range=0.02,
)


# --------------------------------------------------------------------------------------
# Data
# --------------------------------------------------------------------------------------


def load_tokens():
    """(train ids, validation ids): int32 streams of the stdlib files, each followed by EOS."""
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(os.path.join(TOKENIZER_DIR, "tokenizer.json"))
    train, val = [], []
    files = tokenizer_corpus.stdlib_py_files()
    texts = []
    for i, path in enumerate(files):
        text = tokenizer_corpus.read_utf8(path)
        if text is not None:
            texts.append((i, text))
    encs = tok.encode_batch([t for _, t in texts], add_special_tokens=False)
    for (i, _), e in zip(texts, encs):
        (val if i % 50 == 0 else train).extend(e.ids + [EOS])
    return np.array(train, dtype=np.int32), np.array(val, dtype=np.int32), len(texts)


# --------------------------------------------------------------------------------------
# The MTP layer (not in transformers: built from its modules)
# --------------------------------------------------------------------------------------


class MTPLayer(nn.Module):
    """GLM-5's MTP module: eh_proj(concat[enorm(emb), hnorm(h)]) -> decoder block -> shared_head.norm."""

    def __init__(self, config):
        super().__init__()
        L = config.num_hidden_layers
        cfg = GlmMoeDsaConfig(**{**CONFIG, "num_hidden_layers": L + 1})
        cfg._attn_implementation = "eager"
        cfg._experts_implementation = "grouped_mm"
        H = config.hidden_size
        self.enorm = M.GlmMoeDsaRMSNorm(H, config.rms_norm_eps)
        self.hnorm = M.GlmMoeDsaRMSNorm(H, config.rms_norm_eps)
        self.eh_proj = nn.Linear(2 * H, H, bias=False)
        self.block = M.GlmMoeDsaDecoderLayer(cfg, L)
        self.shared_head_norm = M.GlmMoeDsaRMSNorm(H, config.rms_norm_eps)

    def forward(self, emb, h, mask, pos_emb, position_ids):
        z = self.eh_proj(torch.cat([self.enorm(emb), self.hnorm(h)], dim=-1))
        z, _ = self.block(z, attention_mask=mask, position_embeddings=pos_emb, position_ids=position_ids)
        return self.shared_head_norm(z)


def init_like_hf(module, std):
    for m in module.modules():
        if isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, 0.0, std)
        elif isinstance(m, M.GlmMoeDsaExperts):
            nn.init.normal_(m.gate_up_proj, 0.0, std)
            nn.init.normal_(m.down_proj, 0.0, std)
        elif isinstance(m, M.GlmMoeDsaTopkRouter):
            nn.init.normal_(m.weight, 0.0, std)
            m.e_score_correction_bias.zero_()


# --------------------------------------------------------------------------------------
# Capturing attention and indexer inputs
# --------------------------------------------------------------------------------------


class Taps:
    """Forward hooks: each attention's weights [B, H, S, T] and top-k, each indexer's inputs,
    each router's chosen experts."""

    def __init__(self, modules):
        self.attn, self.index_in, self.routes = {}, {}, {}
        self.handles = []
        for name, m in modules:
            if isinstance(m, M.GlmMoeDsaAttention):
                self.handles.append(m.register_forward_hook(self._attn_hook(name)))
            elif isinstance(m, M.GlmMoeDsaIndexer):
                self.handles.append(m.register_forward_pre_hook(self._index_hook(name), with_kwargs=True))
            elif isinstance(m, M.GlmMoeDsaTopkRouter):
                self.handles.append(m.register_forward_hook(self._route_hook(name)))

    def _attn_hook(self, name):
        def hook(mod, args, out):
            self.attn[name] = (out[1], out[2])  # weights, topk indices
        return hook

    def _index_hook(self, name):
        def hook(mod, args, kwargs):
            a = list(args)
            self.index_in[name.rsplit(".indexer", 1)[0]] = (mod, a[0].detach(), a[1].detach(), a[2])
        return hook

    def _route_hook(self, name):
        def hook(mod, args, out):
            self.routes.setdefault(name, []).append(out[2].detach())
        return hook

    def clear(self):
        self.attn.clear()
        self.index_in.clear()
        self.routes.clear()


def indexer_logits(ix, hidden, q_resid, pos_emb):
    """The indexer's scores [B, S, T] with gradients (HF's GlmMoeDsaIndexer.forward without no_grad,
    the mask and the top-k)."""
    B, S, _ = hidden.shape
    cos, sin = pos_emb
    q = ix.wq_b(q_resid).view(B, S, ix.n_heads, ix.head_dim)
    q_rot, q_pass = torch.split(q, [ix.qk_rope_head_dim, ix.head_dim - ix.qk_rope_head_dim], dim=-1)
    k = ix.k_norm(ix.wk(hidden)).unsqueeze(2)
    k_rot, k_pass = torch.split(k, [ix.qk_rope_head_dim, ix.head_dim - ix.qk_rope_head_dim], dim=-1)
    q_rot, k_rot = M.apply_rotary_pos_emb_interleave(q_rot, k_rot, cos, sin, unsqueeze_dim=2)
    q = torch.cat([q_rot, q_pass], dim=-1)
    k = torch.cat([k_rot, k_pass], dim=-1).squeeze(2)
    scores = F.relu(torch.matmul(q, k.transpose(-1, -2).unsqueeze(1)) * ix.softmax_scale)  # [B, S, H, T]
    w = ix.weights_proj(hidden) * (ix.n_heads**-0.5)
    return torch.matmul(w.unsqueeze(-2), scores).squeeze(-2)  # [B, S, T]


def indexer_kl(taps, causal, sparse):
    """Mean over layers of KL(attention over heads || indexer softmax), per query position."""
    losses = []
    for name, (ix, hidden, q_resid, pos_emb) in taps.index_in.items():
        weights, topk = taps.attn[name]
        p = weights.detach().sum(dim=1)  # [B, S, T]
        allowed = causal
        if sparse:
            sel = torch.zeros_like(p, dtype=torch.bool).scatter(-1, topk.long(), True)
            allowed = causal & sel
        p = p.masked_fill(~allowed, 0.0)
        p = p / p.sum(-1, keepdim=True).clamp_min(1e-20)
        logits = indexer_logits(ix, hidden, q_resid, pos_emb).masked_fill(~allowed, float("-inf"))
        logq = torch.log_softmax(logits, dim=-1)
        kl = torch.where(p > 0, p * (torch.log(p.clamp_min(1e-30)) - logq), torch.zeros_like(p)).sum(-1)
        losses.append(kl.mean())
    return torch.stack(losses).mean()


# --------------------------------------------------------------------------------------
# Model + MTP forward
# --------------------------------------------------------------------------------------


class Trainer:
    def __init__(self):
        torch.manual_seed(SEED)
        cfg = GlmMoeDsaConfig(**CONFIG)
        self.cfg = cfg
        # grouped_mm: the same experts as eager, about 3x faster to train on CPU
        self.model = GlmMoeDsaForCausalLM._from_config(cfg, attn_implementation="eager",
                                                       experts_implementation="grouped_mm", dtype=torch.float32)
        init_like_hf(self.model, cfg.initializer_range)
        self.mtp = MTPLayer(cfg)
        init_like_hf(self.mtp, cfg.initializer_range)
        for norm in [self.mtp.enorm, self.mtp.hnorm, self.mtp.shared_head_norm]:
            nn.init.ones_(norm.weight)
        self.taps = Taps(list(self.model.named_modules()) + [("mtp." + n, m) for n, m in self.mtp.named_modules()])
        self.indexers = [m for m in list(self.model.modules()) + list(self.mtp.modules())
                         if isinstance(m, M.GlmMoeDsaIndexer)]
        self.routers = {n: m for n, m in list(self.model.named_modules()) + [("mtp." + n, m) for n, m in self.mtp.named_modules()]
                        if isinstance(m, M.GlmMoeDsaTopkRouter)}

    def set_topk(self, k):
        for ix in self.indexers:
            ix.index_topk = k

    def params(self, indexer_only=False):
        """The indexers' parameters, or all the others."""
        return [p for m in [self.model, self.mtp] for n, p in m.named_parameters()
                if indexer_only == (".indexer." in n)]

    def masks(self, B, S):
        causal = torch.ones(S, S, dtype=torch.bool).tril()
        add = torch.zeros(S, S).masked_fill(~causal, torch.finfo(torch.float32).min)
        return causal.expand(B, S, S), add.expand(B, 1, S, S)

    def forward(self, x, with_mtp=True):
        """x: [B, S + MTP_STEPS + 1] token ids. Returns (main loss, [mtp losses per step])."""
        B = x.shape[0]
        S = x.shape[1] - MTP_STEPS - 1
        inp = x[:, :S]
        out = self.model.model(input_ids=inp, use_cache=False)
        h = out.last_hidden_state  # post-norm
        logits = self.model.lm_head(h)
        main = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), x[:, 1:S + 1].reshape(-1))
        if not with_mtp:
            return main, []
        causal, add = self.masks(B, S)
        pos = torch.arange(S).unsqueeze(0)
        pos_emb = self.model.model.rotary_emb(h, position_ids=pos)
        emb_table = self.model.model.embed_tokens
        losses, hk = [], h
        for k in range(1, MTP_STEPS + 1):
            emb = emb_table(x[:, k:S + k])
            hk = self.mtp(emb, hk, add, pos_emb, pos)
            # The loss reads every MTP_STRIDE-th position (another offset per step): the block runs on
            # every row (its attention needs them), the lm_head only where the loss reads.
            sel = slice((k - 1) % MTP_STRIDE, S, MTP_STRIDE)
            lk = self.model.lm_head(hk[:, sel])
            losses.append(F.cross_entropy(lk.reshape(-1, lk.shape[-1]), x[:, k + 1:S + k + 1][:, sel].reshape(-1)))
        return main, losses

    def update_bias(self):
        with torch.no_grad():
            for name, r in self.routers.items():
                picks = self.taps.routes.get(name)
                if not picks:
                    continue
                load = torch.bincount(torch.cat([p.reshape(-1) for p in picks]), minlength=r.num_experts).float()
                r.e_score_correction_bias += BIAS_GAMMA * torch.sign(load.mean() - load)


# --------------------------------------------------------------------------------------
# Evaluation: validation loss, MTP acceptance on held-out text
# --------------------------------------------------------------------------------------


@torch.no_grad()
def evaluate(tr, val, n_windows, rng_seed=7):
    rng = np.random.default_rng(rng_seed)
    S = WINDOW
    starts = rng.integers(0, len(val) - S - MTP_STEPS - 2, size=n_windows)
    tot, tot_mtp = 0.0, [0.0] * MTP_STEPS
    for s in starts:
        x = torch.from_numpy(val[s:s + S + MTP_STEPS + 1].astype(np.int64)).unsqueeze(0)
        main, losses = tr.forward(x)
        tot += main.item()
        for k in range(MTP_STEPS):
            tot_mtp[k] += losses[k].item()
    n = len(starts)
    return tot / n, [v / n for v in tot_mtp], speculative_acceptance(tr, val, max(1, n_windows // 8))


@torch.no_grad()
def mtp_rows(tr, h, toks):
    """The MTP's normed hidden for rows j = 0..n-1 from (h_j, toks_j) (toks_j = the token after j),
    causal over the rows: what its cache holds after those rows were appended."""
    n = h.shape[1]
    _, add = tr.masks(1, n)
    pos = torch.arange(n).unsqueeze(0)
    pos_emb = tr.model.model.rotary_emb(h, position_ids=pos)
    return tr.mtp(tr.model.model.embed_tokens(toks), h, add, pos_emb, pos)


@torch.no_grad()
def speculative_acceptance(tr, val, n_windows, rng_seed=11):
    """Greedy speculative decoding on held-out text, as the engine runs it (issue 12): the context
    is text[0..n]; the main model emits its greedy g; the MTP drafts d1..d3 recursively (draft row
    j+1 reads the normed MTP hidden of row j and the previous draft; the MTP's earlier rows read the
    main hidden and the text's next token, as its cache would); one main forward over
    [g, d1, d2, d3] verifies. Returns the per-depth acceptance P(d_k accepted | d_1..d_{k-1}
    accepted) and the mean accepted length (1 + accepted drafts) at k = 1, 2, 3 drafts."""
    rng = np.random.default_rng(rng_seed)
    S = WINDOW
    chains = np.zeros(MTP_STEPS + 1)  # how many samples accepted at least j drafts
    total = 0
    for s in rng.integers(0, len(val) - S - 1, size=n_windows):
        text = torch.from_numpy(val[s:s + S].astype(np.int64)).unsqueeze(0)
        for n in range(63, S - 1, 16):
            ctx = text[:, :n + 1]
            h = tr.model.model(input_ids=ctx, use_cache=False).last_hidden_state
            g = tr.model.lm_head(h[:, -1:]).argmax(-1)  # [1, 1]
            toks = torch.cat([ctx[:, 1:], g], dim=1)  # row j's next token
            hs, drafts = h, []
            for k in range(MTP_STEPS):
                z = mtp_rows(tr, hs, toks)
                d = tr.model.lm_head(z[:, -1:]).argmax(-1)
                drafts.append(d)
                hs = torch.cat([hs, z[:, -1:]], dim=1)
                toks = torch.cat([toks, d], dim=1)
            seq = torch.cat([ctx, g] + drafts, dim=1)
            hv = tr.model.model(input_ids=seq, use_cache=False).last_hidden_state
            target = tr.model.lm_head(hv[:, n + 1:n + 1 + MTP_STEPS]).argmax(-1)[0]
            acc = 0
            while acc < MTP_STEPS and drafts[acc].item() == target[acc].item():
                acc += 1
            chains[:acc + 1] += 1
            total += 1
    per_depth = [float(chains[j + 1] / chains[j]) if chains[j] else 0.0 for j in range(MTP_STEPS)]
    mean_len = [float(1 + sum(chains[1:k + 1]) / total) for k in range(1, MTP_STEPS + 1)]
    return {"samples": total, "per_depth_acceptance": per_depth, "mean_accepted_length": mean_len}


# --------------------------------------------------------------------------------------
# Saving with checkpoint names
# --------------------------------------------------------------------------------------


def checkpoint_state(tr):
    import tempfile

    from safetensors import safe_open

    with tempfile.TemporaryDirectory() as tmp:
        tr.model.save_pretrained(tmp)
        state = {}
        for fn in sorted(f for f in os.listdir(tmp) if f.endswith(".safetensors")):
            with safe_open(os.path.join(tmp, fn), "pt") as f:
                for k in f.keys():
                    state[k] = f.get_tensor(k)
        config = json.load(open(os.path.join(tmp, "config.json")))
    assert not any("gate_up_proj" in k for k in state)
    L = tr.cfg.num_hidden_layers
    p = f"model.layers.{L}."
    I = tr.cfg.moe_intermediate_size
    for n, t in tr.mtp.block.state_dict().items():
        t = t.detach().clone().contiguous()
        if n == "mlp.experts.gate_up_proj":
            for e in range(t.shape[0]):
                state[f"{p}mlp.experts.{e}.gate_proj.weight"] = t[e, :I].clone()
                state[f"{p}mlp.experts.{e}.up_proj.weight"] = t[e, I:].clone()
        elif n == "mlp.experts.down_proj":
            for e in range(t.shape[0]):
                state[f"{p}mlp.experts.{e}.down_proj.weight"] = t[e].clone()
        else:
            state[p + n] = t
    state[p + "enorm.weight"] = tr.mtp.enorm.weight.detach().clone()
    state[p + "hnorm.weight"] = tr.mtp.hnorm.weight.detach().clone()
    state[p + "eh_proj.weight"] = tr.mtp.eh_proj.weight.detach().clone()
    state[p + "shared_head.norm.weight"] = tr.mtp.shared_head_norm.weight.detach().clone()
    return {k: v.float().contiguous() for k, v in state.items()}, config


def write_folder(tr, out, log):
    from safetensors.torch import save_file

    os.makedirs(out, exist_ok=True)
    state, config = checkpoint_state(tr)
    config["num_nextn_predict_layers"] = 1
    config["dtype"] = "float32"
    config.pop("transformers_version", None)
    with open(os.path.join(out, "config.json"), "w") as f:
        json.dump(config, f, indent=2, sort_keys=True)
        f.write("\n")
    gen = {"bos_token_id": EOS, "eos_token_id": [EOS, 4091, 4093], "pad_token_id": EOS,
           "do_sample": True, "temperature": 0.8, "top_p": 0.95}
    with open(os.path.join(out, "generation_config.json"), "w") as f:
        json.dump(gen, f, indent=2)
        f.write("\n")
    save_file(state, os.path.join(out, "model.safetensors"), metadata={"format": "pt"})
    for fn in ["tokenizer.json", "tokenizer_config.json"]:
        shutil.copy(os.path.join(TOKENIZER_DIR, fn), os.path.join(out, fn))
    with open(os.path.join(out, "train_log.json"), "w") as f:
        json.dump(log, f, indent=1)
        f.write("\n")


# --------------------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------------------


def write_bf16(src, dst):
    """The bundled model's source: the float32 folder's weights rounded to bfloat16
    (e_score_correction_bias stays float32), config dtype bfloat16; other files copied."""
    from safetensors.torch import load_file, save_file

    os.makedirs(dst, exist_ok=True)
    state = load_file(os.path.join(src, "model.safetensors"))
    state = {k: (v if k.endswith("e_score_correction_bias") else v.to(torch.bfloat16)).contiguous()
             for k, v in state.items()}
    save_file(state, os.path.join(dst, "model.safetensors"), metadata={"format": "pt"})
    config = json.load(open(os.path.join(src, "config.json")))
    config["dtype"] = "bfloat16"
    with open(os.path.join(dst, "config.json"), "w") as f:
        json.dump(config, f, indent=2, sort_keys=True)
        f.write("\n")
    for fn in ["generation_config.json", "train_log.json"]:
        shutil.copy(os.path.join(src, fn), os.path.join(dst, fn))
    for fn in ["tokenizer.json", "tokenizer_config.json"]:
        shutil.copy(os.path.join(TOKENIZER_DIR, fn), os.path.join(dst, fn))


def lr_at(step, total, peak, warmup=100):
    if step < warmup:
        return peak * (step + 1) / warmup
    t = (step - warmup) / max(1, total - warmup)
    return peak * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * t)))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True, help="the float32 folder")
    ap.add_argument("--bf16-out", help="also write the bfloat16 source folder that glm5 quantize reads")
    ap.add_argument("--bf16-only", action="store_true", help="only convert --out (already trained) to --bf16-out")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--dense-steps", type=int, default=600)
    ap.add_argument("--warmup-steps", type=int, default=50)
    ap.add_argument("--sparse-steps", type=int, default=450)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--eval-windows", type=int, default=64)
    ap.add_argument("--log-every", type=int, default=25)
    args = ap.parse_args()

    if args.bf16_only:
        write_bf16(args.out, args.bf16_out)
        return
    torch.set_num_threads(args.threads)
    random.seed(SEED)
    np.random.seed(SEED)
    t0 = time.time()
    train, val, nfiles = load_tokens()
    print(f"data: {nfiles} files, {len(train)} train tokens, {len(val)} validation tokens "
          f"({time.time() - t0:.1f} s)", flush=True)

    tr = Trainer()
    n_main = sum(p.numel() for p in tr.model.parameters())
    n_mtp = sum(p.numel() for p in tr.mtp.parameters())
    print(f"parameters: main {n_main}, MTP {n_mtp}", flush=True)
    main_params = tr.params(indexer_only=False)
    index_params = tr.params(indexer_only=True)
    opt = torch.optim.AdamW(main_params, lr=args.lr, betas=(0.9, 0.95), weight_decay=0.1)
    opt_ix = torch.optim.AdamW(index_params, lr=args.lr, betas=(0.9, 0.95), weight_decay=0.0)
    rng = np.random.default_rng(SEED)
    span = WINDOW + MTP_STEPS + 1
    total_main = args.dense_steps + args.sparse_steps
    log = {"config": CONFIG, "seed": SEED, "window": WINDOW, "batch": args.batch, "threads": args.threads,
           "dense_steps": args.dense_steps, "warmup_steps": args.warmup_steps, "sparse_steps": args.sparse_steps,
           "lr": args.lr, "mtp_steps": MTP_STEPS, "mtp_weight": MTP_WEIGHT, "files": nfiles,
           "train_tokens": int(len(train)), "val_tokens": int(len(val)),
           "torch": torch.__version__, "steps": []}

    def batch():
        starts = rng.integers(0, len(train) - span, size=args.batch)
        return torch.from_numpy(np.stack([train[s:s + span] for s in starts]).astype(np.int64))

    causal, _ = tr.masks(args.batch, WINDOW)
    step_main = 0
    t_train = time.time()
    phases = [("dense", args.dense_steps), ("warmup", args.warmup_steps), ("sparse", args.sparse_steps)]
    for phase, n in phases:
        tr.set_topk(10**9 if phase != "sparse" else TOPK)
        for i in range(n):
            x = batch()
            tr.taps.clear()
            rec = {"phase": phase}
            if phase == "warmup":
                with torch.no_grad():
                    tr.forward(x)
                kl = indexer_kl(tr.taps, causal, sparse=False)
                opt_ix.zero_grad(set_to_none=True)
                for g in opt_ix.param_groups:
                    g["lr"] = lr_at(i, n, args.lr, warmup=10)
                kl.backward()
                torch.nn.utils.clip_grad_norm_(index_params, 1.0)
                opt_ix.step()
                rec["kl"] = kl.item()
            else:
                main, mtp = tr.forward(x)
                loss = main + MTP_WEIGHT * sum(mtp) / len(mtp)
                lr = lr_at(step_main, total_main, args.lr)
                for g in opt.param_groups:
                    g["lr"] = lr
                opt.zero_grad(set_to_none=True)
                opt_ix.zero_grad(set_to_none=True)
                if phase == "sparse":
                    kl = indexer_kl(tr.taps, causal, sparse=True)
                    (loss + kl).backward()
                    rec["kl"] = kl.item()
                    for g in opt_ix.param_groups:
                        g["lr"] = lr
                else:
                    loss.backward()
                torch.nn.utils.clip_grad_norm_(main_params, 1.0)
                opt.step()
                if phase == "sparse":
                    torch.nn.utils.clip_grad_norm_(index_params, 1.0)
                    opt_ix.step()
                tr.update_bias()
                step_main += 1
                rec["loss"] = main.item()
                rec["mtp"] = [v.item() for v in mtp]
            if i % args.log_every == 0 or i == n - 1:
                rec["step"] = i
                rec["elapsed"] = round(time.time() - t_train, 1)
                log["steps"].append(rec)
                print(json.dumps(rec), flush=True)
    log["train_seconds"] = round(time.time() - t_train, 1)
    tr.model.eval()
    tr.mtp.eval()
    val_loss, val_mtp, acc = evaluate(tr, val, args.eval_windows)
    log["val_loss"] = val_loss
    log["val_ppl"] = math.exp(val_loss)
    log["val_mtp_loss"] = val_mtp
    log["mtp_speculative_greedy"] = acc
    print(f"validation: loss {val_loss:.4f} (ppl {math.exp(val_loss):.2f}), MTP losses "
          f"{[round(v, 4) for v in val_mtp]}, speculative {acc}", flush=True)
    write_folder(tr, args.out, log)
    if args.bf16_out:
        write_bf16(args.out, args.bf16_out)
    print(f"wrote {args.out} ({time.time() - t0:.0f} s in all)", flush=True)


if __name__ == "__main__":
    main()
