"""One ``acceptance measure`` run: flags checked, model and text loaded, runs logged, table written.

Files, for ``--out acc.csv``:

* ``acc.csv``: the table (:mod:`.acceptance_table`), rewritten atomically after every run from
  every run logged so far, so that it is complete and readable at any moment;
* ``acc.csv.runs.csv``: one row per speculative-decoding run, appended, flushed and fsync'ed as
  measured (:class:`.results.MeasurementLog`);
* ``acc.csv.config.json``: what the runs depend on (checkpoint, its digest of the architecture,
  text and its SHA-256, windows and their length, new tokens, seed, the draft-cache rules, dtype,
  torch and package versions).  ``--resume`` continues the log only when all are the same
  (:mod:`.runconfig`); new methods, budgets, contexts up to the window length, gammas or
  temperatures are then measured and added.

Imports no torch until :func:`run_measure` runs.
"""

from __future__ import annotations

import importlib.util
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..perfmodel.acceptance import BUDGET_KV_METHODS
from ..perfmodel.errors import InputError
from ..perfmodel.inputs import check_int
from ..perfmodel.outfiles import OutputLock, atomic_write_text, check_out_file
from ..perfmodel.speculative import check_gamma

#: the most tokens one window may hold (a bound on memory: the full cache of one request)
MAX_CONTEXT = 131_072
#: the highest sampling temperature accepted
MAX_TEMPERATURE = 100.0
#: smallest budget: two sink tokens / a two-token observation window
MIN_BUDGET = 4


@dataclass
class MeasureConfig:
    """The flags of ``acceptance measure`` (lists already parsed)."""

    checkpoint: str
    methods: list[str]
    budgets: list[int]
    seq_lens: list[int]
    gammas: list[int]
    temperatures: list[float]
    out: Path
    text: str | None = None
    windows: int = 4
    batch: int = 4
    new_tokens: int = 128
    seed: int = 0
    resume: bool = False
    threads: int = 0

    @property
    def log_path(self) -> Path:
        return self.out.with_name(self.out.name + ".runs.csv")

    @property
    def config_name(self) -> str:
        return self.out.name + ".config.json"


class Progress:
    """Progress callbacks (the CLI passes a rich bar; the default does nothing)."""

    def start(self, total: int) -> None: ...

    def label(self, text: str) -> None: ...

    def advance(self) -> None: ...


def check_measure(cfg: MeasureConfig) -> None:
    """Every flag, before anything is loaded or written (one-line InputError)."""
    for m in cfg.methods:
        if m not in BUDGET_KV_METHODS:
            raise InputError(f"--kv-method {m!r} is not one of: {', '.join(BUDGET_KV_METHODS)}")
    if not cfg.methods:
        raise InputError("--kv-method needs at least one value")
    for flag, values in (("--kv-budget", cfg.budgets), ("--seq-len", cfg.seq_lens)):
        if not values:
            raise InputError(f"{flag} needs at least one value")
    for b in cfg.budgets:
        check_int(b, "--kv-budget", MIN_BUDGET, MAX_CONTEXT)
    for s in cfg.seq_lens:
        check_int(s, "--seq-len", 2, MAX_CONTEXT)
    for g in cfg.gammas:
        check_gamma(g)
    if not cfg.gammas:
        raise InputError("--gamma needs at least one value")
    for t in cfg.temperatures:
        if not (math.isfinite(t) and 0.0 <= t <= MAX_TEMPERATURE):
            raise InputError(f"--temperature {t} is not allowed; allowed: numbers in 0..{MAX_TEMPERATURE:g} "
                             f"(0: greedy)")
    if not cfg.temperatures:
        raise InputError("--temperature needs at least one value")
    check_int(cfg.windows, "--windows", 1, 10_000)
    check_int(cfg.batch, "--batch", 1, 1024)
    check_int(cfg.new_tokens, "--new-tokens", 2, 100_000)
    check_int(cfg.seed, "--seed")
    check_int(cfg.threads, "--threads")
    check_out_file(cfg.out, (".csv",))
    for name in ("torch", "tokenizers"):
        if importlib.util.find_spec(name) is None:
            raise InputError(f"acceptance measure runs the real model and needs {name}, which is not "
                             f"installed; install it with: pip install 'magicdec-model[real]'")
    if cfg.text is not None:
        from .corpus import read_text

        read_text(cfg.text)


