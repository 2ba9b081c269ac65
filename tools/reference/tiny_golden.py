#!/usr/bin/env python3
"""Golden outputs of the bundled model (models/glm5-tiny, INT4 written by `glm5 quantize`) from
transformers, into Tests/Fixtures/glm5-tiny/{golden.safetensors, golden.json}.

    /tmp/venv-ref/bin/python tools/reference/tiny_golden.py

The INT4 folder is dequantized exactly (compressed-tensors) into the float32 eager
GlmMoeDsaForCausalLM (make_fixtures.dequantized_model_from_folder). Sequences are text encoded with
the bundled tokenizer (HF tokenizers): seq0 a held-out standard-library file's opening, longer
than index_topk (so the DSA selection is sparse), seq1 a short prompt. The names are those of
make_fixtures.py (seq{i}.tokens/logits/logprobs/topk.layer{L}/experts.layer{L}/expert_weights.layer{L},
greedy.prompt/tokens/logprobs/logits), so GoldenForwardTests' checks apply; the greedy run is 32
tokens with HF's KV cache from the prompt GREEDY_PROMPT. Every decision's relative margin is
recorded in golden.json (and must be >= 1e-3).
"""

import json
import os
import types
import sys

import torch
from safetensors.torch import save_file
from tokenizers import Tokenizer

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import make_fixtures as MF  # noqa: E402
import train_tiny  # noqa: E402
import tokenizer_corpus  # noqa: E402

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
MODEL = os.path.join(ROOT, "models", "glm5-tiny")
OUT = os.path.join(ROOT, "Tests", "Fixtures", "glm5-tiny")
GREEDY_PROMPT = "def fibonacci(n):\n"
SEQ1 = "import os\nimport sys\n\n\nclass Config:\n"
SEQ0_TOKENS = 96
GREEDY_NEW = 32
MTP_ROWS = 32


def stable_topk(self_t, k, dim=-1, largest=True, sorted=True):
    """torch.topk with glm5's fixed tie rule (include/glm5.h): higher first, equal scores to the
    lower index. torch documents no tie rule, and the trained layer-0 indexer scores many keys
    exactly 0 (every head clipped by the ReLU), so boundaries inside such ties need one."""
    assert largest and dim == -1
    order = torch.sort(self_t, dim=-1, descending=True, stable=True).indices[..., :k]
    return torch.return_types.topk((self_t.gather(-1, order), order))


def mtp_from_checkpoint(cfg, deq):
    """train_tiny.MTPLayer holding the checkpoint's model.layers.{L}.* (experts fused as
    transformers fuses them)."""
    L = cfg.num_hidden_layers
    p = f"model.layers.{L}."
    mtp = train_tiny.MTPLayer(cfg)
    I = cfg.moe_intermediate_size
    E = cfg.n_routed_experts
    with torch.no_grad():
        for n, t in mtp.block.state_dict().items():
            if n == "mlp.experts.gate_up_proj":
                v = torch.stack([torch.cat([deq[f"{p}mlp.experts.{e}.gate_proj.weight"],
                                            deq[f"{p}mlp.experts.{e}.up_proj.weight"]], 0) for e in range(E)])
            elif n == "mlp.experts.down_proj":
                v = torch.stack([deq[f"{p}mlp.experts.{e}.down_proj.weight"] for e in range(E)])
            else:
                v = deq[p + n]
            assert v.shape == t.shape, (n, v.shape, t.shape)
            t.copy_(v.float())
        mtp.enorm.weight.copy_(deq[p + "enorm.weight"].float())
        mtp.hnorm.weight.copy_(deq[p + "hnorm.weight"].float())
        mtp.eh_proj.weight.copy_(deq[p + "eh_proj.weight"].float())
        mtp.shared_head_norm.weight.copy_(deq[p + "shared_head.norm.weight"].float())
    assert I * 2 == mtp.block.mlp.experts.gate_up_proj.shape[1]
    mtp.eval()
    return mtp


def mtp_recorded(model, mtp, ids, margins):
    """mtp_draft_logits with the MTP block's choices: its indexer's top-k rows and its router's
    experts and weights, per row, recorded as make_fixtures records the main layers'."""
    layers = types.SimpleNamespace(model=types.SimpleNamespace(layers=[mtp.block], norm=mtp.shared_head_norm))
    with MF.Recorder(layers) as rec:
        logits = mtp_draft_logits(model, mtp, ids)
    topk, experts, ew, _, _ = MF.analyse_events(rec.events, margins)
    return logits, topk[0], experts[0], ew[0]


@torch.no_grad()
def mtp_draft_logits(model, mtp, ids):
    """The MTP's first draft step, teacher-forced: row i reads the main model's post-norm hidden
    at i and token ids[i+1] (RoPE position i) and predicts ids[i+2]: [len(ids) - 1, vocab]."""
    x = torch.tensor([ids], dtype=torch.long)
    h = model.model(input_ids=x, use_cache=False).last_hidden_state[:, :-1]
    n = h.shape[1]
    causal = torch.ones(n, n, dtype=torch.bool).tril()
    add = torch.zeros(n, n).masked_fill(~causal, torch.finfo(torch.float32).min).view(1, 1, n, n)
    pos = torch.arange(n).unsqueeze(0)
    pos_emb = model.model.rotary_emb(h, position_ids=pos)
    z = mtp(model.model.embed_tokens(x[:, 1:]), h, add, pos_emb, pos)
    return model.lm_head(z)[0].float()


