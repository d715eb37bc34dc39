"""One validate run: measure peaks and microbenchmarks, fit, check on the SD loop, write DIR.

Order (each point appended to ``DIR/measurements.csv`` as soon as it is measured):

1. ``peak`` rows: matmul FLOP/s and copy bandwidth of the device (the datasheet of a CPU);
2. ``micro`` rows: GEMM, attention, elementwise and all-reduce points (:mod:`.microbench`);
3. the fit (:mod:`.fit`) -> ``DIR/profile.toml``;
4. ``check`` rows: AR and SD-loop steps (:mod:`.check`), never seen by the fit;
5. ``DIR/comparison.csv`` and ``DIR/report.html``.

Under torchrun (``WORLD_SIZE`` > 1) every rank runs the same points in the same order on its
shard; rank 0 alone writes files.  Only this module and the ones it calls import torch.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import os
import platform
import socket
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..perfmodel.acceptance import BUDGET_KV_METHODS, check_acceptance
from ..perfmodel.architecture import ModelArch, get_model
from ..perfmodel.engine import resolve_engine
from ..perfmodel.errors import InputError
from ..perfmodel.hardware import (
    EFFICIENCY_KEYS,
    OPTIONAL_EFFICIENCY,
    HardwareProfile,
    load_profile,
    profile_from_dict,
    profile_to_toml,
)
from ..perfmodel.inputs import check_int
from ..perfmodel.outfiles import (
    OutputLock,
    atomic_output,
    atomic_write_text,
    check_out_folder,
    make_out_folder,
)
from ..perfmodel.parallel import shard
from ..perfmodel.scenario import check_budgets
from ..perfmodel.speculative import check_gamma
from .attention.registry import AUTO, backend_names
from .results import MeasurementLog, utc_now
from .runconfig import check_resume, run_configuration, write_run_config

#: the draft KV methods validate runs: self-speculation over a budget KV (perfmodel's list)
KV_METHODS = BUDGET_KV_METHODS
DEVICES = ("cpu", "cuda")
BACKENDS = (AUTO, *backend_names())

#: neutral prior of every efficiency fraction (``*_bw``, ``*_flops``) for a device without a
#: shipped profile (a CPU)
GENERIC_FRACTION = 0.5
#: priors of the efficiency terms that are not fractions (seconds, bytes per second)
GENERIC_ABSOLUTE = {
    "kernel_fixed_s": 10e-6,
    "allreduce_latency_s": 50e-6, "allreduce_hop_latency_s": 5e-6, "allreduce_busbw": 1e9,
}


def _generic_start() -> dict[str, float]:
    """Starting efficiencies: one per key of perfmodel's hardware profile, none retyped here."""
    keys = EFFICIENCY_KEYS + OPTIONAL_EFFICIENCY
    unknown = set(GENERIC_ABSOLUTE) - set(keys)
    if unknown:
        raise ValueError(f"GENERIC_ABSOLUTE names keys a profile does not have: {sorted(unknown)}")
    return {k: GENERIC_ABSOLUTE.get(k, GENERIC_FRACTION) for k in keys}


#: starting efficiencies for a device without a shipped profile (a CPU): neutral priors
GENERIC_START = _generic_start()


@dataclass
class ValidateConfig:
    """Everything one run needs (the CLI's flags)."""

    device: str
    model: str
    layers: int
    batch: list[int]
    seq_len: list[int]
    kv_budget: list[int]
    kv_method: str
    gamma: list[int]
    acceptance: float | None  # None with a checkpoint: real (greedy) acceptance
    out: Path
    resume: bool = False
    new_tokens: int = 16
    backend: str = "auto"
    cuda_graph: bool = False
    start_profile: str | None = None
    seed: int = 0
    gpus: int = 1
    threads: int = 0  # CPU threads for torch (0: torch's default)
    checkpoint: str | None = None  # local safetensors folder: real weights, real acceptance
    engine: str | None = None  # prior engine of the AR calibration (name or .toml); None: the default


