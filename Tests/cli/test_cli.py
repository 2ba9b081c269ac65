"""The `glm5 generate` and `glm5 chat` commands, run as a user runs them, against the library
through the Python binding (which shares none of the CLI's code past libglm5.so's engine).

    GLM5_LIBRARY=.build/release/libglm5.so PYTHONPATH=bindings/python python3 -m pytest -q Tests/cli

The CLI is GLM5_CLI, else .build/release/glm5 (or glm5-cli) of this checkout. Text is tested on
a temporary model folder: the tiny-dsa fixture with its vocabulary grown to the bundled
tokenizer's 4096 ids (random rows), next to models/glm5-tiny's tokenizer files.
"""

import json
import os
import shutil
import struct
import subprocess

import numpy as np
import pytest

import glm5

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
FIXTURES = os.path.join(ROOT, "Tests", "Fixtures")
TINY = os.path.join(FIXTURES, "tiny-dsa")
BUNDLED = os.path.join(ROOT, "models", "glm5-tiny")

# The bundled model's pinned greedy continuation: (prompt text, -n, the expected text), from the
# golden transformers wrote for it (tools/reference/tiny_golden.py; regenerated with the model).
with open(os.path.join(FIXTURES, "glm5-tiny", "golden.json")) as _f:
    _g = json.load(_f)["greedy"]
BUNDLED_GREEDY = (_g["prompt"], len(_g["tokens"]), _g["text"])


def cli():
    if os.environ.get("GLM5_CLI"):
        return os.environ["GLM5_CLI"]
    for name in ("glm5", "glm5-cli"):
        p = os.path.join(ROOT, ".build", "release", name)
        if os.path.exists(p):
            return p
    pytest.skip("no glm5 executable: build with `swift build -c release` or set GLM5_CLI")


def run(*args, stdin=None, cwd=None, check=True):
    p = subprocess.run([cli(), *args], input=stdin, capture_output=True, cwd=cwd, timeout=300)
    if check and p.returncode != 0:
        raise AssertionError(f"glm5 {' '.join(args)} exited {p.returncode}:\n{p.stderr.decode()}")
    return p


def generate(*args, **kw):
    return run("generate", *args, **kw)


def run_json(*args):
    return json.loads(generate(*args, "--json").stdout)


def safetensors(path):
    """{name: array} of a safetensors file (the dtypes the fixtures use)."""
    with open(path, "rb") as f:
        b = f.read()
    n = struct.unpack("<Q", b[:8])[0]
    header = json.loads(b[8 : 8 + n])
    types = {"F32": np.float32, "I32": np.int32, "I64": np.int64, "F16": np.float16}
    out = {}
    for k, v in header.items():
        if k == "__metadata__":
            continue
        lo, hi = v["data_offsets"]
        out[k] = np.frombuffer(b[8 + n + lo : 8 + n + hi], dtype=types[v["dtype"]]).reshape(v["shape"])
    return out


def write_safetensors(path, tensors):
    header, blobs, off = {}, [], 0
    for k, a in tensors.items():
        data = np.ascontiguousarray(a, dtype=np.float32).tobytes()
        header[k] = {"dtype": "F32", "shape": list(a.shape), "data_offsets": [off, off + len(data)]}
        blobs.append(data)
        off += len(data)
    h = json.dumps(header).encode()
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))


@pytest.fixture(scope="module")
def text_model(tmp_path_factory):
    """tiny-dsa with 4096 ids and the bundled tokenizer (and its chat template)."""
    d = str(tmp_path_factory.mktemp("tiny-text"))
    with open(os.path.join(TINY, "config.json")) as f:
        config = json.load(f)
    old = config["vocab_size"]
    config["vocab_size"] = 4096
    config["eos_token_id"] = 4087  # <|endoftext|>
    with open(os.path.join(d, "config.json"), "w") as f:
        json.dump(config, f, indent=2)
    t = safetensors(os.path.join(TINY, "model.safetensors"))
    rng = np.random.default_rng(11)
    for name in ("model.embed_tokens.weight", "lm_head.weight"):
        a = t[name]
        assert a.shape[0] == old
        extra = rng.standard_normal((4096 - old, a.shape[1])).astype(np.float32) * a.std()
        t[name] = np.concatenate([a, extra])
    write_safetensors(os.path.join(d, "model.safetensors"), t)
    for name in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(os.path.join(BUNDLED, name), d)
    return d


