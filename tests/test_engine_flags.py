"""vLLM and SGLang commands for a draft strategy (perfmodel/engine_flags.py) and advise's use of them.

Expected flags are the engines' documented spellings (read 2026-12):
- vLLM docs/features/speculative_decoding/: draft_model.md ('--speculative-config' with "model",
  "num_speculative_tokens", "method": "draft_model"), n_gram.md (method "ngram",
  "prompt_lookup_max"), mtp.md (method "mtp"), eagle (method "eagle" with the head as "model");
- SGLang docs/advanced_features/speculative_decoding.md: STANDALONE + --speculative-draft-model-path,
  EAGLE for heads and for MTP models, NGRAM; top-k 1 means num-draft-tokens = num-steps + 1.
"""

from __future__ import annotations

import json
import shlex

import pytest
from typer.testing import CliRunner

from magicdec_model.cli.main import app
from magicdec_model.perfmodel.architecture import get_model
from magicdec_model.perfmodel.engine_flags import EAGLE_HEAD, engine_commands

pytestmark = pytest.mark.unit
runner = CliRunner()
TARGET = get_model("llama-3.1-8b")


def _by_engine(cmds):
    assert [c.engine for c in cmds] == ["vllm", "sglang"]
    return cmds[0], cmds[1]


def _spec(vllm_cmd) -> dict:
    argv = list(vllm_cmd.argv)
    assert argv[:3] == ["vllm", "serve", "meta-llama/Llama-3.1-8B"]
    return json.loads(argv[argv.index("--speculative-config") + 1])


def _flags(sglang_cmd) -> dict[str, str]:
    argv = list(sglang_cmd.argv)
    assert argv[:5] == ["python", "-m", "sglang.launch_server", "--model-path", "meta-llama/Llama-3.1-8B"]
    return dict(zip(argv[5::2], argv[6::2], strict=True))


def test_draft_model_full_kv():
    draft = get_model("llama-3.2-1b")
    vllm, sglang = _by_engine(engine_commands(TARGET, "llama-3.2-1b", "full", 4, 8, draft))
    assert vllm.runs_as_modelled and sglang.runs_as_modelled
    assert _spec(vllm) == {"method": "draft_model", "model": "meta-llama/Llama-3.2-1B",
                           "num_speculative_tokens": 4}
    assert vllm.argv[vllm.argv.index("--tensor-parallel-size") + 1] == "8"
    assert _flags(sglang) == {"--tp-size": "8", "--speculative-algorithm": "STANDALONE",
                              "--speculative-draft-model-path": "meta-llama/Llama-3.2-1B",
                              "--speculative-num-steps": "4", "--speculative-eagle-topk": "1",
                              "--speculative-num-draft-tokens": "5"}


def test_sparse_kv_drafts_are_not_run_as_modelled():
    for cmd in engine_commands(TARGET, "self", "streamingllm", 3, 1):
        assert not cmd.runs_as_modelled and cmd.argv == () and "MagicDec" in cmd.note
    vllm, sglang = _by_engine(engine_commands(TARGET, "llama-3.2-1b", "streamingllm", 3, 1,
                                              get_model("llama-3.2-1b")))
    for cmd in (vllm, sglang):  # the closest runnable command, flagged
        assert not cmd.runs_as_modelled and cmd.argv and "full KV cache" in cmd.note
    assert _spec(vllm)["method"] == "draft_model"


def test_eagle_mtp_ngram():
    vllm, sglang = _by_engine(engine_commands(TARGET, "eagle", "full", 3, 1))
    assert _spec(vllm) == {"method": "eagle", "model": EAGLE_HEAD, "num_speculative_tokens": 3}
    assert _flags(sglang)["--speculative-algorithm"] == "EAGLE"
    assert _flags(sglang)["--speculative-draft-model-path"] == EAGLE_HEAD
    assert EAGLE_HEAD in vllm.note  # the placeholder is explained
    vllm, sglang = _by_engine(engine_commands(TARGET, "mtp", "full", 1, 1))
    assert _spec(vllm) == {"method": "mtp", "num_speculative_tokens": 1}
    # SGLang's MTP example: EAGLE, 1 step, top-k 1, 2 draft tokens
    assert _flags(sglang) == {"--tp-size": "1", "--speculative-algorithm": "EAGLE",
                              "--speculative-num-steps": "1", "--speculative-eagle-topk": "1",
                              "--speculative-num-draft-tokens": "2"}
    vllm, sglang = _by_engine(engine_commands(TARGET, "ngram", "full", 5, 1))
    assert _spec(vllm) == {"method": "ngram", "num_speculative_tokens": 5, "prompt_lookup_max": 4}
    assert _flags(sglang)["--speculative-algorithm"] == "NGRAM" and "CUDA" in sglang.note


