"""Acceptance table: interpolation in log(seq_len), clamping notes, nearest budget, user precedence."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from magicdec_model.perfmodel.acceptance import DEFAULT_ACCEPTANCE, builtin_table, load_table, lookup
from magicdec_model.perfmodel.errors import InputError

pytestmark = pytest.mark.unit

KEY = ("llama-3.1-8b", "self", "streamingllm")


def test_builtin_table_is_the_published_curve():
    t = builtin_table()
    # MagicDec project page, acceptance vs sequence length (magicdec-paper.md §3.1)
    assert t["seq_len"].tolist() == [4000, 8000, 16000, 32000, 64000, 100000]
    assert t["acceptance"].tolist() == [0.84, 0.83, 0.82, 0.81, 0.79, 0.79]
    assert (t["budget"] == 512).all() and t["source"].str.len().gt(20).all()


def test_measured_and_log_interpolated_values():
    got = lookup(builtin_table(), *KEY, 512, np.array([8000, np.sqrt(4000 * 8000)]))
    assert got.value[0] == pytest.approx(0.83)
    assert got.value[1] == pytest.approx(0.835)  # log-midpoint of 4000 and 8000
    assert got.source[0].startswith("measured:")
    assert got.source[1].startswith("interpolated:")


def test_out_of_range_is_clamped_and_says_which_value():
    got = lookup(builtin_table(), *KEY, 512, np.array([1000, 200000]))
    assert got.value.tolist() == [0.84, 0.79]
    assert got.source[0].startswith("clamped to 0.84 at seq_len 4000 (below measured range)")
    assert got.source[1].startswith("clamped to 0.79 at seq_len 100000 (above measured range)")


def test_nearest_budget_is_named():
    got = lookup(builtin_table(), *KEY, 256, np.array([8000]))
    assert "measured at budget 512, used for 256" in got.source[0]


def test_missing_pair_uses_default_and_says_so():
    got = lookup(builtin_table(), "llama-2-7b-32k", "self", "streamingllm", 512, np.array([8000]))
    assert got.value[0] == DEFAULT_ACCEPTANCE
    assert got.source[0].startswith(f"default {DEFAULT_ACCEPTANCE}")


def _user(tmp_path, **over):
    row = {"model": "llama-3.1-8b", "draft": "self", "method": "streamingllm", "budget": 512,
           "seq_len": 8000, "acceptance": 0.5, "dataset": "mine", "source": "my run"}
    row.update(over)
    path = tmp_path / "acc.csv"
    pd.DataFrame([row]).to_csv(path, index=False)
    return path


def test_user_rows_win_over_builtin(tmp_path):
    table = load_table(_user(tmp_path))
    got = lookup(table, *KEY, 512, np.array([8000]))
    assert got.value[0] == 0.5 and "my run" in got.source[0]


def test_bad_user_tables(tmp_path):
    with pytest.raises(InputError, match="does not exist"):
        load_table(tmp_path / "nope.csv")
    with pytest.raises(InputError, match="acceptance=1.5"):
        load_table(_user(tmp_path, acceptance=1.5))
    bad = tmp_path / "cols.csv"
    bad.write_text("model,draft\nx,y\n")
    with pytest.raises(InputError, match="missing columns"):
        load_table(bad)


def test_user_curve_replaces_the_builtin_curve_of_its_key(tmp_path):
    # one user point at 8000: the user's curve is flat, the built-in 0.84 at 4000 is not mixed in
    table = load_table(_user(tmp_path))
    got = lookup(table, *KEY, 512, np.array([4000, 100000]))
    assert got.value.tolist() == [0.5, 0.5]
    assert all("my run" in s and "MagicDec" not in s for s in got.source)
    # other budgets of the same pair still come from the built-in rows where nearer
    other = load_table(_user(tmp_path, budget=4096))
    assert lookup(other, *KEY, 512, np.array([8000])).value[0] == pytest.approx(0.83)
