"""Shared CLI options, list parsing and the bad-input guard (exit code 2, one line, no traceback)."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from typing import Annotated, Any, TypeVar

import typer

from magicdec_model.perfmodel.errors import InputError

F = TypeVar("F", bound=Callable[..., Any])


def guard(func: F) -> F:
    """Turn :class:`InputError` into a one-line message on stderr and exit code 2."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except InputError as exc:
            print(f"error: {exc}", file=sys.stderr)
            raise typer.Exit(2) from None

    return wrapper  # type: ignore[return-value]


def int_list(text: str, flag: str) -> list[int]:
    """Parse a comma-separated list of positive integers ('32,64,128'; '8k' = 8000, '1m')."""
    out = []
    for raw in text.split(","):
        item = raw.strip().lower()
        mult = 1
        if item.endswith("k"):
            item, mult = item[:-1], 1000
        elif item.endswith("m"):
            item, mult = item[:-1], 1000_000
        try:
            value = float(item) * mult
        except ValueError:
            value = float("nan")
        if not value.is_integer() or value <= 0:
            raise InputError(
                f"{flag} {raw.strip()!r} is not a positive integer; allowed: positive integers, "
                f"comma-separated (e.g. 32,64 or 8k,32k)"
            )
        out.append(int(value))
    return out


def grid_list(text: str, flag: str) -> list[int]:
    """Parse a list that may hold ranges: 'A:B:N' = N integers spaced geometrically from A to B.

    Items are comma-separated; plain items follow :func:`int_list` ('8k' = 8000).  A range keeps N
    distinct integers (steps of at least 1 where rounding would repeat a value).
    """
    import numpy as np

    out: list[int] = []
    for raw in text.split(","):
        item = raw.strip()
        if ":" not in item:
            out.extend(int_list(item, flag))
            continue
        parts = item.split(":")
        if len(parts) != 3:
            raise InputError(
                f"{flag} {item!r} is not a range; allowed: START:STOP:COUNT, e.g. 1:256:64 or 1k:128k:64"
            )
        lo, hi = int_list(parts[0], flag)[0], int_list(parts[1], flag)[0]
        count = int_list(parts[2], f"{flag} range count")[0]
        if hi < lo or count > hi - lo + 1:
            raise InputError(
                f"{flag} {item!r}: need STOP >= START and COUNT <= STOP - START + 1 distinct integers"
            )
        values = np.geomspace(lo, hi, count).round().astype(int) if count > 1 else np.array([lo])
        for i in range(1, len(values)):  # keep COUNT distinct values: step up where rounding repeats
            values[i] = max(values[i], values[i - 1] + 1)
        if values[-1] > hi:
            values = np.linspace(lo, hi, count).round().astype(int)
        out.extend(int(v) for v in values)
    return sorted(set(out))


def gamma_list(text: str) -> list[int] | str:
    """Parse ``--gamma``: 'auto' or a comma-separated list of integers in 1..16."""
    from magicdec_model.perfmodel.speculative import GAMMA_MAX, check_gamma

    if text.strip().lower() == "auto":
        return "auto"
    values = []
    for raw in text.split(","):
        try:
            values.append(check_gamma(int(raw.strip())))
        except ValueError:
            raise InputError(
                f"--gamma {raw.strip()!r} is not an integer; allowed: 1..{GAMMA_MAX} or auto"
            ) from None
    return values


def acceptance_value(text: str | None) -> float | None:
    """Parse ``--acceptance``: a number in [0, 1), or None to use the acceptance table."""
    from magicdec_model.perfmodel.acceptance import check_acceptance

    if text is None or text.strip().lower() in ("", "table", "auto"):
        return None
    try:
        value = float(text)
    except ValueError:
        raise InputError(f"--acceptance {text!r} is not a number; allowed: 0 <= a < 1") from None
    return check_acceptance(value)


Model = Annotated[
    str, typer.Option("--model", "-m", help="Target: registry name or path to a config.json.")
]
DraftOpt = Annotated[
    str, typer.Option("--draft", help="'self' (target with a budget KV) or a registry draft model.")
]
KvBudget = Annotated[
    str, typer.Option("--kv-budget", help="Draft KV budget(s) in tokens, comma-separated.")
]
KvMethod = Annotated[
    str, typer.Option("--kv-method", help="Draft KV: streamingllm, snapkv or full.")
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
    typer.Option("--acceptance", help="Acceptance rate in [0, 1); default: published table."),
]
AcceptanceTable = Annotated[
    str | None,
    typer.Option("--acceptance-table", help="CSV of your own acceptance measurements."),
]
Ideal = Annotated[
    bool, typer.Option("--ideal", help="Speed of light: datasheet peaks, no efficiencies or fixed costs.")
]
