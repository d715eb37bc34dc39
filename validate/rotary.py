"""Rotary position embedding (RoPE) in the Hugging Face "rotate half" layout.

Frequencies with the model's theta and scaling (none, linear, llama3), cos/sin tables for token
positions, and the rotation itself; angles in fp32 (fp64 for fp64 models, which tests use for
exact comparisons).
"""

from __future__ import annotations

import math

import torch

from ..perfmodel.architecture import ModelArch


def rope_inv_freq(arch: ModelArch) -> torch.Tensor:
    """Inverse frequencies ``[head_dim / 2]`` (rad per position, float64) with the model's scaling.

    Supports no scaling, ``{"type"|"rope_type": "linear", "factor"}`` and the llama3 scheme
    (``factor``, ``low_freq_factor``, ``high_freq_factor``, ``original_max_position_embeddings``):
    wavelengths longer than ``original / low_freq_factor`` are divided by ``factor``, shorter than
    ``original / high_freq_factor`` are kept, and the band between is interpolated linearly in
    ``original / wavelength``.
    """
    d = arch.head_dim
    inv = 1.0 / (arch.rope_theta ** (torch.arange(0, d, 2, dtype=torch.float64) / d))
    rs = arch.rope_scaling
    if not rs:
        return inv
    kind = rs.get("rope_type", rs.get("type", "default"))
    if kind in ("default", None):
        return inv
    factor = float(rs["factor"])
    if kind == "linear":
        return inv / factor
    if kind == "llama3":
        low = float(rs.get("low_freq_factor", 1.0))
        high = float(rs.get("high_freq_factor", 4.0))
        orig = float(rs.get("original_max_position_embeddings", 8192))
        wavelen = 2 * math.pi / inv
        smooth = ((orig / wavelen) - low) / (high - low)
        mid = (1 - smooth) * inv / factor + smooth * inv
        out = torch.where(wavelen > orig / low, inv / factor, mid)
        return torch.where(wavelen < orig / high, inv, out)
    raise ValueError(f"model {arch.name!r}: unsupported rope_scaling type {kind!r}")


def _rotate_half(x: torch.Tensor) -> torch.Tensor:
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


def angle_dtype(dtype: torch.dtype) -> torch.dtype:
    """Dtype of rotary angles for a model in ``dtype``: fp64 for fp64 models, fp32 otherwise."""
    return torch.float64 if dtype == torch.float64 else torch.float32


def rotary_tables(positions: torch.Tensor, inv_freq: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """cos and sin ``[B, T, 1, D]`` (in ``inv_freq``'s dtype) for token positions ``[B, T]``."""
    ang = positions.to(inv_freq.dtype)[..., None] * inv_freq
    ang = torch.cat((ang, ang), dim=-1)[:, :, None, :]
    return ang.cos(), ang.sin()


def apply_rotary(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate ``x`` ``[B, T, H, D]`` by the angles of ``cos``/``sin`` (computed in fp32, or fp64
    for fp64 inputs; returned in ``x``'s dtype)."""
    cdt = angle_dtype(x.dtype)
    xf = x.to(cdt)
    return (xf * cos.to(cdt) + _rotate_half(xf) * sin.to(cdt)).to(x.dtype)
