"""The acceptance model (perfmodel/acceptance_model.py): its form by hand, physical limits as
hypothesis invariants, recovery of known parameters, the published curve within its stated error,
the shipped parameters reproduced from the shipped data, and the lookup that prefers measurements."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from magicdec_model.perfmodel.acceptance import builtin_table, load_table
from magicdec_model.perfmodel.acceptance_model import (
    MODEL_FILE,
    acceptance,
    alpha_form,
    cross_validate,
    cv_summary,
    data_hashes,
    estimate,
    fit_model,
    fit_rows,
    model_from_toml,
    model_to_toml,
    shipped_model,
)
from magicdec_model.perfmodel.errors import InputError

pytestmark = pytest.mark.unit

#: every measured model of the shipped fit, and one without measurements (the fallback group's)
MODELS = tuple(sorted({g.split("/")[0] for g in shipped_model().groups})) + ("llama-2-7b-32k",)
METHODS = ("streamingllm", "snapkv")


def test_form_by_hand():
    # kappa 0.5, d0 100, p 1: G(100) = 1/2, G(300) = 1/4, alpha = 1 - 0.5 (1/2 - 1/4) = 0.875
    assert float(alpha_form(100, 300, 0.5, 100.0, 1.0)) == pytest.approx(0.875, rel=1e-15)
    # a distance scale m = 2 (both distances doubled): G(200) = 1/3, G(600) = 1/7;
    # alpha = 1 - 0.5 (1/3 - 1/7) = 1 - 0.5 x 4/21 = 0.904761...
    assert float(alpha_form(100, 300, 0.5, 100.0, 1.0, 2.0)) == pytest.approx(1 - 2 / 21, rel=1e-14)
    # the draft is the target: exactly 1, whatever the parameters
    assert alpha_form(np.array([300, 400]), 300, 0.9, 10.0, 0.3).tolist() == [1.0, 1.0]


@settings(max_examples=200, deadline=None)
@given(kappa=st.floats(0, 1), d0=st.floats(1e-2, 1e5), p=st.floats(1e-3, 5), m=st.floats(1e-2, 1e2),
       b1=st.integers(1, 2_000_000), b2=st.integers(1, 2_000_000), s=st.integers(1, 2_000_000))
def test_form_limits_for_any_parameters(kappa, d0, p, m, b1, b2, s):
    lo, hi = sorted((b1, b2))
    a_lo = float(alpha_form(lo, s, kappa, d0, p, m))
    a_hi = float(alpha_form(hi, s, kappa, d0, p, m))
    assert 0.0 <= a_lo <= a_hi <= 1.0
    if lo >= s:
        assert a_lo == 1.0
    # a longer context at the same budget never raises acceptance, and stays above 1 - kappa
    a_long = float(alpha_form(lo, 2 * s, kappa, d0, p, m))
    assert 1.0 - kappa - 1e-12 <= a_long <= a_lo + 1e-12


@settings(max_examples=150, deadline=None)
@given(model=st.sampled_from(MODELS), method=st.sampled_from(METHODS),
       b1=st.integers(1, 1_000_000), b2=st.integers(1, 1_000_000), s=st.integers(2, 1_000_000))
def test_shipped_model_limits(model, method, b1, b2, s):
    lo, hi = sorted((b1, b2))
    a = acceptance(method, np.array([lo, hi]), s, model=model)
    assert np.all(np.isfinite(a)) and np.all((0.0 <= a) & (a <= 1.0))
    assert a[0] <= a[1]  # non-decreasing in budget
    if hi >= s:
        assert a[1] == 1.0  # greedy self-draft covering the whole context is the target
    _, sd, _ = shipped_model().predict(model, "self", method, lo, s)
    assert np.isfinite(sd) and sd >= 0.0 and (lo < s or sd == 0.0)


def test_position_is_the_iid_unconditional_rate():
    a = float(acceptance("streamingllm", 256, 32000))
    assert float(acceptance("streamingllm", 256, 32000, position=3)) == pytest.approx(a ** 3)
    with pytest.raises(InputError, match="position"):
        acceptance("streamingllm", 256, 32000, position=0)


def _synthetic(rng: np.random.Generator, sd: float = 0.003) -> tuple[pd.DataFrame, dict]:
    """Two models, StreamingLLM and SnapKV, 5 budgets x 4 contexts, from known parameters."""
    truth = {"a/self": (0.45, 40.0, 0.8), "b/self": (0.6, 150.0, 0.6), "snapkv": 0.5}
    rows = []
    for g, (k, d0, p) in ((g, v) for g, v in truth.items() if g != "snapkv"):
        for method in METHODS:
            m = truth["snapkv"] if method == "snapkv" else 1.0
            for b in (32, 64, 128, 256, 512):
                for s in (1024, 2048, 4096, 8192):
                    a = float(alpha_form(b, s, k, d0, p, m)) + rng.normal(0, sd)
                    rows.append({"model": g.split("/")[0], "draft": "self", "method": method,
                                 "budget": b, "seq_len": s, "acceptance": a, "dataset": "synthetic",
                                 "source": "synthetic", "sigma": sd, "table": f"{g}.csv"})
    return pd.DataFrame(rows), truth


def test_recovers_known_parameters_from_synthetic_data():
    rows, truth = _synthetic(np.random.default_rng(7))
    m = fit_model(rows, fallback="a/self").model
    for g in ("a/self", "b/self"):
        k, d0, p = truth[g]
        for name, true in (("logit_kappa", np.log(k / (1 - k))), ("log_d0", np.log(d0)),
                           ("log_p", np.log(p))):
            i = m.index(f"{g}:{name}")
            est, se = m.values[i], np.sqrt(m.covariance[i, i])
            assert abs(est - true) < 4 * se + 1e-9, (g, name, est, true, se)
            assert se < 0.5  # identified: well under a factor e
    j = m.index("method:snapkv:log_scale")
    assert abs(m.values[j] - np.log(truth["snapkv"])) < 4 * np.sqrt(m.covariance[j, j])
    # the residual scatter the fit finds is the noise put in (sd 0.003), not more
    assert max(m.residual_rel.values()) < 0.1


def test_cross_validation_of_a_right_model_is_near_the_noise():
    rows, _ = _synthetic(np.random.default_rng(11))
    rows = rows[rows["model"] == "a"]
    cv = cross_validate(rows, fallback="a/self")
    summary = cv_summary(cv)
    lobo = summary[summary["scheme"] == "leave-one-budget-out"]
    assert set(lobo["method"]) == set(METHODS) and (lobo["points"] == 20).all()
    # held-out budgets predicted to within a few noise sd (0.003)
    assert (lobo["rmse"] < 0.012).all(), lobo


def test_published_points_within_their_stated_error():
    # MagicDec project page (magicdec-paper.md §3.1): LLaMA-3.1-8B, StreamingLLM budget 512,
    # 0.84 .. 0.79 at 4K .. 100K, printed to two decimals: one unit of the last digit, 0.01
    m = shipped_model()
    pub = builtin_table()
    a, sd, _ = m.predict("llama-3.1-8b", "self", "streamingllm", 512, pub["seq_len"].to_numpy())
    err = np.abs(a - pub["acceptance"].to_numpy())
    # on the whole within one unit of the last printed digit (RMS), and no point further than two
    assert np.sqrt(np.mean(err**2)) <= 0.01 and err.max() <= 0.02, err
    # and each inside the model's own 95 % interval widened by the figure's rounding (half a unit)
    assert np.all(err <= 1.96 * sd + 0.005), (err, sd)


def test_refit_from_shipped_data_reproduces_shipped_parameters():
    shipped = shipped_model()
    assert shipped is not None, f"{MODEL_FILE} missing"
    assert shipped.info["data_sha256"] == data_hashes(), (
        "the shipped tables changed since the model was fitted: run 'magicdec-model acceptance fit "
        "--out perfmodel/data/acceptance_model.toml'")
    res = fit_model(fit_rows())  # acceptance fit adds the cross-validation, not compared here
    assert res.model.names == shipped.names
    assert res.model.values == pytest.approx(shipped.values, rel=1e-5, abs=1e-7)
    assert np.allclose(res.model.covariance, shipped.covariance, rtol=1e-3, atol=1e-7)
    # the TOML round trip is exact
    back = model_from_toml(model_to_toml(res, data_hashes()))
    assert np.array_equal(back.values, res.model.values)
    assert np.array_equal(back.covariance, res.model.covariance)
    assert back.residual_rel == res.model.residual_rel


def test_fit_rows_take_every_measured_csv(tmp_path: Path):
    rows, _ = _synthetic(np.random.default_rng(3))
    t = rows[rows["model"] == "a"].drop(columns=["sigma", "table"])
    t = t.assign(acceptance_lo=t["acceptance"] - 0.01, acceptance_hi=t["acceptance"] + 0.01,
                 gamma=4, temperature=0.0)
    hot = t.assign(temperature=1.0)  # sampled rows: not fitted (the model is greedy)
    full = t.head(1).assign(budget=8192)  # budget >= seq_len: no information, left out
    path = tmp_path / "a.csv"
    pd.concat([t, hot, full]).to_csv(path, index=False)
    got = fit_rows([path], published=False)
    assert len(got) == len(t)
    assert got["sigma"].to_numpy() == pytest.approx(0.02 / (2 * 1.959963984540054))
    assert set(fit_rows([path])["table"]) == {"a.csv", "acceptance.csv (published)"}


def test_estimate_prefers_measurements_then_the_model(tmp_path: Path):
    table = load_table()
    S = np.array([2000, 8000, 50000, 200000])
    got = estimate(table, "llama-3.1-8b", "self", "streamingllm", 512, S)
    # inside the published range (4K-100K): measured or interpolated; outside: the model
    assert got.basis.tolist() == ["model", "measured", "measured", "model"]
    assert got.value[1] == pytest.approx(0.83)
    assert got.source[0].startswith("acceptance model")
    other = estimate(table, "llama-3.1-8b", "self", "streamingllm", 2048, S)
    assert (other.basis == "model").all() and (other.sd[1:] > 0).all()
    assert other.value[0] == 1.0 and other.sd[0] == 0.0  # budget 2048 >= seq_len 2000
    assert np.all(other.value[1:] >= got.value[1:] - 0.01)  # a larger budget, about no less
    # a budget covering the context: the target itself
    cover = estimate(table, "llama-3.1-8b", "self", "snapkv", 4096, np.array([4096, 1000]))
    assert cover.value.tolist() == [1.0, 1.0] and cover.sd.tolist() == [0.0, 0.0]
    assert "the draft is the target" in cover.source[0]
    # drafts other than self are not modelled: the default, named
    tiny = estimate(table, "llama-2-7b-32k", "tinyllama-1.1b", "streamingllm", 512, S)
    assert (tiny.basis == "default").all() and tiny.source[0].startswith("default")
    # a user's row at this budget wins where it was measured
    path = tmp_path / "acc.csv"
    pd.DataFrame([{"model": "llama-3.1-8b", "draft": "self", "method": "streamingllm", "budget": 2048,
                   "seq_len": 8000, "acceptance": 0.5, "dataset": "mine", "source": "MY-RUN",
                   "acceptance_lo": 0.48, "acceptance_hi": 0.52}]).to_csv(path, index=False)
    mine = estimate(load_table(path), "llama-3.1-8b", "self", "streamingllm", 2048, S)
    assert mine.value[1] == 0.5 and "MY-RUN" in mine.source[1] and mine.basis[1] == "measured"
    assert mine.sd[1] == pytest.approx(0.04 / (2 * 1.959963984540054))
    assert mine.basis[0] == "model"


def test_fallback_pair_is_named():
    _, _, note = shipped_model().predict("llama-2-7b-32k", "self", "streamingllm", 256, 8000)
    assert "no measurement of llama-2-7b-32k" in note
    with pytest.raises(InputError, match="self-drafts"):
        shipped_model().predict("llama-2-7b-32k", "tinyllama-1.1b", "streamingllm", 256, 8000)


def test_user_table_refits_the_model_for_the_budgets_it_did_not_measure(tmp_path: Path):
    from magicdec_model.perfmodel.sweep import Query, predict

    # an illustrative table for a model without shipped rows: budgets 128, 512, 2048 at 8K and 32K
    rows = [{"model": "llama-2-7b-32k", "draft": "self", "method": "streamingllm", "budget": b,
             "seq_len": s, "acceptance": a, "dataset": "mine", "source": "MY-RUN",
             "acceptance_lo": a - 0.01, "acceptance_hi": a + 0.01}
            for b, s, a in ((128, 8000, 0.60), (512, 8000, 0.75), (2048, 8000, 0.88),
                            (128, 32000, 0.55), (512, 32000, 0.70), (2048, 32000, 0.83))]
    path = tmp_path / "acc.csv"
    pd.DataFrame(rows).to_csv(path, index=False)
    got = predict(Query(model="llama-2-7b-32k", batch=[8], seq_len=[8000, 32000], gpus=[1],
                        kv_budget=[512, 1024], kv_method="streamingllm", acceptance_table=str(path)))
    at = got.set_index(["seq_len", "kv_budget"])
    assert at.loc[(8000, 512), "acceptance"] == 0.75 and at.loc[(8000, 512), "acceptance_basis"] == "measured"
    for s, lo, hi in ((8000, 0.75, 0.88), (32000, 0.70, 0.83)):
        r = at.loc[(s, 1024)]
        assert r["acceptance_basis"] == "model"
        assert "refitted with your table acc.csv" in r["acceptance_source"]
        assert lo < r["acceptance"] < hi  # between the user's neighbouring budgets


def test_fit_command_prints_parameters_and_writes_a_loadable_model(tmp_path: Path):
    from typer.testing import CliRunner

    from magicdec_model.cli.main import app

    rows, truth = _synthetic(np.random.default_rng(5))
    t = rows[rows["model"] == "a"].drop(columns=["sigma", "table"])
    t = t.assign(acceptance_lo=t["acceptance"] - 0.006, acceptance_hi=t["acceptance"] + 0.006,
                 pos1_rate=t["acceptance"], pos2_rate=t["acceptance"])
    path = tmp_path / "a.csv"
    t.to_csv(path, index=False)
    out = tmp_path / "m.toml"
    res = CliRunner().invoke(app, ["acceptance", "fit", "--table", str(path), "--no-published",
                                   "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert "a/self" in res.output and "leave-one-budget-out" in res.output
    assert "pos1 +0.000, pos2 +0.000" in res.output  # i.i.d. rows: no per-position departure
    m = model_from_toml(out.read_text(encoding="utf-8"))
    k, d0, p = truth["a/self"]
    got = m.info["groups"]["a/self"]
    assert got["kappa"] == pytest.approx(k, rel=0.1) and got["p"] == pytest.approx(p, rel=0.2)
    assert m.info["data_sha256"] == data_hashes([path])
