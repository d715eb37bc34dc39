"""The table-printing commands of the CLI, with what their output must hold whole at any width
(shared by test_cli_layout.py, in process, and test_cli_pipe.py, through a real pipe)."""

from __future__ import annotations

import re
from importlib import resources

STEPS_CSV = str(resources.files("magicdec_model.perfmodel").joinpath(
    "data/engines/magicdec-8xa100-ar-steps.csv"))

#: Every command that prints a table, with what its output must hold whole at any width: the
#: names of its columns (or of their block labels) and values that used to be cut at 80 columns.
COMMANDS = {
    "predict": (["predict", "--model", "llama-3.1-8b", "--gpus", "8", "--batch", "32,64,128,256",
                 "--seq-len", "8000,32000,100000", "--acceptance", "0.8"],
                [r"\d\.\d\d-\d\.\d\d", "fits memory|fit"]),
    "predict-lists": (["predict", "--draft", "self,eagle,llama-3.2-1b", "--kv-method", "auto",
                       "--batch", "1,8", "--seq-len", "8k"],
                      ["llama-3.2-1b", "draft eagle", "draft self"]),
    "advise": (["advise", "--model", "llama-3.1-8b", "--gpus", "8", "--batch", "64", "--seq-len", "32k"],
               ["llama-3.2-1b", "llama-3.2-3b", "γ|gamma", r"\d\.\d\d-\d\.\d\d", "T_V/T_T"]),
    "compare-paper": (["compare-paper"],
                      ["llama-2-7b-32k", "tinyllama-1.1b", r"\d\.\d\d-\d\.\d\d", "MAPE"]),
    "breakdown": (["breakdown", "--model", "llama-3.1-8b"],
                  ["allreduce_sampling", "engine_host_step", "step time"]),
    "models-list": (["models", "list"], ["qwen3-235b-a22b", "max pos"]),
    "models-show": (["models", "show", "deepseek-v3"], ["kv_lora_rank", "model_configs|source"]),
    "hardware-list": (["hardware", "list"], ["a100-80gb-pcie", "link GB/s"]),
    "hardware-show": (["hardware", "show", "h100-sxm"], ["989.4 TFLOP/s", "3.35 TB/s", "80 GiB"]),
    "engines-list": (["engines", "list"], ["magicdec-8xa100", r"generic \(default\)", "calibrated"]),
    "engines-show": (["engines", "show", "generic"], ["host_step_s", "2 ms"]),
    "sweep": (["sweep", "--out", "g.csv", "--gpus", "8", "--batch", "1:256:9"],
              ["wrote 72 rows", "best speedup"]),
    "calibrate": (["calibrate", "--steps", STEPS_CSV, "--model", "llama-2-7b-32k", "--gpus", "8",
                   "--out", "e.toml"], ["host_step_s", "attention_bw", "of peak", "fitted"]),
}


def _args(name: str) -> list[str]:
    """The command's arguments (run it in a scratch folder: calibrate writes e.toml there)."""
    return list(COMMANDS[name][0])


def _check(text: str, name: str, width: int) -> None:
    lines = text.splitlines()
    assert lines, name
    # a line may pass the width only where it is one word longer than a line (a path): never cut
    too_long = [ln for ln in lines if len(ln) > width and " " in ln.strip()]
    assert not too_long, (name, too_long[:3])
    assert "…" not in text and "..." not in text.replace("--top N", ""), name  # nothing cut
    for needle in COMMANDS[name][1]:
        assert re.search(needle, text), (name, needle)
    assert not re.search(r"\bnan\b", text, re.IGNORECASE), name