@dataclass
class RunSummary:
    """What a finished run reports: MAPE (%) of the AR steps the engine was fitted to, and of the
    held-out SD steps (draft, verify) and speedups."""

    mape_step: float
    mape_speedup: float
    points_measured: int
    points_skipped: int
    failed: int
    profile_path: Path
    files: list[Path] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    mape_ar: float = float("nan")
    engine_path: Path | None = None

    def last_line(self) -> str:
        """The line scripts read: ``MAPE AR (fit): X%  MAPE SD step-time (held out): Y%  ...``."""
        return (f"MAPE AR (fit): {_pct(self.mape_ar)}  MAPE SD step-time (held out): "
                f"{_pct(self.mape_step)}  MAPE SD speedup (held out): {_pct(self.mape_speedup)}")


def _pct(x: float) -> str:
    return "n/a" if not np.isfinite(x) else f"{x:.1f}%"


class Progress:
    """Progress callbacks (the CLI passes a rich progress bar; the default does nothing)."""

    def start(self, total: int) -> None: ...

    def point(self, label: str) -> None: ...

    def advance(self) -> None: ...


# ----------------------------------------------------------------------------- checks
def check_config(cfg: ValidateConfig) -> ModelArch:
    """Validate every flag without importing torch or creating anything; the full model record."""
    if cfg.device not in DEVICES:
        raise InputError(f"--device {cfg.device!r} is not one of: {', '.join(DEVICES)}")
    if cfg.backend not in BACKENDS:
        raise InputError(f"--backend {cfg.backend!r} is not one of: {', '.join(BACKENDS)}")
    if cfg.backend == "flashinfer" and cfg.device != "cuda":
        raise InputError("--backend flashinfer needs --device cuda; allowed on CPU: torch, auto")
    for flag, value in (("--layers", cfg.layers), ("--new-tokens", cfg.new_tokens),
                        ("--seed", cfg.seed), ("--threads", cfg.threads), ("--gpus", cfg.gpus)):
        check_int(value, flag)
    for flag, values in (("--batch", cfg.batch), ("--seq-len", cfg.seq_len),
                         ("--kv-budget", cfg.kv_budget)):
        if not values:
            raise InputError(f"{flag} needs at least one value")
        for v in values:
            check_int(v, flag)
    if cfg.acceptance is not None:
        check_acceptance(cfg.acceptance)
    if importlib.util.find_spec("torch") is None:
        raise InputError(
            "validate runs real kernels and needs torch, which is not installed; "
            "install it with: pip install 'magicdec-model[validate]'"
        )
    if cfg.checkpoint:
        folder = Path(cfg.checkpoint)
        if not (folder / "config.json").is_file():
            raise InputError(
                f"--checkpoint {cfg.checkpoint}: no config.json there; allowed: a local folder with "
                f"config.json and *.safetensors (Hugging Face LLaMA names)"
            )
        if cfg.gpus > 1:
            raise InputError("--checkpoint with --gpus > 1 is not supported yet; allowed: --gpus 1")
    arch = get_model(str(cfg.checkpoint) if cfg.checkpoint else cfg.model)
    unsupported = [what for what, on in (("mixture-of-experts layers", arch.is_moe),
                                         ("multi-head latent attention", arch.is_mla),
                                         ("sliding-window layers", arch.sliding_window is not None),
                                         ("per-head q/k norms", arch.qk_norm),
                                         ("extra norms per layer", arch.norms_per_layer != 2))
                   if on]
    if unsupported:
        raise InputError(
            f"--model {arch.name}: validate builds dense LLaMA-family decoders only and this model has "
            f"{', '.join(unsupported)}; allowed: dense models such as llama-3.1-8b, "
            f"qwen2.5-7b, tinyllama-1.1b (predict costs {arch.name} analytically)"
        )
    if not 1 <= cfg.layers <= arch.num_layers:
        raise InputError(f"--layers {cfg.layers} is outside 1..{arch.num_layers} for {arch.name}")
    if cfg.kv_method not in KV_METHODS:
        raise InputError(
            f"--kv-method {cfg.kv_method!r} is not one of: {', '.join(KV_METHODS)} "
            f"(the validated draft is self-speculation over a budget KV)"
        )
    for g in cfg.gamma:
        check_gamma(g)
    if cfg.acceptance is None and not cfg.checkpoint:
        raise InputError("--acceptance is needed without --checkpoint (synthetic acceptance rate)")
    check_budgets(cfg.kv_budget, cfg.seq_len, full_allowed=False)
    if cfg.new_tokens < 2:
        raise InputError(f"--new-tokens {cfg.new_tokens} must be at least 2")
    if cfg.threads < 0:
        raise InputError(f"--threads {cfg.threads} must be >= 0 (0: torch's default)")
    if cfg.gpus < 1:
        raise InputError(f"--gpus {cfg.gpus} must be a positive integer")
    shard(arch, cfg.gpus)  # raises InputError when the model cannot be split
    if cfg.start_profile:
        load_profile(cfg.start_profile)
    resolve_engine(cfg.engine, ideal=False)  # InputError naming a bad --engine
    check_out_folder(cfg.out)
    return arch


