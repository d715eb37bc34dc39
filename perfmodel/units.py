"""Values of hardware-profile and engine keys written with their units, for people to read.

The profiles and engines hold SI values (FLOP/s, bytes/s, bytes, seconds; efficiencies as fractions
of a peak).  :func:`unit_of` names the unit of a key from its name, :func:`with_unit` writes a value
in a readable multiple of it ('989.4 TFLOP/s', '3.35 TB/s', '80 GiB', '1.3 us', '0.9 of peak').
"""

from __future__ import annotations

import math

#: Keys whose names do not say their unit by their ending.
_EXACT = {
    "mem_capacity": "B",
    "l2_bytes": "B",
    "sm_count": "count",
    "interconnect_bw_uni": "B/s",
    "allreduce_busbw": "B/s",
    "mem_bw": "B/s",
}


def unit_of(key: str) -> str:
    """The unit of a profile or engine key: 'FLOP/s', 'B/s', 'B', 's', 'count' or 'fraction'
    (an efficiency: the part of a datasheet peak reached)."""
    if key in _EXACT:
        return _EXACT[key]
    if key.startswith("peak_flops"):
        return "FLOP/s"
    if key.endswith("_s"):
        return "s"
    if key.endswith("_bytes"):
        return "B"
    return "fraction"


def _scaled(value: float, steps: tuple[tuple[float, str], ...]) -> str:
    for factor, name in steps:
        if abs(value) >= factor:
            return f"{value / factor:.4g} {name}"
    return f"{value:.3g} {steps[[f for f, _ in steps].index(1.0)][1]}"  # tiny: in the base unit


def with_unit(key: str, value: float) -> str:
    """``value`` of ``key`` in a readable multiple of its unit ('989.4 TFLOP/s', '80 GiB', '1.3 us')."""
    value = float(value)
    if not math.isfinite(value):
        return f"{value} ({unit_of(key)})"
    unit = unit_of(key)
    if unit == "FLOP/s":
        return _scaled(value, ((1e15, "PFLOP/s"), (1e12, "TFLOP/s"), (1e9, "GFLOP/s"), (1.0, "FLOP/s")))
    if unit == "B/s":
        return _scaled(value, ((1e12, "TB/s"), (1e9, "GB/s"), (1e6, "MB/s"), (1.0, "B/s")))
    if unit == "B":
        return _scaled(value, ((2**30, "GiB"), (2**20, "MiB"), (2**10, "KiB"), (1.0, "B")))
    if unit == "s":
        if value == 0:
            return "0 s"
        return _scaled(value, ((1.0, "s"), (1e-3, "ms"), (1e-6, "us"), (1e-9, "ns")))
    if unit == "count":
        return f"{value:.0f}"
    return f"{value:.4g} of peak"
