"""Small inputs of validate's report (``validate.report.build_report``) for tests that write one
without running the validator: three microbenchmarks over two op classes, one AR step and one
speedup comparison (times in s)."""

from __future__ import annotations

import pandas as pd


def tiny_frames() -> tuple[pd.DataFrame, pd.DataFrame]:
    """(micro, comparison) in the columns ``build_report`` reads."""
    micro = pd.DataFrame({
        "op": ["qkv_proj", "qkv_proj", "attn_decode"], "op_class": ["gemm", "gemm", "attention"],
        "label": ["qkv B=1", "qkv B=8", "attn B=1"], "flops": [1e9, 8e9, 2e8], "bytes": [2e8, 2.1e8, 4e8],
        "measured": [1e-4, 2e-4, 3e-4], "predicted": [1.1e-4, 1.9e-4, 3.3e-4], "dtype_bytes": [2, 2, 2],
    })
    comparison = pd.DataFrame({
        "quantity": ["target_decode", "speedup"], "unit": ["s", "x"], "batch": [1, 1], "seq_len": [128, 128],
        "kv_budget": [32, 32], "gamma": [2, 2], "measured": [0.01, 1.4], "predicted": [0.011, 1.3],
        "error_percent": [10.0, -7.1],
    })
    return micro, comparison