def check_memory(cfg: ValidateConfig, arch: ModelArch, dtype_bytes: int, capacity: float) -> None:
    """Refuse a grid whose largest point cannot fit: its full KV cache alone exceeds the device.

    KV bytes of the measured layers = kv_bytes_per_token x batch x (seq_len + new tokens + gamma
    + 1), split over the GPUs (a lower bound: weights, activations and the draft's cache come on
    top), against ``capacity`` bytes (physical RAM on a CPU, total memory of one GPU).
    """
    run = dataclasses.replace(arch, num_layers=cfg.layers, dtype_bytes=dtype_bytes)
    b, s = max(cfg.batch), max(cfg.seq_len)
    tokens = b * (s + cfg.new_tokens + max(cfg.gamma) + 1)
    need = run.kv_bytes_per_token() * tokens / min(cfg.gpus, arch.num_kv_heads)
    if need > capacity:
        raise InputError(
            f"--batch {b} x --seq-len {s}: the KV cache of that point alone needs {need / 1e9:,.1f} GB, "
            f"more than this device's {capacity / 1e9:,.1f} GB; allowed: smaller --batch or --seq-len"
        )


def check_device(device: str) -> None:
    """``--device cuda`` needs a CUDA GPU visible to torch."""
    import torch

    if device == "cuda" and not torch.cuda.is_available():
        build = "a CPU-only build" if torch.version.cuda is None else f"CUDA {torch.version.cuda}"
        raise InputError(
            f"--device cuda: no CUDA GPU is visible to torch {torch.__version__} ({build}); "
            f"use --device cpu"
        )


def prepare_out(out: Path, resume: bool, config: dict[str, Any] | None = None) -> MeasurementLog:
    """The measurement log of ``out`` (created when missing); call with ``out`` locked.

    With ``config`` (see :mod:`.runconfig`), an existing log is continued only when ``--resume``
    is given and ``out/config.json`` holds the same configuration; ``config.json`` is (re)written
    when the log is new.
    """
    check_out_folder(out)
    make_out_folder(out)
    path = out / "measurements.csv"
    has_rows = path.exists() and path.stat().st_size > 0
    if has_rows and not resume:
        raise InputError(
            f"--out {out} already holds measurements.csv; allowed: --resume to continue it, or "
            f"another --out"
        )
    if config is not None:
        if has_rows:
            check_resume(out, config)
        write_run_config(out, config)
    return MeasurementLog(path)


# ----------------------------------------------------------------------------- helpers
def device_name(device: Any) -> str:
    import torch

    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    model = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as fh:
            for line in fh:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return f"CPU {model}, {torch.get_num_threads()} threads ({socket.gethostname()})"


def select_attention(device: Any, name: str) -> tuple[Any, list[str]]:
    """The attention backend named ``name`` (or ``"auto"``) from the registry; notes to warn.

    On a GPU, ``auto`` and ``flashinfer`` fall back to torch SDPA with a note when FlashInfer is
    missing or cannot be loaded; ``flashinfer`` on a CPU is refused.
    """
    from .attention import flashinfer_usable, get_backend

    notes: list[str] = []
    if device.type == "cuda" and name in (AUTO, "flashinfer"):
        if flashinfer_usable(device):
            try:
                return get_backend("flashinfer", device), notes
            except ImportError as exc:
                notes.append(f"FlashInfer backend could not be loaded ({exc}); using torch SDPA")
        else:
            notes.append(
                "FlashInfer is not installed or not usable on this GPU: attention falls back to "
                "torch SDPA (install the 'gpu' extra: pip install 'magicdec-model[gpu]')"
            )
        return get_backend("torch", device), notes
    if name == "flashinfer":
        raise InputError("--backend flashinfer needs --device cuda; allowed on CPU: torch, auto")
    return get_backend("torch", device), notes


