"""Held-out check: SD-loop step times and speedup, measured vs predicted with the fitted profile.

The fit sees only microbenchmarks; here the whole decoder runs (:mod:`.speculative_loop`):

* ``target_decode`` — the AR baseline's decode steps at (batch, seq_len): median step seconds;
* ``draft`` — single-token draft steps over the budget KV; ``verify`` — gamma+1-token verify
  steps over the full KV (medians, from the same SD run at (batch, seq_len, budget, gamma));
* ``sd_loop`` — the loop's bookkeeping per round outside those steps (catch-up input, acceptance,
  rollback; median seconds), which the engine's ``sd_iteration_s`` models;
* ``sd_token_latency`` — seconds of draft + verify steps and bookkeeping per round divided by the
  tokens each request gained per round (measured ``Omega`` = mean accepted + 1): seconds per token;
* ``omega`` — that measured tokens-per-round.

Measured speedup = target_decode / sd_token_latency.  The model's speedup is computed with its
own step times (kernels under the fitted profile plus the engine, :mod:`.engine_fit`) and the
*measured* Omega, so that sampling noise of the synthetic acceptance does not count as model
error; the model's speedup at the nominal acceptance is reported too.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import pandas as pd
import torch

from ..perfmodel.architecture import ModelArch
from ..perfmodel.engine import EngineProfile
from ..perfmodel.hardware import HardwareProfile
from ..perfmodel.speculative import sd_latency
from ..perfmodel.sweep import Query, predict
from .results import COMPARISON_COLUMNS, comparison_row

STEP_QUANTITIES = ("target_decode", "draft", "verify")
#: Held-out step quantities: the SD steps, never seen by the engine calibration (AR only).
SD_STEP_QUANTITIES = ("draft", "verify")


@dataclass(frozen=True)
class ARPoint:
    """Autoregressive baseline at (batch, seq_len)."""

    batch: int
    seq_len: int
    gpus: int = 1

    @property
    def key(self) -> str:
        return f"check|ar|B={self.batch}|S={self.seq_len}|G={self.gpus}"

    def label(self) -> str:
        return f"AR decode B={self.batch} S={self.seq_len}"


@dataclass(frozen=True)
class SDPoint:
    """Speculative decoding at (batch, seq_len, budget, gamma, acceptance)."""

    batch: int
    seq_len: int
    kv_budget: int
    gamma: int
    acceptance: float | None  # None: real (greedy) acceptance of a loaded checkpoint
    gpus: int = 1

    @property
    def key(self) -> str:
        acc = "greedy" if self.acceptance is None else f"{self.acceptance:g}"
        return (f"check|sd|B={self.batch}|S={self.seq_len}|K={self.kv_budget}|g={self.gamma}"
                f"|a={acc}|G={self.gpus}")

    def label(self) -> str:
        return f"SD B={self.batch} S={self.seq_len} K={self.kv_budget} gamma={self.gamma}"


def plan_checks(batches, seq_lens, budgets, gammas, acceptance: float | None, gpus: int):
    """AR points per (batch, seq_len), then SD points over the full grid."""
    ar = [ARPoint(b, s, gpus) for b in batches for s in seq_lens]
    sd = [SDPoint(b, s, k, g, acceptance, gpus) for b in batches for s in seq_lens for k in budgets
          for g in gammas]
    return ar + sd


def _prompt(decoder: Any, point: ARPoint | SDPoint, seed: int, prompt: torch.Tensor | None) -> torch.Tensor:
    if prompt is not None:
        if tuple(prompt.shape) != (point.batch, point.seq_len):
            raise ValueError(f"prompt shape {tuple(prompt.shape)} is not ({point.batch}, {point.seq_len})")
        return prompt
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, decoder.arch.vocab_size, (point.batch, point.seq_len), generator=g)


def measure_ar(decoder: Any, point: ARPoint, backend: Any, new_tokens: int, seed: int,
               before_step: Callable[[], None] | None = None, *,
               prompt: torch.Tensor | None = None) -> dict:
    """Median AR decode step (s) after ``prompt`` ``[batch, seq_len]`` (default: random tokens);
    ``before_step`` runs untimed before each step (the cache flush, as for the microbenchmarks)."""
    from .speculative_loop import autoregressive_generate

    prompt = _prompt(decoder, point, seed, prompt)
    res = autoregressive_generate(decoder, prompt, new_tokens + 1, backend=backend,
                                  before_step=before_step)
    steps = [s.seconds for s in res.steps if s.kind == "decode"]
    return {"target_decode": _summary(steps)}


def measure_sd(
    decoder: Any, point: SDPoint, backend: Any, new_tokens: int, kv_method: str, seed: int,
    before_step: Callable[[], None] | None = None, *, prompt: torch.Tensor | None = None,
) -> dict:
    """Median draft and verify steps (s), seconds per token, measured Omega of one SD run after
    ``prompt`` ``[batch, seq_len]`` (default: random tokens); ``before_step`` runs untimed before
    each forward step (the cache flush)."""
    from .speculative_loop import GREEDY, DraftKV, SyntheticAcceptance, speculative_generate

    prompt = _prompt(decoder, point, seed, prompt)
    res = speculative_generate(
        decoder,
        prompt,
        new_tokens,
        gamma=point.gamma,
        draft_kv=DraftKV(method=kv_method, budget=point.kv_budget),
        acceptance=GREEDY if point.acceptance is None else SyntheticAcceptance(point.acceptance, seed),
        backend=backend,
        before_step=before_step,
    )
    draft = [s.seconds for s in res.steps if s.kind == "draft" and s.q_len == 1]
    verify = [s.seconds for s in res.steps if s.kind == "verify"]
    loop = [s.seconds for s in res.steps if s.kind == "sd_loop"]
    round_s = (res.seconds("draft") + res.seconds("verify") + res.seconds("sd_loop")) / max(res.rounds, 1)
    omega = res.mean_accepted + 1.0
    return {
        "draft": _summary(draft),
        "verify": _summary(verify),
        "sd_loop": _summary(loop),
        "sd_token_latency": (round_s / omega, round_s / omega, round_s / omega, res.rounds),
        "omega": (omega, omega, omega, res.request_rounds),
        "acceptance_rate": (res.acceptance_rate,) * 3 + (res.request_rounds,),
    }


def _summary(samples: list[float]) -> tuple[float, float, float, int]:
    if not samples:
        return (float("nan"),) * 3 + (0,)  # type: ignore[return-value]
    s = sorted(samples)
    if len(s) >= 4:
        q = statistics.quantiles(s, n=4, method="inclusive")
        return statistics.median(s), q[0], q[2], len(s)
    return statistics.median(s), s[0], s[-1], len(s)


def compare(
    measurements: pd.DataFrame,
    arch: ModelArch,
    profile: HardwareProfile,
    kv_method: str,
    engine: EngineProfile,
) -> pd.DataFrame:
    """Predicted vs measured for every check point with ``status == ok`` (one row per quantity).

    ``arch`` must be the record the decoder ran (layers and dtype as measured); ``engine`` the
    engine the predictions charge (validate's is calibrated on the measured AR steps).
    Should a point hold a quantity twice, the first row counts.
    """
    ok = measurements[(measurements["stage"] == "check") & (measurements["status"] == "ok")]
    rows: list[dict] = []
    if ok.empty:
        return pd.DataFrame(rows, columns=list(COMPARISON_COLUMNS))
    num = ok.copy()
    for c in ("batch", "seq_len", "kv_budget", "gamma", "gpus"):
        num[c] = pd.to_numeric(num[c], errors="coerce").fillna(0).astype(int)
    num["acceptance"] = pd.to_numeric(num["acceptance"], errors="coerce")
    num["value"] = pd.to_numeric(num["value"], errors="coerce")
    num = num.drop_duplicates(["batch", "seq_len", "kv_budget", "gamma", "acceptance", "gpus", "op"])
    ar = num[num["op"] == "target_decode"].set_index(["batch", "seq_len", "gpus"])["value"]
    for (B, S, G), t_meas in ar.items():
        pred = _predict(arch, profile, engine, kv_method, B, S, 64, 1, 0.5, G)
        rows.append(comparison_row("target_decode", B, S, 0, 0, float("nan"), G, pred["t_target_s"],
                                   t_meas))
    sd = num[num["op"].isin(["draft", "verify", "sd_loop", "sd_token_latency", "omega",
                             "acceptance_rate"])]
    sd = sd.assign(acceptance=sd["acceptance"].fillna(-1.0))  # -1: greedy (real) acceptance
    for (B, S, K, g, a, G), grp in sd.groupby(["batch", "seq_len", "kv_budget", "gamma", "acceptance",
                                                "gpus"]):
        vals = dict(zip(grp["op"], grp["value"], strict=True))
        if a < 0:  # real acceptance: the model is given the measured rate
            a = min(max(float(vals.get("acceptance_rate", 0.0)), 0.0), 0.999)
        pred = _predict(arch, profile, engine, kv_method, B, S, K, g, a, G)
        rows.append(comparison_row("draft", B, S, K, g, a, G, pred["t_draft_s"], vals.get("draft")))
        rows.append(comparison_row("verify", B, S, K, g, a, G, pred["t_verify_s"], vals.get("verify")))
        if "sd_loop" in vals:
            rows.append(comparison_row("sd_loop", B, S, K, g, a, G, pred["t_sd_loop_s"], vals["sd_loop"]))
        if (B, S, G) in ar.index and "sd_token_latency" in vals:
            omega = vals["omega"]
            latency = sd_latency(pred["t_draft_s"], pred["t_verify_s"], omega, g, pred["t_sd_loop_s"])
            row = comparison_row("speedup", B, S, K, g, a, G, pred["t_target_s"] / latency,
                                 ar[(B, S, G)] / vals["sd_token_latency"])
            row["predicted_at_nominal_acceptance"] = pred["speedup"]
            row["omega_measured"] = omega
            rows.append(row)
    return pd.DataFrame(rows, columns=list(COMPARISON_COLUMNS))


def _predict(arch, profile, engine, kv_method, B, S, K, g, a, G) -> dict:
    q = Query(model=arch, batch=[B], seq_len=[S], draft="self", kv_method=kv_method, kv_budget=[K],
              hardware=profile, gpus=[G], gamma=[g], acceptance=float(a), engine=engine,
              intervals=False)
    return predict(q).iloc[0].to_dict()


def mape(comparison: pd.DataFrame, quantities) -> float:
    """Mean absolute percentage error (%) over rows of ``quantities`` with a measurement."""
    m = comparison[comparison["quantity"].isin(list(quantities))]["error_percent"].dropna()
    return float(np.mean(np.abs(m))) if len(m) else float("nan")


def run_arch(arch: ModelArch, layers: int, dtype_bytes: int) -> ModelArch:
    """The record of what the validator runs: ``layers`` layers at ``dtype_bytes`` per element."""
    return replace(arch, num_layers=layers, dtype_bytes=dtype_bytes)
