"""Requests for the serving simulator: arrival times and prompt / output lengths (tokens).

Lengths are ``N`` (fixed), ``uniform:A:B`` (integers A..B), ``lognormal:MEAN:SIGMA`` (a lognormal
with that arithmetic mean in tokens and that sigma of the log), or a named preset of
:data:`PRESETS`.  Arrivals are Poisson at ``qps`` (exponential gaps), Gamma-distributed gaps of
the same mean with a coefficient of variation ``burstiness`` (1 = Poisson, > 1 burstier; Vidur's
and vLLM's benchmark ``--burstiness`` use the same Gamma family), a closed loop of
``concurrency`` requests in flight (a new request arrives when one finishes: the simulator sets
those arrival times), or a trace CSV ``arrival_s,prompt_tokens,output_tokens``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import InputError

#: Length presets (log-mean and log-sigma of lognormals fitted to the token counts, LLaMA-3.1
#: tokenizer) with their sources.  ShareGPT, CNN/DailyMail and GSM8K: the per-request prompts and
#: generations of SpecDecode-Bench's simulator data (data/llama3.1-8B/combined_{sharegpt,cnn,gsm8k}
#: .jsonl, 310 / 300 / 300 requests, Llama-3.1-8B-Instruct outputs; arXiv 2601.11580); mean,
#: minimum and maximum as measured there, the lognormal is fitted (mean and sd of log tokens).
#: PG-19: MagicDec's long-context setting (prompts cut from PG-19 books to the context length,
#: magicdec-paper.md); the generation length is not stated there: 256 tokens is this preset's
#: choice, and --output overrides it.
PRESETS: dict[str, dict] = {
    "sharegpt": {"prompt": ("lognormal_log", 5.217, 1.128, 39, 3576),
                 "output": ("lognormal_log", 6.178, 1.031, 3, 8192),
                 "source": "SpecDecode-Bench data/llama3.1-8B/combined_sharegpt.jsonl: prompts mean 355 "
                           "(median 182), outputs mean 728 (median 572) tokens, 310 requests"},
    "cnn_dailymail": {"prompt": ("lognormal_log", 6.621, 0.475, 209, 2194),
                      "output": ("lognormal_log", 5.717, 0.368, 98, 657),
                      "source": "SpecDecode-Bench data/llama3.1-8B/combined_cnn.jsonl: prompts mean 838, "
                                "outputs mean 323 tokens, 300 requests"},
    "gsm8k": {"prompt": ("lognormal_log", 4.524, 0.216, 57, 205),
              "output": ("lognormal_log", 5.060, 0.327, 45, 403),
              "source": "SpecDecode-Bench data/llama3.1-8B/combined_gsm8k.jsonl: prompts mean 94.5, "
                        "outputs mean 166 tokens, 300 requests"},
    "pg19": {"prompt": ("fixed", 32768), "output": ("fixed", 256),
             "source": "MagicDec's PG-19 setting: prompts cut to the context length (32K here, "
                       "--prompt to change); 256 output tokens is this preset's choice"},
}


@dataclass(frozen=True)
class LengthDist:
    """A distribution of token counts (integers >= 1), parsed from its text form."""

    text: str
    kind: str  # "fixed", "uniform", "lognormal" (arithmetic mean), "lognormal_log" (log-mean)
    a: float
    b: float = 0.0
    lo: int = 1
    hi: int = 10_000_000

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """``n`` token counts (int64, each >= 1)."""
        if self.kind == "fixed":
            out = np.full(n, int(self.a))
        elif self.kind == "uniform":
            out = rng.integers(int(self.a), int(self.b) + 1, n)
        else:
            mu = self.a if self.kind == "lognormal_log" else math.log(self.a) - self.b ** 2 / 2
            out = np.rint(rng.lognormal(mu, self.b, n))
        return np.clip(out, max(self.lo, 1), self.hi).astype(np.int64)

    @property
    def mean(self) -> float:
        """Mean of the unclipped distribution (tokens)."""
        if self.kind == "fixed":
            return float(self.a)
        if self.kind == "uniform":
            return (self.a + self.b) / 2
        if self.kind == "lognormal":
            return float(self.a)
        return math.exp(self.a + self.b ** 2 / 2)


def parse_length(text: str, flag: str, which: str) -> LengthDist:
    """Parse ``N``, ``uniform:A:B``, ``lognormal:MEAN:SIGMA`` or a preset name (its ``which`` lengths:
    "prompt" or "output")."""
    t = str(text).strip().lower()
    allowed = f"allowed: N, uniform:A:B, lognormal:MEAN:SIGMA or a preset ({', '.join(PRESETS)})"
    if t in PRESETS:
        spec = PRESETS[t][which]
        if spec[0] == "fixed":
            return LengthDist(t, "fixed", spec[1])
        return LengthDist(t, spec[0], spec[1], spec[2], spec[3], spec[4])
    parts = t.split(":")
    try:
        if len(parts) == 1:
            n = float(parts[0])
            if n.is_integer() and n >= 1:
                return LengthDist(t, "fixed", n)
        elif parts[0] == "uniform" and len(parts) == 3:
            a, b = int(parts[1]), int(parts[2])
            if 1 <= a <= b:
                return LengthDist(t, "uniform", a, b)
        elif parts[0] == "lognormal" and len(parts) == 3:
            m, s = float(parts[1]), float(parts[2])
            if math.isfinite(m) and math.isfinite(s) and m >= 1 and 0 <= s <= 5:
                return LengthDist(t, "lognormal", m, s)
    except ValueError:
        pass
    raise InputError(f"{flag} {text!r} is not a length distribution; {allowed} (tokens >= 1, "
                     f"0 <= SIGMA <= 5)")


@dataclass(frozen=True)
class Arrivals:
    """How requests arrive: ``kind`` "poisson" / "gamma" at ``qps``, "closed" with ``concurrency``
    requests in flight, or "trace" (times from the trace)."""

    kind: str
    qps: float = 0.0
    concurrency: int = 0
    burstiness: float = 1.0


@dataclass
class Requests:
    """The requests of one simulation, sorted by arrival (seconds; NaN: set by a closed loop)."""

    arrival: np.ndarray
    prompt: np.ndarray
    output: np.ndarray

    def __len__(self) -> int:
        return len(self.prompt)


def make_requests(n: int, prompt: LengthDist, output: LengthDist, arrivals: Arrivals,
                  rng: np.random.Generator) -> Requests:
    """``n`` requests with lengths drawn from ``prompt`` and ``output`` and arrival times."""
    p = prompt.sample(rng, n)
    o = output.sample(rng, n)
    if arrivals.kind == "closed":
        t = np.full(n, np.nan)
        t[: arrivals.concurrency] = 0.0
    else:
        mean_gap = 1.0 / arrivals.qps
        if arrivals.kind == "gamma" and arrivals.burstiness != 1.0:
            shape = 1.0 / arrivals.burstiness ** 2  # CV of a Gamma gap = 1 / sqrt(shape)
            gaps = rng.gamma(shape, mean_gap / shape, n)
        else:
            gaps = rng.exponential(mean_gap, n)
        t = np.cumsum(gaps) - gaps[0]  # the first request arrives at t = 0
    return Requests(t, p, o)


TRACE_COLUMNS = ("arrival_s", "prompt_tokens", "output_tokens")


def read_trace(path: str | Path) -> Requests:
    """Requests from a CSV with the columns ``arrival_s,prompt_tokens,output_tokens``."""
    p = Path(path)
    if not p.is_file():
        raise InputError(f"--trace {str(path)!r} is not a file; allowed: a CSV with columns "
                         f"{','.join(TRACE_COLUMNS)}")
    try:
        df = pd.read_csv(p)
    except (ValueError, OSError, UnicodeDecodeError) as exc:
        raise InputError(f"--trace {str(path)!r} cannot be read as CSV ({exc.__class__.__name__})") from None
    missing = [c for c in TRACE_COLUMNS if c not in df.columns]
    if missing or df.empty:
        raise InputError(f"--trace {str(path)!r} lacks the columns {', '.join(missing) or '(no rows)'}; "
                         f"allowed: a CSV with columns {','.join(TRACE_COLUMNS)} and at least one row")
    try:
        t = df["arrival_s"].to_numpy(float)
        pr = df["prompt_tokens"].to_numpy(float)
        out = df["output_tokens"].to_numpy(float)
    except (TypeError, ValueError):
        raise InputError(f"--trace {str(path)!r} has non-numeric values; allowed: numbers") from None
    bad = ~np.isfinite(t) | (t < 0) | ~np.isfinite(pr) | (pr < 1) | (pr != np.round(pr)) \
        | ~np.isfinite(out) | (out < 1) | (out != np.round(out))
    if bad.any():
        row = int(np.argmax(bad))
        raise InputError(f"--trace {str(path)!r} row {row + 1}: arrival_s {t[row]!r}, prompt_tokens "
                         f"{pr[row]!r}, output_tokens {out[row]!r}; allowed: arrival_s >= 0, whole "
                         f"token counts >= 1")
    order = np.argsort(t, kind="stable")
    return Requests(t[order] - t[order][0], pr[order].astype(np.int64), out[order].astype(np.int64))
