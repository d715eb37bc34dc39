"""The stages of one validate run over one :class:`RunContext`.

:func:`setup` checks every flag, joins the tensor-parallel group, opens ``DIR`` (rank 0) and
builds the decoder, the backend and the plans; then, in order (each point appended to
``DIR/measurements.csv`` as soon as it is measured; points already there are skipped):

1. :func:`peaks`: matmul FLOP/s and copy bandwidth of the device (the datasheet of a CPU);
2. :func:`microbench`: GEMM, attention, elementwise and all-reduce points (:mod:`.microbench`);
3. :func:`fit` (rank 0): the fit (:mod:`.fit`) -> ``DIR/profile.toml``;
4. :func:`check`: AR and SD-loop steps (:mod:`.check`), never seen by the fit;
5. :func:`calibrate` (rank 0): the validator's engine on the AR steps only -> ``DIR/engine.toml``;
6. :func:`report` (rank 0): ``DIR/comparison.csv``, ``DIR/report.html`` and the summary.

Under torchrun every rank runs the same points in the same order on its shard; rank 0 alone
writes files.  Row schemas are in :mod:`.results`.
"""

from __future__ import annotations

import dataclasses
import os
import re
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import torch

from ..perfmodel.architecture import ModelArch
from ..perfmodel.calibrate import Calibration
from ..perfmodel.engine import EngineProfile, engine_to_toml, resolve_engine
from ..perfmodel.errors import InputError
from ..perfmodel.hardware import HardwareProfile, load_profile, profile_to_toml
from ..perfmodel.outfiles import (
    OutputLock,
    atomic_output,
    atomic_write_text,
    check_out_folder,
    make_out_folder,
)
from ..perfmodel.parallel import Shard, shard
from .attention import AttentionBackend
from .check import (
    SD_STEP_QUANTITIES,
    ARPoint,
    SDPoint,
    compare,
    mape,
    measure_ar,
    measure_sd,
    plan_checks,
)
from .checkpoint import load_checkpoint
from .corpus import default_text, read_text, token_windows
from .decoder import Decoder
from .device import capacity, device_name, free_memory, is_oom
from .distributed import broadcast_from_rank0, finish, init_tensor_parallel
from .engine_fit import calibrate_engine
from .fit import FitData, FitResult, fit_profile, fitted_profile, model_times
from .microbench import MicroBench, MicroPoint, plan_points, point_cost
from .real_model import has_tokenizer, load_real_model
from .report import build_report
from .results import MeasurementLog, check_rows, micro_comparison, micro_row, peak_rows, utc_now
from .run import (
    Progress,
    RunSummary,
    ValidateConfig,
    check_config,
    check_device,
    check_memory,
    pct,
    prepare_out,
    select_attention,
    start_profile,
)
from .runconfig import run_configuration
from .tensor_parallel import parallelize
from .timing import Timer, TimerConfig, measure_peaks


