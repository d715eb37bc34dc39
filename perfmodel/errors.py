"""Errors raised for bad user input.

Every :class:`InputError` carries a one-line message that names the bad value and what is
allowed; the CLI prints it and exits with code 2.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class InputError(ValueError):
    """A user-supplied value is outside what the model accepts (one-line message)."""


#: Least similarity (difflib's ratio, 0..1) of a name offered as a hint.
HINT_CUTOFF = 0.5


def similarity(name: str, known: str) -> float:
    """How alike a typed ``name`` and a ``known`` name are, 0..1: difflib's ratio of the lower-cased
    names, or of the closest comma- or space-separated part of ``name`` where it has several."""
    a, b = name.lower().strip(), known.lower()
    parts = [p for p in a.replace(",", " ").split() if p] or [a]
    return max(difflib.SequenceMatcher(None, p, b).ratio() for p in dict.fromkeys([a, *parts]))


def closest(name: str, known: Iterable[str], n: int = 3) -> str:
    """Return a short hint for an unknown ``name``: the (at most ``n``) known names most similar to
    it (:func:`similarity`, best first), or 'none similar' where none reaches :data:`HINT_CUTOFF`."""
    scored = sorted(((similarity(name, k), k) for k in set(known)), key=lambda t: (-t[0], t[1]))
    matches = [k for score, k in scored[:n] if score >= HINT_CUTOFF]
    return ", ".join(matches) if matches else "none similar"
