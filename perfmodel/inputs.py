"""The one validation layer for user input: bounded numbers, lists, text files, TOML/JSON/CSV.

Every function raises :class:`~.errors.InputError` with a one-line message that names the bad
value (and the flag or file it came from) and what is allowed; the CLI prints it and exits 2.

Bounds (:data:`LIMITS`) keep every count exact: ``batch x seq_len`` is at most
``MAX_BATCH x MAX_SEQ_LEN = 10^14 < 2^53`` tokens, so token counts are exact in float64 and every
cast to int64 stays far below 2^63 (the model's arithmetic is float64 throughout).
"""

from __future__ import annotations

import io
import json
import math
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from .errors import InputError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

#: sequences per batch
MAX_BATCH = 1_000_000
#: tokens of context (also the largest KV budget)
MAX_SEQ_LEN = 100_000_000
#: tensor-parallel GPUs
MAX_GPUS = 4096
#: values in one list flag (after ranges are expanded)
MAX_LIST = 1_000_000
#: bytes of one input file (config.json, profile and engine TOML, acceptance and steps CSV)
MAX_FILE_BYTES = 64 * 2**20
#: tokens a draft tree verifies per sequence per step (``--verify-tokens``); published trees use
#: tens (EAGLE-2: 60 nodes, Medusa: 64) to a few hundred (Sequoia); 4,096 leaves ample room
MAX_VERIFY_TOKENS = 4096

#: (lowest, highest) allowed integer per flag
LIMITS: dict[str, tuple[int, int]] = {
    "--batch": (1, MAX_BATCH),
    "--seq-len": (1, MAX_SEQ_LEN),
    "--kv-budget": (1, MAX_SEQ_LEN),
    "--gpus": (1, MAX_GPUS),
    "--top": (1, 1_000_000),
    "--layers": (1, 10_000),
    "--new-tokens": (2, 1_000_000),
    "--threads": (0, 4096),
    "--seed": (0, 2**63 - 1),
    "--verify-tokens": (2, MAX_VERIFY_TOKENS),
}

_SUFFIX = {"k": 1000, "m": 1_000_000}


def _fmt_int(n: int) -> str:
    return f"{n:,}"


def limits(flag: str) -> tuple[int, int]:
    """The (lowest, highest) integer allowed for ``flag`` (see :data:`LIMITS`)."""
    return LIMITS[flag]


def check_int(value: Any, flag: str, lo: int | None = None, hi: int | None = None) -> int:
    """``value`` as an int in ``lo..hi`` (defaults: :data:`LIMITS` of ``flag``); bools refused."""
    if lo is None or hi is None:
        dlo, dhi = LIMITS.get(flag, (1, 2**63 - 1))
        lo = dlo if lo is None else lo
        hi = dhi if hi is None else hi
    number = not isinstance(value, bool) and isinstance(value, (int, float))
    integer = number and (isinstance(value, int) or (math.isfinite(value) and float(value).is_integer()))
    if integer and lo <= value <= hi:
        return int(value)
    kind = "outside the allowed range" if integer else "not an integer"
    raise InputError(f"{flag} {_short(value)} is {kind}; allowed: integers {_fmt_int(lo)}..{_fmt_int(hi)}")


def parse_int(text: str, flag: str, lo: int | None = None, hi: int | None = None) -> int:
    """One integer as typed: '32', '8k' (8,000), '1m' (1,000,000), '1e3'; bounded as check_int."""
    if lo is None or hi is None:
        dlo, dhi = LIMITS.get(flag, (1, 2**63 - 1))
        lo = dlo if lo is None else lo
        hi = dhi if hi is None else hi
    raw = str(text).strip()
    item = raw.lower()
    mult = 1
    if item[-1:] in _SUFFIX:
        item, mult = item[:-1], _SUFFIX[item[-1:]]
    value: int | None = None
    try:
        value = int(item) * mult  # exact for long integers
    except ValueError:
        try:
            f = float(item) * mult
        except (ValueError, OverflowError):
            f = math.nan
        if math.isfinite(f) and f.is_integer():
            value = int(f)
    if value is None or not lo <= value <= hi:
        kind = "not an integer" if value is None else "outside the allowed range"
        raise InputError(
            f"{flag} {_short(raw)} is {kind}; allowed: integers {_fmt_int(lo)}..{_fmt_int(hi)}"
            + (" (8k = 8,000, 1m = 1,000,000)" if flag in ("--seq-len", "--kv-budget") else "")
        )
    return value


