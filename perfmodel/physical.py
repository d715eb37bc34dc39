"""Every number a command prints is finite and physical, or the command refuses (exit code 2).

Extreme but finite inputs (a bandwidth of 1e-300 B/s in a hardware profile, an engine term near
the float limit) can carry the model's float64 arithmetic to ``inf`` or ``nan``, or to a speedup
of 0.  Rather than guard every formula, each output frame is checked once before anything is
printed or written:

* :func:`check_predictions` - the frame of :func:`sweep.predict`, which every command that
  predicts goes through (predict, sweep chunk by chunk, report, advise, compare-paper, validate's
  comparison);
* :func:`check_numbers` - any other named numbers (``breakdown``'s ops, ``calibrate``'s fit).

A failed check is an :class:`~.errors.InputError` naming the number, its value, the point and
the inputs it comes from.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import numpy as np
import pandas as pd

from .errors import InputError

#: Prediction columns that must be finite and > 0 (times of work that is done, rates, ratios)
POSITIVE = ("t_target_s", "t_verify_s", "latency_ar_s", "latency_sd_s", "speedup", "speedup_lo",
            "speedup_hi", "throughput_ar_tok_s", "throughput_sd_tok_s", "t_target_s_lo", "t_target_s_hi",
            "t_verify_s_lo", "t_verify_s_hi", "memory_per_gpu_bytes", "memory_capacity_bytes",
            "expected_tokens")

#: Columns whose +inf means "never": the sequence length at which KV reads match weight reads is
#: infinite for a model whose every layer is windowed (no KV grows with the context; JSON null)
MAY_BE_INFINITE = ("critical_seq_len",)


def _hint(inputs: str) -> str:
    """Why a non-finite or non-physical number appears: inputs at the edge of float64."""
    whose = f"the values of {inputs}" if inputs else "the hardware profile's or engine's values"
    return f"{whose} are too extreme for the model's float64 arithmetic; allowed: values in a physical range"


def _where(df: pd.DataFrame, i: int) -> str:
    row = df.iloc[i]
    parts = [f"{c} {row[c]:,}" for c in ("batch", "seq_len", "gamma") if c in df.columns]
    for c in ("hardware", "engine"):
        if c in df.columns:
            parts.append(f"{c} {row[c]}")
    return ", ".join(parts)


def check_predictions(df: pd.DataFrame, inputs: str = "") -> pd.DataFrame:
    """``df`` (prediction rows, :data:`sweep.RESULT_COLUMNS`) when every number in it is finite
    and physical; else an :class:`InputError` naming the first bad one.

    Physical: the times, rates and speedups of :data:`POSITIVE` are > 0, the others >= 0, the
    tokens per step at most gamma + 1 (a chain or tree of depth gamma), acceptance in [0, 1].
    A tree given by its accepted length (``--accept-len`` with ``--verify-tokens``) has no
    per-token rate: its acceptance is NaN (shown as empty); :data:`MAY_BE_INFINITE` columns may
    be +inf.
    ``inputs`` names the files the numbers come from (``--hardware my.toml``) for the message.
    """
    if df.empty:
        return df
    for col in df.columns:
        if col in ("acceptance",) or not pd.api.types.is_numeric_dtype(df[col]) \
                or pd.api.types.is_bool_dtype(df[col]):
            continue
        values = df[col].to_numpy(dtype=float)
        with np.errstate(invalid="ignore"):
            bad = ~np.isfinite(values) | ((values <= 0) if col in POSITIVE else (values < 0))
        if col in MAY_BE_INFINITE:
            bad &= ~np.isposinf(values)
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            kind = "not finite" if not np.isfinite(values[i]) else "not physical (must be > 0)" \
                if col in POSITIVE else "not physical (must be >= 0)"
            raise InputError(f"no prediction: {col} = {values[i]:g} is {kind} at {_where(df, i)}; "
                             f"{_hint(inputs)}")
    if {"expected_tokens", "gamma"} <= set(df.columns):
        over = df["expected_tokens"].to_numpy(float) > df["gamma"].to_numpy(float) + 1 + 1e-9
        if over.any():
            i = int(np.flatnonzero(over)[0])
            raise InputError(f"no prediction: {df['expected_tokens'].iloc[i]:g} tokens per step exceed the "
                             f"gamma + 1 a draft of depth gamma can emit at {_where(df, i)}")
    acc = df["acceptance"].to_numpy(float) if "acceptance" in df.columns else np.zeros(0)
    tree = np.zeros(len(acc), bool)
    if "acceptance_source" in df.columns and "verify_tokens" in df.columns:
        given_len = df["acceptance_source"].astype(str).str.startswith("--accept-len").to_numpy()
        tree = given_len & (df["verify_tokens"].to_numpy() > 0)
    with np.errstate(invalid="ignore"):
        bad = np.where(np.isnan(acc), ~tree, (acc < 0) | (acc > 1) | ~np.isfinite(acc))
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise InputError(f"no prediction: acceptance = {acc[i]:g} at {_where(df, i)}; allowed: a rate in "
                         f"[0, 1]")
    return df


def check_numbers(values: Mapping[str, float | Iterable[float]], what: str,
                  positive: Iterable[str] = (), inputs: str = "") -> None:
    """Refuse (InputError) when a named number (or any of a named array) is not finite, or not > 0
    for the names in ``positive``; ``what`` says which output they belong to, ``inputs`` which
    files they come from."""
    must_be_positive = set(positive)
    for name, value in values.items():
        arr = np.atleast_1d(np.asarray(value, dtype=float))
        with np.errstate(invalid="ignore"):
            bad = ~np.isfinite(arr) | ((arr <= 0) if name in must_be_positive else np.zeros(arr.shape, bool))
        if bad.any():
            v = float(arr[np.flatnonzero(bad)[0]])
            kind = "not finite" if not np.isfinite(v) else "not physical (must be > 0)"
            raise InputError(f"no {what}: {name} = {v:g} is {kind}; {_hint(inputs)}")
