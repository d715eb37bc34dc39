"""DIR/config.json: everything a measurement depends on, so that --resume never mixes two runs.

A point's key in ``measurements.csv`` names only its place in the grid (batch, sequence length,
budget, gamma, acceptance, GPUs).  What else changes the measured times is recorded once per
output folder in ``config.json``: the model (its name and a digest of its whole architecture
record), the layers built, the checkpoint (and with a real model the prompts' text: its origin
and digest), the KV method of the draft, the tokens generated per
check, the seed, the device (kind and name, which on a CPU includes the thread count and host),
the dtype, the attention backend, CUDA-graph timing, the GPU count and the versions of torch,
FlashInfer and magicdec-model.  ``--resume`` continues a folder only when every one of these is
the same; otherwise it refuses, naming each field that differs with both values.  New grid points
(more batches, sequence lengths...) are measured and added; points already there are kept.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from importlib import metadata
from pathlib import Path
from typing import Any

from ..perfmodel.architecture import ModelArch
from ..perfmodel.errors import InputError
from ..perfmodel.outfiles import atomic_write_text

CONFIG_NAME = "config.json"
FORMAT = 1


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def arch_digest(arch: ModelArch) -> str:
    """Short SHA-256 of every field of the architecture record except its provenance."""
    rec = dataclasses.asdict(arch)
    for k in ("source", "hf_id"):
        rec.pop(k, None)
    return hashlib.sha256(json.dumps(rec, sort_keys=True, default=str).encode()).hexdigest()[:16]


def run_configuration(cfg: Any, arch: ModelArch, device_name: str, dtype: Any,
                      backend: str) -> dict[str, Any]:
    """The configuration of one validate run (JSON-ready); ``cfg`` is its ValidateConfig."""
    import torch

    return {
        "format": FORMAT,
        "model": arch.name,
        "model_digest": arch_digest(arch),
        "checkpoint": checkpoint_id(cfg.checkpoint) if cfg.checkpoint else None,
        "layers": cfg.layers,
        "kv_method": cfg.kv_method,
        "new_tokens": cfg.new_tokens,
        "seed": cfg.seed,
        "device": cfg.device,
        "device_name": device_name,
        "dtype": str(dtype).replace("torch.", ""),
        "backend": backend,
        "cuda_graph": bool(cfg.cuda_graph),
        "gpus": cfg.gpus,
        "torch": torch.__version__,
        "flashinfer": _version("flashinfer-python") if backend == "flashinfer" else None,
        "magicdec_model": _version("magicdec-model"),
        **({"text": text_id(cfg.text)} if text_used(cfg) else {}),
    }


def checkpoint_id(spec: str) -> str:
    """A ``--checkpoint`` value as recorded: the file or folder it names, resolved."""
    from .real_model import resolve_checkpoint

    return str(resolve_checkpoint(spec).resolve())


def text_used(cfg: Any) -> bool:
    """Whether the run's prompts are real text (a checkpoint with a tokenizer)."""
    if not cfg.checkpoint:
        return False
    from .real_model import has_tokenizer

    return has_tokenizer(cfg.checkpoint)


def text_id(path: str | None) -> str:
    """The prompts' text as recorded: the default corpus's origin, or the file and its digest."""
    from .corpus import default_text, read_text

    if path is None:
        text, origin = default_text()
    else:
        text, origin = read_text(path), str(Path(path).resolve())
    return f"{origin} sha256:{hashlib.sha256(text.encode()).hexdigest()[:16]}"


def read_run_config(out: Path, name: str = CONFIG_NAME) -> dict[str, Any] | None:
    """The configuration stored in ``out/config.json`` (or ``out/name``); None when there is none."""
    path = Path(out) / name
    if not path.exists():
        return None
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise InputError(f"--resume: {path} cannot be read ({type(exc).__name__}); allowed: a folder "
                         f"written by 'magicdec-model validate', or another --out") from None
    if not isinstance(doc, dict):
        raise InputError(f"--resume: {path} is not a validate run configuration; allowed: another --out")
    return doc


def differences(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """'field old -> new' for every field whose value differs (missing counts as a value)."""
    out = []
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key, "(missing)"), new.get(key, "(missing)")
        if a != b:
            out.append(f"{key} {a!r} -> {b!r}")
    return out


def check_resume(out: Path, config: dict[str, Any], name: str = CONFIG_NAME,
                 log: str = "measurements.csv") -> None:
    """Refuse to continue ``out`` unless it was measured with the same configuration (stored in
    ``out/name`` beside the log ``out/log``)."""
    old = read_run_config(out, name)
    if old is None:
        raise InputError(
            f"--resume: {Path(out) / log} has no {name} beside it (written by an "
            f"older version), so its configuration cannot be checked; allowed: another --out"
        )
    diff = differences(old, config)
    if diff:
        raise InputError(
            f"--resume: {out} was measured with another configuration ({'; '.join(diff)}); allowed: "
            f"the same flags as that run (see {Path(out) / name}), or another --out"
        )


def write_run_config(out: Path, config: dict[str, Any], name: str = CONFIG_NAME) -> Path:
    """Write ``out/config.json`` (or ``out/name``) atomically."""
    return atomic_write_text(Path(out) / name, json.dumps(config, indent=1, sort_keys=True) + "\n")
