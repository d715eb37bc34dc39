"""Analytic roofline model of speculative decoding with sparse-KV drafts (numpy/pandas only).

Typical use::

    from magicdec_model.perfmodel import Query, predict
    df = predict(Query(model="llama-3.1-8b", batch=[32, 64], seq_len=[32000], gpus=[8]))
"""

from .architecture import ModelArch, builtin_model_names, from_hf_config, get_model, load_hf_config
from .errors import InputError
from .hardware import HardwareProfile, builtin_hardware_names, load_profile
from .sweep import RESULT_COLUMNS, Query, predict

__all__ = [
    "RESULT_COLUMNS",
    "HardwareProfile",
    "InputError",
    "ModelArch",
    "Query",
    "builtin_hardware_names",
    "builtin_model_names",
    "from_hf_config",
    "get_model",
    "load_hf_config",
    "load_profile",
    "predict",
]
