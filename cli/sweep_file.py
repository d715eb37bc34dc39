"""`sweep --out FILE`: a progress bar on stderr and a clean stop around perfmodel.gridfile."""

from __future__ import annotations

import signal
import sys
from pathlib import Path
from types import FrameType

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from magicdec_model.perfmodel.grid import grid_rows
from magicdec_model.perfmodel.gridfile import GridWrite, write_grid
from magicdec_model.perfmodel.sweep import Query

#: grids of more rows than this show a progress bar
PROGRESS_ROWS = 50_000


def _sigterm(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def write_sweep(query: Query, path: Path) -> GridWrite:
    """Write the grid to ``path``; Ctrl-C or SIGTERM: say what was written, exit 130."""
    total = grid_rows(query)
    done = [0]
    bar = Progress(TextColumn("sweep"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                   console=Console(stderr=True), transient=True, disable=total <= PROGRESS_ROWS)
    task = bar.add_task("rows", total=total)

    def on_rows(n: int, _total: int) -> None:
        done[0] = n
        bar.update(task, completed=n)

    previous = signal.signal(signal.SIGTERM, _sigterm) if _main_thread() else None
    try:
        with bar:
            return write_grid(query, path, on_rows=on_rows)
    except KeyboardInterrupt:
        print(f"interrupted after {done[0]:,} of {total:,} rows: nothing was written to {path} (its "
              f"temporary file was removed); run again to write it", file=sys.stderr)
        raise typer.Exit(130) from None
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _main_thread() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()