def _is_oom(exc: BaseException) -> bool:
    text = str(exc).lower()
    return "out of memory" in text or "can't allocate memory" in text or type(exc).__name__ in (
        "OutOfMemoryError",
    )


def _free_memory(device: Any) -> None:
    import gc

    import torch

    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()


def _capacity(device: Any) -> float:
    """Memory of the device in bytes: one GPU's total memory, or the machine's physical RAM."""
    import torch

    if device.type == "cuda":
        return float(torch.cuda.get_device_properties(device).total_memory)
    return float(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))


def start_profile(cfg: ValidateConfig, peaks: dict[str, float], device: Any, name: str,
                  date: str) -> HardwareProfile:
    """The profile the fit starts from: a shipped one (``--start-profile``) or measured peaks."""
    if cfg.start_profile:
        return load_profile(cfg.start_profile)
    capacity = _capacity(device)
    how = f"measured by magicdec-model validate on this machine ({name}) on {date}"
    datasheet = {
        "peak_flops_bf16": peaks["peak_flops"],
        "peak_flops_fp16": peaks["peak_flops"],
        "peak_flops_fp32": peaks["peak_flops_fp32"],
        "mem_bw": peaks["mem_bw"],
        "mem_capacity": capacity,
    }
    dt = "fp32" if device.type == "cpu" else "bf16"
    sources = {
        "peak_flops_bf16": f"{how}: {dt} matmul (the run's dtype; this device is timed in {dt})",
        "peak_flops_fp16": f"{how}: same as peak_flops_bf16",
        "peak_flops_fp32": f"{how}: fp32 matmul",
        "mem_bw": f"{how}: large tensor copy, read + write bytes per second",
        "mem_capacity": f"{how}: {'physical RAM' if device.type == 'cpu' else 'torch total_memory'}",
    }
    prior = "generic starting value of validate (a prior, not a measurement)"
    sources.update(dict.fromkeys(GENERIC_START, prior))
    doc = {"name": "start", "description": "start", "datasheet": datasheet,
           "efficiency": dict(GENERIC_START), "sources": sources}
    return profile_from_dict(doc, "<measured>")


# ----------------------------------------------------------------------------- the run
def run_validate(cfg: ValidateConfig, progress: Progress | None = None,
                 warn: Callable[[str], None] | None = None) -> RunSummary:
    """Run everything; return the summary (files written to ``cfg.out`` on rank 0).

    Every flag, the device and the backend are checked before ``cfg.out`` is created; rank 0
    then holds the folder's lock (:class:`~..perfmodel.outfiles.OutputLock`) until the end.
    """
    lock = OutputLock(cfg.out, folder=True) if os.environ.get("RANK", "0") == "0" else None
    try:
        return _run_validate(cfg, progress, warn, lock)
    finally:
        if lock is not None:
            lock.release()


