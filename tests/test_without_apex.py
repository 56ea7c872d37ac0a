"""NVIDIA apex is optional: with every apex module made impossible to import,
the plugin imports, fairseq-train runs a few ot_seq updates, and fairseq
falls back to its own Adam and torch's LayerNorm (its fused apex versions
are used only when apex is installed and CUDA is present)."""

import json
import math
import sys

from conftest import TINY_TRANSFORMER, USER_DIR, run_cli

# Run in a fresh interpreter: refuse apex and its compiled extensions before
# anything imports them, train, then report what fairseq picked.
WITHOUT_APEX = r"""
import importlib.abc, json, sys

BLOCKED = {"apex", "fused_adam_cuda", "fused_layer_norm_cuda", "xentropy_cuda", "amp_C"}

class RefuseApex(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ModuleNotFoundError(f"No module named {name!r} (blocked by the test)", name=name)
        return None

sys.meta_path.insert(0, RefuseApex())
try:
    import apex  # noqa: F401
    raise SystemExit("apex was importable")
except ModuleNotFoundError:
    pass

import torch
import fairseq_ot.cli
sys.argv = ["fairseq-train", *sys.argv[1:]]
fairseq_ot.cli.train()

from fairseq.modules import LayerNorm, layer_norm
from fairseq.optim.adam import Adam, FairseqAdam, FairseqAdamConfig
from fairseq.optim.fused_adam import get_fused_adam_class
adam = FairseqAdam(FairseqAdamConfig(lr=[0.1], adam_betas="(0.9, 0.999)"), [torch.nn.Parameter(torch.zeros(2))])
print("FALLBACKS " + json.dumps({
    "apex_modules": sorted(m for m in sys.modules if m.split(".")[0] in BLOCKED),
    "fused_layernorm": layer_norm.has_fused_layernorm,
    "fused_adam_class": repr(get_fused_adam_class()),
    "layer_norm": type(LayerNorm(8)).__module__ + "." + type(LayerNorm(8)).__name__,
    "adam": type(adam._optimizer).__module__ + "." + type(adam._optimizer).__name__,
}))
"""


def test_plugin_trains_without_apex_on_fairseq_fallbacks(toy_data_bin, tmp_path):
    script = tmp_path / "without_apex.py"
    script.write_text(WITHOUT_APEX)
    _, output = run_cli(
        sys.executable, script, toy_data_bin, "--user-dir", USER_DIR, "--cpu",
        "--task", "translation", *TINY_TRANSFORMER, "--criterion", "ot_seq",
        "--optimizer", "adam", "--lr", "0.001", "--max-tokens", "1000", "--max-update", "3",
        "--log-format", "json", "--log-interval", "1", "--save-dir", tmp_path / "ckpt", "--no-save",
    )
    records = [json.loads(line.split("| train_inner | ", 1)[1])
               for line in output.splitlines() if "| train_inner | {" in line]
    assert [int(r["num_updates"]) for r in records] == [1, 2, 3], output[-3000:]
    assert all(math.isfinite(float(r["loss"])) for r in records)
    fallbacks = json.loads(output.split("FALLBACKS ", 1)[1].splitlines()[0])
    assert fallbacks == {
        "apex_modules": [],
        "fused_layernorm": False,
        "fused_adam_class": "None",
        "layer_norm": "torch.nn.modules.normalization.LayerNorm",
        "adam": "fairseq.optim.adam.Adam",
    }
