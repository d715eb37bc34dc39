"""measurements.csv: one row per measured quantity, appended as measured, resumable.

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

COLUMNS = (
    "key",
    "stage",  # micro (fit data) or check (SD-loop steps, held out of the fit)
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


def utc_now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


class MeasurementLog:
    """Append-only CSV of measurements with the keys already present (for ``--resume``)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
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
        if tuple(reader.fieldnames or ()) != COLUMNS:
            from ..perfmodel.errors import InputError

            raise InputError(
                f"{self.path} was not written by this version of validate (columns differ); "
                f"allowed: a measurements.csv from 'magicdec-model validate', or a new --out"
            )
        seen: set[tuple[str, str]] = set()
        for row in reader:
            pair = (row["key"], row["op"])
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
        rows = [{c: _fmt(r.get(c, "")) for c in COLUMNS} for r in rows]
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=COLUMNS, lineterminator="\n")
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