def _run_validate(cfg: ValidateConfig, progress: Progress | None, warn: Callable[[str], None] | None,
                  lock: OutputLock | None) -> RunSummary:
    import torch

    progress = progress or Progress()
    warn = warn or (lambda msg: warnings.warn(msg, stacklevel=2))
    arch = check_config(cfg)
    check_device(cfg.device)

    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    if world != cfg.gpus and world > 1:
        cfg = dataclasses.replace(cfg, gpus=world)
    if cfg.gpus > 1 and world == 1:
        raise InputError(f"--gpus {cfg.gpus} needs torchrun (the CLI launches it; see docs/validation.md)")
    dist_on = world > 1
    if cfg.device == "cuda":
        local = int(os.environ.get("LOCAL_RANK", "0"))
        torch.cuda.set_device(local)
        device = torch.device("cuda", local)
    else:
        device = torch.device("cpu")
    if dist_on:
        import torch.distributed as dist

        if not dist.is_initialized():
            if device.type == "cuda":
                dist.init_process_group("nccl", device_id=device)
            else:
                dist.init_process_group("gloo")
    writer = rank == 0
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    dtype_bytes = torch.finfo(dtype).bits // 8
    check_memory(cfg, arch, dtype_bytes, _capacity(device))
    run_model = dataclasses.replace(arch, num_layers=cfg.layers, dtype_bytes=dtype_bytes)
    dname = device_name(device)
    date = utc_now()[:10]
    backend, notes = select_attention(device, cfg.backend)
    log = None
    if writer:
        assert lock is not None
        check_out_folder(cfg.out)
        make_out_folder(cfg.out)
        lock.acquire()
        log = prepare_out(cfg.out, cfg.resume, run_configuration(cfg, arch, dname, dtype, backend.name))
    done = set(log.keys) if log is not None else set()
    if dist_on:
        import torch.distributed as dist

        box = [sorted(done)]
        dist.broadcast_object_list(box, src=0)
        done = set(box[0])
    for n in notes:
        warn(n)
    labels = {"backend": backend.name, "device": dname}

    from .check import ARPoint, SDPoint, measure_ar, measure_sd, plan_checks
    from .decoder import Decoder
    from .microbench import MicroBench, plan_points, point_cost
    from .timing import Timer, TimerConfig, measure_peaks

    torch.manual_seed(cfg.seed)
    if cfg.checkpoint:
        from .checkpoint import load_checkpoint

        decoder = load_checkpoint(cfg.checkpoint, layers=cfg.layers, device=device, dtype=dtype)
    else:
        decoder = Decoder.synthetic(run_model, layers=cfg.layers, seed=cfg.seed, device=device,
                                    dtype=dtype)
    if dist_on:
        from .distributed import TensorParallel
        from .tensor_parallel import parallelize

        # the full-size decoder, sharded in place as perfmodel.parallel.shard splits the model
        parallelize(decoder, TensorParallel(rank=rank, world_size=world))
    sh = shard(run_model, cfg.gpus)
    timer = Timer(device, TimerConfig(graph=cfg.cuda_graph))
    bench = MicroBench(decoder, backend, timer, dist_group=True if dist_on else None)

    micro = plan_points(run_model, cfg.gpus, cfg.batch, cfg.seq_len, cfg.kv_budget, cfg.gamma)
    checks = plan_checks(cfg.batch, cfg.seq_len, cfg.kv_budget, cfg.gamma, cfg.acceptance, cfg.gpus)
    peak_key = f"peak|{dname}|{dtype}"
    todo_total = (peak_key not in done) + sum(p.key not in done for p in micro) + sum(
        c.key not in done for c in checks)
    skipped = 1 + len(micro) + len(checks) - todo_total
    progress.start(todo_total)
    measured = failed = 0

    def record(rows: list[dict]) -> None:
        if log is not None:
            for r in rows:
                r.update({k: v for k, v in labels.items() if k not in r})
                r.setdefault("time_utc", utc_now())
            log.append(rows)

    # 1. peaks
    if peak_key not in done:
        progress.point("device peaks (matmul, copy)")
        peaks = measure_peaks(device, dtype)
        record([{"key": peak_key, "stage": "peak", "op": k, "value": v, "status": "ok",
                 "unit": "FLOP/s" if "flops" in k else "B/s"} for k, v in peaks.items()])
        measured += 1
        progress.advance()

    # 2. microbenchmarks
    for p in micro:
        if p.key in done:
            continue
        progress.point(p.label())
        cost = point_cost(run_model, sh, p)
        row = {"key": p.key, "stage": "micro", "op": p.op, "op_class": cost.op_class,
               "variant": p.variant, "batch": p.batch, "q": p.q, "kv_len": p.kv_len, "gpus": p.gpus,
               "flops": _f(cost.flops), "bytes": _f(cost.bytes), "comm_bytes": _f(cost.comm_bytes),
               "unit": "s"}
        row.update(_attempt(lambda p=p: bench.measure(p), device))
        failed += row["status"] != "ok"
        record([row])
        measured += 1
        progress.advance()

    # 3. fit (rank 0), profile broadcast to the others for nothing: only rank 0 compares
    profile_path = cfg.out / "profile.toml"
    summary_warnings = list(notes)
    fit_res = data = None
    profile = None
    if writer:
        assert log is not None
        peaks = {r["op"]: float(r["value"]) for r in log.rows if r["key"] == peak_key}
        start = start_profile(cfg, peaks, device, dname, date)
        fit_res, data, profile = _fit(log, start, run_model, cfg, dname, date, backend.name)
        atomic_write_text(profile_path, profile_to_toml(profile))
        load_profile.cache_clear()
        load_profile(str(profile_path))  # what predict --hardware will load

    # 4. held-out check on the SD loop
    for c in checks:
        if c.key in done:
            continue
        progress.point(c.label())
        base = {"stage": "check", "batch": c.batch, "seq_len": c.seq_len, "gpus": c.gpus}
        if isinstance(c, ARPoint):
            res = _attempt(lambda c=c: measure_ar(decoder, c, backend, cfg.new_tokens, cfg.seed),
                           device, raw=True)
        else:
            assert isinstance(c, SDPoint)
            base.update({"kv_budget": c.kv_budget, "gamma": c.gamma, "acceptance": c.acceptance})
            res = _attempt(lambda c=c: measure_sd(decoder, c, backend, cfg.new_tokens, cfg.kv_method,
                                                  cfg.seed), device, raw=True)
        rows = []
        if res["status"] == "ok":
            for op, (med, p25, p75, reps) in res["value"].items():
                unit = {"omega": "tokens", "acceptance_rate": "ratio"}.get(op, "s")
                rows.append({**base, "key": c.key, "op": op, "value": med, "p25": p25, "p75": p75,
                             "reps": reps, "unit": unit, "status": "ok"})
        else:
            failed += 1
            rows.append({**base, "key": c.key, "op": "ar" if isinstance(c, ARPoint) else "sd",
                         "status": res["status"], "detail": res["detail"]})
        record(rows)
        measured += 1
        progress.advance()

    if not writer:
        _finish_distributed()  # waits for rank 0's fit, comparison and report
        return RunSummary(float("nan"), float("nan"), measured, skipped, failed, profile_path)

    # 5. engine calibration on the AR steps only, comparison and report
    from ..perfmodel.engine import engine_to_toml
    from .check import SD_STEP_QUANTITIES, compare, mape
    from .engine_fit import calibrate_engine
    from .fit import model_times
    from .report import build_report

    assert log is not None and profile is not None and data is not None
    meas = pd.DataFrame(log.rows)
    prior = resolve_engine(cfg.engine, ideal=False)
    calib = calibrate_engine(meas, run_model, profile, cfg.gpus, date=date, device=dname, prior=prior)
    engine_path = cfg.out / "engine.toml"
    if calib is None:
        engine = prior
        summary_warnings.append("fewer than 2 AR steps measured: the engine is not calibrated "
                                f"({prior.name} engine used)")
    else:
        engine = calib.engine
        atomic_write_text(engine_path, engine_to_toml(
            engine, header=f"Written by magicdec-model validate on {date} ({dname})."))
    comp = compare(meas, run_model, profile, cfg.kv_method, engine)
    micro_df = _micro_frame(log, profile, data, dtype_bytes, model_times)
    mic_rows = pd.DataFrame({
        "stage": "micro", "quantity": micro_df["op"], "batch": micro_df["batch"],
        "seq_len": micro_df["kv_len"], "kv_budget": 0, "gamma": 0, "acceptance": float("nan"),
        "gpus": micro_df["gpus"], "predicted": micro_df["predicted"], "measured": micro_df["measured"],
        "error_percent": (micro_df["predicted"] / micro_df["measured"] - 1) * 100, "unit": "s",
    })
    full = pd.concat([comp, mic_rows], ignore_index=True) if len(mic_rows) else comp
    with atomic_output(cfg.out / "comparison.csv") as tmp:
        full.to_csv(tmp, index=False)
    m_ar = mape(comp, ["target_decode"])
    m_step = mape(comp, SD_STEP_QUANTITIES)
    m_speed = mape(comp, ["speedup"])
    assert fit_res is not None
    lines = [
        f"Model {arch.name} with {cfg.layers} layer(s), {str(dtype).replace('torch.', '')}, "
        f"tensor parallel over {cfg.gpus} process(es); device {dname}; attention backend {backend.name}.",
        f"Fit: {len(data)} microbenchmark points, fit MAPE {fit_res.mape(data):.1f}% (in-sample); "
        f"not fitted: {', '.join(fit_res.not_fitted) or 'none'}.",
        (f"Engine: {engine.describe()}; calibrated on {calib.engine.calibration['points']} AR steps "
         f"(in-sample MAPE {calib.mape_in_sample:.1f}%, {calib.cv_method} {calib.mape_cv:.1f}%)."
         if calib is not None else f"Engine: {engine.describe()} (not calibrated)."),
        f"Held-out SD loop: MAPE SD step-time {_pct(m_step)}, MAPE speedup {_pct(m_speed)} "
        + ("(real greedy acceptance of the checkpoint's weights on random prompts)."
           if cfg.acceptance is None else f"(acceptance synthetic Bernoulli a={cfg.acceptance:g})."),
        *summary_warnings,
    ]
    build_report(cfg.out / "report.html", micro_df, comp, profile,
                 f"magicdec-model validate: {arch.name} on {dname}", lines)
    if dist_on:
        _finish_distributed()
    names = ["measurements.csv", "profile.toml"] + (["engine.toml"] if calib is not None else [])
    files = [cfg.out / n for n in (*names, "comparison.csv", "report.html")]
    return RunSummary(m_step, m_speed, measured, skipped, failed, profile_path, files, summary_warnings,
                      mape_ar=m_ar, engine_path=engine_path if calib is not None else None)


