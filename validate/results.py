"""The row schemas of validate's tables and measurements.csv, appended as measured, resumable.

:data:`MEASUREMENT_COLUMNS` are the columns of ``measurements.csv`` (rows built by
:func:`peak_rows`, :func:`micro_row` and :func:`check_rows`), :data:`COMPARISON_COLUMNS` those of
``comparison.csv`` (rows built by :func:`comparison_row` and :func:`micro_comparison`).

Every point is written with a single ``write`` of whole lines, flushed and fsync'ed before the
next point starts, so a run stopped at any moment (Ctrl-C, a kill, a crash) leaves a file of
complete rows; a line cut by a kill mid-write (no trailing newline) is dropped when the file is
opened again.  ``key`` identifies a point (see :attr:`MicroPoint.key` and :mod:`.check`);
``--resume`` skips every key already present, whatever its status.  A point owns one row per
quantity (``key``, ``op``); should a file hold a pair twice (two runs once wrote to one folder;
the folder is locked now), the first row is kept and the later ones are ignored.  The run's
configuration, against which ``--resume`` is checked, is in ``config.json`` (:mod:`.runconfig`).

``status`` is ``ok``, ``oom`` (out of memory: recorded, the run goes on) or ``error`` (the
message is in ``detail``).
"""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Iterable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

MEASUREMENT_COLUMNS = (
    "key",
    "stage",  # peak (device peaks), micro (fit data) or check (SD-loop steps, held out of the fit)
    "op",
    "op_class",
    "variant",
    "batch",
    "q",
    "kv_len",
    "seq_len",
    "kv_budget",
    "gamma",
    "acceptance",
    "gpus",
    "flops",
    "bytes",
    "comm_bytes",
    "value",  # median seconds (unit s) or a ratio (unit tokens)
    "p25",
    "p75",
    "reps",
    "unit",
    "status",
    "detail",
    "backend",
    "device",
    "time_utc",
)
STATUSES = ("ok", "oom", "error")

COMPARISON_COLUMNS = (
    "stage",  # check (AR and SD-loop steps, speedup) or micro (fitted microbenchmarks, in-sample)
    "quantity",
    "batch", "seq_len", "kv_budget", "gamma", "acceptance", "gpus",
    "predicted",
    "measured",
    "error_percent",  # (predicted / measured - 1) x 100
    "unit",
    "omega_measured",
    "predicted_at_nominal_acceptance",
)
#: unit of each SD-loop quantity that is not in seconds
CHECK_UNITS = {"omega": "tokens", "acceptance_rate": "ratio"}


def utc_now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


class MeasurementLog:
    """Append-only CSV of measurements with the keys already present (for ``--resume``).

    ``columns``: the header (default :data:`MEASUREMENT_COLUMNS`; ``acceptance measure`` logs its
    runs with :data:`.acceptance_table.RUN_COLUMNS`)."""

    def __init__(self, path: str | Path, columns: tuple[str, ...] = MEASUREMENT_COLUMNS) -> None:
        self.path = Path(path)
        self.columns = tuple(columns)
        self.keys: set[str] = set()
        self.rows: list[dict[str, str]] = []
        if self.path.exists():
            self._load()

    def _load(self) -> None:
        data = self.path.read_bytes()
        if data and not data.endswith(b"\n"):
            # a line cut short by a kill: drop it so the file holds only complete rows
            data = data[: data.rfind(b"\n") + 1]
            with open(self.path, "r+b") as fh:
                fh.truncate(len(data))
        text = data.decode("utf-8")
        if not text.strip():
            return
        reader = csv.DictReader(io.StringIO(text))
        if tuple(reader.fieldnames or ()) != self.columns:
            from ..perfmodel.errors import InputError

            raise InputError(
                f"{self.path} was not written by this version of validate (columns differ); "
                f"allowed: a measurements.csv from 'magicdec-model validate', or a new --out"
            )
        seen: set[tuple[str, str]] = set()
        for row in reader:
            pair = (row["key"], row.get("op", ""))
            if pair in seen:
                continue  # a duplicate: the first row of a (key, op) wins
            seen.add(pair)
            self.rows.append(row)
            self.keys.add(row["key"])

    def __contains__(self, key: str) -> bool:
        return key in self.keys

    def __len__(self) -> int:
        return len(self.rows)

    def append(self, rows: Iterable[dict[str, Any]]) -> None:
        """Write ``rows`` (one point) in one write, then flush and fsync."""
        rows = [{c: _fmt(r.get(c, "")) for c in self.columns} for r in rows]
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=self.columns, lineterminator="\n")
        new_file = not self.path.exists() or self.path.stat().st_size == 0
        if new_file:
            writer.writeheader()
        writer.writerows(rows)
        with open(self.path, "a", encoding="utf-8", newline="") as fh:
            fh.write(buf.getvalue())
            fh.flush()
            os.fsync(fh.fileno())
        for r in rows:
            self.rows.append(r)
            self.keys.add(r["key"])


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return repr(v)
    return "" if v is None else str(v)


