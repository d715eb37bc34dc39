"""Draft strategies (draft model, KV method, KV budget) and predictions for several at once.

A strategy is what a user picks when deploying SD: self-speculation or a standalone draft, how the
draft's KV cache is sparsified, and its budget in tokens.  :func:`predict_strategies` evaluates
many strategies over one grid with one :func:`sweep.predict` call per (draft, KV method), so the
cost model stays vectorised.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace

import pandas as pd

from .errors import InputError
from .sweep import Query, predict


@dataclass(frozen=True)
class Strategy:
    """One draft strategy; ``kv_budget`` in tokens (0 for a full-KV draft)."""

    draft: str
    kv_method: str
    kv_budget: int

    @property
    def label(self) -> str:
        """Short human label, e.g. ``self + streamingllm 512`` or ``tinyllama-1.1b + full KV``."""
        if self.draft == "ngram":
            return "ngram lookup"
        if self.kv_method == "full":
            return f"{self.draft} + full KV"
        return f"{self.draft} + {self.kv_method} {self.kv_budget}"


def cross_strategies(
    drafts: Sequence[str], kv_methods: Sequence[str], budgets: Sequence[int]
) -> list[Strategy]:
    """Every (draft, method, budget) combination, in order, without duplicates.

    A full-KV method ignores budgets; ``self`` with ``full`` is no speculation and is left out.
    """
    out: list[Strategy] = []
    for d in drafts:
        for m in kv_methods:
            m = m.lower()
            cands: Iterable[Strategy]
            if d == "ngram":  # no KV of its own: one strategy whatever the KV methods
                cands = [Strategy("ngram", "full", 0)]
            elif m == "full":
                if d == "self":
                    continue
                cands = [Strategy(d, "full", 0)]
            else:
                cands = [Strategy(d, m, int(b)) for b in budgets]
            out.extend(c for c in cands if c not in out)
    if not out:
        raise InputError(
            "no draft strategy left: --draft self needs --kv-method streamingllm or snapkv"
        )
    return out


def predict_strategies(base: Query, strategies: Sequence[Strategy]) -> pd.DataFrame:
    """Predictions of ``base`` for each strategy, concatenated, with a ``strategy`` label column.

    ``base.draft``, ``base.kv_method`` and ``base.kv_budget`` are replaced per strategy; one
    :func:`predict` call per (draft, KV method) covers all its budgets.
    """
    groups: dict[tuple[str, str], list[int]] = {}
    for s in strategies:
        groups.setdefault((s.draft, s.kv_method), []).append(s.kv_budget)
    frames = []
    for (draft, method), budgets in groups.items():
        q = replace(base, draft=draft, kv_method=method, kv_budget=tuple(max(b, 1) for b in budgets))
        df = predict(q)
        if method == "full" or draft == "ngram":
            df["strategy"] = Strategy(draft, "full", 0).label
        else:
            df["strategy"] = [Strategy(draft, method, int(b)).label for b in df["kv_budget"]]
        frames.append(df)
    return pd.concat(frames, ignore_index=True)
