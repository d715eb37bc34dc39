"""A whole grid of predictions written to CSV or Parquet chunk by chunk, atomically.

:func:`write_grid` evaluates the query chunk by chunk (:mod:`.grid`, bounded memory), appends
each chunk to a temporary ``NAME.<pid>-<random>.partial`` file in the target's folder with pyarrow's
streaming writers (``pyarrow.csv.CSVWriter``, ``pyarrow.parquet.ParquetWriter``), and renames
it onto the target only when every row is written (:mod:`.outfiles`).  The target is locked for
the whole run.  After the first chunk the final size is estimated (bytes per row so far x rows)
and a grid that would not fit in the folder's free space is refused before going on.

The CSV has the columns of :data:`~.sweep.RESULT_COLUMNS` in that order; pyarrow writes numbers
in their shortest round-trip form (``5`` for 5.0, ``0.00001`` for 1e-05), booleans as
``true``/``false`` and quotes strings: ``pandas.read_csv`` reads back the same values as from the
``DataFrame.to_csv`` output of earlier versions.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import InputError
from .feasibility import Infeasible
from .feasibility import best as best_row
from .grid import CHUNK_EVALUATIONS, chunk_queries, grid_rows
from .outfiles import OutputLock, atomic_output, check_not_an_input, remove_stale_partials
from .sweep import Query, predict, query_files

FORMATS = {".csv": "csv", ".parquet": "parquet"}
#: share of the folder's free space a grid may fill
DISK_SHARE = 0.95


@dataclass
class GridWrite:
    """What :func:`write_grid` wrote: rows, bytes and the best-speedup row."""

    path: Path
    rows: int
    bytes: int
    #: the best-speedup row among points that can run (fit in memory, within the model's context)
    best: dict[str, Any] = field(default_factory=dict)
    #: how many points cannot run
    infeasible: Infeasible = field(default_factory=Infeasible)


def human_bytes(n: float) -> str:
    """A byte count for people: 812 B, 40.9 kB, 1.7 GB (powers of 1000)."""
    for unit in ("B", "kB", "MB", "GB", "TB", "PB"):
        if n < 1000 or unit == "PB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} PB"  # pragma: no cover


class _Writer:
    """pyarrow's streaming CSV or Parquet writer over one open file."""

    def __init__(self, path: Path, fmt: str) -> None:
        self.fmt = fmt
        self.schema = None
        self._w = None
        self._fh = open(path, "wb")  # noqa: SIM115 - closed in close()

    def write(self, df) -> None:
        import pyarrow as pa

        table = pa.Table.from_pandas(df, schema=self.schema, preserve_index=False)
        if self._w is None:
            self.schema = table.schema
            if self.fmt == "csv":
                import pyarrow.csv as pcsv

                self._w = pcsv.CSVWriter(self._fh, table.schema)
            else:
                import pyarrow.parquet as pq

                self._w = pq.ParquetWriter(self._fh, table.schema.remove_metadata())
        self._w.write_table(table)

    def tell(self) -> int:
        """Bytes written so far."""
        self._fh.flush()
        return self._fh.tell()

    def close(self) -> None:
        if self._w is not None:
            self._w.close()
            self._w = None
        if not self._fh.closed:
            self._fh.close()


def write_grid(
    query: Query,
    target: str | Path,
    *,
    flag: str = "--out",
    max_evaluations: int = CHUNK_EVALUATIONS,
    on_rows: Callable[[int, int], None] | None = None,
    free_bytes: Callable[[Path], int] | None = None,
) -> GridWrite:
    """Write ``predict(query)`` to ``target`` (``.csv`` or ``.parquet``) chunk by chunk.

    ``on_rows(done, total)`` is called after each chunk.  The target is replaced only once it is
    complete; on any error or interruption (KeyboardInterrupt) it is left as it was and the
    temporary file is removed.  Raises :class:`~.outfiles.OutputLockedError` when another run writes
    the same target, InputError for a grid that would not fit on disk.
    """
    path = Path(target)
    fmt = FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise InputError(f"{flag} {str(path)!r} must end in .csv or .parquet")
    check_not_an_input(path, query_files(query), flag)
    total = grid_rows(query)
    chunks = chunk_queries(query, max_evaluations)
    first = next(chunks)
    first_df = predict(first)  # bad input is reported here, before any file is opened
    free = free_bytes or (lambda folder: shutil.disk_usage(folder).free)
    best: dict[str, Any] = {}
    lost = Infeasible()
    done = 0
    with OutputLock(path, flag=flag):
        remove_stale_partials(path)
        with atomic_output(path, flag) as tmp:
            writer = _Writer(tmp, fmt)
            try:
                df = first_df
                while df is not None:
                    writer.write(df)
                    done += len(df)
                    _track_best(best, df)
                    lost = lost + Infeasible.of(df)
                    if on_rows is not None:
                        on_rows(done, total)
                    if done == len(first_df) and done < total:
                        _check_disk(writer.tell(), path, done, total, fmt, free, flag)
                    sub = next(chunks, None)
                    df = None if sub is None else predict(sub)
            finally:
                writer.close()
            size = tmp.stat().st_size
    return GridWrite(path, done, size, best, lost)


def _track_best(best: dict[str, Any], df) -> None:
    """Keep in ``best`` the row of highest speedup among the points that can run."""
    row = best_row(df)
    if row is not None and (not best or row["speedup"] > best["speedup"]):
        best.clear()
        best.update(row)


def _check_disk(written: int, path: Path, done: int, total: int, fmt: str,
                free: Callable[[Path], int], flag: str) -> None:
    estimate = written / done * total
    room = free(path.parent) + written
    if estimate > DISK_SHARE * room:
        raise InputError(
            f"{flag} {path}: the grid has {total:,} rows, about {human_bytes(estimate)} as {fmt.upper()}, "
            f"but the folder has {human_bytes(room)} free; allowed: a grid that fits (fewer values "
            f"per flag)"
        )
