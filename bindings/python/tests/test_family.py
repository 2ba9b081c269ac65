"""DeepSeek-V3.2 configs that contradict themselves are statuses with messages through the C API
(docs/architecture.md). tiny-v32 and tiny-dsa-shared are checked against their goldens by the tests that run on
every fixture (golden_dir)."""

from __future__ import annotations

import json
import os

import pytest

import glm5
from conftest import FIXTURES_DIR

V32 = FIXTURES_DIR / "tiny-v32"


def edited(tmp_path, folder, **changes):
    """A copy of `folder` (weights linked) whose config.json has `changes`."""
    for name in os.listdir(folder):
        if name != "config.json":
            os.symlink(folder / name, tmp_path / name)
    cfg = json.loads((folder / "config.json").read_text())
    cfg.update(changes)
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    return tmp_path


@pytest.mark.parametrize(
    "changes, error, needle",
    [
        (dict(indexer_types=["full", "shared", "full"]), glm5.BadFormatError, "no shared indexer layers"),
        (dict(index_topk_freq=2), glm5.BadFormatError, "index_topk_freq"),
        (dict(indexer_rope_interleave=True), glm5.UnsupportedError, "indexer_rope_interleave"),
        (dict(architectures=["GlmMoeDsaForCausalLM"]), glm5.BadFormatError, "DeepseekV32ForCausalLM"),
        (dict(num_key_value_heads=1), glm5.BadFormatError, "num_key_value_heads"),
        (dict(rope_parameters={"rope_type": "yarn", "rope_theta": 10000.0}), glm5.BadFormatError, "factor"),
    ],
)
def test_inconsistent_v32_config_is_a_status(tmp_path, changes, error, needle):
    with pytest.raises(error) as e:
        glm5.Model(edited(tmp_path, V32, **changes), threads=1)
    assert needle in e.value.message and "config.json" in e.value.message
