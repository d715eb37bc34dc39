"""Shared CLI options, list parsing and the bad-input guard (exit code 2, one line, no traceback)."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Annotated, Any, TypeVar

import typer

from magicdec_model.perfmodel.errors import InputError
from magicdec_model.perfmodel.inputs import parse_float, parse_int_list

from .completion import complete_draft, complete_engine, complete_hardware, complete_model

F = TypeVar("F", bound=Callable[..., Any])


def guard(func: F) -> F:
    """Turn :class:`InputError` into a one-line message on stderr and exit code 2."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except InputError as exc:
            from .exits import name_flag, print_error

            print_error(name_flag(str(exc), _given(func, kwargs)))
            raise typer.Exit(2) from None

    return wrapper  # type: ignore[return-value]


def _given(func: Callable[..., Any], kwargs: dict[str, Any]) -> list[tuple[str, str]]:
    """(flag, value) of the options of ``func`` set to other text than their defaults."""
    import inspect
    import typing

    out = []
    try:
        hints = typing.get_type_hints(func, include_extras=True)
        params = inspect.signature(func).parameters
    except (TypeError, NameError):  # pragma: no cover - unresolvable annotations
        return out
    for name, value in kwargs.items():
        p = params.get(name)
        if not isinstance(value, str) or p is None or value == p.default:
            continue
        for meta in getattr(hints.get(name), "__metadata__", ()):
            decls = [d for d in getattr(meta, "param_decls", ()) or () if d.startswith("--")]
            if type(meta).__name__ == "OptionInfo":
                out.append((decls[0] if decls else "--" + name.replace("_", "-"), value))
    return out


def int_list(text: str, flag: str) -> list[int]:
    """Parse a comma-separated list of integers ('32,64,128'; '8k' = 8000, '1m'), each within the
    flag's bounds (:data:`perfmodel.inputs.LIMITS`); an item may be a range START:STOP:COUNT
    (COUNT integers spaced geometrically: '1:256:9', '1k:128k:8')."""
    return parse_int_list(text, flag)


def grid_list(text: str, flag: str) -> list[int]:
    """:func:`int_list` sorted, without repeats (the axes of a report)."""
    return sorted(set(int_list(text, flag)))


def names(text: str, flag: str) -> list[str]:
    """A comma-separated list of names (drafts, KV methods), without repeats, at least one."""
    items = list(dict.fromkeys(t.strip() for t in str(text).split(",") if t.strip()))
    if not items:
        raise InputError(f"{flag} {_short(text)} is empty; allowed: one or more comma-separated names")
    return items


def gamma_list(text: str) -> list[int] | str:
    """Parse ``--gamma``: 'auto' or a comma-separated list of integers in 1..16."""
    from magicdec_model.perfmodel.speculative import GAMMA_MAX

    if str(text).strip().lower() == "auto":
        return "auto"
    try:
        return parse_int_list(text, "--gamma", 1, GAMMA_MAX)
    except InputError:
        raise InputError(
            f"--gamma {_short(text)} is not allowed; allowed: integers 1..{GAMMA_MAX}, comma-separated, "
            f"or auto"
        ) from None


def acceptance_value(text: str | None) -> float | None:
    """Parse ``--acceptance``: a number in [0, 1), or None to use the acceptance table."""
    if text is None or text.strip().lower() in ("", "table", "auto"):
        return None
    return parse_float(text, "--acceptance", 0.0, 1.0, hi_open=True)


def _short(text: str, n: int = 60) -> str:
    r = repr(str(text))
    return r if len(r) <= n else r[: n - 3] + "..."


Model = Annotated[
    str, typer.Option("--model", "-m", help="Target: registry name or Hugging Face id (any case), "
                      "or path to a config.json.", autocompletion=complete_model)
]
#: How every integer-list flag may be written (options.int_list), for the help texts.
RANGES_HELP = "comma-separated and/or START:STOP:COUNT ranges (geometric: 1:256:9 = 1,2,4,...,256)"
#: Every draft kind --draft takes (perfmodel.drafts.make_draft), for the help texts.
DRAFT_KINDS_HELP = ("'self' (the target with a sparse KV budget), a registry draft model (e.g. "
                    "llama-3.2-1b, tinyllama-1.1b: same tokenizer), 'eagle' (an EAGLE head), 'mtp' (the "
                    "model's MTP module) or 'ngram' (prompt lookup)")

DraftOpt = Annotated[str, typer.Option("--draft", help=f"Draft: {DRAFT_KINDS_HELP}.",
                                        autocompletion=complete_draft)]
