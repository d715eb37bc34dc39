"""The vLLM and SGLang commands for an advisor's recommendation (:mod:`perfmodel.engine_flags`),
as text lines and as JSON."""

from __future__ import annotations

import functools
import json
import shlex
import textwrap
from typing import Any

from magicdec_model.perfmodel.engine_flags import SOURCES, Recommendation, recommendations

_NAMES = {"vllm": "vLLM", "sglang": "SGLang"}


def for_advice(ranking: Any, model: str, gpus: int) -> list[Recommendation]:
    """The recommendations for ``ranking`` (advise's candidates) of ``model`` on ``gpus`` GPUs."""
    from magicdec_model.perfmodel.architecture import get_model

    return recommendations(ranking, get_model(model), int(gpus))


#: the width the advice is printed at (tests/test_cli_reports.py: 80 columns)
WIDTH = 80


def _chunks(argv: tuple[str, ...]) -> list[list[str]]:
    """The command in pieces that stay on one line: the program words, then each flag with its value."""
    first = next((i for i, a in enumerate(argv) if a.startswith("--")), len(argv))
    out = [list(argv[:first])]
    for a in argv[first:]:
        if a.startswith("--") or not out[-1] or not out[-1][0].startswith("--") or len(out[-1]) > 1:
            out.append([a])
        else:
            out[-1].append(a)
    return out


def _quoted(arg: str, room: int) -> list[str]:
    """``arg`` shell-quoted; a JSON object too long for ``room`` is split between its items, inside
    its quotes (JSON allows the line breaks)."""
    text = shlex.quote(arg)
    if len(text) <= room or not arg.startswith("{"):
        return [text]
    items = [f"{json.dumps(k)}: {json.dumps(v)}" for k, v in json.loads(arg).items()]
    out, line = [], "'{"
    for i, item in enumerate(items):
        piece = item + ("}'" if i == len(items) - 1 else ",")
        if len(line) + len(piece) + 1 > room and line not in ("'{",):
            out.append(line)
            line = "  " + piece
        else:
            line += ("" if line == "'{" else " ") + piece
    out.append(line)
    return out


def command_lines(argv: tuple[str, ...], width: int = WIDTH, indent: int = 4) -> list[str]:
    """``argv`` as shell lines of at most ``width`` columns, joined by `` \\`` continuations, to paste."""
    lines: list[str] = []
    line = " " * indent
    for chunk in _chunks(argv):
        head = " ".join(shlex.quote(a) for a in chunk[:-1])
        last = _quoted(chunk[-1], width - indent - 4 - len(head) - 1)
        text = " ".join(x for x in (head, last[0]) if x)
        if line.strip() and len(line) + 1 + len(text) + 2 > width:
            lines.append(line + " \\")
            line = " " * (indent + 2)
        line += ("" if not line.strip() else " ") + text
        for more in last[1:]:
            lines.append(line)
            line = " " * (indent + 4) + more
    lines.append(line)
    return lines


def lines(recs: list[Recommendation], width: int = WIDTH) -> list[str]:
    """Text lines of at most ``width`` columns: each recommendation, what the engines cannot do as
    modelled, and each engine's command (continued with `` \\``, to paste)."""
    if not recs:
        return []
    wrap = functools.partial(textwrap.wrap, width=width, break_on_hyphens=False, break_long_words=False)
    docs = "; ".join(SOURCES.values())
    out = wrap(f"engine flags, from the vLLM and SGLang speculative-decoding docs ({docs}):")
    for i, rec in enumerate(recs):
        tail = "" if i == 0 else ", the best-ranked candidate an engine runs as modelled"
        out += wrap(f"{rec.label} ({rec.speedup:.2f}x{tail}):", initial_indent="  ", subsequent_indent="  ")
        notes = {(c.runs_as_modelled, c.note) for c in rec.commands if c.note}
        shared = len(notes) == 1 and all(c.note for c in rec.commands)
        for cmd in rec.commands:
            note = f"{'' if cmd.runs_as_modelled else 'not as modelled: '}{cmd.note}"
            if cmd.note and not shared:
                out += wrap(f"{_NAMES[cmd.engine]}: {note}", initial_indent="    ",
                            subsequent_indent="      ")
            elif cmd.note and cmd is rec.commands[0]:
                out += wrap(note, initial_indent="    ", subsequent_indent="      ")
        for cmd in rec.commands:
            if cmd.argv:
                out += command_lines(cmd.argv, width)
    return out


def as_json(recs: list[Recommendation]) -> list[dict[str, Any]]:
    """The recommendations as JSON-ready dicts (argv lists and the shell-quoted command)."""
    return [{"strategy": r.label, "speedup": r.speedup,
             "commands": [{"engine": c.engine, "runs_as_modelled": c.runs_as_modelled,
                           "argv": list(c.argv), "command": c.shell, "note": c.note}
                          for c in r.commands]} for r in recs]
