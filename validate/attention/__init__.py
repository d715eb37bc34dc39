"""Attention backends behind one interface (:mod:`.base`), chosen by name (:mod:`.registry`).

Modules: ``base`` (the interface and call protocol), ``torch_sdpa`` (torch
``scaled_dot_product_attention``, CPU and GPU), ``flashinfer_backend`` (GPU; the package's only
import of flashinfer), ``registry`` (``get_backend``, ``backend_names``, ``"auto"``).  Importing this
package loads no torch: the backends' names below load their module on first access.
"""

from __future__ import annotations

import importlib
from typing import Any

from .base import AttentionBackend
from .registry import AUTO, BACKEND_ENV, backend_names, get_backend, resolve_name

_LAZY = {
    "TorchSDPABackend": "torch_sdpa",
    "FlashInferBackend": "flashinfer_backend",
    "flashinfer_usable": "flashinfer_backend",
}

__all__ = [
    "AUTO", "AttentionBackend", "BACKEND_ENV", "FlashInferBackend", "TorchSDPABackend", "backend_names",
    "flashinfer_usable", "get_backend", "resolve_name",
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