def _range(item: str, flag: str, lo: int | None, hi: int | None) -> list[int]:
    """'START:STOP:COUNT': COUNT distinct integers from START to STOP, spaced geometrically (linearly
    where START is 0), stepped up by one where rounding would repeat a value."""
    parts = item.split(":")
    if len(parts) != 3:
        raise InputError(f"{flag} {_short(item)} is not a range; allowed: START:STOP:COUNT, e.g. "
                         "1:256:64 or 1k:128k:64")
    start, stop = parse_int(parts[0], flag, lo, hi), parse_int(parts[1], flag, lo, hi)
    count = parse_int(parts[2], f"{flag} range count", 1, MAX_LIST)
    if stop < start or count > stop - start + 1:
        raise InputError(f"{flag} {_short(item)}: need STOP >= START and COUNT <= STOP - START + 1 "
                         "distinct integers")
    if count == 1:
        return [start]
    if start > 0:
        ratio = stop / start
        values = [round(start * ratio ** (i / (count - 1))) for i in range(count)]
    else:
        values = [round(start + (stop - start) * i / (count - 1)) for i in range(count)]
    values[0], values[-1] = start, stop
    for i in range(1, count):  # keep COUNT distinct values: step up where rounding repeats
        values[i] = max(values[i], values[i - 1] + 1)
    if values[-1] > stop:  # stepping up overshot: fall back to even spacing
        values = [round(start + (stop - start) * i / (count - 1)) for i in range(count)]
    return values


def parse_int_list(text: str, flag: str, lo: int | None = None, hi: int | None = None) -> list[int]:
    """A comma-separated list of integers ('32,64' or '8k,32k'), each bounded as :func:`parse_int`;
    an item may be a range START:STOP:COUNT (COUNT integers spaced geometrically, '1k:128k:8').
    Order and repeats are kept as typed."""
    items = str(text).split(",")
    if len(items) > MAX_LIST:
        raise InputError(f"{flag} has {len(items):,} values; allowed: at most {MAX_LIST:,}")
    if not str(text).strip():
        raise InputError(f"{flag} '' is empty; allowed: one or more comma-separated integers")
    out: list[int] = []
    for item in items:
        out.extend(_range(item.strip(), flag, lo, hi) if ":" in item else [parse_int(item, flag, lo, hi)])
        if len(out) > MAX_LIST:
            raise InputError(f"{flag} {_short(text)} has more than {MAX_LIST:,} values; allowed: at "
                             f"most {MAX_LIST:,}")
    return out


def check_float(value: Any, flag: str, lo: float | None = None, hi: float | None = None, *,
                lo_open: bool = False, hi_open: bool = False) -> float:
    """``value`` as a finite float within the bounds (open ends excluded); bools refused."""
    ok = not isinstance(value, bool) and isinstance(value, (int, float)) and math.isfinite(value)
    if ok:
        v = float(value)
        ok = (lo is None or (v > lo if lo_open else v >= lo)) and (
            hi is None or (v < hi if hi_open else v <= hi))
    if ok:
        return float(value)
    left = "" if lo is None else f"{'>' if lo_open else '>='} {lo:g}"
    right = "" if hi is None else f"{'<' if hi_open else '<='} {hi:g}"
    allowed = " and ".join(x for x in (left, right) if x) or "any"
    raise InputError(f"{flag} {_short(value)} is not allowed; allowed: finite numbers {allowed}")


def parse_float(text: str, flag: str, lo: float | None = None, hi: float | None = None, *,
                lo_open: bool = False, hi_open: bool = False) -> float:
    """A number as typed ('0.8', '1e-3'), finite and within the bounds of :func:`check_float`."""
    raw = str(text).strip()
    try:
        value: Any = float(raw)
    except ValueError:
        value = raw
    try:
        return check_float(value, flag, lo, hi, lo_open=lo_open, hi_open=hi_open)
    except InputError as exc:
        shown = (raw if len(raw) <= 60 else raw[:57] + "...") if isinstance(value, float) else _short(raw)
        raise InputError(str(exc).replace(f"{flag} {_short(value)} ", f"{flag} {shown} ", 1)) from None


def check_choice(value: str, flag: str, allowed: Iterable[str]) -> str:
    """``value`` (case-insensitive) if it is one of ``allowed``; its lower-case form."""
    options = list(allowed)
    v = str(value).strip().lower()
    if v not in options:
        raise InputError(f"{flag} {_short(value)} is not one of: {', '.join(options)}")
    return v


def grid_size(*lengths: int) -> int:
    """Points of a cross product (exact Python integer)."""
    return math.prod(int(n) for n in lengths)


def check_grid(points: int, limit: int, what: str, hint: str) -> None:
    """Refuse a grid of more than ``limit`` points, saying how many and what to do instead."""
    if points > limit:
        raise InputError(f"{what} has {points:,} points; allowed: at most {limit:,} ({hint})")


