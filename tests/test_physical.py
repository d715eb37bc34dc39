"""Every number a prediction prints is finite and physical, or the command refuses (perfmodel/physical.py).

Issue 17: extreme but finite profile or engine values printed speedups of inf, nan or 0 with exit 0,
and a tree's --accept-len above its depth + 1 printed a speedup no tree can reach.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from magicdec_model.perfmodel.errors import InputError
from magicdec_model.perfmodel.hardware import load_profile
from magicdec_model.perfmodel.physical import POSITIVE, check_numbers, check_predictions
from magicdec_model.perfmodel.sweep import Query, predict

pytestmark = pytest.mark.unit

A100 = load_profile("a100-80gb-sxm")


@pytest.fixture(scope="module")
def frame():
    return predict(Query(model="llama-3.1-8b", batch=[1, 32], seq_len=[4000, 32000], gamma=[3]))


def test_a_normal_prediction_passes_unchanged(frame):
    assert check_predictions(frame) is frame


@pytest.mark.parametrize("column,value,match", [
    ("speedup", np.inf, "speedup = inf is not finite"),
    ("t_target_s", np.nan, "t_target_s = nan is not finite"),
    ("speedup", 0.0, "speedup = 0 is not physical"),
    ("throughput_sd_tok_s", -1.0, "not physical"),
    ("t_draft_s", -1e-3, r"must be >= 0"),
    ("expected_tokens", 5.0, "exceed the gamma \\+ 1"),  # gamma 3: at most 4 tokens per step
    ("acceptance", np.nan, "acceptance = nan"),  # a chain has a rate
    ("acceptance", 1.5, "acceptance = 1.5"),
])
def test_a_non_finite_or_unphysical_number_is_refused_naming_it_and_the_point(frame, column, value, match):
    bad = frame.copy()
    bad.loc[1, column] = value
    with pytest.raises(InputError, match=match) as exc:
        check_predictions(bad, inputs="--hardware my.toml")
    msg = str(exc.value)
    assert "\n" not in msg and f"batch {bad.loc[1, 'batch']:,}" in msg
    if column != "acceptance" and column != "expected_tokens":
        assert "--hardware my.toml" in msg


def test_a_tree_given_by_its_accepted_length_has_no_rate_and_passes():
    df = predict(Query(model="llama-3.1-8b", batch=[1], seq_len=[4000], gamma=[3], verify_tokens=16,
                       accept_len=3.5))
    assert np.isnan(df["acceptance"]).all()
    assert (df["expected_tokens"] == 3.5).all()  # at most gamma + 1 = 4


def test_a_trees_accepted_length_above_its_depth_plus_one_is_refused():
    # a tree of depth 1 emits at most 1 drafted + 1 bonus token per step, whatever its node count
    with pytest.raises(InputError, match="--accept-len 16 exceeds the gamma \\+ 1 = 2 tokens"):
        predict(Query(model="llama-3.1-8b", batch=[1], seq_len=[4000], gamma=[1], verify_tokens=16,
                      accept_len=16))


def test_check_numbers_names_the_output_and_the_number():
    check_numbers({"a": 1.0, "b": [0.0, 2.0]}, "fit", positive=("a",))
    with pytest.raises(InputError, match="no fit: b = inf is not finite"):
        check_numbers({"a": 1.0, "b": [0.0, np.inf]}, "fit")
    with pytest.raises(InputError, match="no fit: a = 0 is not physical"):
        check_numbers({"a": 0.0}, "fit", positive=("a",))


@pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning",
                            "ignore:invalid value encountered:RuntimeWarning",
                            "ignore:divide by zero encountered:RuntimeWarning")
@settings(max_examples=25, deadline=None, derandomize=True)
@given(bw=st.integers(-300, 300), flops=st.integers(-300, 300), eff=st.integers(-300, 0))
def test_any_finite_hardware_gives_finite_positive_predictions_or_a_refusal(bw, flops, eff):
    """Datasheet peaks from 1e-300 to 1e300 and efficiencies down to 1e-300: finite or refused."""
    ds = {**A100.datasheet, "mem_bw": 10.0 ** bw, "peak_flops_bf16": 10.0 ** flops}
    hw = dataclasses.replace(A100, datasheet=ds, efficiency={**A100.efficiency, "gemm_bw": 10.0 ** eff})
    try:
        df = predict(Query(model="llama-3.1-8b", batch=[1, 256], seq_len=[1000, 128000], hardware=hw))
    except InputError as exc:
        assert str(exc).startswith("no prediction: ") and "\n" not in str(exc)
        return
    for col in POSITIVE:
        values = df[col].to_numpy(float)
        assert np.isfinite(values).all() and (values > 0).all(), col
    assert (df["expected_tokens"] <= df["gamma"] + 1).all()
