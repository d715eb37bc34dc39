"""Package names that load their module on first use (PEP 562 module ``__getattr__``).

``perfmodel``, ``perfmodel.report`` and ``validate`` export names from submodules that import
pandas, plotly or torch; loading them only when a name is used keeps ``import`` of the package
(and the command line's start-up) light.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any


def module_getattr(package: str, exports: Mapping[str, str]) -> Callable[[str], Any]:
    """A module-level ``__getattr__`` for ``package``: ``exports`` maps each name to the submodule
    (relative to ``package``) that defines it; any other name raises AttributeError."""

    def lookup(name: str) -> Any:
        if name in exports:
            return getattr(importlib.import_module(f".{exports[name]}", package), name)
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    return lookup
