"""Errors raised for bad user input.

Every :class:`InputError` carries a one-line message that names the bad value and what is
allowed; the CLI prints it and exits with code 2.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class InputError(ValueError):
    """A user-supplied value is outside what the model accepts (one-line message)."""


def closest(name: str, known: Iterable[str], n: int = 3) -> str:
    """Return a short 'closest known: a, b' hint for an unknown ``name``."""
    known = list(known)
    matches = difflib.get_close_matches(name, known, n=n, cutoff=0.4)
    if not matches:
        matches = sorted(known)[:n]
    return ", ".join(matches)
