"""The serving-engine command line that runs a draft strategy: vLLM's ``--speculative-config``
JSON and SGLang's ``--speculative-*`` flags, or why the engine cannot run it.

What each engine supports, and the spelling of its flags, are taken from the engines' own
documentation (read 2026-12; the page is named beside each rule in :data:`SOURCES`):

* vLLM: one ``--speculative-config`` JSON object.  A draft model is
  ``{"method": "draft_model", "model": ID, "num_speculative_tokens": gamma}``; an EAGLE head is
  method ``eagle`` (``eagle3`` for EAGLE-3 heads) with the head's id as ``model``; a model's own MTP
  module is method ``mtp``; n-gram prompt lookup is method ``ngram`` with ``prompt_lookup_max``.
* SGLang: ``--speculative-algorithm`` ``STANDALONE`` (a small draft model, with
  ``--speculative-draft-model-path``), ``EAGLE`` / ``EAGLE3`` (heads; also the MTP path of MTP
  models), ``NGRAM`` (CUDA only); a chain of gamma draft tokens is ``--speculative-num-steps
  gamma --speculative-eagle-topk 1 --speculative-num-draft-tokens gamma+1`` (with top-k 1 SGLang
  sets the draft tokens to steps + 1 itself).
* Neither engine documents a draft with a sparse KV cache (StreamingLLM sink + window, SnapKV
  top-k): MagicDec's self-speculation and budget-KV small drafts need MagicDec's own code.  For
  a small draft with a budget KV the closest runnable command (the same draft with its full KV)
  is returned, marked as not what was modelled.

Nothing here imports an engine; the commands are text for the user to run.
"""

from __future__ import annotations

import json
import shlex
from dataclasses import dataclass
from pathlib import Path

from .acceptance import BUDGET_KV_METHODS
from .architecture import ModelArch

#: the documentation each rule above was taken from
SOURCES: dict[str, str] = {
    "vllm": "docs.vllm.ai/en/latest/features/speculative_decoding/",
    "sglang": "docs.sglang.io/docs/advanced_features/speculative_decoding",
}

ENGINES = ("vllm", "sglang")

#: stands for the EAGLE head's Hugging Face id, which the registry does not know
EAGLE_HEAD = "EAGLE_HEAD_ID"

#: draft KV methods that keep a budget of the context (no engine runs these)
SPARSE_KV = BUDGET_KV_METHODS


@dataclass(frozen=True)
class EngineCommand:
    """One engine's command for one draft strategy.

    ``runs_as_modelled``: the engine runs the strategy as predicted.  When it does not, ``argv``
    is either empty (nothing close) or the closest command it can run, and ``note`` says why.
    """

    engine: str
    runs_as_modelled: bool
    argv: tuple[str, ...]
    note: str = ""

    @property
    def shell(self) -> str:
        """``argv`` quoted for a POSIX shell ('' when there is no command)."""
        return shlex.join(self.argv) if self.argv else ""


def _model_id(arch: ModelArch) -> str:
    """What the engines load: the record's Hugging Face id, else the config.json's folder."""
    if arch.hf_id:
        return arch.hf_id
    prefix = "config.json at "  # hf_config's source of a record read from a file
    if arch.source.startswith(prefix):
        return str(Path(arch.source[len(prefix):]).parent)
    return arch.name


def _vllm(target: str, gpus: int, spec: dict[str, object]) -> tuple[str, ...]:
    return ("vllm", "serve", target, "--tensor-parallel-size", str(gpus),
            "--speculative-config", json.dumps(spec, separators=(",", ":")))


def _sglang(target: str, gpus: int, *flags: str) -> tuple[str, ...]:
    return ("python", "-m", "sglang.launch_server", "--model-path", target, "--tp-size", str(gpus), *flags)


def _chain(gamma: int, verify_tokens: int | None) -> tuple[str, ...]:
    if verify_tokens is not None and verify_tokens > gamma + 1:  # a tree: SGLang's top-k > 1
        return ("--speculative-num-steps", str(gamma), "--speculative-num-draft-tokens", str(verify_tokens))
    return ("--speculative-num-steps", str(gamma), "--speculative-eagle-topk", "1",
            "--speculative-num-draft-tokens", str(gamma + 1))


