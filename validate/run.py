"""One validate run: its configuration, the checks of every flag, and its summary.

:func:`run_validate` takes the output folder's lock and runs the stages of :mod:`.stages` (peaks,
microbenchmarks, fit, check, engine calibration, report) over one run context.  This module loads
no torch when imported (the CLI checks the flags with it first); the stages do.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

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
)
from ..perfmodel.inputs import check_int
from ..perfmodel.outfiles import (
    OutputLock,
    check_out_folder,
    make_out_folder,
)
from ..perfmodel.parallel import shard
from ..perfmodel.scenario import check_budgets
from ..perfmodel.speculative import check_gamma
from .attention.registry import AUTO, backend_names
from .results import MeasurementLog
from .runconfig import check_resume, write_run_config

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
    checkpoint: str | None = None  # smollm2, FILE.gguf or a safetensors folder: real weights, acceptance
    text: str | None = None  # --text FILE: prompts cut from it (default: validate.corpus.default_text)
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
        return (f"MAPE AR (fit): {pct(self.mape_ar)}  MAPE SD step-time (held out): "
                f"{pct(self.mape_step)}  MAPE SD speedup (held out): {pct(self.mape_speedup)}")


def pct(x: float) -> str:
    """A percentage for the summary, ``n/a`` when not finite."""
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
    if cfg.text is not None and not cfg.checkpoint:
        raise InputError(f"--text {cfg.text}: real text needs a real model; allowed: with --checkpoint "
                         "(smollm2, FILE.gguf or a safetensors folder with tokenizer.json)")
    if cfg.checkpoint:
        if cfg.gpus > 1:
            raise InputError("--checkpoint with --gpus > 1 is not supported yet; allowed: --gpus 1")
        from .real_model import checkpoint_arch, has_tokenizer

        arch = checkpoint_arch(cfg.checkpoint)  # InputError naming a bad --checkpoint
        if cfg.text is not None:
            if not has_tokenizer(cfg.checkpoint):
                raise InputError(f"--text {cfg.text}: the checkpoint {cfg.checkpoint} has no tokenizer.json; "
                                 "allowed: --text with smollm2, a GGUF file or a folder with tokenizer.json")
            from .corpus import read_text

            read_text(cfg.text)  # InputError naming a missing, empty, non-UTF-8 or too large file
    else:
        arch = get_model(cfg.model)
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
    longest = max(cfg.seq_len) + cfg.new_tokens + 2 * max(cfg.gamma) + 2
    if cfg.checkpoint and longest > arch.max_positions:
        raise InputError(f"--seq-len {max(cfg.seq_len)}: with --new-tokens {cfg.new_tokens} and --gamma "
                         f"{max(cfg.gamma)} the run reaches position {longest}, past {arch.name}'s context "
                         f"of {arch.max_positions}; allowed: a shorter --seq-len")
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


def start_profile(cfg: ValidateConfig, peaks: dict[str, float], capacity: float, device_type: str,
                  name: str, date: str) -> HardwareProfile:
    """The profile the fit starts from: a shipped one (``--start-profile``) or measured ``peaks``
    (FLOP/s, B/s) with ``capacity`` bytes of memory and the generic efficiency priors."""
    if cfg.start_profile:
        return load_profile(cfg.start_profile)
    how = f"measured by magicdec-model validate on this machine ({name}) on {date}"
    datasheet = {
        "peak_flops_bf16": peaks["peak_flops"],
        "peak_flops_fp16": peaks["peak_flops"],
        "peak_flops_fp32": peaks["peak_flops_fp32"],
        "mem_bw": peaks["mem_bw"],
        "mem_capacity": capacity,
    }
    dt = "fp32" if device_type == "cpu" else "bf16"
    sources = {
        "peak_flops_bf16": f"{how}: {dt} matmul (the run's dtype; this device is timed in {dt})",
        "peak_flops_fp16": f"{how}: same as peak_flops_bf16",
        "peak_flops_fp32": f"{how}: fp32 matmul",
        "mem_bw": f"{how}: large tensor copy, read + write bytes per second",
        "mem_capacity": f"{how}: {'physical RAM' if device_type == 'cpu' else 'torch total_memory'}",
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
    from .stages import run_stages

    lock = OutputLock(cfg.out, folder=True) if os.environ.get("RANK", "0") == "0" else None
    try:
        return run_stages(cfg, progress, warn, lock)
    finally:
        if lock is not None:
            lock.release()