def main():
    torch.manual_seed(0)
    torch.Tensor.topk = stable_topk
    torch.topk = lambda t, k, dim=-1, largest=True, sorted=True: stable_topk(t, k, dim, largest, sorted)
    tok = Tokenizer.from_file(os.path.join(MODEL, "tokenizer.json"))
    files = tokenizer_corpus.stdlib_py_files()
    held_out = [p for i, p in enumerate(files) if i % 50 == 0]
    text0 = None
    for p in held_out[1:]:
        t = tokenizer_corpus.read_utf8(p)
        if t and len(tok.encode(t).ids) > SEQ0_TOKENS:
            text0, path0 = t, p
            break
    seqs = [tok.encode(text0).ids[:SEQ0_TOKENS], tok.encode(SEQ1).ids]
    model, _ = MF.dequantized_model_from_folder(MODEL)
    golden, margins, summary = {}, MF.Margins(), {"sequences": []}
    for i, ids in enumerate(seqs):
        tokens = torch.tensor(ids, dtype=torch.int32)
        logits, topk, experts, ew, _, _, m = MF.run_sequence(model, tokens)
        margins.merge(m)
        golden[f"seq{i}.tokens"] = tokens
        golden[f"seq{i}.logits"] = logits.contiguous()
        golden[f"seq{i}.logprobs"] = MF.seq_logprobs(logits, tokens)
        for L, rows in topk.items():
            golden[f"seq{i}.topk.layer{L}"] = torch.tensor(rows, dtype=torch.int32)
        for L, ids_ in experts.items():
            golden[f"seq{i}.experts.layer{L}"] = torch.tensor(ids_, dtype=torch.int32)
            golden[f"seq{i}.expert_weights.layer{L}"] = torch.tensor(ew[L], dtype=torch.float32)
        summary["sequences"].append({"tokens": len(ids), "text": tok.decode(ids)})
    summary["sequences"][0]["source"] = os.path.relpath(path0, tokenizer_corpus.stdlib_dir())
    # The MTP's first draft step (issue 12): seq1 whole, seq0's last MTP_ROWS rows (past index_topk).
    deq = MF.read_folder_tensors(MODEL)
    deq, _ = MF.QF.ct_dequantize_tensors(deq, json.load(open(os.path.join(MODEL, "config.json")))["quantization_config"],
                                         scale_dtype=torch.float32)
    mtp = mtp_from_checkpoint(model.config, deq)
    d0, tk0, ex0, ew0 = mtp_recorded(model, mtp, seqs[0], margins)
    golden["mtp.seq0.logits_tail"] = d0[-MTP_ROWS:].contiguous()
    golden["mtp.seq0.topk_tail"] = torch.tensor(tk0[-MTP_ROWS:], dtype=torch.int32)
    golden["mtp.seq0.experts_tail"] = torch.tensor(ex0[-MTP_ROWS:], dtype=torch.int32)
    golden["mtp.seq0.expert_weights_tail"] = torch.tensor(ew0[-MTP_ROWS:], dtype=torch.float32)
    d1, tk1, ex1, ew1 = mtp_recorded(model, mtp, seqs[1], margins)
    golden["mtp.seq1.logits"] = d1.contiguous()
    golden["mtp.seq1.topk"] = torch.tensor(tk1, dtype=torch.int32)
    golden["mtp.seq1.experts"] = torch.tensor(ex1, dtype=torch.int32)
    golden["mtp.seq1.expert_weights"] = torch.tensor(ew1, dtype=torch.float32)
    summary["mtp"] = {"seq0.logits_tail": f"rows {len(seqs[0]) - 1 - MTP_ROWS}..{len(seqs[0]) - 2} of the draft step",
                      "seq0_top1_matches_text": float((d0.argmax(-1)[:-1] == torch.tensor(seqs[0][2:])).float().mean())}
    prompt = torch.tensor(tok.encode(GREEDY_PROMPT).ids, dtype=torch.int32)
    toks, lps, step_logits, gm = MF.greedy(model, prompt, GREEDY_NEW)
    margins.merge(gm)
    golden["greedy.prompt"] = prompt
    golden["greedy.tokens"] = torch.tensor(toks, dtype=torch.int32)
    golden["greedy.logprobs"] = torch.tensor(lps, dtype=torch.float32)
    golden["greedy.logits"] = step_logits.contiguous()
    summary["greedy"] = {"prompt": GREEDY_PROMPT, "text": tok.decode(toks), "tokens": toks}
    summary["margins"] = margins.json()
    summary["margins_ok"] = margins.ok()
    summary["versions"] = {"torch": torch.__version__, "transformers": MF.transformers.__version__}
    os.makedirs(OUT, exist_ok=True)
    save_file(golden, os.path.join(OUT, "golden.safetensors"), metadata={"format": "pt"})
    with open(os.path.join(OUT, "golden.json"), "w") as f:
        json.dump(summary, f, indent=1, ensure_ascii=False)
        f.write("\n")
    print(json.dumps(summary["margins"]), "ok" if margins.ok() else "MARGINS TOO SMALL")
    print("greedy:", repr(tok.decode(toks)))


if __name__ == "__main__":
    main()