@pytest.fixture(scope="module")
def golden_prompt():
    return [int(x) for x in safetensors(os.path.join(TINY, "golden.safetensors"))["greedy.prompt"]]


# MARK: - token ids


def test_ids_greedy_matches_transformers_and_binding(golden_prompt):
    with open(os.path.join(TINY, "golden.json")) as f:
        want = json.load(f)["greedy"]["tokens"]
    ids = [str(i) for i in golden_prompt]
    r = run_json(TINY, "--ids", *ids, "-n", str(len(want)))
    assert r["prompt_ids"] == golden_prompt
    assert r["output_ids"] == want
    assert r["text"] is None and r["prompt"] is None
    s = glm5.Model(TINY).session()
    s.append(golden_prompt)
    toks, lps = s.generate(len(want))
    assert list(toks) == want
    assert np.array_equal(np.float32(r["logprobs"]), lps)
    assert r["finish_reason"] == "length" and r["stop_token_id"] is None
    t = r["timings"]
    assert t["prefill_s"] > 0 and t["decode_s"] > 0 and t["decode_tokens_per_s"] > 0


def test_positional_ids_as_before():
    p = generate(TINY, "11", "42", "7", "199", "3", "-n", "6")
    lines = p.stdout.decode().splitlines()
    assert lines[0] == "prompt  11 42 7 199 3"
    got = [int(l.split()[1]) for l in lines if l.startswith("token ")]
    assert got == run_json(TINY, "--ids", "11", "42", "7", "199", "3", "-n", "6")["output_ids"]
    assert "tokens/s" in p.stderr.decode()


def test_json_sampling_matches_binding_bitwise():
    args = dict(temperature=0.8, top_p=0.9, top_k=40, min_p=0.02, seed=3)
    r = run_json(TINY, "--ids", "5", "6", "7", "-n", "12", "--temperature", "0.8", "--top-p", "0.9",
                 "--top-k", "40", "--min-p", "0.02", "--seed", "3", "--ignore-eos")
    s = glm5.Model(TINY).session()
    s.append([5, 6, 7])
    want = s.sample(12, ignore_eos=True, **args)
    assert r["output_ids"] == list(want.tokens)
    for k in ("logprobs", "scaled_logprobs", "processed_logprobs"):
        assert np.array_equal(np.float32(r[k]), getattr(want, k)), k
    assert r["finish_reason"] == want.finish_reason
    assert r["sampling"] == {"temperature": 0.800000011920929, "top_k": 40, "top_p": 0.8999999761581421,
                             "min_p": 0.019999999552965164, "seed": 3, "max_new_tokens": 12, "ignore_eos": True}


def test_stops_at_eos():
    # tiny-dsa's eos is 1: find a seed whose continuation draws it, then it must stop there.
    m = glm5.Model(TINY)
    for seed in range(200):
        s = m.session()
        s.append([5, 6, 7])
        w = s.sample(40, temperature=1.5, seed=seed)
        if w.finish_reason == "stop":
            break
    else:
        pytest.skip("no seed draws eos")
    r = run_json(TINY, "--ids", "5", "6", "7", "-n", "40", "--temperature", "1.5", "--seed", str(seed))
    assert r["output_ids"] == list(w.tokens) and r["finish_reason"] == "stop" and r["stop_token_id"] == 1
    r = run_json(TINY, "--ids", "5", "6", "7", "-n", "40", "--temperature", "1.5", "--seed", str(seed), "--ignore-eos")
    assert len(r["output_ids"]) == 40 and r["finish_reason"] == "length"


def test_errors_are_clean(tmp_path):
    p = generate(TINY, "--prompt", "hello", check=False)
    assert p.returncode != 0 and b"no tokenizer.json" in p.stderr and b"--ids" in p.stderr
    p = generate(TINY, check=False)
    assert p.returncode != 0 and b"--prompt" in p.stderr
    p = generate(str(tmp_path / "missing"), "--ids", "1", check=False)
    assert p.returncode != 0 and b"no such file" in p.stderr
    p = run("chat", TINY, stdin=b"hi\n", check=False)
    assert p.returncode != 0 and b"no tokenizer.json" in p.stderr