DraftList = Annotated[
    str, typer.Option("--draft", help=f"Draft(s), comma-separated: {DRAFT_KINDS_HELP}; several give one "
                      "set of rows per draft.", autocompletion=complete_draft)
]
KvBudget = Annotated[
    str, typer.Option("--kv-budget", help=f"Draft KV budget(s) in tokens, {RANGES_HELP}.")
]
KvMethod = Annotated[
    str, typer.Option("--kv-method", help="Draft KV: streamingllm, snapkv, full, or auto (streamingllm "
                      "for self and model drafts, full for EAGLE/MTP heads).")
]
KvMethodList = Annotated[
    str, typer.Option("--kv-method", help="Draft KV method(s), comma-separated: streamingllm, snapkv, full, "
                      "or auto (streamingllm for self and model drafts, full for EAGLE/MTP heads).")
]
Hardware = Annotated[
    str, typer.Option("--hardware", help="Profile name (see 'hardware list') or a .toml path.",
                      autocompletion=complete_hardware)
]
Gpus = Annotated[str, typer.Option("--gpus", help=f"Tensor-parallel GPU count(s), {RANGES_HELP}.")]
Batch = Annotated[str, typer.Option("--batch", help=f"Batch size(s), {RANGES_HELP}.")]
SeqLen = Annotated[
    str, typer.Option("--seq-len", help=f"Context length(s) in tokens, {RANGES_HELP}; 8k = 8000.")
]
Gamma = Annotated[str, typer.Option("--gamma", help="Speculation length(s) 1..16, or 'auto'.")]
Acceptance = Annotated[
    str | None,
    typer.Option("--acceptance", help="Per-token acceptance alpha of Eq. 1, in [0, 1); default: "
                 "measurements, else the acceptance model."),
]
AcceptanceTable = Annotated[
    str | None,
    typer.Option("--acceptance-table", help="CSV of your own acceptance measurements."),
]
Ideal = Annotated[
    bool, typer.Option("--ideal", help="Speed of light: datasheet peaks, no efficiencies or fixed costs.")
]
EngineOpt = Annotated[
    str | None,
    typer.Option("--engine", help="Serving-engine profile: name (see 'engines list') or a .toml from "
                 "'calibrate'; default: generic.", autocompletion=complete_engine),
]
WeightDtype = Annotated[
    str, typer.Option("--weight-dtype", help="Weights: native (the checkpoint's), fp32 (runs in "
                      "fp32), bf16, fp16, fp8, int4 (group-128 scales) or mxfp4.")
]
KvDtype = Annotated[
    str, typer.Option("--kv-dtype", help="KV cache: native (the activations'), fp32, bf16, fp16 or fp8.")
]
AcceptLen = Annotated[
    float | None,
    typer.Option("--accept-len", help="Mean tokens per SD step, bonus included (as EAGLE papers "
                 "report); needs a fixed --gamma."),
]
AcceptRate = Annotated[
    float | None,
    typer.Option("--accept-rate", help="Accepted / drafted tokens as engines report it (tokens per "
                 "step = 1 + rate x gamma); needs the one --gamma it was measured at."),
]
PositionAcceptance = Annotated[
    str | None,
    typer.Option("--position-acceptance", help="Per-position acceptance rates, comma-separated "
                 "(P(draft token i accepted), non-increasing)."),
]
DraftFraction = Annotated[
    float, typer.Option("--draft-fraction", help="Fraction of steps in which the draft proposes "
                        "(n-gram: steps with a match); the rest verify one token.")
]
VerifyTokens = Annotated[
    int | None,
    typer.Option("--verify-tokens", help="Tree verification: tokens (tree nodes) verified per "
                 "sequence per step; --gamma is the tree's depth. Default: a chain of gamma+1."),
]
DraftVocab = Annotated[
    int | None,
    typer.Option("--draft-vocab", help="EAGLE head: its reduced draft vocabulary (default: the target's)."),
]
ExpertParallel = Annotated[
    bool, typer.Option("--expert-parallel", help="MoE: whole experts per GPU (E/G) instead of each "
                       "expert split over the GPUs.")
]


def float_list(text: str | None, flag: str) -> list[float] | None:
    """Parse a comma-separated list of numbers (None passes through)."""
    if text is None:
        return None
    out = []
    for raw in text.split(","):
        try:
            out.append(float(raw))
        except ValueError:
            raise InputError(f"{flag} {raw.strip()!r} is not a number; allowed: numbers, "
                             f"comma-separated (e.g. 0.9,0.7,0.5)") from None
    return out
