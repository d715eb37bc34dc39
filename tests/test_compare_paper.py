"""compare-paper: the shipped 8xA100 table, per-row error, MAPE, acceptance provenance."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from magicdec_model.perfmodel.errors import InputError
from magicdec_model.perfmodel.paper import compare_paper, paper_table


def test_shipped_table_matches_the_published_rows():
    t = paper_table()
    assert len(t) == 12
    # MagicDec project page / Together blog Table 2 (magicdec-paper.md §2): first and last rows
    first, last = t.iloc[0], t.iloc[-1]
    assert (first["target"], first["draft"], first["prefill"], first["batch"], first["gamma"],
            first["speedup"]) == ("llama-2-7b-32k", "tinyllama-1.1b", 8000, 32, 3, 1.29)
    assert (last["target"], last["draft"], last["prefill"], last["batch"], last["gamma"],
            last["speedup"]) == ("llama-3.1-8b", "self", 100000, 32, 5, 1.84)
    assert t["speedup"].tolist() == [1.29, 1.57, 1.66, 1.91, 1.18, 1.48, 1.63, 2.00,
                                     1.22, 1.38, 1.47, 1.84]
    assert t["source"].str.contains("MagicDec project page").all()
    assert t["budget_note"].str.contains("inferred").all()  # budget 512 is an inference
    assert (t["kv_budget"] == 512).all()


@pytest.fixture(scope="module")
def comp():
    return compare_paper()


def test_per_row_error_and_mape(comp):
    r = comp.rows
    assert len(r) == 12
    expect = (r["speedup_model"] - r["speedup_paper"]) / r["speedup_paper"] * 100
    assert np.allclose(r["error_pct"], expect)
    assert comp.mape_pct == pytest.approx(float(np.mean(np.abs(expect))))
    assert (r["speedup_model"] > 0).all()


def test_acceptance_from_table_where_it_applies_else_default(comp):
    r = comp.rows
    l31 = r[r["target"] == "llama-3.1-8b"]
    assert l31["acceptance_source"].str.startswith("measured").all()
    assert l31["acceptance"].tolist() == [0.81, 0.81, 0.81, 0.79]  # magicdec-paper.md §3.1 at 32K/100K
    other = r[r["target"] != "llama-3.1-8b"]
    assert other["acceptance_source"].str.startswith("default").all()


def test_acceptance_override_and_paper_gamma():
    c = compare_paper(acceptance=0.7, gamma="paper")
    assert (c.rows["acceptance"] == 0.7).all()
    assert (c.rows["acceptance_source"] == "given by --acceptance").all()
    assert (c.rows["gamma_model"] == c.rows["gamma_paper"]).all()


def test_user_acceptance_table_wins(tmp_path):
    path = tmp_path / "acc.csv"
    pd.DataFrame({
        "model": ["llama-2-7b-32k"] * 2, "draft": ["self"] * 2, "method": ["streamingllm"] * 2,
        "budget": [512, 512], "seq_len": [8000, 32000], "acceptance": [0.6, 0.6],
        "dataset": ["mine"] * 2, "source": ["my measurement"] * 2,
    }).to_csv(path, index=False)
    c = compare_paper(acceptance_table=str(path))
    mine = c.rows[(c.rows["target"] == "llama-2-7b-32k") & (c.rows["draft"] == "self")]
    assert (mine["acceptance"] == 0.6).all()
    assert mine["acceptance_source"].str.contains("my measurement").all()
    base = compare_paper()
    assert (mine["speedup_model"].to_numpy() < base.rows.loc[mine.index, "speedup_model"].to_numpy()).all()


def test_bad_gamma_mode():
    with pytest.raises(InputError, match="--gamma 'best'"):
        compare_paper(gamma="best")