def _finish_distributed() -> None:
    import torch.distributed as dist

    dist.barrier()
    dist.destroy_process_group()


def _f(x: Any) -> float:
    return float(np.asarray(x, dtype=float).reshape(-1)[0])


def _attempt(fn: Callable[[], Any], device: Any, raw: bool = False) -> dict:
    """Run one measurement; out-of-memory and other errors become a status, not a crash."""
    try:
        value = fn()
    except KeyboardInterrupt:
        raise
    except Exception as exc:  # noqa: BLE001 - any failure of one point is recorded, the run goes on
        status = "oom" if _is_oom(exc) else "error"
        _free_memory(device)
        return {"status": status, "detail": f"{type(exc).__name__}: {str(exc).splitlines()[0][:300]}",
                "value": ""}
    if raw:
        return {"status": "ok", "value": value, "detail": ""}
    return {"status": "ok", "value": value.median, "p25": value.p25, "p75": value.p75,
            "reps": value.reps, "detail": ""}


def _micro_rows(log: MeasurementLog) -> list[dict]:
    return [r for r in log.rows if r["stage"] == "micro" and r["status"] == "ok"]


def _fit(log, start, run_model, cfg, dname, date, backend_name):
    from .fit import FitData, fit_profile, fitted_profile

    rows = _micro_rows(log)
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
        raise InputError(f"no microbenchmark point succeeded (see {log.path}); nothing to fit")
    res = fit_profile(start, data)
    import re

    import torch

    slug = re.sub(r"[^a-z0-9]+", "-", dname.lower()).strip("-")[:48]
    prof = fitted_profile(
        res, data,
        name=f"fitted-{slug}",
        description=f"Fitted by magicdec-model validate on {date} ({dname})",
        device=dname, date=date,
        extra_meta={
            "model": run_model.name, "layers": run_model.num_layers,
            "dtype_bytes": run_model.dtype_bytes, "gpus": cfg.gpus,
            "attention_backend": backend_name, "torch": torch.__version__,
            "start_profile": cfg.start_profile or "measured peaks + generic priors",
        },
    )
    return res, data, prof


def _micro_frame(log, profile, data, dtype_bytes, model_times) -> pd.DataFrame:
    rows = _micro_rows(log)
    df = pd.DataFrame(rows)
    for c in ("flops", "bytes", "comm_bytes", "value"):
        df[c] = pd.to_numeric(df[c], errors="coerce").fillna(0.0)
    for c in ("batch", "q", "kv_len", "gpus"):
        df[c] = pd.to_numeric(df[c]).astype(int)
    df["measured"] = df["value"]
    df["predicted"] = model_times(profile, data)
    df["dtype_bytes"] = dtype_bytes
    df["label"] = [f"{o} ({v}) B={b} q={q} kv={k}" for o, v, b, q, k in
                   zip(df["op"], df["variant"], df["batch"], df["q"], df["kv_len"], strict=True)]
    return df