# ---------------------------------------------------------------------------- files
def read_text(path: str | Path, what: str, max_bytes: int = MAX_FILE_BYTES) -> str:
    """The UTF-8 text of a readable file of at most ``max_bytes`` bytes; ``what`` names it in errors
    (e.g. 'hardware profile')."""
    p = Path(path)
    try:
        if not p.exists():
            raise InputError(f"{what} {str(p)!r} does not exist")
        if p.is_dir():
            raise InputError(f"{what} {str(p)!r} is a folder; allowed: a file")
        size = p.stat().st_size
        if size > max_bytes:
            raise InputError(f"{what} {str(p)!r} is {size:,} bytes ({size / 2**20:.0f} MiB), too large; "
                             f"allowed: at most {max_bytes:,} bytes ({max_bytes // 2**20} MiB)")
        data = p.read_bytes()
    except PermissionError:
        raise InputError(f"{what} {str(p)!r} cannot be read: permission denied") from None
    except OSError as exc:
        raise InputError(f"{what} {str(p)!r} cannot be read: {exc.strerror or exc}") from None
    if b"\x00" in data:
        raise InputError(f"{what} {str(p)!r} is a binary file; allowed: UTF-8 text")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InputError(f"{what} {str(p)!r} is not UTF-8 text (byte {exc.start}); allowed: UTF-8 "
                         f"text") from None


def parse_toml(text: str, what: str) -> dict[str, Any]:
    """A TOML document; syntax errors (and nesting too deep to parse) become one line."""
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise InputError(f"{what}: not valid TOML ({_one_line(exc)})") from None
    except RecursionError:
        raise InputError(f"{what}: nested too deeply to read; allowed: the tables and values the "
                         f"format documents") from None


def nonempty(value: str, flag: str, allowed: str) -> str:
    """``value`` when it is not empty (or blank); else an error naming ``flag`` and what is allowed."""
    if not str(value).strip():
        raise InputError(f"{flag} {value!r} is empty; allowed: {allowed}")
    return value


def read_toml(path: str | Path, what: str) -> dict[str, Any]:
    """A TOML file (readable, UTF-8, valid syntax)."""
    return parse_toml(read_text(path, what), f"{what} {path}")


def read_json(path: str | Path, what: str) -> Any:
    """A JSON file (readable, UTF-8, valid syntax; NaN and Infinity refused)."""
    text = read_text(path, what)

    def _bad_constant(name: str) -> Any:
        raise InputError(f"{what} {path}: {name} is not a JSON number; allowed: finite numbers")

    try:
        return json.loads(text, parse_constant=_bad_constant)
    except json.JSONDecodeError as exc:
        raise InputError(f"{what} {path}: not valid JSON ({_one_line(exc)})") from None
    except RecursionError:
        raise InputError(f"{what} {path}: nested too deeply to read; allowed: a JSON object of "
                         f"settings") from None


def read_csv(path: str | Path, what: str):
    """A CSV file as a pandas DataFrame (readable, UTF-8, parsable, with a header and rows)."""
    import pandas as pd

    text = read_text(path, what)
    try:
        df = pd.read_csv(io.StringIO(text))
    except pd.errors.EmptyDataError:
        raise InputError(f"{what} {path} is empty; allowed: a CSV with a header and rows") from None
    except (pd.errors.ParserError, ValueError) as exc:
        raise InputError(f"{what} {path}: not a readable CSV ({_one_line(exc)})") from None
    if df.empty:
        raise InputError(f"{what} {path} has a header but no rows")
    return df


def table(doc: Mapping[str, Any], key: str, where: str, *, required: bool = False) -> dict[str, Any]:
    """The sub-table ``doc[key]`` of a parsed TOML/JSON document, checked to be a table.

    Missing: ``{}`` (or an error when ``required``).  ``sources = "none"`` and the like are errors.
    """
    if key not in doc:
        if required:
            raise InputError(f"{where}: missing table [{key}]")
        return {}
    value = doc[key]
    if not isinstance(value, dict):
        raise InputError(f"{where}: {key} = {_short(value)} must be a table ([{key}] with "
                         f"key = value lines); got {type(value).__name__}")
    return value


def string(doc: Mapping[str, Any], key: str, where: str, default: str = "") -> str:
    """A string entry of a parsed document (missing: ``default``); tables and numbers refused."""
    value = doc.get(key, default)
    if not isinstance(value, str):
        raise InputError(f"{where}: {key} = {_short(value)} must be a string")
    return value


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text if len(text) <= 160 else text[:157] + "..."
