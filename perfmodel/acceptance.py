"""Acceptance rates: published measurements as data, interpolation, user tables.

A table has the columns ``model, draft, method, budget, seq_len, acceptance, dataset, source``
(``draft`` is ``self`` or a registry name; ``method`` is ``streamingllm``, ``snapkv`` or
``full``; ``budget`` is 0 for full-KV drafts).  The built-in table is
``perfmodel/data/acceptance.csv``; a user table (the validator writes this format) is read with
:func:`load_table`: where it has rows for a (model, draft, method, budget) key, they replace the
built-in curve of that key entirely.

Lookup rule for a (model, draft, method, budget) key and sequence length S:

1. rows with the same model, draft and method are candidates; none -> the default
   (:data:`DEFAULT_ACCEPTANCE`), and the source says no measurement exists;
2. the measured budget nearest to the asked one (in log2) is used; if it differs, the source says
   which budget was measured;
3. within the measured range of S: linear interpolation in log(S) between the neighbours;
   outside it the value at the nearest end is used and the source says so (never extrapolated).

Extra columns (``acceptance measure`` writes intervals, ``gamma``, ``temperature``, ``n_steps``,
per-position rates, ...) are read and kept.  Where one (model, draft, method, budget, seq_len)
has several rows (several gammas or temperatures), the row used is: the lowest ``temperature``
(a row without one counts as greedy, 0), then the most SD steps (``n_steps``; none counts as 0),
then the first in the file.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd

from .errors import InputError
from .inputs import nonempty, read_csv

DEFAULT_ACCEPTANCE = 0.8
COLUMNS = ("model", "draft", "method", "budget", "seq_len", "acceptance", "dataset", "source")
#: how a draft's KV cache is built: the two budget selections, then the whole cache
KV_METHODS = ("streamingllm", "snapkv", "full")
#: the methods that keep a budget of the KV cache (every one but ``full``)
BUDGET_KV_METHODS = tuple(m for m in KV_METHODS if m != "full")


def _validate(df: pd.DataFrame, origin: str) -> pd.DataFrame:
    missing = [c for c in COLUMNS if c not in df.columns]
    if missing:
        raise InputError(f"acceptance table {origin}: missing columns {missing}; need {list(COLUMNS)}")
    df = df[list(COLUMNS) + [c for c in df.columns if c not in COLUMNS]].copy()
    for col in ("temperature", "n_steps", "gamma"):
        if col not in df.columns:
            continue
        values = pd.to_numeric(df[col], errors="coerce")
        bad = (values.isna() & df[col].notna()) | (values < 0) | ~np.isfinite(values.fillna(0.0))
        if bad.any():
            row = int(np.flatnonzero(bad.to_numpy())[0])
            raise InputError(f"acceptance table {origin}: row {row + 1} has {col}={df[col].iloc[row]!r}; "
                             f"allowed: a finite number >= 0 (or empty)")
        df[col] = values
    for col in ("budget", "seq_len", "acceptance"):
        values = pd.to_numeric(df[col], errors="coerce")
        bad = values.isna()
        if bad.any():
            row = int(np.flatnonzero(bad.to_numpy())[0])
            raise InputError(
                f"acceptance table {origin}: row {row + 1} has {col}={str(df[col].iloc[row])!r}, "
                f"not a number"
            )
        df[col] = values
    checks = (
        ("acceptance", lambda v: np.isfinite(v) & (v >= 0) & (v <= 1), "a number in [0, 1]"),
        ("seq_len", lambda v: np.isfinite(v) & (v > 0) & (np.mod(v, 1) == 0),
         "a positive integer (tokens)"),
        ("budget", lambda v: np.isfinite(v) & (v >= 0) & (np.mod(v, 1) == 0),
         "an integer >= 0 (tokens; 0 for full-KV drafts)"),
    )
    for col, ok, allowed in checks:
        values = df[col].to_numpy(float)
        with np.errstate(invalid="ignore"):
            bad = ~ok(values)
        if bad.any():
            row = int(np.flatnonzero(bad)[0])
            raise InputError(
                f"acceptance table {origin}: row {row + 1} has {col}={df[col].iloc[row]}; allowed: "
                f"{allowed}"
            )
    methods = df["method"].astype(str).str.strip().str.lower()
    unknown = ~methods.isin(KV_METHODS)
    if unknown.any():
        row = int(np.flatnonzero(unknown.to_numpy())[0])
        raise InputError(
            f"acceptance table {origin}: row {row + 1} has method={df['method'].iloc[row]!r}; allowed: "
            f"{', '.join(KV_METHODS)}"
        )
    for col in ("model", "draft", "method", "dataset", "source"):
        df[col] = df[col].astype(str).str.strip()
    df["method"] = df["method"].str.lower()
    return df


@cache
def builtin_table() -> pd.DataFrame:
    """The shipped table of published acceptance measurements."""
    path = resources.files("magicdec_model.perfmodel").joinpath("data/acceptance.csv")
    with path.open("r", encoding="utf-8") as fh:
        return _validate(pd.read_csv(fh), "built-in")


def load_table(path: str | Path | None = None) -> pd.DataFrame:
    """The built-in table, with a user CSV's rows (``path``) placed first so that they win."""
    base = builtin_table().assign(origin="built-in")
    if path is None:
        return base
    nonempty(str(path), "--acceptance-table", "a CSV file of acceptance measurements")
    p = Path(path)
    user = _no_conflicts(_validate(read_csv(p, "acceptance table"), str(p)), str(p))
    return pd.concat([user.assign(origin="user"), base], ignore_index=True)


