"""Schema and consistency of perfmodel/data/acceptance_methods.csv (published acceptance of EAGLE
heads, MTP modules and n-gram drafts; columns in docs/acceptance.md)."""

from __future__ import annotations

from importlib import resources

import numpy as np
import pandas as pd
import pytest

from magicdec_model.perfmodel.architecture import builtin_model_names

pytestmark = pytest.mark.unit

COLUMNS = ["target", "draft_kind", "draft_detail", "metric", "position", "value", "statistic", "shape",
           "gamma", "tree_tokens", "temperature", "dataset", "engine", "kind", "source", "note"]
REQUIRED = ["target", "draft_kind", "metric", "value", "statistic", "shape", "dataset", "kind", "source"]


@pytest.fixture(scope="module")
def table() -> pd.DataFrame:
    path = resources.files("magicdec_model.perfmodel").joinpath("data/acceptance_methods.csv")
    with path.open("r", encoding="utf-8") as fh:
        return pd.read_csv(fh)


def test_columns_and_required_values(table):
    assert list(table.columns) == COLUMNS
    for col in REQUIRED:
        assert table[col].notna().all(), col
    assert table["source"].str.len().gt(25).all()
    assert set(table["draft_kind"]) <= {"eagle", "eagle2", "eagle3", "mtp", "ngram"}
    assert set(table["metric"]) <= {"accept_len", "acceptance", "position_acceptance"}
    assert set(table["statistic"]) <= {"mean", "low", "high"}
    assert set(table["shape"]) <= {"chain", "tree", "dynamic_tree"}
    assert set(table["kind"]) <= {"published", "derived"}
    assert table.duplicated(["target", "draft_kind", "metric", "position", "statistic", "shape", "gamma",
                             "tree_tokens", "temperature", "dataset", "source"]).sum() == 0


def test_values_in_range(table):
    acc = table[table["metric"] == "accept_len"]
    assert (acc["value"] >= 1).all()
    rates = table[table["metric"] != "accept_len"]
    assert ((rates["value"] >= 0) & (rates["value"] <= 1)).all()
    t = table["temperature"].dropna()
    assert (t >= 0).all()
    for col in ("gamma", "tree_tokens"):
        v = table[col].dropna()
        assert ((v >= 1) & (v == np.round(v))).all()


def test_accept_len_at_most_depth_plus_one(table):
    # a chain of gamma drafted tokens, or a tree of depth gamma, yields at most gamma + 1 tokens
    acc = table[(table["metric"] == "accept_len") & table["gamma"].notna()]
    assert len(acc) > 0 and (acc["value"] <= acc["gamma"] + 1).all()
    trees = table[table["tree_tokens"].notna()]
    assert (trees["shape"] != "chain").all() and (trees["tree_tokens"] >= trees["gamma"]).all()


def test_positions(table):
    pos = table[table["metric"] == "position_acceptance"]
    assert table.loc[table["metric"] != "position_acceptance", "position"].isna().all()
    assert pos["position"].notna().all() and (pos["position"] <= pos["gamma"]).all()
    # vLLM's per-position rate is the share of steps accepting the i-th token: non-increasing
    for _, g in pos.groupby(["target", "draft_kind", "dataset", "source"]):
        assert g.sort_values("position")["value"].is_monotonic_decreasing


def test_rate_and_length_agree_where_both_are_given(table):
    # one step verifies d draft tokens (chain: gamma, tree: tree_tokens); with rate a of them
    # accepted it yields 1 + a*d tokens on average
    keys = ["target", "draft_kind", "shape", "gamma", "tree_tokens", "dataset", "source"]
    both = 0
    for _, g in table.groupby(keys, dropna=False):
        by = dict(zip(g["metric"], g["value"], strict=False))
        if {"accept_len", "acceptance"} <= set(by):
            row = g.iloc[0]
            d = row["tree_tokens"] if pd.notna(row["tree_tokens"]) else row["gamma"]
            assert abs(1 + by["acceptance"] * d - by["accept_len"]) <= 0.1
            both += 1
    assert both == 2


def test_low_high_pairs(table):
    ranged = table[table["statistic"] != "mean"]
    for _, g in ranged.groupby(["target", "draft_kind", "metric", "source"]):
        assert set(g["statistic"]) == {"low", "high"}
        value = dict(zip(g["statistic"], g["value"], strict=True))
        assert value["low"] <= value["high"]


def test_derived_rows_say_how(table):
    derived = table[table["kind"] == "derived"]
    assert len(derived) > 0 and derived["note"].str.startswith("derived: ").all()
    # a longer chain can only accept more under the rule min(acc_len, k + 1)
    for _, g in derived.groupby(["target", "draft_kind", "dataset"]):
        assert g.sort_values("gamma")["value"].is_monotonic_increasing


def _tau(table, source_part, temperature=None):
    sel = table[table["source"].str.contains(source_part, regex=False) & (table["metric"] == "accept_len")]
    if temperature is not None:
        sel = sel[sel["temperature"] == temperature]
    return sel.pivot_table(index=["target", "dataset", "temperature"], columns="draft_kind", values="value")


def test_orderings_the_papers_state(table):
    # EAGLE-3 §4.1: "On all tasks and target models, EAGLE-3 achieves the highest speedup ratio and
    # average acceptance length"; EAGLE-2's Table 1 has EAGLE-2 above EAGLE above PLD in every
    # LLaMA2-Chat cell (its conclusion: "In all our experiments, EAGLE-2 achieved the highest
    # speedup ratios").
    e3 = _tau(table, "arXiv 2503.01840").dropna()
    assert len(e3) >= 10 and (e3["eagle3"] > e3["eagle2"]).all()
    e2 = _tau(table, "arXiv 2406.16858")
    assert len(e2) == 12 and ((e2["eagle2"] > e2["eagle"]) & (e2["eagle"] > e2["ngram"])).all()
    # greedy (T=0) accepts more than sampling at T=1 for the same head and task (Table 1)
    t0 = _tau(table, "arXiv 2503.01840", 0).droplevel("temperature")
    t1 = _tau(table, "arXiv 2503.01840", 1).droplevel("temperature")
    common = t1.index
    assert (t0.loc[common, "eagle3"] > t1.loc[common, "eagle3"]).all()


def test_targets_are_registry_names_where_the_registry_has_the_model(table):
    names = set(builtin_model_names())
    outside = set(table["target"]) - names
    assert outside == {"glm-4.5-air"}, outside