@dataclass
class RunContext:
    """What every stage reads and adds to: the run's configuration, device, decoder, plans, log,
    counters, and (on rank 0) the fit, the engine and the comparison."""

    cfg: ValidateConfig
    arch: ModelArch  # the full model record
    run_model: ModelArch  # what runs: --layers layers at the run's dtype
    device: torch.device
    dtype: torch.dtype
    rank: int
    world: int
    device_label: str
    date: str
    backend: AttentionBackend
    decoder: Decoder
    shard: Shard
    bench: MicroBench
    micro_points: list[MicroPoint]
    check_points: list[ARPoint | SDPoint]
    peak_key: str
    progress: Progress
    log: MeasurementLog | None  # rank 0 only
    done: set[str]  # keys already measured (--resume), the same on every rank
    warnings: list[str] = field(default_factory=list)
    measured: int = 0
    failed: int = 0
    skipped: int = 0
    # rank 0, from the fit on
    fit_result: FitResult | None = None
    fit_data: FitData | None = None
    profile: HardwareProfile | None = None
    # rank 0, from the calibration on
    engine: EngineProfile | None = None
    calibration: Calibration | None = None
    # real text (a checkpoint with a tokenizer): prompt windows [max batch, S] per seq_len, origin
    prompts: dict[int, torch.Tensor] = field(default_factory=dict)
    text_origin: str = ""

    def prompt(self, batch: int, seq_len: int) -> torch.Tensor | None:
        """The real-text prompt ``[batch, seq_len]`` of a check point; None: random tokens."""
        p = self.prompts.get(seq_len)
        return None if p is None else p[:batch]

    @property
    def writer(self) -> bool:
        """Whether this rank writes the files (rank 0)."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        """Whether the run is tensor parallel over several processes."""
        return self.world > 1

    @property
    def profile_path(self) -> Any:
        return self.cfg.out / "profile.toml"

    @property
    def engine_path(self) -> Any:
        return self.cfg.out / "engine.toml"

    def record(self, rows: list[dict]) -> None:
        """Append one point's rows to measurements.csv (rank 0), labelled with backend, device and
        time."""
        if self.log is None:
            return
        for r in rows:
            r.setdefault("backend", self.backend.name)
            r.setdefault("device", self.device_label)
            r.setdefault("time_utc", utc_now())
        self.log.append(rows)

    def todo(self, key: str) -> bool:
        """Whether the point ``key`` is still to be measured."""
        return key not in self.done


# ----------------------------------------------------------------------------- setup
def setup(cfg: ValidateConfig, progress: Progress, warn: Callable[[str], None],
          lock: OutputLock | None) -> RunContext:
    """Check everything, join the TP group, open ``cfg.out`` (rank 0, under ``lock``), build the
    decoder (sharded with :func:`.tensor_parallel.parallelize` under TP), backend and plans."""
    arch = check_config(cfg)
    check_device(cfg.device)
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    if world != cfg.gpus and world > 1:
        cfg = dataclasses.replace(cfg, gpus=world)
    if cfg.gpus > 1 and world == 1:
        raise InputError(f"--gpus {cfg.gpus} needs torchrun (the CLI launches it; see docs/validation.md)")
    tp = None
    if world > 1:
        tp, device = init_tensor_parallel("nccl" if cfg.device == "cuda" else "gloo")
    elif cfg.device == "cuda":
        local = int(os.environ.get("LOCAL_RANK", "0"))
        torch.cuda.set_device(local)
        device = torch.device("cuda", local)
    else:
        device = torch.device("cpu")
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    dtype_bytes = torch.finfo(dtype).bits // 8
    check_memory(cfg, arch, dtype_bytes, capacity(device))
    run_model = dataclasses.replace(arch, num_layers=cfg.layers, dtype_bytes=dtype_bytes)
    label = device_name(device)
    backend, notes = select_attention(device, cfg.backend)
    log = None
    if rank == 0:
        assert lock is not None
        check_out_folder(cfg.out)
        make_out_folder(cfg.out)
        lock.acquire()
        log = prepare_out(cfg.out, cfg.resume, run_configuration(cfg, arch, label, dtype, backend.name))
    done = set(log.keys) if log is not None else set()
    if tp is not None:
        done = set(broadcast_from_rank0(sorted(done)))
    for n in notes:
        warn(n)

    torch.manual_seed(cfg.seed)
    prompts: dict[int, torch.Tensor] = {}
    text_origin = ""
    if cfg.checkpoint and has_tokenizer(cfg.checkpoint):
        real = load_real_model(cfg.checkpoint, device, dtype, layers=cfg.layers)
        decoder = real.decoder
        prompts, text_origin = text_prompts(real.tokenizer, cfg)
    elif cfg.checkpoint:  # a safetensors folder without tokenizer.json: random prompts
        decoder = load_checkpoint(cfg.checkpoint, layers=cfg.layers, device=device, dtype=dtype)
    else:
        decoder = Decoder.synthetic(run_model, layers=cfg.layers, seed=cfg.seed, device=device, dtype=dtype)
    if tp is not None:
        parallelize(decoder, tp)  # the full-size decoder, sharded as perfmodel.parallel.shard splits it
    timer = Timer(device, TimerConfig(graph=cfg.cuda_graph))
    ctx = RunContext(
        cfg=cfg, arch=arch, run_model=run_model, device=device, dtype=dtype, rank=rank, world=world,
        device_label=label, date=utc_now()[:10], backend=backend, decoder=decoder,
        shard=shard(run_model, cfg.gpus),
        bench=MicroBench(decoder, backend, timer, dist_group=True if tp is not None else None),
        micro_points=plan_points(run_model, cfg.gpus, cfg.batch, cfg.seq_len, cfg.kv_budget, cfg.gamma),
        check_points=plan_checks(cfg.batch, cfg.seq_len, cfg.kv_budget, cfg.gamma, cfg.acceptance,
                                 cfg.gpus),
        peak_key=f"peak|{label}|{dtype}", progress=progress, log=log, done=done, warnings=list(notes),
        prompts=prompts, text_origin=text_origin,
    )
    keys = [ctx.peak_key, *(p.key for p in ctx.micro_points), *(c.key for c in ctx.check_points)]
    todo = sum(ctx.todo(k) for k in keys)
    ctx.skipped = len(keys) - todo
    progress.start(todo)
    return ctx


def text_prompts(tokenizer: Any, cfg: ValidateConfig) -> tuple[dict[int, torch.Tensor], str]:
    """Prompts cut from real text (``--text`` or the default corpus): per sequence length, ``max
    batch`` non-overlapping windows (a batch of b takes the first b); and the text's origin."""
    if cfg.text is not None:
        text, origin = read_text(cfg.text), f"--text {cfg.text}"
    else:
        text, origin = default_text()
    b = max(cfg.batch)
    prompts = {s: torch.tensor(token_windows(tokenizer, s, b, text), dtype=torch.long)
               for s in sorted(set(cfg.seq_len))}
    return prompts, origin


