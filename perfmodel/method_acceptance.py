"""Acceptance of EAGLE, MTP and n-gram drafts from published figures (``data/acceptance_methods.csv``).

The table (``docs/acceptance.md``) holds mean accepted lengths tau (tokens per iteration, bonus
included), per-token rates and per-position rates, each with its source and task.  A prediction
over gamma needs a per-token rate; the lookup for (target, kind) is:

1. chain rows of the kind (EAGLE: EAGLE-3 first, then EAGLE-2, then EAGLE) with a stated gamma:
   the mean tau over the tasks at the most common gamma, turned into the i.i.d. rate a with
   Omega(gamma, a) = tau (:func:`speculative.rate_from_accept_len`); for n-gram drafts tau counts
   the iterations without a match as 1 token, so that rate is the rate of an always-proposing
   draft with the same tau (the source says so);
2. per-token rate rows (DeepSeek-V3's MTP: 85-90% for the second token): their mean;
3. else the kind's default below, named as a default.

Tree rows (dynamic EAGLE-2/3 trees) are not turned into chain rates; pass them as
``--accept-len`` with the tree's shape (``--verify-tokens``).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from importlib import resources

import pandas as pd

from .speculative import rate_from_accept_len

#: Draft kinds of the table tried, in order, for each ``--draft`` kind.
KIND_ROWS = {"eagle": ("eagle3", "eagle2", "eagle"), "mtp": ("mtp",), "ngram": ("ngram",)}
#: Default per-token rates (no published figure for the target), each derived from the table.
DEFAULTS = {
    "eagle": (0.645, "default 0.645 for an EAGLE head (the rate of LLaMA-3.1-8B's EAGLE-3 head at "
                     "gamma 3: tau 2.33 on vLLM traces, SpecDecode-Bench, acceptance_methods.csv)"),
    "mtp": (0.85, "default 0.85 for an MTP module (DeepSeek-V3 technical report section 5.4.3: "
                  "85-90% acceptance of the second token; its low end)"),
    "ngram": (0.333, "default 0.333 for n-gram lookup (the rate of LLaMA-3.1-8B's vLLM n-gram draft "
                     "at gamma 3: tau 1.48, SpecDecode-Bench traces, acceptance_methods.csv)"),
}


@dataclass(frozen=True)
class MethodAcceptance:
    """A per-token acceptance rate for a draft kind and where it came from."""

    rate: float
    source: str
    measured: bool


@cache
def method_table() -> pd.DataFrame:
    """The shipped table of published acceptance figures of EAGLE, MTP and n-gram drafts."""
    path = resources.files("magicdec_model.perfmodel").joinpath("data/acceptance_methods.csv")
    with path.open("r", encoding="utf-8") as fh:
        return pd.read_csv(fh)


def lookup_method(target: str, kind: str) -> MethodAcceptance:
    """Per-token acceptance of draft ``kind`` (eagle, mtp, ngram) for ``target`` (lookup above)."""
    df = method_table()
    rows = df[df["target"] == target]
    for name in KIND_ROWS[kind]:
        chain = rows[(rows["draft_kind"] == name) & (rows["metric"] == "accept_len")
                     & (rows["shape"] == "chain") & rows["gamma"].notna()
                     & (rows["statistic"] == "mean")]
        if not chain.empty:
            gamma = int(chain["gamma"].mode().iloc[0])
            at = chain[chain["gamma"] == gamma]
            tau = float(at["value"].mean())
            tasks = ", ".join(dict.fromkeys(at["dataset"].astype(str)))
            src = "; ".join(dict.fromkeys(at["source"].astype(str)))
            note = (" (iterations without a match count as 1 token: the rate of an always-"
                    "proposing draft with that tau)") if kind == "ngram" else ""
            a = rate_from_accept_len(min(max(tau, 1.0), gamma + 1.0), gamma)
            return MethodAcceptance(a, f"equivalent per-token rate {a:.3f} of the mean accepted "
                                       f"length {tau:.3f} at gamma {gamma} ({name}; {tasks}; {src})"
                                       f"{note}", True)
        rate = rows[(rows["draft_kind"] == name) & (rows["metric"] == "acceptance")
                    & (rows["shape"] == "chain")]
        if not rate.empty:
            a = float(rate["value"].mean())
            src = "; ".join(dict.fromkeys(rate["source"].astype(str)))
            return MethodAcceptance(a, f"mean published per-token rate {a:.3f} ({name}; {src})", True)
    a, src = DEFAULTS[kind]
    return MethodAcceptance(a, f"{src}; no published figure for {target}", False)
