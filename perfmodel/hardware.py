"""Hardware profiles: datasheet values and efficiency parameters of one GPU, loaded from TOML.

A profile file has three tables (all values SI: FLOP/s, bytes/s, bytes, seconds):

* ``[datasheet]`` - vendor peaks: ``peak_flops_bf16``, ``peak_flops_fp16``, optional
  ``peak_flops_fp8``, ``peak_flops_fp32`` (non-tensor), ``mem_bw``, ``mem_capacity``,
  ``l2_bytes``, ``sm_count``, ``interconnect_bw_uni`` (per GPU, one direction).
* ``[efficiency]`` - achieved fractions per op class (``gemm``, ``attention``, ``elementwise``):
  ``<class>_bw`` of ``mem_bw`` and ``<class>_flops`` of the matching peak; optionally ``gemv_bw``,
  the bandwidth fraction of a projection over a single activation row (one token: BLAS runs it
  as a matrix-vector kernel; absent = ``gemm_bw``); ``kernel_fixed_s``
  (fixed cost per kernel); ``allreduce_latency_s`` (base), ``allreduce_hop_latency_s`` (per ring
  step, 2(G-1) steps) and ``allreduce_busbw`` (NCCL bus bandwidth).
* ``[sources]`` - one string per key of the two tables above, saying where it came from.

An optional ``[meta]`` table records how a fitted profile was made (device, date, residuals).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field, replace
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

from . import inputs
from .errors import InputError, closest

OP_CLASSES = ("gemm", "attention", "elementwise")

DATASHEET_KEYS = (
    "peak_flops_bf16",
    "peak_flops_fp16",
    "peak_flops_fp8",
    "peak_flops_fp32",
    "mem_bw",
    "mem_capacity",
    "l2_bytes",
    "sm_count",
    "interconnect_bw_uni",
)
REQUIRED_DATASHEET = ("peak_flops_bf16", "peak_flops_fp32", "mem_bw", "mem_capacity")
#: Efficiency keys a profile may leave out (their fallback is named in the module docstring).
OPTIONAL_EFFICIENCY = ("gemv_bw",)

EFFICIENCY_KEYS = tuple(f"{c}_{k}" for c in OP_CLASSES for k in ("bw", "flops")) + (
    "kernel_fixed_s",
    "allreduce_latency_s",
    "allreduce_hop_latency_s",
    "allreduce_busbw",
)


@dataclass(frozen=True)
class HardwareProfile:
    """One GPU: datasheet peaks (SI units) and efficiency parameters, each with a source."""

    name: str
    description: str
    datasheet: dict[str, float]
    efficiency: dict[str, float]
    sources: dict[str, str] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)
    path: str = ""

    @property
    def mem_bw(self) -> float:
        """Datasheet memory bandwidth (bytes/s)."""
        return self.datasheet["mem_bw"]

    @property
    def mem_capacity(self) -> float:
        """Memory capacity per GPU (bytes)."""
        return self.datasheet["mem_capacity"]

    def peak_flops(self, dtype_bytes: int = 2) -> float:
        """Dense tensor-core peak (FLOP/s) for an element size: 2 -> bf16, 1 -> fp8, 4 -> fp32."""
        if dtype_bytes == 1 and "peak_flops_fp8" in self.datasheet:
            return self.datasheet["peak_flops_fp8"]
        if dtype_bytes == 4:
            return self.datasheet["peak_flops_fp32"]
        return self.datasheet["peak_flops_bf16"]

    def ridge(self) -> float:
        """Datasheet bf16 FLOP per byte at which compute and memory time are equal."""
        return self.datasheet["peak_flops_bf16"] / self.mem_bw

    def ideal(self) -> HardwareProfile:
        """Speed-of-light copy: every efficiency 1, no fixed costs, all-reduce at link speed."""
        eff = {f"{c}_{k}": 1.0 for c in OP_CLASSES for k in ("bw", "flops")}
        eff.update({k: 1.0 for k in OPTIONAL_EFFICIENCY if k in self.efficiency})
        eff["kernel_fixed_s"] = 0.0
        eff["allreduce_latency_s"] = 0.0
        eff["allreduce_hop_latency_s"] = 0.0
        eff["allreduce_busbw"] = self.datasheet.get("interconnect_bw_uni", math.inf) or math.inf
        return replace(self, name=f"{self.name} (ideal)", efficiency=eff)


def _check_number(path: str, table: str, key: str, value: Any, *, fraction: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise InputError(f"profile {path}: [{table}] {key}={value!r} must be a finite number")
    if fraction and not 0 < value <= 1:
        raise InputError(f"profile {path}: [{table}] {key}={value!r} must be in (0, 1]")
    if not fraction and value < 0:
        raise InputError(f"profile {path}: [{table}] {key}={value!r} must be >= 0")
    return float(value)


def profile_from_dict(doc: dict[str, Any], path: str = "<dict>") -> HardwareProfile:
    """Validate a parsed profile document and build a :class:`HardwareProfile`."""
    where = f"profile {path}"
    ds_in = inputs.table(doc, "datasheet", where, required=True)
    eff_in = inputs.table(doc, "efficiency", where, required=True)
    sources_in = inputs.table(doc, "sources", where)
    meta_in = inputs.table(doc, "meta", where)
    for key in set(ds_in) - set(DATASHEET_KEYS):
        raise InputError(f"profile {path}: unknown key [datasheet] {key}; allowed: {DATASHEET_KEYS}")
    for key in set(eff_in) - set(EFFICIENCY_KEYS) - set(OPTIONAL_EFFICIENCY):
        raise InputError(f"profile {path}: unknown key [efficiency] {key}; allowed: "
                         f"{EFFICIENCY_KEYS + OPTIONAL_EFFICIENCY}")
    datasheet = {k: _check_number(path, "datasheet", k, v) for k, v in ds_in.items()}
    for key, value in datasheet.items():
        if value <= 0 and (key.startswith(("peak_flops", "mem_"))):
            raise InputError(f"profile {path}: [datasheet] {key}={value!r} must be > 0 (leave an optional "
                             f"peak out where the GPU lacks that format: the bf16 peak is used)")
    for key in REQUIRED_DATASHEET:
        if key not in datasheet or datasheet[key] <= 0:
            raise InputError(f"profile {path}: [datasheet] needs a positive {key}")
    datasheet.setdefault("peak_flops_fp16", datasheet["peak_flops_bf16"])
    efficiency = {}
    for key in EFFICIENCY_KEYS:
        if key not in eff_in:
            raise InputError(f"profile {path}: [efficiency] is missing {key}")
        frac = key.endswith("_bw") or key.endswith("_flops")
        efficiency[key] = _check_number(path, "efficiency", key, eff_in[key], fraction=frac)
    for key in OPTIONAL_EFFICIENCY:
        if key in eff_in:
            efficiency[key] = _check_number(path, "efficiency", key, eff_in[key], fraction=True)
    if efficiency["allreduce_busbw"] <= 0:
        raise InputError(f"profile {path}: [efficiency] allreduce_busbw must be > 0")
    sources = {str(k): str(v) for k, v in sources_in.items()}
    name = inputs.string(doc, "name", where) or Path(path).stem
    return HardwareProfile(
        name=name,
        description=inputs.string(doc, "description", where, default=name),
        datasheet=datasheet,
        efficiency=efficiency,
        sources=sources,
        meta=dict(meta_in),
        path=path,
    )


@cache
def _builtin_files() -> dict[str, str]:
    root = resources.files("magicdec_model.hardware_profiles")
    return {
        p.name[: -len(".toml")]: p.read_text(encoding="utf-8")
        for p in root.iterdir()
        if p.name.endswith(".toml")
    }


def builtin_hardware_names() -> list[str]:
    """Names of the shipped profiles, sorted."""
    return sorted(_builtin_files())


def _parse(text: str, path: str) -> dict[str, Any]:
    return inputs.parse_toml(text, f"profile {path}")


@cache
def load_profile(spec: str) -> HardwareProfile:
    """Load a shipped profile by name (``"a100-80gb-sxm"``) or a TOML file by path."""
    files = _builtin_files()
    if spec in files:
        return profile_from_dict(_parse(files[spec], spec), path=spec)
    inputs.nonempty(spec, "--hardware", "a profile name (see 'magicdec-model hardware list') or a "
                    "path to a profile .toml")
    p = Path(spec)
    if spec.endswith(".toml") or p.exists():
        text = inputs.read_text(p, "hardware profile file")
        return profile_from_dict(_parse(text, str(p)), path=str(p))
    raise InputError(
        f"unknown hardware {spec!r}; closest known: {closest(spec, files)} "
        f"(see 'magicdec-model hardware list', or pass a path to a profile .toml)"
    )


def toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return _float_text(v) if isinstance(v, float) else str(v)
    if isinstance(v, dict):
        items = (f"{toml_key(str(k))} = {toml_value(x)}" for k, x in v.items())
        return "{ " + ", ".join(items) + " }"
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(toml_value(x) for x in v) + "]"
    # TOML basic string: escape backslash, quote and control characters (a newline would end it)
    text = str(v).replace("\\", "\\\\").replace('"', '\\"')
    return '"' + re.sub(r"[\x00-\x1f\x7f]", lambda m: f"\\u{ord(m.group()):04x}", text) + '"'


def _float_text(v: float) -> str:
    """The shortest text that reads back as ``v`` exactly: scientific outside 1e-4..1e6
    (``9.894e+14``, not ``989400000000000.0``), so that printed profiles are easy to edit."""
    text = repr(float(v))
    if not math.isfinite(v) or v == 0 or 1e-4 <= abs(v) < 1e6:
        return text
    for digits in range(17):
        sci = f"{v:.{digits}e}"
        if float(sci) == v:
            return sci
    return text  # pragma: no cover - 17 significant digits always round-trip


def toml_key(key: str) -> str:
    """A TOML key: bare where it may be, else a quoted string."""
    return key if re.fullmatch(r"[A-Za-z0-9_-]+", key) else toml_value(key)


def profile_to_toml(profile: HardwareProfile) -> str:
    """Serialise a profile to TOML text that :func:`load_profile` reads back unchanged."""
    lines = [f"name = {toml_value(profile.name)}", f"description = {toml_value(profile.description)}"]
    for table, values in (
        ("datasheet", profile.datasheet),
        ("efficiency", profile.efficiency),
        ("sources", profile.sources),
        ("meta", profile.meta),
    ):
        if not values:
            continue
        lines.append(f"\n[{table}]")
        lines.extend(f"{toml_key(str(k))} = {toml_value(v)}" for k, v in values.items())
    return "\n".join(lines) + "\n"
