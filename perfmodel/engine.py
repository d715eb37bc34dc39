"""Engine profiles: what the serving software adds to the kernels of a step, loaded from TOML.

The hardware profile says what the GPU can do; the engine profile says what the software stack
between the model and the GPU costs on top (``docs/model.md`` §5 explains each term):

* ``host_step_s`` - host time per forward step that is not overlapped with GPU work: scheduler,
  attention ``plan()``, host synchronisation, Python (seconds per step);
* ``host_per_seq_s`` - host time per sequence per step (metadata that grows with the batch,
  e.g. paged-KV page tables and ``plan()``'s per-request work; seconds per sequence per step);
* ``launch_s`` - launch cost per kernel on top of the hardware's ``kernel_fixed_s`` (which is
  the in-graph floor): 0 with CUDA graphs, a few microseconds per kernel in eager mode
  (seconds per kernel);
* ``sd_iteration_s`` - SD-loop bookkeeping per speculative iteration: accept/reject, rollback,
  host syncs between the draft and verify phases (seconds per iteration);
* optional ``per_token_s`` - time per token in a step that the kernel roofline does not show
  (a fitted per-token term of a measured step model; seconds per token);
* optional ``draft_step_s`` - host time of a draft forward step where it differs from a target
  step's ``host_step_s`` (an engine that runs the draft inside the target's engine step: 0);
* optional ``draft_phase_s`` - fixed cost of one drafting phase (all gamma draft steps) of a draft
  head (EAGLE, MTP), beyond its kernels (seconds per iteration);
* optional ``ngram_lookup_s`` - host time of an n-gram (prompt-lookup) proposal per sequence
  per iteration (seconds);
* optional ``allreduce_latency_s``, ``allreduce_hop_latency_s``, ``allreduce_busbw`` - the
  engine's all-reduce implementation where it replaces the hardware's NCCL figures (a custom
  one-shot all-reduce, say).

An optional ``[efficiency]`` table overrides hardware efficiencies (``attention_bw`` and the
like) that ``magicdec-model calibrate`` determined from the engine's measured steps; they are
applied only on the hardware the engine was calibrated on (``[calibration] hardware``).

Every value has a ``[sources]`` entry and a standard error in ``[stderr]`` (same unit; 0 for a
value known exactly).  A calibrated engine also has a ``[calibration]`` table: the parameter
covariance, the residual spread of the fit (log-time), its degrees of freedom and the central
80 % quantile used for prediction intervals (:mod:`intervals`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from . import inputs
from .acceptance import KV_METHODS
from .errors import InputError, closest
from .hardware import EFFICIENCY_KEYS, OPTIONAL_EFFICIENCY, HardwareProfile, toml_key, toml_value

#: Terms every engine declares (seconds).
REQUIRED_TERMS = ("host_step_s", "host_per_seq_s", "launch_s", "sd_iteration_s")
#: Terms an engine may declare to replace the hardware profile's all-reduce figures.
ALLREDUCE_TERMS = ("allreduce_latency_s", "allreduce_hop_latency_s", "allreduce_busbw")
#: Optional terms (absent: 0, or for ``draft_step_s`` the engine's ``host_step_s``).
OPTIONAL_TERMS = ("per_token_s", "draft_step_s", "draft_phase_s", "ngram_lookup_s")
ENGINE_TERMS = REQUIRED_TERMS + ALLREDUCE_TERMS + OPTIONAL_TERMS
#: Efficiency keys an engine may override (fractions of the datasheet peaks).
EFFICIENCY_OVERRIDES = tuple(k for k in EFFICIENCY_KEYS if k.endswith("_bw") or k.endswith("_flops")) \
    + OPTIONAL_EFFICIENCY

#: Kinds of draft strategy an engine's ``[supports]`` names (a model name counts as ``model``).
STRATEGY_KINDS = ("self", "model", "eagle", "mtp", "ngram")
#: KV methods a ``[supports]`` entry may add to a kind (``KIND+KV_METHOD``): perfmodel's list.
SUPPORT_KV_METHODS = KV_METHODS


def strategy_kind(draft: str) -> str:
    """The kind of a ``--draft`` value: self, eagle, mtp, ngram, or model (any other name)."""
    return draft if draft in STRATEGY_KINDS else "model"

#: Largest residual spread of a calibration (log time): e^3 = 20x per standard deviation is no
#: calibration any more
MAX_RESIDUAL_SD_LOG = 3.0
#: Largest 80 % interval quantile: Student t at 1 degree of freedom is 3.08 (scipy.stats.t.ppf(0.9, 1))
MAX_T_QUANTILE = 3.1
#: Largest engine term: one second of software time per step (a CPU validate run takes ~0.1 s)
MAX_TERM_S = 1.0
#: Largest all-reduce bus bandwidth an engine may declare (B/s): 1 PB/s, far above any link
MAX_BUSBW = 1e15

#: The engine used when ``--engine`` is not given (docs/model.md §5 says why).
DEFAULT_ENGINE = "generic"
#: The engine of ``--ideal``: no software cost at all (speed of light).
NO_ENGINE = "none"


@dataclass(frozen=True)
class EngineProfile:
    """One serving engine: overhead terms (SI units), optional efficiency overrides, uncertainty."""

    name: str
    description: str
    terms: dict[str, float]
    efficiency: dict[str, float] = field(default_factory=dict)
    stderr: dict[str, float] = field(default_factory=dict)
    sources: dict[str, str] = field(default_factory=dict)
    calibration: dict[str, Any] = field(default_factory=dict)
    path: str = ""
    #: the hardware profile the ``[efficiency]`` overrides were determined on ("": any)
    hardware: str = ""
    #: the draft strategies the engine can run (``[supports] strategies``: entries ``KIND`` or
    #: ``KIND+KV_METHOD``, :data:`STRATEGY_KINDS`); empty: any (a cost model, not one product)
    supports: tuple[str, ...] = ()
    supports_source: str = ""

    # ------------------------------------------------------------------ strategies
    def runs(self, draft: str, kv_method: str) -> bool:
        """Whether this engine can run the draft strategy (``--draft`` name and KV method)."""
        if not self.supports:
            return True
        kind = strategy_kind(draft)
        return kind in self.supports or f"{kind}+{kv_method}" in self.supports

    def cannot_run(self, draft: str, kv_method: str) -> str:
        """A note where this engine cannot run the strategy (``""`` where it can), naming what it runs."""
        if self.runs(draft, kv_method):
            return ""
        what = draft if strategy_kind(draft) != "model" else f"a standalone draft ({draft})"
        return (f"engine {self.name} cannot run {what} with a {kv_method} KV cache (it runs: "
                f"{', '.join(self.supports)})")

    # ------------------------------------------------------------------ values
    def value(self, key: str) -> float:
        """The value of one parameter (a term or an efficiency override)."""
        if key in self.terms:
            return self.terms[key]
        return self.efficiency[key]

    @property
    def parameters(self) -> tuple[str, ...]:
        """Names of every parameter this engine sets (terms, then efficiency overrides)."""
        return tuple(self.terms) + tuple(self.efficiency)

    @property
    def calibrated(self) -> bool:
        """True when fitted by ``calibrate`` (its intervals include the fit's covariance)."""
        return bool(self.calibration)

    @property
    def residual_sd_log(self) -> float:
        """Standard deviation of the calibration's log-time residuals (0 when uncalibrated)."""
        return float(self.calibration.get("residual_sd_log", 0.0))

    @property
    def interval_quantile(self) -> float:
        """Two-sided 80 % quantile for intervals: Student t of the fit's dof, else the normal 1.2816."""
        return float(self.calibration.get("t_quantile_80", 1.2815515655446004))

    def with_values(self, values: dict[str, float]) -> EngineProfile:
        """A copy with some parameters replaced (terms or efficiency overrides)."""
        terms = dict(self.terms)
        eff = dict(self.efficiency)
        for k, v in values.items():
            if k in ENGINE_TERMS:
                terms[k] = float(v)
            elif k in EFFICIENCY_OVERRIDES:
                eff[k] = float(v)
            else:
                raise KeyError(k)
        return replace(self, terms=terms, efficiency=eff)

    def uncertain_parameters(self) -> list[str]:
        """Parameters with a non-zero variance (declared or fitted)."""
        cal = list(self.calibration.get("parameters", []))
        out = [k for k in cal if k in self.parameters]
        out += [k for k in self.parameters if k not in out and self.stderr.get(k, 0.0) > 0]
        return out

    def covariance(self, keys: list[str]) -> np.ndarray:
        """Covariance matrix of ``keys``: the calibration's block, declared variances elsewhere."""
        n = len(keys)
        cov = np.zeros((n, n))
        for i, k in enumerate(keys):
            cov[i, i] = self.stderr.get(k, 0.0) ** 2
        cal = list(self.calibration.get("parameters", []))
        if cal:
            full = np.asarray(self.calibration["covariance"], dtype=float)
            idx = {k: j for j, k in enumerate(cal)}
            for i, a in enumerate(keys):
                for j, b in enumerate(keys):
                    if a in idx and b in idx:
                        cov[i, j] = full[idx[a], idx[b]]
        return cov

    # ------------------------------------------------------------------ costs
    def term(self, key: str) -> float:
        """A term's value; an optional term the engine does not set counts as 0 (seconds)."""
        if key == "draft_step_s" and key not in self.terms:
            return self.terms["host_step_s"]
        return self.terms.get(key, 0.0)

    def step_overhead(self, batch: np.ndarray, kernels: np.ndarray | float,
                      tokens: np.ndarray | float = 0.0, draft: bool = False) -> np.ndarray:
        """Software time added to one forward step (seconds): host work and kernel launches.

        ``batch`` sequences and ``tokens`` tokens per step, ``kernels`` kernel launches per step;
        a draft step pays ``draft_step_s`` instead of ``host_step_s``.  The only place the
        engine's per-step terms enter a step time.
        """
        t = self.terms
        B = np.asarray(batch, dtype=float)
        host = self.term("draft_step_s") if draft else t["host_step_s"]
        return (host + t["host_per_seq_s"] * B + self.term("per_token_s") * np.asarray(tokens, float)
                + t["launch_s"] * np.asarray(kernels, float))

    @property
    def sd_iteration_s(self) -> float:
        """SD-loop bookkeeping per speculative iteration (seconds)."""
        return self.terms["sd_iteration_s"]

    def apply_to(self, hw: HardwareProfile) -> tuple[HardwareProfile, list[str]]:
        """``hw`` with this engine's all-reduce terms and (on its calibration hardware) efficiencies.

        Returns the profile to compute kernels with and notes saying what was, or was not, applied.
        """
        notes: list[str] = []
        eff = dict(hw.efficiency)
        for k in ALLREDUCE_TERMS:
            if k in self.terms:
                eff[k] = self.terms[k]
        if self.efficiency:
            on = self.hardware or self.calibration.get("hardware")
            if on in (None, "", hw.name):
                eff.update(self.efficiency)
            else:
                notes.append(
                    f"engine {self.name}: efficiencies fitted on {on} not applied to {hw.name} "
                    f"(its own profile's are used)"
                )
        if eff == hw.efficiency:
            return hw, notes
        return replace(hw, efficiency=eff), notes

    def describe(self) -> str:
        """One line for output footers: name, what it charges, whether calibrated."""
        t = self.terms
        kind = "calibrated" if self.calibrated else "declared values"
        if not any(t[k] for k in REQUIRED_TERMS):
            return f"engine {self.name}: kernels only (no host work, no SD-loop cost)"
        parts = [f"host {t['host_step_s'] * 1e3:.3g} ms/step"]
        if t["host_per_seq_s"]:
            parts.append(f"{t['host_per_seq_s'] * 1e6:.3g} us/seq/step")
        if self.term("per_token_s"):
            parts.append(f"{self.term('per_token_s') * 1e6:.3g} us/token")
        if t["launch_s"]:
            parts.append(f"{t['launch_s'] * 1e6:.3g} us/kernel launch")
        if "draft_step_s" in t:
            parts.append(f"draft steps {t['draft_step_s'] * 1e3:.3g} ms")
        if self.term("draft_phase_s"):
            parts.append(f"draft phase {self.term('draft_phase_s') * 1e3:.3g} ms")
        parts.append(f"SD loop {t['sd_iteration_s'] * 1e3:.3g} ms/iteration")
        return f"engine {self.name} ({kind}): " + ", ".join(parts)


# ---------------------------------------------------------------------- loading
def _number(path: str, table: str, key: str, value: Any, *, fraction: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise InputError(f"engine {path}: [{table}] {key}={value!r} must be a finite number")
    if fraction and not 0 < value <= 1:
        raise InputError(f"engine {path}: [{table}] {key}={value!r} must be in (0, 1]")
    if value < 0:
        raise InputError(f"engine {path}: [{table}] {key}={value!r} must be >= 0")
    if table in ("terms", "stderr"):
        hi = MAX_BUSBW if key == "allreduce_busbw" else 1.0 if key in EFFICIENCY_OVERRIDES else MAX_TERM_S
        if value > hi:
            unit = "B/s" if key == "allreduce_busbw" else "" if key in EFFICIENCY_OVERRIDES else " s"
            raise InputError(f"engine {path}: [{table}] {key}={value!r} is above {hi:g}{unit}; allowed: "
                             f"0..{hi:g}{unit}")
    return float(value)


def _table(doc: dict[str, Any], name: str, path: str, required: bool = False) -> dict[str, Any]:
    value = doc.get(name, {} if not required else None)
    if not isinstance(value, dict):
        what = "missing" if value is None else f"a {type(value).__name__}, not a table"
        raise InputError(f"engine {path}: [{name}] is {what}")
    return value


def engine_from_dict(doc: dict[str, Any], path: str = "<dict>") -> EngineProfile:
    """Validate a parsed engine document and build an :class:`EngineProfile`."""
    if not isinstance(doc, dict):
        raise InputError(f"engine {path}: expected a TOML document")
    unknown = set(doc) - {"name", "description", "hardware", "terms", "efficiency", "stderr",
                          "sources", "calibration", "supports"}
    if unknown:
        raise InputError(f"engine {path}: unknown keys {sorted(unknown)}; allowed: name, description, "
                         f"hardware, [terms], [efficiency], [stderr], [sources], [calibration], "
                         f"[supports]")
    on = doc.get("hardware", "")
    if not isinstance(on, str):
        raise InputError(f"engine {path}: hardware={on!r} must be a profile name")
    terms_in = _table(doc, "terms", path, required=True)
    for key in terms_in:
        if key not in ENGINE_TERMS:
            raise InputError(f"engine {path}: unknown term {key!r}; allowed: {', '.join(ENGINE_TERMS)}")
    for key in REQUIRED_TERMS:
        if key not in terms_in:
            raise InputError(f"engine {path}: [terms] is missing {key}")
    terms = {k: _number(path, "terms", k, v) for k, v in terms_in.items()}
    if "allreduce_busbw" in terms and terms["allreduce_busbw"] <= 0:
        raise InputError(f"engine {path}: [terms] allreduce_busbw must be > 0")
    eff_in = _table(doc, "efficiency", path)
    for key in eff_in:
        if key not in EFFICIENCY_OVERRIDES:
            raise InputError(f"engine {path}: [efficiency] {key!r} cannot be overridden; allowed: "
                             f"{', '.join(EFFICIENCY_OVERRIDES)}")
    efficiency = {k: _number(path, "efficiency", k, v, fraction=True) for k, v in eff_in.items()}
    params = set(terms) | set(efficiency)
    stderr_in = _table(doc, "stderr", path)
    stderr = {}
    for key, v in stderr_in.items():
        if key not in params:
            raise InputError(f"engine {path}: [stderr] {key!r} is not a parameter of this engine")
        stderr[key] = _number(path, "stderr", key, v)
    sources_in = _table(doc, "sources", path)
    sources = {str(k): str(v) for k, v in sources_in.items()}
    missing = sorted(k for k in params if not sources.get(k))
    if missing:
        raise InputError(f"engine {path}: [sources] has no entry for {', '.join(missing)} "
                         f"(every value needs a source)")
    missing = sorted(k for k in params if k not in stderr)
    if missing:
        raise InputError(f"engine {path}: [stderr] has no entry for {', '.join(missing)} "
                         f"(0 for a value known exactly)")
    calibration = dict(_table(doc, "calibration", path))
    if calibration:
        _check_calibration(calibration, params, path)
    supports, supports_source = _supports(_table(doc, "supports", path), path)
    name = str(doc.get("name") or Path(path).stem)
    return EngineProfile(name=name, description=str(doc.get("description", name)), terms=terms,
                         efficiency=efficiency, stderr=stderr, sources=sources,
                         calibration=calibration, path=path, hardware=on, supports=supports,
                         supports_source=supports_source)


def _supports(table: dict[str, Any], path: str) -> tuple[tuple[str, ...], str]:
    """``[supports]``: ``strategies`` (``KIND`` or ``KIND+KV_METHOD`` entries) and its ``source``."""
    if not table:
        return (), ""
    unknown = set(table) - {"strategies", "source"}
    if unknown:
        raise InputError(f"engine {path}: [supports] has unknown keys {sorted(unknown)}; allowed: "
                         f"strategies, source")
    items = table.get("strategies")
    allowed = f"{', '.join(STRATEGY_KINDS)}, each optionally +{'/+'.join(SUPPORT_KV_METHODS)}"
    if not isinstance(items, list) or not items or not all(isinstance(i, str) for i in items):
        raise InputError(f"engine {path}: [supports] strategies must be a non-empty list of strings; "
                         f"allowed entries: {allowed}")
    for item in items:
        kind, _, method = item.partition("+")
        if kind not in STRATEGY_KINDS or (method and method not in SUPPORT_KV_METHODS):
            raise InputError(f"engine {path}: [supports] strategy {item[:60]!r} is not allowed; "
                             f"allowed: {allowed}")
    source = table.get("source")
    if not isinstance(source, str) or not source.strip():
        raise InputError(f"engine {path}: [supports] needs a source (every value needs a source)")
    return tuple(items), source


def _check_calibration(cal: dict[str, Any], params: set[str], path: str) -> None:
    keys = cal.get("parameters", [])
    if not isinstance(keys, list) or any(k not in params for k in keys):
        raise InputError(f"engine {path}: [calibration] parameters must list this engine's parameters")
    cov = cal.get("covariance", [])
    try:
        arr = np.asarray(cov, dtype=float)
    except (TypeError, ValueError):
        raise InputError(f"engine {path}: [calibration] covariance is not a matrix of numbers") from None
    if arr.shape != (len(keys), len(keys)) or not np.all(np.isfinite(arr)):
        raise InputError(f"engine {path}: [calibration] covariance must be a finite "
                         f"{len(keys)}x{len(keys)} matrix (one row per parameter)")
    if arr.size:
        scale = np.sqrt(np.abs(np.diag(arr)))
        sym = np.allclose(arr, arr.T, rtol=1e-6, atol=1e-12 * float(np.max(np.abs(arr)) or 1.0))
        lowest = float(np.min(np.linalg.eigvalsh((arr + arr.T) / 2))) if sym else -1.0
        if not sym or lowest < -1e-9 * float(np.max(scale) ** 2 or 1.0) or np.any(np.diag(arr) < 0):
            raise InputError(f"engine {path}: [calibration] covariance is not a covariance (symmetric "
                             f"positive semi-definite: no negative variance); smallest eigenvalue "
                             f"{lowest:.3g}")
    for k, hi in (("residual_sd_log", MAX_RESIDUAL_SD_LOG), ("t_quantile_80", MAX_T_QUANTILE)):
        if k in cal:
            v = _number(path, "calibration", k, cal[k])
            if v > hi or (k == "t_quantile_80" and v <= 0):
                raise InputError(f"engine {path}: [calibration] {k}={v!r} is outside "
                                 f"{'(0' if k == 't_quantile_80' else '[0'}, {hi}]")


def _parse(text: str, path: str) -> dict[str, Any]:
    return inputs.parse_toml(text, f"engine {path}")


@cache
def _builtin_files() -> dict[str, str]:
    root = resources.files("magicdec_model.perfmodel").joinpath("data/engines")
    return {p.name[: -len(".toml")]: p.read_text(encoding="utf-8")
            for p in root.iterdir() if p.name.endswith(".toml")}


def builtin_engine_names() -> list[str]:
    """Names of the shipped engine profiles, sorted."""
    return sorted(_builtin_files())


def no_engine() -> EngineProfile:
    """The engine of ``--ideal``: every term zero (kernels only, at the speed of light)."""
    terms = dict.fromkeys(REQUIRED_TERMS, 0.0)
    why = "--ideal: speed of light, no software cost"
    return EngineProfile(NO_ENGINE, "no engine cost (speed of light)", terms,
                         stderr=dict.fromkeys(terms, 0.0), sources=dict.fromkeys(terms, why))


@cache
def load_engine(spec: str) -> EngineProfile:
    """Load a shipped engine by name (``"magicdec-8xa100"``) or a TOML file by path."""
    if spec == NO_ENGINE:
        return no_engine()
    files = _builtin_files()
    if spec in files:
        return engine_from_dict(_parse(files[spec], spec), path=spec)
    inputs.nonempty(spec, "--engine", "an engine name (see 'magicdec-model engines list') or a path to "
                    "an engine .toml")
    p = Path(spec)
    if spec.endswith(".toml") or p.exists():
        text = inputs.read_text(p, "engine file")
        return engine_from_dict(_parse(text, str(p)), path=str(p))
    raise InputError(
        f"unknown engine {spec!r}; closest known: {closest(spec, files)} "
        f"(see 'magicdec-model engines list', or pass a path to an engine .toml)"
    )


def resolve_engine(spec: str | EngineProfile | None, ideal: bool) -> EngineProfile:
    """The engine of a query: ``--ideal`` has none, else the given one or :data:`DEFAULT_ENGINE`."""
    if isinstance(spec, EngineProfile):
        if ideal and spec.name != NO_ENGINE:
            raise InputError("--ideal is the speed of light and charges no engine; drop --engine")
        return spec
    if ideal:
        if spec not in (None, NO_ENGINE):
            raise InputError(f"--ideal is the speed of light and charges no engine; drop --engine {spec}")
        return no_engine()
    return load_engine(DEFAULT_ENGINE if spec is None else spec)


def engine_to_toml(engine: EngineProfile, header: str = "") -> str:
    """Serialise an engine to TOML text that :func:`load_engine` reads back unchanged."""
    lines = [f"# {line}" for line in header.splitlines()]
    lines += [f"name = {toml_value(engine.name)}", f"description = {toml_value(engine.description)}"]
    if engine.hardware:
        lines.append(f"hardware = {toml_value(engine.hardware)}")
    for table, values in (("terms", engine.terms), ("efficiency", engine.efficiency),
                          ("stderr", engine.stderr), ("sources", engine.sources),
                          ("calibration", engine.calibration)):
        if not values:
            continue
        lines.append(f"\n[{table}]")
        lines.extend(f"{toml_key(str(k))} = {toml_value(v)}" for k, v in values.items())
    if engine.supports:
        lines += ["\n[supports]", f"strategies = {toml_value(list(engine.supports))}",
                  f"source = {toml_value(engine.supports_source)}"]
    return "\n".join(lines) + "\n"
