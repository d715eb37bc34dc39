"""Analytic roofline model of speculative decoding with sparse-KV drafts (numpy only)."""

from .architecture import ModelArch, builtin_model_names, from_hf_config, get_model, load_hf_config
from .errors import InputError
from .hardware import HardwareProfile, builtin_hardware_names, load_profile

__all__ = [
    "HardwareProfile",
    "InputError",
    "ModelArch",
    "builtin_hardware_names",
    "builtin_model_names",
    "from_hf_config",
    "get_model",
    "load_hf_config",
    "load_profile",
]
