"""Acceptance conventions (perfmodel/acceptance_conventions.py): hand-computed conversions, the
published per-position figures they must reproduce, and the --accept-rate flag."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from magicdec_model.cli.main import app
from magicdec_model.perfmodel.acceptance_conventions import (
    alpha_from_rate,
    alpha_from_tokens_per_step,
    conditional_from_unconditional,
    positions_from_alpha,
    rate_from_alpha,
    rate_from_tokens_per_step,
    tokens_per_step_from_alpha,
    tokens_per_step_from_positions,
    tokens_per_step_from_rate,
    unconditional_from_conditional,
)
from magicdec_model.perfmodel.errors import InputError

pytestmark = pytest.mark.unit


def test_alpha_and_tokens_per_step_by_hand():
    # alpha 0.5, gamma 3: Omega = (1 - 0.5^4) / (1 - 0.5) = 0.9375 / 0.5 = 1.875
    assert float(tokens_per_step_from_alpha(0.5, 3)) == pytest.approx(1.875, rel=1e-15)
    # alpha 0.8, gamma 4: (1 - 0.32768) / 0.2 = 3.3616
    assert float(tokens_per_step_from_alpha(0.8, 4)) == pytest.approx(3.3616, rel=1e-12)
    assert float(alpha_from_tokens_per_step(1.875, 3)) == pytest.approx(0.5, abs=1e-12)
    assert float(alpha_from_tokens_per_step(3.3616, 4)) == pytest.approx(0.8, abs=1e-12)
    # the ends: nothing accepted, everything accepted
    assert float(alpha_from_tokens_per_step(1.0, 4)) == pytest.approx(0.0, abs=1e-15)
    assert float(alpha_from_tokens_per_step(5.0, 4)) == pytest.approx(1.0, abs=1e-15)
    got = alpha_from_tokens_per_step(np.array([1.875, 3.3616]), np.array([3, 4]))
    assert got == pytest.approx([0.5, 0.8], abs=1e-12)


def test_engine_rate_by_hand():
    # accepted/drafted 0.6 at gamma 4: 1 + 0.6 x 4 = 3.4 tokens per step
    assert float(tokens_per_step_from_rate(0.6, 4)) == pytest.approx(3.4)
    assert float(rate_from_tokens_per_step(3.4, 4)) == pytest.approx(0.6)
    # alpha 0.5, gamma 3: Omega 1.875, so 0.875 of 3 drafted tokens are accepted: rate 0.291666...
    assert float(rate_from_alpha(0.5, 3)) == pytest.approx(0.875 / 3, rel=1e-12)
    assert float(alpha_from_rate(0.875 / 3, 3)) == pytest.approx(0.5, abs=1e-12)
    # the two rates differ: an engine's accepted/drafted is below alpha whenever gamma > 1
    assert float(rate_from_alpha(0.8, 4)) == pytest.approx((3.3616 - 1) / 4) and 0.5904 < 0.8


def test_per_position_rates_published_and_by_hand():
    # BCCard/MoAI-gemma-4-12B-it-speculator.eagle3 model card (serving-and-acceptance.md §3):
    # conditional 0.665 / 0.620 / 0.640 with unconditional 0.665 / 0.412 / 0.264
    r = unconditional_from_conditional([0.665, 0.620, 0.640])
    assert r == pytest.approx([0.665, 0.412, 0.264], abs=1e-3)
    # GLM-4.5-Air MTP per-position 0.92 / 0.68 / 0.38: conditionals 0.92, 0.68/0.92, 0.38/0.68
    c = conditional_from_unconditional([0.92, 0.68, 0.38])
    assert c == pytest.approx([0.92, 0.7391304347826086, 0.5588235294117647], rel=1e-12)
    # vLLM PR #24344, EAGLE K=3: 1 + 0.77 + 0.45 + 0.24 = 2.46 tokens per step
    assert tokens_per_step_from_positions([0.77, 0.45, 0.24]) == pytest.approx(2.46)
    assert positions_from_alpha(0.5, 3) == pytest.approx([0.5, 0.25, 0.125])
    assert positions_from_alpha(0.5, 3, conditional=True) == pytest.approx([0.5, 0.5, 0.5])
    # i.i.d.: 1 + sum alpha^i equals Eq. 1's Omega
    assert tokens_per_step_from_positions(positions_from_alpha(0.8, 4)) == pytest.approx(3.3616)
    # a position never reached has conditional rate 0, not a division by zero
    assert conditional_from_unconditional([0.5, 0.0, 0.0]).tolist() == [0.5, 0.0, 0.0]


def test_bad_values_are_refused():
    with pytest.raises(InputError, match="outside 1..gamma"):
        alpha_from_tokens_per_step(5.5, 4)
    with pytest.raises(InputError, match="outside 1..gamma"):
        alpha_from_tokens_per_step(0.5, 4)
    with pytest.raises(InputError, match="outside"):
        tokens_per_step_from_rate(1.2, 4)


def _predict(*extra: str):
    res = CliRunner().invoke(app, ["predict", "--batch", "16", "--seq-len", "32k", "--format", "json",
                                   *extra])
    return res


def test_accept_rate_flag_is_tokens_per_step_one_plus_rate_gamma():
    a = _predict("--accept-rate", "0.6", "--gamma", "4")
    b = _predict("--accept-len", "3.4", "--gamma", "4")
    assert a.exit_code == 0 and b.exit_code == 0, a.output + b.output
    ra, rb = json.loads(a.output)[0], json.loads(b.output)[0]
    assert ra["expected_tokens"] == pytest.approx(3.4)
    assert ra["speedup"] == pytest.approx(rb["speedup"], rel=1e-12)
    assert "--accept-rate 0.6 accepted/drafted at gamma 4" in ra["acceptance_source"]


@pytest.mark.parametrize("extra, words", [
    (("--accept-rate", "0.6"), "--accept-rate is measured at one gamma"),
    (("--accept-rate", "0.6", "--gamma", "3,4"), "--accept-rate is measured at one gamma"),
    (("--accept-rate", "1.5", "--gamma", "4"), "--accept-rate 1.5 is outside [0, 1]"),
    (("--accept-rate", "0.5", "--acceptance", "0.5", "--gamma", "4"), "both set the acceptance"),
])
def test_accept_rate_bad_input_is_one_line(extra, words):
    res = _predict(*extra)
    assert res.exit_code == 2
    assert words in res.output and "Traceback" not in res.output
