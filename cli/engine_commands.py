"""The vLLM and SGLang commands for an advisor's recommendation (:mod:`perfmodel.engine_flags`),
as text lines and as JSON."""

from __future__ import annotations

from typing import Any

from magicdec_model.perfmodel.engine_flags import SOURCES, Recommendation, recommendations

_NAMES = {"vllm": "vLLM", "sglang": "SGLang"}


def for_advice(ranking: Any, model: str, gpus: int) -> list[Recommendation]:
    """The recommendations for ``ranking`` (advise's candidates) of ``model`` on ``gpus`` GPUs."""
    from magicdec_model.perfmodel.architecture import get_model

    return recommendations(ranking, get_model(model), int(gpus))


def lines(recs: list[Recommendation]) -> list[str]:
    """Text lines: each recommendation, what the engines cannot do as modelled, and each engine's
    command whole on one line (to paste)."""
    if not recs:
        return []
    out = ["engine flags (vLLM and SGLang speculative-decoding docs: " + "; ".join(SOURCES.values()) + "):"]
    for i, rec in enumerate(recs):
        tail = "" if i == 0 else ", the best-ranked candidate an engine runs as modelled"
        out.append(f"  {rec.label} ({rec.speedup:.2f}x{tail}):")
        notes = {(c.runs_as_modelled, c.note) for c in rec.commands if c.note}
        shared = len(notes) == 1 and all(c.note for c in rec.commands)
        for cmd in rec.commands:
            note = f"{'' if cmd.runs_as_modelled else 'not as modelled: '}{cmd.note}"
            if cmd.note and not shared:
                out.append(f"    {_NAMES[cmd.engine]}: {note}")
            elif cmd.note and cmd is rec.commands[0]:
                out.append(f"    {note}")
        out.extend(f"    {cmd.shell}" for cmd in rec.commands if cmd.argv)
    return out


def as_json(recs: list[Recommendation]) -> list[dict[str, Any]]:
    """The recommendations as JSON-ready dicts (argv lists and the shell-quoted command)."""
    return [{"strategy": r.label, "speedup": r.speedup,
             "commands": [{"engine": c.engine, "runs_as_modelled": c.runs_as_modelled,
                           "argv": list(c.argv), "command": c.shell, "note": c.note}
                          for c in r.commands]} for r in recs]