#: the columns that say which measurement a row is: one acceptance each
KEY_COLUMNS = ("model", "draft", "method", "budget", "seq_len")
#: the conditions of a measured row (``acceptance measure``'s columns), where a table has them: rows
#: that differ in one of these are different measurements of one key, and :func:`preferred_first`
#: says which the lookup uses
CONDITION_COLUMNS = ("gamma", "temperature", "new_tokens", "n_windows", "n_steps")


def _no_conflicts(df: pd.DataFrame, origin: str) -> pd.DataFrame:
    """``df`` when no two rows give different acceptances for one measurement (:data:`KEY_COLUMNS`);
    a repeated identical row is fine (the lookup uses the first)."""
    keys = [*KEY_COLUMNS, *(c for c in CONDITION_COLUMNS if c in df.columns)]
    first = df.drop_duplicates(keys)
    merged = df.reset_index().merge(first.reset_index(), on=keys, suffixes=("", "_first"))
    clash = merged[merged["acceptance"] != merged["acceptance_first"]]
    if not clash.empty:
        row = clash.iloc[0]
        raise InputError(
            f"acceptance table {origin}: rows {int(row['index_first']) + 1} and {int(row['index']) + 1} give "
            f"{row['model']} drafted by {row['draft']} ({row['method']}, budget {int(row['budget'])}) at "
            f"seq_len {int(row['seq_len'])} two acceptances ({row['acceptance_first']:g} and "
            f"{row['acceptance']:g}); allowed: one acceptance per measurement (keep one row, or their mean)")
    return df


def preferred_first(rows: pd.DataFrame) -> pd.DataFrame:
    """``rows`` reordered so that, per seq_len, the row to use comes first: lowest temperature
    (missing = 0, greedy), then most ``n_steps`` (missing = 0), then file order."""
    n = len(rows)
    temp = rows["temperature"].fillna(0.0).to_numpy(float) if "temperature" in rows else np.zeros(n)
    steps = rows["n_steps"].fillna(0.0).to_numpy(float) if "n_steps" in rows else np.zeros(n)
    order = np.lexsort((np.arange(n), -steps, temp))
    return rows.iloc[order]


@dataclass
class Acceptance:
    """Acceptance per point and a short note of where each value came from."""

    value: np.ndarray
    source: np.ndarray  # object array of str


def lookup(
    table: pd.DataFrame,
    model: str,
    draft: str,
    method: str,
    budget: int,
    seq_len: np.ndarray,
) -> Acceptance:
    """Acceptance for ``model`` drafted by ``draft`` with ``method``/``budget`` at each ``seq_len``."""
    S = np.asarray(seq_len, dtype=float)
    rows = table[(table["model"] == model) & (table["draft"] == draft) & (table["method"] == method)]
    if rows.empty:
        note = (
            f"default {DEFAULT_ACCEPTANCE} (no published measurement for {model} drafted by "
            f"{draft} with {method})"
        )
        return Acceptance(np.full(S.shape, DEFAULT_ACCEPTANCE), np.full(S.shape, note, dtype=object))
    budgets = rows["budget"].unique()
    b_ask = max(float(budget), 1.0)
    used = budgets[np.argmin(np.abs(np.log2(np.maximum(budgets, 1.0)) - np.log2(b_ask)))]
    rows = rows[rows["budget"] == used]
    if "origin" in rows.columns and (rows["origin"] == "user").any():
        rows = rows[rows["origin"] == "user"]  # a user's curve replaces the built-in one
    rows = preferred_first(rows)
    # the first row per seq_len wins
    rows = rows.drop_duplicates("seq_len").sort_values("seq_len")
    xs = rows["seq_len"].to_numpy(float)
    ys = rows["acceptance"].to_numpy(float)
    value = np.interp(np.log(S), np.log(xs), ys)
    src = " + ".join(dict.fromkeys(rows["source"]))
    base = f"{src}; {' + '.join(dict.fromkeys(rows['dataset']))}"
    if used != budget:
        base += f"; measured at budget {int(used)}, used for {int(budget)}"
    notes = np.full(S.shape, f"interpolated: {base}", dtype=object)
    exact = np.isin(S, xs)
    notes[exact] = f"measured: {base}"
    lo, hi = xs[0], xs[-1]
    notes[S < lo] = f"clamped to {ys[0]:.3g} at seq_len {int(lo)} (below measured range): {base}"
    notes[S > hi] = f"clamped to {ys[-1]:.3g} at seq_len {int(hi)} (above measured range): {base}"
    return Acceptance(value, notes)


def check_acceptance(value: float) -> float:
    """Validate a user acceptance rate: a number in [0, 1)."""
    if not 0.0 <= value < 1.0:
        raise InputError(f"--acceptance {value} is outside [0, 1); allowed: 0 <= a < 1")
    return float(value)