def test_tree_gives_sglang_its_node_count():
    _, sglang = _by_engine(engine_commands(TARGET, "eagle", "full", 4, 1, verify_tokens=21))
    flags = _flags(sglang)
    assert flags["--speculative-num-steps"] == "4" and flags["--speculative-num-draft-tokens"] == "21"
    assert "--speculative-eagle-topk" not in flags  # the tree's branching is the user's


def test_shell_quoting_round_trips():
    vllm, _ = _by_engine(engine_commands(TARGET, "ngram", "full", 3, 2))
    assert shlex.split(vllm.shell) == list(vllm.argv)


def test_advise_prints_the_recommendation_flags():
    args = ["advise", "--model", "llama-3.1-8b", "--gpus", "8", "--batch", "64", "--seq-len", "32k"]
    text = runner.invoke(app, args)
    assert text.exit_code == 0, text.output
    assert "engine flags" in text.output
    assert "vllm serve meta-llama/Llama-3.1-8B --tensor-parallel-size 8 \\\n" in text.output
    assert "--speculative-config '{" in text.output
    assert "python -m sglang.launch_server --model-path meta-llama/Llama-3.1-8B \\\n" in text.output
    assert "--tp-size 8" in text.output
    assert max(len(line) for line in text.output.splitlines()) <= 80
    doc = json.loads(runner.invoke(app, [*args, "--format", "json"]).output)
    recs = doc["engine_commands"]
    top = next(c for c in doc["candidates"] if c["rank"] == 1)
    assert recs[0]["strategy"] == top["strategy"]
    # the first recommendation vLLM has a command for (a sparse-KV self-draft has none) carries that
    # candidate's gamma
    vllm, strategy = next((c, r["strategy"]) for r in recs for c in r["commands"]
                          if c["engine"] == "vllm" and "--speculative-config" in (c.get("argv") or []))
    gamma = next(c["gamma"] for c in doc["candidates"] if c["strategy"] == strategy and c["rank"])
    spec = json.loads(vllm["argv"][vllm["argv"].index("--speculative-config") + 1])
    assert spec["num_speculative_tokens"] == gamma
    # where the top candidate is not run as modelled, a runnable one follows
    if not any(c["runs_as_modelled"] for c in recs[0]["commands"]):
        assert len(recs) == 2 and any(c["runs_as_modelled"] for c in recs[1]["commands"])


def _pasted(lines: list[str]) -> list[str]:
    """What a POSIX shell passes the program for these lines (a backslash-newline joins lines)."""
    return shlex.split("\n".join(lines).replace("\\\n", " "))


@pytest.mark.parametrize("draft, kv, gpus", [("llama-3.2-1b", "full", 8), ("eagle", "full", 1),
                                              ("ngram", "full", 4096), ("mtp", "full", 2)])
def test_printed_commands_fit_80_columns_and_paste_back(draft, kv, gpus):
    from magicdec_model.cli.engine_commands import command_lines

    arch = get_model(draft) if draft.startswith("llama") else None
    for cmd in engine_commands(get_model("llama-3.1-405b"), draft, kv, 16, gpus, arch):
        lines = command_lines(cmd.argv)
        assert max(len(line) for line in lines) <= 80, lines
        pasted = _pasted(lines)
        assert len(pasted) == len(cmd.argv)
        for got, want in zip(pasted, cmd.argv, strict=True):
            if want.startswith("{"):
                assert json.loads(got) == json.loads(want)  # line breaks inside the JSON are whitespace
            else:
                assert got == want