# ----------------------------------------------------------------------------- rows
def _scalar(x: Any) -> float:
    return float(np.asarray(x, dtype=float).reshape(-1)[0])


def peak_rows(key: str, peaks: dict[str, float]) -> list[dict[str, Any]]:
    """measurements.csv rows of the device peaks (FLOP/s of matmuls, B/s of a copy)."""
    return [{"key": key, "stage": "peak", "op": k, "value": v, "status": "ok",
             "unit": "FLOP/s" if "flops" in k else "B/s"} for k, v in peaks.items()]


def micro_row(point: Any, cost: Any, result: dict[str, Any]) -> dict[str, Any]:
    """The measurements.csv row of one microbenchmark ``point`` (a :class:`.microbench.MicroPoint`)
    with perfmodel's ``cost`` of it (FLOPs, bytes, all-reduce bytes per GPU) and the ``result`` of
    its timing (status, median seconds, quartiles, repetitions, detail)."""
    return {"key": point.key, "stage": "micro", "op": point.op, "op_class": cost.op_class,
            "variant": point.variant, "batch": point.batch, "q": point.q, "kv_len": point.kv_len,
            "gpus": point.gpus, "flops": _scalar(cost.flops), "bytes": _scalar(cost.bytes),
            "comm_bytes": _scalar(cost.comm_bytes), "unit": "s", **result}


def check_rows(point: Any, result: dict[str, Any]) -> list[dict[str, Any]]:
    """measurements.csv rows of one AR or SD check ``point`` (:mod:`.check`): one per measured
    quantity when ``result["status"]`` is ok (``result["value"]``: quantity -> (median, p25, p75,
    reps)), else one row with the status and detail."""
    base: dict[str, Any] = {"stage": "check", "batch": point.batch, "seq_len": point.seq_len,
                            "gpus": point.gpus}
    sd = hasattr(point, "kv_budget")
    if sd:
        base.update({"kv_budget": point.kv_budget, "gamma": point.gamma, "acceptance": point.acceptance})
    if result["status"] != "ok":
        return [{**base, "key": point.key, "op": "sd" if sd else "ar", "status": result["status"],
                 "detail": result["detail"]}]
    return [{**base, "key": point.key, "op": op, "value": med, "p25": p25, "p75": p75, "reps": reps,
             "unit": CHECK_UNITS.get(op, "s"), "status": "ok"}
            for op, (med, p25, p75, reps) in result["value"].items()]


def comparison_row(quantity: str, batch: int, seq_len: int, kv_budget: int, gamma: int, acceptance: float,
                   gpus: int, predicted: float, measured: float | None) -> dict[str, Any]:
    """One ``stage = check`` row of comparison.csv (seconds, or the speedup's ratio)."""
    meas = float("nan") if measured is None else float(measured)
    return {
        "stage": "check", "quantity": quantity,
        "batch": batch, "seq_len": seq_len, "kv_budget": kv_budget, "gamma": gamma,
        "acceptance": acceptance, "gpus": gpus,
        "predicted": float(predicted),
        "measured": meas,
        "error_percent": (float(predicted) / meas - 1.0) * 100 if meas > 0 else float("nan"),
        "unit": "x" if quantity == "speedup" else "s",
        "omega_measured": float("nan"),
        "predicted_at_nominal_acceptance": float("nan"),
    }


def micro_comparison(micro: pd.DataFrame) -> pd.DataFrame:
    """The ``stage = micro`` rows of comparison.csv from the fitted microbenchmark frame (columns
    op, batch, kv_len, gpus, predicted, measured in seconds)."""
    return pd.DataFrame({
        "stage": "micro", "quantity": micro["op"], "batch": micro["batch"],
        "seq_len": micro["kv_len"], "kv_budget": 0, "gamma": 0, "acceptance": float("nan"),
        "gpus": micro["gpus"], "predicted": micro["predicted"], "measured": micro["measured"],
        "error_percent": (micro["predicted"] / micro["measured"] - 1) * 100, "unit": "s",
    }, columns=list(COMPARISON_COLUMNS))