def attempt(fn: Callable[[], Any], device: torch.device, raw: bool = False) -> dict:
    """Run one measurement; out-of-memory and other errors become a status, not a crash."""
    try:
        value = fn()
    except KeyboardInterrupt:
        raise
    except Exception as exc:  # noqa: BLE001 - any failure of one point is recorded, the run goes on
        status = "oom" if is_oom(exc) else "error"
        free_memory(device)
        return {"status": status, "detail": f"{type(exc).__name__}: {str(exc).splitlines()[0][:300]}",
                "value": ""}
    if raw:
        return {"status": "ok", "value": value, "detail": ""}
    return {"status": "ok", "value": value.median, "p25": value.p25, "p75": value.p75,
            "reps": value.reps, "detail": ""}


def _point_done(ctx: RunContext, failed: bool) -> None:
    ctx.failed += failed
    ctx.measured += 1
    ctx.progress.advance()


# ----------------------------------------------------------------------------- stages
def peaks(ctx: RunContext) -> None:
    """1. Device peaks (``peak`` rows)."""
    if not ctx.todo(ctx.peak_key):
        return
    ctx.progress.point("device peaks (matmul, copy)")
    ctx.record(peak_rows(ctx.peak_key, measure_peaks(ctx.device, ctx.dtype)))
    _point_done(ctx, False)


def microbench(ctx: RunContext) -> None:
    """2. Microbenchmarks (``micro`` rows), each with perfmodel's FLOPs and bytes of its op."""
    for p in ctx.micro_points:
        if not ctx.todo(p.key):
            continue
        ctx.progress.point(p.label())
        row = micro_row(p, point_cost(ctx.run_model, ctx.shard, p),
                        attempt(lambda p=p: ctx.bench.measure(p), ctx.device))
        ctx.record([row])
        _point_done(ctx, row["status"] != "ok")


def _micro_ok(log: MeasurementLog) -> list[dict]:
    return [r for r in log.rows if r["stage"] == "micro" and r["status"] == "ok"]


def fit(ctx: RunContext) -> None:
    """3. Rank 0: fit the profile's efficiencies to the microbenchmarks -> ``profile.toml``."""
    if not ctx.writer:
        return
    assert ctx.log is not None
    cfg, run_model = ctx.cfg, ctx.run_model
    measured_peaks = {r["op"]: float(r["value"]) for r in ctx.log.rows if r["key"] == ctx.peak_key}
    start = start_profile(cfg, measured_peaks, capacity(ctx.device), ctx.device.type, ctx.device_label,
                          ctx.date)
    rows = _micro_ok(ctx.log)
    data = FitData(
        op_class=np.asarray([r["op_class"] for r in rows], dtype=object),
        flops=np.asarray([float(r["flops"]) for r in rows]),
        bytes=np.asarray([float(r["bytes"]) for r in rows]),
        comm_bytes=np.asarray([float(r["comm_bytes"] or 0) for r in rows]),
        gpus=np.asarray([int(r["gpus"]) for r in rows]),
        measured=np.asarray([float(r["value"]) for r in rows]),
        dtype_bytes=run_model.dtype_bytes,
        labels=[r["key"] for r in rows],
        tokens=np.asarray([float(r["batch"]) * float(r["q"]) if r["op_class"] == "gemm" else 0.0
                           for r in rows]),
    )
    if not len(data):
        raise InputError(f"no microbenchmark point succeeded (see {ctx.log.path}); nothing to fit")
    res = fit_profile(start, data)
    slug = re.sub(r"[^a-z0-9]+", "-", ctx.device_label.lower()).strip("-")[:48]
    ctx.profile = fitted_profile(
        res, data,
        name=f"fitted-{slug}",
        description=f"Fitted by magicdec-model validate on {ctx.date} ({ctx.device_label})",
        device=ctx.device_label, date=ctx.date,
        extra_meta={
            "model": run_model.name, "layers": run_model.num_layers,
            "dtype_bytes": run_model.dtype_bytes, "gpus": cfg.gpus,
            "attention_backend": ctx.backend.name, "torch": torch.__version__,
            "start_profile": cfg.start_profile or "measured peaks + generic priors",
        },
    )
    ctx.fit_result, ctx.fit_data = res, data
    atomic_write_text(ctx.profile_path, profile_to_toml(ctx.profile))
    load_profile.cache_clear()
    load_profile(str(ctx.profile_path))  # what predict --hardware will load


