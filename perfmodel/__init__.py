"""Analytic roofline model of speculative decoding with sparse-KV drafts (numpy/pandas only).

Typical use::

    from magicdec_model.perfmodel import Query, predict
    df = predict(Query(model="llama-3.1-8b", batch=[32, 64], seq_len=[32000], gpus=[8]))

The names below load their module on first use, so importing one light module of the package
(``errors``, ``inputs``) does not import pandas (the command line starts faster).
"""

from __future__ import annotations

from .lazy_exports import module_getattr

_EXPORTS = {
    "ModelArch": "architecture",
    "builtin_model_names": "architecture",
    "from_hf_config": "architecture",
    "get_model": "architecture",
    "load_hf_config": "architecture",
    "InputError": "errors",
    "HardwareProfile": "hardware",
    "builtin_hardware_names": "hardware",
    "load_profile": "hardware",
    "RESULT_COLUMNS": "sweep",
    "Query": "sweep",
    "predict": "sweep",
}

__all__ = sorted(_EXPORTS)


__getattr__ = module_getattr(__name__, _EXPORTS)
