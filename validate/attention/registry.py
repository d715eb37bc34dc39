"""The attention backends by name: ``get_backend(name, device)`` and ``backend_names()``.

Torch-free at import: each backend's module (which imports torch, and FlashInfer only when a
FlashInfer backend is built) is imported when that backend is asked for.  ``"auto"`` is FlashInfer
where :func:`~.flashinfer_backend.flashinfer_usable` says it runs, torch SDPA otherwise.
"""

from __future__ import annotations

import importlib
import os
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from .base import AttentionBackend

#: environment variable read when no backend name is given
BACKEND_ENV = "MAGICDEC_ATTENTION_BACKEND"
#: the name that picks a backend for the device
AUTO = "auto"
#: backend name -> (module of this package, class name), in order of preference
_BACKENDS = {
    "torch": ("torch_sdpa", "TorchSDPABackend"),
    "flashinfer": ("flashinfer_backend", "FlashInferBackend"),
}


def backend_names() -> tuple[str, ...]:
    """Names of the registered backends (without ``"auto"``)."""
    return tuple(_BACKENDS)


def resolve_name(name: str | None, device: Any = "cpu") -> str:
    """The registered backend ``name`` stands for on ``device``.

    ``None`` reads ``MAGICDEC_ATTENTION_BACKEND`` (default ``"auto"``); ``"auto"`` is
    ``"flashinfer"`` when FlashInfer is usable on ``device``, else ``"torch"``.
    """
    if name is None:
        name = os.environ.get(BACKEND_ENV, AUTO)
    if name == AUTO:
        from .flashinfer_backend import flashinfer_usable

        return "flashinfer" if flashinfer_usable(device) else "torch"
    if name not in _BACKENDS:
        raise ValueError(f"unknown attention backend {name!r}; choose "
                         f"{', '.join(repr(n) for n in (AUTO, *_BACKENDS))}")
    return name


def get_backend(name: str | None = AUTO, device: Any = "cpu", **options: Any) -> AttentionBackend:
    """A new attention backend.

    Args:
        name: a registered name, ``"auto"``, or ``None`` (see :func:`resolve_name`).
        device: the device the caches live on.
        options: passed to the FlashInfer backend (e.g. ``workspace_bytes``).
    """
    resolved = resolve_name(name, device)
    module, cls = _BACKENDS[resolved]
    factory = getattr(importlib.import_module(f".{module}", __package__), cls)
    if resolved == "flashinfer":
        return factory(device=device, **options)
    return factory()