def check(ctx: RunContext) -> None:
    """4. The held-out AR and SD-loop steps (``check`` rows)."""
    cfg = ctx.cfg
    # each forward step is timed after the same cache eviction as the microbenchmarks its kernels
    # were fitted to (weights and KV stream from memory, as on a GPU, even where this device's
    # last-level cache could hold the whole small model)
    flusher = ctx.bench.timer.flusher
    flush = flusher.flush if flusher is not None else None
    for c in ctx.check_points:
        if not ctx.todo(c.key):
            continue
        ctx.progress.point(c.label())
        prompt = ctx.prompt(c.batch, c.seq_len)
        if isinstance(c, ARPoint):
            def run(c=c, prompt=prompt):
                return measure_ar(ctx.decoder, c, ctx.backend, cfg.new_tokens, cfg.seed, flush,
                                  prompt=prompt)
        else:
            def run(c=c, prompt=prompt):
                return measure_sd(ctx.decoder, c, ctx.backend, cfg.new_tokens, cfg.kv_method, cfg.seed,
                                  flush, prompt=prompt)
        res = attempt(run, ctx.device, raw=True)
        ctx.record(check_rows(c, res))
        _point_done(ctx, res["status"] != "ok")


def calibrate(ctx: RunContext) -> None:
    """5. Rank 0: the validator's engine, calibrated on the measured AR steps only (the prior is
    ``--engine``) -> ``engine.toml``; the prior itself with fewer than 2 AR steps."""
    if not ctx.writer:
        return
    assert ctx.log is not None and ctx.profile is not None
    prior = resolve_engine(ctx.cfg.engine, ideal=False)
    calib = calibrate_engine(pd.DataFrame(ctx.log.rows), ctx.run_model, ctx.profile, ctx.cfg.gpus,
                             date=ctx.date, device=ctx.device_label, prior=prior)
    ctx.calibration = calib
    if calib is None:
        ctx.engine = prior
        ctx.warnings.append("the engine is not calibrated: fewer than 2 AR steps measured, or they "
                            f"determine no engine term ({prior.name} engine used)")
        if ctx.engine_path.exists():  # an earlier run's engine would no longer match this folder
            ctx.engine_path.unlink()
            ctx.warnings.append(f"removed {ctx.engine_path}: an earlier run's engine")
        return
    ctx.engine = calib.engine
    atomic_write_text(ctx.engine_path, engine_to_toml(
        calib.engine, header=f"Written by magicdec-model validate on {ctx.date} ({ctx.device_label})."))


def _micro_frame(ctx: RunContext) -> pd.DataFrame:
    assert ctx.log is not None and ctx.profile is not None and ctx.fit_data is not None
    df = pd.DataFrame(_micro_ok(ctx.log))
    for c in ("flops", "bytes", "comm_bytes", "value"):
        df[c] = pd.to_numeric(df[c], errors="coerce").fillna(0.0)
    for c in ("batch", "q", "kv_len", "gpus"):
        df[c] = pd.to_numeric(df[c]).astype(int)
    df["measured"] = df["value"]
    df["predicted"] = model_times(ctx.profile, ctx.fit_data)
    df["dtype_bytes"] = ctx.run_model.dtype_bytes
    df["label"] = [f"{o} ({v}) B={b} q={q} kv={k}" for o, v, b, q, k in
                   zip(df["op"], df["variant"], df["batch"], df["q"], df["kv_len"], strict=True)]
    return df