def _configuration(cfg: MeasureConfig, model: Any, text_origin: str, text: str, length: int) -> dict:
    import hashlib
    from importlib import metadata

    import torch

    from .acceptance_measure import SINK_TOKENS, SNAP_KERNEL, SNAP_WINDOW
    from .runconfig import arch_digest

    try:
        version = metadata.version("magicdec-model")
    except metadata.PackageNotFoundError:  # pragma: no cover
        version = None
    return {
        "format": 1,
        "model": model.name,
        "model_digest": arch_digest(model.arch),
        "checkpoint": model.source,
        "text": text_origin,
        "text_sha256": hashlib.sha256(text.encode()).hexdigest(),
        "windows": cfg.windows,
        "batch": cfg.batch,
        "window_tokens": length,
        "new_tokens": cfg.new_tokens,
        "seed": cfg.seed,
        "draft_cache": {"sink_tokens": SINK_TOKENS, "snap_window": SNAP_WINDOW,
                        "snap_kernel": SNAP_KERNEL, "positions": "original"},
        "dtype": "float32",
        "torch": torch.__version__,
        "magicdec_model": version,
    }


@dataclass
class MeasureSummary:
    runs_measured: int
    runs_skipped: int
    rows: int
    files: list[Path]


def run_measure(cfg: MeasureConfig, progress: Progress | None = None,
                warn: Callable[[str], None] | None = None) -> MeasureSummary:
    """Measure every run of ``cfg`` not yet logged; write the table after each."""
    import torch

    from .acceptance_measure import MeasureGrid, measure_windows
    from .acceptance_table import RUN_COLUMNS, table_csv, table_rows
    from .corpus import default_text, read_text, token_windows
    from .real_model import load_real_model
    from .results import MeasurementLog
    from .runconfig import check_resume, write_run_config

    progress = progress or Progress()
    check_measure(cfg)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    model = load_real_model(cfg.checkpoint)
    if cfg.text is None:
        text, origin = default_text()
    else:
        text, origin = read_text(cfg.text), f"{Path(cfg.text).name} (--text)"
    length = max(cfg.seq_lens)
    if warn is not None and length + cfg.new_tokens > model.arch.max_positions:
        warn(f"--seq-len {length} + --new-tokens {cfg.new_tokens} passes {model.name}'s context of "
             f"{model.arch.max_positions} tokens")
    config = _configuration(cfg, model, origin, text, length)
    lock = OutputLock(cfg.out).acquire()
    try:
        log_exists = cfg.log_path.exists() and cfg.log_path.stat().st_size > 0
        if log_exists and not cfg.resume:
            raise InputError(f"--out {cfg.out}: {cfg.log_path.name} already holds runs; allowed: "
                             f"--resume to continue it, or another --out")
        if log_exists:
            check_resume(cfg.out.parent, config, cfg.config_name, cfg.log_path.name)
        windows = token_windows(model.tokenizer, length, cfg.windows, text)
        write_run_config(cfg.out.parent, config, cfg.config_name)
        log = MeasurementLog(cfg.log_path, RUN_COLUMNS)
        grid = MeasureGrid(tuple(cfg.methods), tuple(cfg.budgets), tuple(cfg.seq_lens),
                           tuple(cfg.gammas), tuple(cfg.temperatures), cfg.new_tokens, cfg.seed)
        from .acceptance_table import run_key

        todo = sum(run_key(w, *r) not in log for w in range(cfg.windows) for r in grid.runs())
        skipped = cfg.windows * len(grid.runs()) - todo
        meta = {"model": model.name, "draft": "self", "dataset": origin, "new_tokens": cfg.new_tokens,
                "source": f"magicdec-model acceptance measure: real self-speculative decoding of "
                          f"{model.name} ({Path(model.source).name}), {cfg.new_tokens} new tokens per "
                          f"window"}
        progress.start(todo)
        wanted = {run_key(w, *r) for w in range(cfg.windows) for r in grid.runs()}

        def write_table() -> int:
            rows = table_rows([r for r in log.rows if r["key"] in wanted], meta)
            if rows:
                atomic_write_text(cfg.out, table_csv(rows))
            return len(rows)

        measured = 0

        def on_run(row: dict[str, Any]) -> None:
            nonlocal measured
            log.append([row])
            measured += 1
            write_table()
            progress.advance()

        for first in range(0, cfg.windows, cfg.batch):
            group = {w: windows[w] for w in range(first, min(first + cfg.batch, cfg.windows))}
            measure_windows(model.decoder, group, grid, done=log.keys, on_run=on_run,
                            on_start=progress.label)
        n_rows = write_table()
    finally:
        lock.release()
    return MeasureSummary(measured, skipped, n_rows, [cfg.out, cfg.log_path,
                                                      cfg.out.parent / cfg.config_name])