def engine_commands(
    target: ModelArch,
    draft: str,
    kv_method: str,
    gamma: int,
    gpus: int = 1,
    draft_arch: ModelArch | None = None,
    verify_tokens: int | None = None,
) -> list[EngineCommand]:
    """vLLM's and SGLang's commands for ``draft`` (self, a registry model, eagle, mtp, ngram) with
    ``kv_method`` and ``gamma`` draft tokens per step on ``gpus`` tensor-parallel GPUs."""
    tid = _model_id(target)
    if draft == "self":
        why = (f"neither engine documents self-speculation with a {kv_method} draft KV cache; "
               f"MagicDec's own implementation (github.com/Infini-AI-Lab/MagicDec) runs it")
        return [EngineCommand(e, False, (), why) for e in ENGINES]
    if draft == "ngram":
        return [
            EngineCommand("vllm", True, _vllm(tid, gpus, {"method": "ngram", "num_speculative_tokens": gamma,
                                                          "prompt_lookup_max": 4})),
            EngineCommand("sglang", True, _sglang(tid, gpus, "--speculative-algorithm", "NGRAM",
                                                  "--speculative-num-draft-tokens", str(gamma + 1),
                                                  "--speculative-ngram-max-bfs-breadth", "1"),
                          "SGLang's n-gram drafting runs on CUDA only"),
        ]
    if draft == "mtp":
        return [
            EngineCommand("vllm", True, _vllm(tid, gpus, {"method": "mtp", "num_speculative_tokens": gamma}),
                          "vLLM runs MTP for the model families it supports"),
            EngineCommand("sglang", True, _sglang(tid, gpus, "--speculative-algorithm", "EAGLE",
                                                  *_chain(gamma, verify_tokens)),
                          "SGLang runs an MTP module through its EAGLE path"),
        ]
    if draft == "eagle":
        head = (f"{EAGLE_HEAD}: the Hugging Face id of an EAGLE head trained for {tid} "
                f"(method eagle3 / EAGLE3 for EAGLE-3 heads)")
        return [
            EngineCommand("vllm", True, _vllm(tid, gpus, {"method": "eagle", "model": EAGLE_HEAD,
                                                          "num_speculative_tokens": gamma}), head),
            EngineCommand("sglang", True, _sglang(tid, gpus, "--speculative-algorithm", "EAGLE",
                                                  "--speculative-draft-model-path", EAGLE_HEAD,
                                                  *_chain(gamma, verify_tokens)), head),
        ]
    did = _model_id(draft_arch) if draft_arch is not None else draft
    vllm = _vllm(tid, gpus, {"method": "draft_model", "model": did, "num_speculative_tokens": gamma})
    sglang = _sglang(tid, gpus, "--speculative-algorithm", "STANDALONE", "--speculative-draft-model-path",
                     did, *_chain(gamma, verify_tokens))
    if kv_method in SPARSE_KV:
        why = (f"neither engine documents a draft with a {kv_method} KV budget; this command runs "
               f"{did} with its full KV cache, which the prediction did not assume")
        return [EngineCommand("vllm", False, vllm, why), EngineCommand("sglang", False, sglang, why)]
    return [EngineCommand("vllm", True, vllm), EngineCommand("sglang", True, sglang)]


@dataclass(frozen=True)
class Recommendation:
    """The engine commands of one ranked candidate (``label``: its strategy, ``speedup``: predicted)."""

    label: str
    speedup: float
    commands: list[EngineCommand]

    @property
    def runs_as_modelled(self) -> bool:
        """Some engine runs this candidate as it was predicted."""
        return any(c.runs_as_modelled for c in self.commands)


def _recommendation(row, target: ModelArch, gpus: int) -> Recommendation:
    from .architecture import get_model

    draft = str(row["draft"])
    draft_arch = None if draft in ("self", "eagle", "mtp", "ngram") else get_model(draft)
    commands = engine_commands(target, draft, str(row["kv_method"]), int(row["gamma"]), gpus, draft_arch)
    return Recommendation(str(row.get("strategy", draft)), float(row["speedup"]), commands)


def recommendations(ranking, target: ModelArch, gpus: int) -> list[Recommendation]:
    """Engine commands for an advisor's ranking (a DataFrame with rank, draft, kv_method, gamma,
    speedup): the top-ranked candidate, then, where no engine runs it as modelled, the best-ranked
    candidate that one does.  Empty when no candidate is ranked."""
    ranked = ranking[ranking["rank"] > 0].sort_values("rank")
    if ranked.empty:
        return []
    out = [_recommendation(ranked.iloc[0], target, gpus)]
    if not out[0].runs_as_modelled:
        for _, row in ranked.iloc[1:].iterrows():
            rec = _recommendation(row, target, gpus)
            if rec.runs_as_modelled:
                out.append(rec)
                break
    return out
