"""Shared CLI options, list parsing and the bad-input guard (exit code 2, one line, no traceback)."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Annotated, Any, TypeVar

import typer

from magicdec_model.perfmodel.errors import InputError
from magicdec_model.perfmodel.inputs import MAX_LIST, parse_float, parse_int, parse_int_list

F = TypeVar("F", bound=Callable[..., Any])


def guard(func: F) -> F:
    """Turn :class:`InputError` into a one-line message on stderr and exit code 2."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except InputError as exc:
            from .exits import print_error

            print_error(str(exc))
            raise typer.Exit(2) from None

    return wrapper  # type: ignore[return-value]


def int_list(text: str, flag: str) -> list[int]:
    """Parse a comma-separated list of integers ('32,64,128'; '8k' = 8000, '1m'), each within the
    flag's bounds (:data:`perfmodel.inputs.LIMITS`)."""
    return parse_int_list(text, flag)


def grid_list(text: str, flag: str) -> list[int]:
    """Parse a list that may hold ranges: 'A:B:N' = N integers spaced geometrically from A to B.

    Items are comma-separated; plain items follow :func:`int_list` ('8k' = 8000).  A range keeps N
    distinct integers (steps of at least 1 where rounding would repeat a value).
    """
    import numpy as np

    out: list[int] = []
    for raw in str(text).split(","):
        item = raw.strip()
        if ":" not in item:
            out.extend(int_list(item, flag))
            continue
        parts = item.split(":")
        if len(parts) != 3:
            raise InputError(
                f"{flag} {item!r} is not a range; allowed: START:STOP:COUNT, e.g. 1:256:64 or 1k:128k:64"
            )
        lo, hi = parse_int(parts[0], flag), parse_int(parts[1], flag)
        count = parse_int(parts[2], f"{flag} range count", 1, MAX_LIST)
        if hi < lo or count > hi - lo + 1:
            raise InputError(
                f"{flag} {item!r}: need STOP >= START and COUNT <= STOP - START + 1 distinct integers"
            )
        if len(out) + count > MAX_LIST:
            raise InputError(f"{flag} {_short(text)} has more than {MAX_LIST:,} values; allowed: at most "
                             f"{MAX_LIST:,}")
        values = np.geomspace(lo, hi, count).round().astype(np.int64) if count > 1 else np.array([lo])
        for i in range(1, len(values)):  # keep COUNT distinct values: step up where rounding repeats
            values[i] = max(values[i], values[i - 1] + 1)
        if values[-1] > hi:
            values = np.linspace(lo, hi, count).round().astype(np.int64)
        out.extend(int(v) for v in values)
    return sorted(set(out))


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
    str, typer.Option("--model", "-m", help="Target: registry name or path to a config.json.")
]
DraftOpt = Annotated[
    str, typer.Option("--draft", help="'self' (target with a budget KV), a registry draft model, "
                      "'eagle' (an EAGLE head), 'mtp' (the model's MTP module) or 'ngram'.")
]
KvBudget = Annotated[
    str, typer.Option("--kv-budget", help="Draft KV budget(s) in tokens, comma-separated.")
]
KvMethod = Annotated[
    str, typer.Option("--kv-method", help="Draft KV: streamingllm, snapkv, full, or auto (streamingllm "
                      "for self and model drafts, full for EAGLE/MTP heads).")
]
Hardware = Annotated[
    str, typer.Option("--hardware", help="Profile name (see 'hardware list') or a .toml path.")
]
Gpus = Annotated[str, typer.Option("--gpus", help="Tensor-parallel GPU count(s), comma-separated.")]
Batch = Annotated[str, typer.Option("--batch", help="Batch size(s), comma-separated.")]
SeqLen = Annotated[
    str, typer.Option("--seq-len", help="Context length(s) in tokens, comma-separated; 8k = 8000.")
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
                 "'calibrate'; default: generic."),
]
WeightDtype = Annotated[
    str, typer.Option("--weight-dtype", help="Weights: native (the checkpoint's), bf16, fp16, fp8, "
                      "int4 (group-128 scales) or mxfp4.")
]
KvDtype = Annotated[str, typer.Option("--kv-dtype", help="KV cache: native (the activations'), bf16 or fp8.")]
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
