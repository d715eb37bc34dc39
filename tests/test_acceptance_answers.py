"""Answers that use the acceptance model: predict names it, its uncertainty widens the speedup
interval (perfmodel/intervals.py), and --acceptance overrides it."""

from __future__ import annotations

import numpy as np
import pytest

from magicdec_model.perfmodel.intervals import acceptance_log_sd, combine
from magicdec_model.perfmodel.sweep import Query, predict

pytestmark = pytest.mark.unit


def test_acceptance_log_sd_by_hand():
    # gamma 1, alpha 0.5: Omega = 1 + alpha = 1.5, dOmega/dalpha = 1: sd(log Omega) = 0.03 / 1.5
    assert float(acceptance_log_sd(0.5, 0.03, 1)) == pytest.approx(0.02, rel=1e-12)
    # gamma 2, alpha 0.5: Omega = 1.75, dOmega/dalpha = 1 + 2 x 0.5 = 2: 0.01 x 2 / 1.75
    assert float(acceptance_log_sd(0.5, 0.01, 2)) == pytest.approx(0.02 / 1.75, rel=1e-12)
    # half the iterations propose (F = 0.5): Omega_F = 0.5 x 1.75 + 0.5 = 1.375, derivative halved
    assert float(acceptance_log_sd(0.5, 0.01, 2, 0.5)) == pytest.approx(0.01 / 1.375, rel=1e-12)
    assert float(combine(0.03, 0.04)) == pytest.approx(0.05)


def test_model_acceptance_widens_the_interval_and_is_named():
    base = Query(model="llama-3.1-8b", batch=[32], seq_len=[64000], kv_budget=[128, 2048], gpus=[8],
                 kv_method="streamingllm")
    got = predict(base)
    assert (got["acceptance_basis"] == "model").all()
    assert got["acceptance_source"].str.startswith("acceptance model").all()
    assert (got["acceptance_sd"] > 0).all()
    assert got["acceptance"].iloc[0] < got["acceptance"].iloc[1]  # budget 128 < budget 2048
    for _, row in got.iterrows():
        given = predict(Query(**{**base.__dict__, "kv_budget": [int(row["kv_budget"])],
                                 "acceptance": float(row["acceptance"])})).iloc[0]
        assert given["acceptance_source"] == "given by --acceptance" and given["acceptance_sd"] == 0
        assert given["speedup"] == pytest.approx(row["speedup"], rel=1e-12)
        # same point estimate, a wider interval with the acceptance's uncertainty
        assert row["speedup_lo"] < given["speedup_lo"] and row["speedup_hi"] > given["speedup_hi"]
        assert np.isfinite([row["speedup_lo"], row["speedup_hi"]]).all()


def test_budget_axis_is_a_trade_off():
    # issue 16: one acceptance for every budget made the smallest budget win by construction
    got = predict(Query(model="llama-3.1-8b", batch=[32], seq_len=[64000], gpus=[8],
                        kv_budget=[128, 256, 512, 1024, 2048, 4096, 8192], kv_method="streamingllm"))
    assert np.all(np.diff(got["acceptance"].to_numpy()) >= -0.01)  # 512 is the measured point
    assert got["kv_budget"].iloc[int(np.argmax(got["speedup"]))] > 128
