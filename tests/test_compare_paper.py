"""compare-paper: the shipped 8xA100 table, per-row error, MAPE, acceptance provenance."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from magicdec_model.perfmodel.errors import InputError
from magicdec_model.perfmodel.paper import compare_paper, paper_table
from magicdec_model.perfmodel.sweep import Query, predict

pytestmark = pytest.mark.unit


def test_shipped_table_matches_the_published_rows(paper_speedups):
    t = paper_table()
    assert len(t) == 12
    # MagicDec project page / Together blog Table 2 (magicdec-paper.md §2): first and last rows
    first, last = t.iloc[0], t.iloc[-1]
    assert (first["target"], first["draft"], first["prefill"], first["batch"], first["gamma"],
            first["speedup"]) == ("llama-2-7b-32k", "tinyllama-1.1b", 8000, 32, 3, 1.29)
    assert (last["target"], last["draft"], last["prefill"], last["batch"], last["gamma"],
            last["speedup"]) == ("llama-3.1-8b", "self", 100000, 32, 5, 1.84)
    assert t["speedup"].tolist() == paper_speedups
    assert t["source"].str.contains("MagicDec project page").all()
    assert t["budget_note"].str.contains("inferred").all()  # budget 512 is an inference
    assert (t["kv_budget"] == 512).all()


@pytest.fixture(scope="module")
def comp():
    return compare_paper()


def test_ideal_prediction_of_one_row_equals_the_hand_derivation(hand_ideal_paper_row):
    hand = hand_ideal_paper_row  # tests/conftest.py: every byte of the three steps by hand
    c = compare_paper(ideal=True, gamma="paper", acceptance=hand.acceptance)
    r = c.rows
    row = r[(r["target"] == hand.target) & (r["draft"] == hand.draft)
            & (r["prefill"] == hand.prefill) & (r["batch"] == hand.batch)]
    assert len(row) == 1
    row = row.iloc[0]
    assert row["gamma_model"] == hand.gamma and row["speedup_paper"] == hand.published
    assert row["speedup_model"] == pytest.approx(hand.speedup, rel=1e-9)  # 1.9135
    # error = (model - paper) / paper, against the published 1.18 (project page)
    assert row["error_pct"] == pytest.approx((hand.speedup - 1.18) / 1.18 * 100, rel=1e-9)
    # and step by step, through the same prediction API
    p = predict(Query(model=hand.target, batch=[hand.batch], seq_len=[hand.prefill],
                      gpus=[8], gamma=[hand.gamma], kv_budget=[hand.kv_budget], acceptance=hand.acceptance,
                      ideal=True)).iloc[0]
    for col in ("t_target_s", "t_draft_s", "t_verify_s"):
        assert p[col] == pytest.approx(getattr(hand, col), rel=1e-9), col


def test_errors_and_mape_are_against_the_published_speedups(comp, paper_speedups):
    r = comp.rows
    assert len(r) == 12
    published = np.asarray(paper_speedups)  # literals from the project page (conftest.py)
    assert r["speedup_paper"].tolist() == paper_speedups
    model = r["speedup_model"].to_numpy()
    assert (model > 0).all()
    # signed error relative to the paper: positive where the model predicts more
    assert np.allclose(r["error_pct"], (model - published) / published * 100, rtol=1e-12)
    assert comp.mape_pct == pytest.approx(float(np.mean(np.abs(model - published) / published)) * 100)


def test_model_speedup_rises_with_batch_and_context_as_published(comp, paper_speedups):
    # MagicDec's result (project page table): at long context the speedup grows with batch size,
    # and at a given batch with the sequence length. The model must reproduce both orderings.
    r = comp.rows.assign(published=paper_speedups)
    for _, grp in r.groupby(["target", "draft", "prefill"]):
        by_batch = grp.sort_values("batch")
        if len(by_batch) > 1:
            assert np.all(np.diff(by_batch["published"]) > 0)
            assert np.all(np.diff(by_batch["speedup_model"]) > 0), by_batch
    for _, grp in r[r["batch"] == 32].groupby(["target", "draft"]):
        by_len = grp.sort_values("prefill")
        assert len(by_len) == 2
        assert np.all(np.diff(by_len["published"]) > 0)
        assert np.all(np.diff(by_len["speedup_model"]) > 0), by_len


def test_acceptance_from_table_where_it_applies_else_default(comp):
    r = comp.rows
    l31 = r[r["target"] == "llama-3.1-8b"]
    assert l31["acceptance_source"].str.startswith("measured").all()
    assert l31["acceptance"].tolist() == [0.81, 0.81, 0.81, 0.79]  # magicdec-paper.md §3.1 at 32K/100K
    # LLaMA-2-7B-32K self-drafts: the acceptance model (LLaMA-3.1-8B's parameters, named as such);
    # TinyLlama drafts are not modelled: the default
    other = r[r["target"] != "llama-3.1-8b"]
    self_rows = other[other["draft"] == "self"]
    assert self_rows["acceptance_source"].str.startswith("acceptance model").all()
    assert self_rows["acceptance_source"].str.contains("no measurement of llama-2-7b-32k").all()
    assert other[other["draft"] != "self"]["acceptance_source"].str.startswith("default").all()


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