def report(ctx: RunContext) -> RunSummary:
    """6. Rank 0: predicted vs measured (comparison.csv), report.html, the summary."""
    cfg, arch, calib, engine = ctx.cfg, ctx.arch, ctx.calibration, ctx.engine
    assert ctx.log is not None and ctx.profile is not None and engine is not None
    assert ctx.fit_result is not None and ctx.fit_data is not None
    comp = compare(pd.DataFrame(ctx.log.rows), ctx.run_model, ctx.profile, cfg.kv_method, engine)
    micro_df = _micro_frame(ctx)
    mic_rows = micro_comparison(micro_df)
    full = pd.concat([comp, mic_rows], ignore_index=True) if len(mic_rows) else comp
    with atomic_output(cfg.out / "comparison.csv") as tmp:
        full.to_csv(tmp, index=False)
    m_ar = mape(comp, ["target_decode"])
    m_step = mape(comp, SD_STEP_QUANTITIES)
    m_speed = mape(comp, ["speedup"])
    lines = [
        f"Model {arch.name} with {cfg.layers} layer(s), {str(ctx.dtype).replace('torch.', '')}, "
        f"tensor parallel over {cfg.gpus} process(es); device {ctx.device_label}; attention backend "
        f"{ctx.backend.name}.",
        f"Fit: {len(ctx.fit_data)} microbenchmark points, fit MAPE {ctx.fit_result.mape(ctx.fit_data):.1f}% "
        f"(in-sample); not fitted: {', '.join(ctx.fit_result.not_fitted) or 'none'}.",
        (f"Engine: {engine.describe()}; calibrated on {calib.engine.calibration['points']} AR steps "
         f"(in-sample MAPE {calib.mape_in_sample:.1f}%, {calib.cv_method} {calib.mape_cv:.1f}%)."
         if calib is not None else f"Engine: {engine.describe()} (not calibrated)."),
        f"Held-out SD loop: MAPE SD step-time {pct(m_step)}, MAPE speedup {pct(m_speed)} "
        + _acceptance_note(ctx, comp),
        *ctx.warnings,
    ]
    build_report(cfg.out / "report.html", micro_df, comp, ctx.profile,
                 f"magicdec-model validate: {arch.name} on {ctx.device_label}", lines)
    names = ["measurements.csv", "profile.toml"] + (["engine.toml"] if calib is not None else [])
    files = [cfg.out / n for n in (*names, "comparison.csv", "report.html")]
    return RunSummary(m_step, m_speed, ctx.measured, ctx.skipped, ctx.failed, ctx.profile_path, files,
                      ctx.warnings, mape_ar=m_ar, engine_path=ctx.engine_path if calib is not None else None)


def _acceptance_note(ctx: RunContext, comp: pd.DataFrame) -> str:
    """How the held-out SD runs got their acceptance (and the measured range when real)."""
    cfg = ctx.cfg
    if cfg.acceptance is not None:
        return f"(acceptance synthetic Bernoulli a={cfg.acceptance:g})."
    rates = comp.loc[comp["quantity"] == "speedup", "acceptance"].dropna()
    span = f", measured {rates.min():.2f}-{rates.max():.2f}" if len(rates) else ""
    where = f"on {ctx.text_origin}" if ctx.text_origin else "on random prompts"
    return f"(real greedy acceptance of the checkpoint's weights {where}{span})."


#: the measuring and fitting stages in run order (``report`` ends the run on rank 0)
STAGES = (peaks, microbench, fit, check, calibrate)


def run_stages(cfg: ValidateConfig, progress: Progress | None, warn: Callable[[str], None] | None,
               lock: OutputLock | None) -> RunSummary:
    """:func:`setup`, every stage of :data:`STAGES`, then :func:`report` (rank 0); under TP the
    other ranks wait for rank 0's files and return a summary of their own counts."""
    progress = progress or Progress()
    warn = warn or (lambda msg: warnings.warn(msg, stacklevel=2))
    ctx = setup(cfg, progress, warn, lock)
    said = len(ctx.warnings)  # setup has already shown its notes
    for stage in STAGES:
        stage(ctx)
    for msg in ctx.warnings[said:]:
        warn(msg)
    if not ctx.writer:
        finish()  # waits for rank 0's fit, comparison and report
        return RunSummary(float("nan"), float("nan"), ctx.measured, ctx.skipped, ctx.failed,
                          ctx.profile_path)
    summary = report(ctx)
    if ctx.distributed:
        finish()
    return summary