def test_default_model_is_the_bundled_one(tmp_path):
    # Run from a folder without models/: the executable's checkout provides it.
    p = run("generate", "--prompt", "def", "-n", "4", cwd=str(tmp_path), check=False)
    assert p.returncode == 0, p.stderr.decode()


def test_bundled_greedy_continuation():
    prompt, n, want = BUNDLED_GREEDY
    assert run("generate", "--prompt", prompt, "-n", str(n), cwd=ROOT).stdout.decode() == want


# MARK: - text


def test_text_prompt_streams_the_decoded_continuation(text_model):
    prompt = "def add(a, b):\n    return"
    r = run_json(text_model, "--prompt", prompt, "-n", "16", "--ignore-eos")
    tok = glm5.Tokenizer(text_model)
    assert r["prompt_ids"] == list(tok.encode(prompt))
    s = glm5.Model(text_model).session()
    s.append(r["prompt_ids"])
    toks, _ = s.generate(16)
    assert r["output_ids"] == list(toks)
    assert r["text"] == tok.decode(toks)
    # The streamed text is the same bytes (no newline added when stdout is not a terminal).
    p = generate(text_model, "--prompt", prompt, "-n", "16", "--ignore-eos")
    assert p.stdout == tok.decode_bytes(toks)
    assert b"prefill" in p.stderr and b"decode 16 tokens" in p.stderr
    # --ids on a folder with a tokenizer also prints text.
    p = generate(text_model, "--ids", *[str(i) for i in r["prompt_ids"]], "-n", "16", "--ignore-eos")
    assert p.stdout == tok.decode_bytes(toks)


def test_show_logprobs_lists_each_piece(text_model):
    r = run_json(text_model, "--prompt", "import os", "-n", "5", "--temperature", "0.9", "--seed", "2", "--ignore-eos")
    p = generate(text_model, "--prompt", "import os", "-n", "5", "--temperature", "0.9", "--seed", "2", "--ignore-eos",
            "--show-logprobs")
    lines = p.stdout.decode().splitlines()
    assert len(lines) == 5
    tok = glm5.Tokenizer(text_model)
    for line, id, lp in zip(lines, r["output_ids"], r["logprobs"]):
        f = line.split("\t")
        assert int(f[0]) == id
        assert json.loads(f[1]) == tok.token_to_piece(id).decode("utf-8", "replace")
        words = f[2].split()
        assert words[0] == "logprob" and abs(float(words[1]) - lp) <= 6e-5


def test_chat_two_turns_keep_the_session(text_model):
    p = run("chat", text_model, "-n", "6", "--system", "Be brief.", stdin=b"hello\nsecond turn\n", check=True)
    replies = p.stdout.decode().split("\n")
    assert len(replies) == 3 and replies[2] == ""
    tok = glm5.Tokenizer(text_model)
    m = glm5.Model(text_model)
    stops = [4091, 4093, 4087]  # <|user|>, <|observation|>, <|endoftext|>
    s = m.session()
    s.append(list(tok.encode("[gMASK]<sop><|system|>\nBe brief.<|user|>\nhello<|assistant|>\n")))
    r1 = s.sample(6, temperature=0, stop_token_ids=stops)
    assert replies[0] == tok.decode(r1.tokens, skip_special_tokens=True)
    if r1.finish_reason == "stop" and r1.stop_token_id != 4091:
        s.truncate(s.n_tokens - 1)
    head = "" if r1.stop_token_id == 4091 else "<|user|>"
    s.append(list(tok.encode(head + "\nsecond turn<|assistant|>\n")))
    r2 = s.sample(6, temperature=0, stop_token_ids=stops)
    assert replies[1] == tok.decode(r2.tokens, skip_special_tokens=True)


def test_chat_needs_a_template(text_model, tmp_path):
    d = tmp_path / "no-template"
    shutil.copytree(text_model, d)
    with open(d / "tokenizer_config.json") as f:
        cfg = json.load(f)
    del cfg["chat_template"]
    with open(d / "tokenizer_config.json", "w") as f:
        json.dump(cfg, f)
    p = run("chat", str(d), stdin=b"hi\n", check=False)
    assert p.returncode != 0 and b"no chat_template" in p.stderr
    # End of input at once: a clean, empty exit.
    p = run("chat", text_model, stdin=b"")
    assert p.stdout == b""
