"""Engine profiles: loading and validation, the step overhead, invariants, --engine everywhere."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from magicdec_model.cli.main import app
from magicdec_model.perfmodel.architecture import get_model
from magicdec_model.perfmodel.engine import (
    DEFAULT_ENGINE,
    builtin_engine_names,
    engine_from_dict,
    engine_to_toml,
    load_engine,
)
from magicdec_model.perfmodel.errors import InputError
from magicdec_model.perfmodel.hardware import load_profile
from magicdec_model.perfmodel.parallel import shard
from magicdec_model.perfmodel.step import step_time
from magicdec_model.perfmodel.sweep import Query, predict

pytestmark = pytest.mark.unit
runner = CliRunner()


def _doc(**terms):
    base = {"host_step_s": 1e-3, "host_per_seq_s": 0.0, "launch_s": 0.0, "sd_iteration_s": 0.0}
    base.update(terms)
    return {"name": "t", "terms": base, "stderr": dict.fromkeys(base, 0.0),
            "sources": dict.fromkeys(base, "test")}


def test_every_shipped_engine_loads_and_round_trips_through_toml(tmp_path):
    assert {"generic", "cuda-graph", "eager-pytorch", "magicdec-8xa100"} <= set(builtin_engine_names())
    assert DEFAULT_ENGINE == "generic"
    for name in builtin_engine_names():
        e = load_engine(name)
        assert all(e.sources[k] for k in e.parameters), name
        path = tmp_path / f"{name}.toml"
        path.write_text(engine_to_toml(e), encoding="utf-8")
        back = load_engine(str(path))
        assert (back.terms, back.efficiency, back.stderr, back.calibration) == \
               (e.terms, e.efficiency, e.stderr, e.calibration)


@pytest.mark.parametrize("change,match", [
    ({"terms": {"host_step_s": 1e-3}}, "missing host_per_seq_s"),
    ({"terms": {**_doc()["terms"], "warp_s": 1.0}}, "unknown term 'warp_s'"),
    ({"terms": {**_doc()["terms"], "host_step_s": -1.0}}, "must be >= 0"),
    ({"terms": {**_doc()["terms"], "host_step_s": "1ms"}}, "must be a finite number"),
    ({"efficiency": {"attention_bw": 1.5}}, r"must be in \(0, 1\]"),
    ({"efficiency": {"kernel_fixed_s": 1e-6}}, "cannot be overridden"),
    ({"sources": {}}, "no entry for"),
    ({"stderr": {}}, "has no entry for"),
    ({"terms": "fast"}, r"\[terms\] is a str"),
    ({"colour": "blue"}, "unknown keys"),
    # issue 17: a covariance with a negative variance, or not symmetric, is no covariance
    ({"calibration": {"parameters": ["host_step_s"], "covariance": [[-1e-8]]}}, "not a covariance"),
    ({"calibration": {"parameters": ["host_step_s", "sd_iteration_s"],
                      "covariance": [[1e-8, 1e-6], [1e-6, 1e-8]]}}, "not a covariance"),  # eigenvalue < 0
    ({"calibration": {"parameters": ["host_step_s", "sd_iteration_s"],
                      "covariance": [[1e-8, 0.0], [1e-9, 1e-8]]}}, "not a covariance"),  # not symmetric
    ({"calibration": {"parameters": ["host_step_s"], "covariance": [[1e-8]], "residual_sd_log": 1e300}},
     r"residual_sd_log=1e\+300 is outside"),
    ({"calibration": {"parameters": ["host_step_s"], "covariance": [[1e-8]], "t_quantile_80": 1e300}},
     "t_quantile_80"),
    ({"terms": {**_doc()["terms"], "host_step_s": 1e300}}, r"host_step_s=1e\+300 is above 1 s"),
    ({"stderr": {**_doc()["stderr"], "host_step_s": 1e300}}, r"\[stderr\] host_step_s=1e\+300 is above"),
])
def test_bad_engine_documents_are_refused_with_one_line(change, match):
    doc = _doc()
    doc.update(change)
    with pytest.raises(InputError, match=match) as exc:
        engine_from_dict(doc, "bad.toml")
    assert "\n" not in str(exc.value)


def test_a_positive_semi_definite_covariance_is_accepted():
    doc = _doc(sd_iteration_s=1e-4)
    # [[a, c], [c, b]] with c^2 = a b: singular (eigenvalue 0) but a covariance (perfect correlation)
    doc["calibration"] = {"parameters": ["host_step_s", "sd_iteration_s"],
                          "covariance": [[4e-8, 2e-8], [2e-8, 1e-8]], "residual_sd_log": 0.05}
    assert engine_from_dict(doc, "ok.toml").calibrated


def test_an_empty_engine_name_or_a_folder_is_refused_naming_it(tmp_path):
    with pytest.raises(InputError, match="--engine '' is empty"):
        load_engine("")
    folder = tmp_path / "mine.toml"
    folder.mkdir()
    with pytest.raises(InputError, match="is a folder"):
        load_engine(str(folder))


def test_unknown_engine_name_and_missing_file():
    with pytest.raises(InputError, match="unknown engine 'magicdec'; closest known: magicdec-8xa100"):
        load_engine("magicdec")
    with pytest.raises(InputError, match="does not exist"):
        load_engine("/nonexistent/engine.toml")


def test_step_overhead_is_host_per_step_plus_per_sequence_plus_launches():
    e = engine_from_dict(_doc(host_step_s=2e-3, host_per_seq_s=3e-6, launch_s=4e-6), "t")
    # hand: 2 ms + 10 sequences x 3 us + 100 kernels x 4 us = 2.43 ms
    assert e.step_overhead(10, 100) == pytest.approx(2.43e-3)


def test_zero_overhead_engine_reproduces_the_kernel_only_model_exactly():
    arch = get_model("llama-3.1-8b")
    sh = shard(arch, 8)
    hw = load_profile("a100-80gb-sxm")
    b = np.array([1.0, 32.0, 256.0])[:, None]
    s = np.array([1000.0, 32000.0])[None, :]
    kernel_only = step_time(arch, sh, hw, b, 1, s).time
    zero = step_time(arch, sh, hw, b, 1, s, load_engine("cuda-graph")).time
    assert np.array_equal(kernel_only, zero)
    df = predict(Query(model="llama-3.1-8b", batch=[32], seq_len=[32000], gpus=[8], gamma=[3],
                       acceptance=0.8, engine="cuda-graph"))
    r = df.iloc[0]
    assert r["t_sd_loop_s"] == 0.0
    assert r["speedup_lo"] == r["speedup"] == r["speedup_hi"]
    omega = (1 - 0.8 ** 4) / 0.2  # Leviathan et al.: (1 - a^(g+1)) / (1 - a)
    assert r["speedup"] == pytest.approx(r["t_target_s"] * omega / (3 * r["t_draft_s"] + r["t_verify_s"]))


@settings(max_examples=60, deadline=None)
@given(host=st.floats(0, 1e-2), per_seq=st.floats(0, 1e-4), launch=st.floats(0, 2e-5),
       batch=st.integers(1, 512), q=st.integers(1, 17), n=st.integers(0, 200_000),
       gpus=st.sampled_from([1, 2, 4, 8]))
def test_engine_overhead_never_makes_a_step_faster(host, per_seq, launch, batch, q, n, gpus):
    arch = get_model("llama-3.1-8b")
    sh = shard(arch, gpus)
    hw = load_profile("h100-sxm")
    e = engine_from_dict(_doc(host_step_s=host, host_per_seq_s=per_seq, launch_s=launch), "t")
    bare = step_time(arch, sh, hw, batch, q, n).time
    with_engine = step_time(arch, sh, hw, batch, q, n, e)
    assert with_engine.time >= bare
    assert with_engine.time == pytest.approx(bare + e.step_overhead(batch, with_engine.kernels))


def test_more_engine_overhead_means_lower_predicted_speedup_of_a_paying_point():
    # at a point where SD pays, a fixed cost added to every forward step costs SD (gamma + 1 steps
    # per iteration) more than AR (one step per token)
    rows = [predict(Query(model="llama-3.1-8b", batch=[64], seq_len=[32000], gpus=[8], gamma=[3],
                          acceptance=0.8, engine=e, intervals=False)).iloc[0]
            for e in ("cuda-graph", "generic", "magicdec-8xa100")]
    assert rows[0]["speedup"] > rows[1]["speedup"] > rows[2]["speedup"] > 1.0
    assert rows[0]["t_draft_s"] < rows[1]["t_draft_s"] < rows[2]["t_draft_s"]


def test_ideal_charges_no_engine_and_refuses_one():
    df = predict(Query(model="llama-3.1-8b", batch=[32], seq_len=[32000], ideal=True))
    assert df["engine"].iloc[0] == "none"
    with pytest.raises(InputError, match="--ideal is the speed of light"):
        predict(Query(model="llama-3.1-8b", batch=[32], seq_len=[32000], ideal=True, engine="generic"))


def test_calibrated_efficiencies_apply_only_on_their_hardware():
    e = load_engine("magicdec-8xa100")
    assert e.calibration["hardware"] == "a100-80gb-sxm" and "attention_bw" in e.efficiency
    a100, notes = e.apply_to(load_profile("a100-80gb-sxm"))
    assert a100.efficiency["attention_bw"] == e.efficiency["attention_bw"] and not notes
    h100, notes = e.apply_to(load_profile("h100-sxm"))
    assert h100.efficiency["attention_bw"] == load_profile("h100-sxm").efficiency["attention_bw"]
    assert "not applied to h100-sxm" in notes[0]
    df = predict(Query(model="llama-3.1-8b", batch=[8], seq_len=[8000], hardware="h100-sxm",
                       engine="magicdec-8xa100"))
    assert "not applied to h100-sxm" in df["notes"].iloc[0]


@pytest.mark.parametrize("argv", [
    ["predict", "--batch", "32", "--seq-len", "32k", "--gpus", "8", "--format", "json"],
    ["sweep", "--batch", "32", "--seq-len", "32k", "--gpus", "8", "--out", "OUT.csv"],
    ["report", "--batch", "8,32", "--seq-len", "8k,32k", "--gpus", "8", "--out", "OUT.html"],
    ["advise", "--batch", "32", "--seq-len", "32k", "--gpus", "8", "--format", "json"],
    ["breakdown", "--batch", "32", "--seq-len", "32k", "--gpus", "8", "--format", "json"],
    ["compare-paper", "--format", "json"],
])
def test_every_command_takes_engine_and_names_it(argv, tmp_path):
    argv = [a.replace("OUT", str(tmp_path / "out")) for a in argv]
    res = runner.invoke(app, [*argv, "--engine", "eager-pytorch"])
    assert res.exit_code == 0, res.output
    if "json" in argv:
        assert "eager-pytorch" in res.stdout
    bad = runner.invoke(app, [*argv, "--engine", "no-such-engine"])
    assert bad.exit_code == 2 and "unknown engine 'no-such-engine'" in bad.stderr


def test_predict_table_footnote_and_columns_name_the_engine():
    res = runner.invoke(app, ["predict", "--batch", "32", "--seq-len", "32k", "--gpus", "8"])
    assert res.exit_code == 0
    assert "engine generic (declared values)" in res.stdout and "80% range" in res.stdout
    wide = runner.invoke(app, ["predict", "--batch", "32,256", "--seq-len", "8k,100k", "--gpus", "8"])
    assert max(len(line) for line in wide.stdout.splitlines()) <= 80 and "…" not in wide.stdout
    rows = json.loads(runner.invoke(app, ["predict", "--batch", "32", "--seq-len", "32k", "--format",
                                          "json", "--engine", "magicdec-8xa100"]).stdout)
    r = rows[0]
    assert r["engine"] == "magicdec-8xa100"
    for key in ("speedup", "t_target_s", "t_draft_s", "t_verify_s"):
        assert r[f"{key}_lo"] < r[key] < r[f"{key}_hi"]


def test_engines_list_and_show():
    res = runner.invoke(app, ["engines", "list"])
    assert res.exit_code == 0 and "generic (default)" in res.stdout and "magicdec-8xa100" in res.stdout
    show = runner.invoke(app, ["engines", "show", "magicdec-8xa100"])
    assert show.exit_code == 0 and "fitted by magicdec-model calibrate" in show.stdout


def test_advise_flags_a_recommendation_whose_interval_straddles_one():
    from magicdec_model.perfmodel.advise import advise

    # short context, the largest batch: SD is marginal and the generic engine's host-time prior decides
    marginal = advise("llama-3.1-8b", "a100-80gb-sxm", 8, 256, 1000)
    top = marginal.ranking[marginal.ranking["eligible"]].iloc[0]
    assert top["speedup_lo"] < 1.0 < top["speedup_hi"]
    assert marginal.uncertain and "straddles 1.0" in marginal.verdict
    clear = advise("llama-3.1-8b", "a100-80gb-sxm", 8, 64, 32000)
    assert not clear.uncertain and clear.ranking[clear.ranking["eligible"]].iloc[0]["speedup_lo"] > 1.0
    kernel_only = advise("llama-3.1-8b", "a100-80gb-sxm", 8, 256, 1000, engine="cuda-graph")
    assert not kernel_only.uncertain  # no declared uncertainty: no interval to straddle


@pytest.mark.parametrize("draft,extra", [("self", {}), ("eagle", {"draft_phase_s": 4e-4}),
                                         ("ngram", {}), ("llama-3.2-1b", {"draft_step_s": 1e-3})])
def test_exact_interval_derivatives_match_finite_differences_of_the_step_times(draft, extra):
    # the intervals differentiate the additive engine terms by hand (sweep._additive_derivatives);
    # this pins them to the step times they differentiate
    from magicdec_model.perfmodel.scenario import resolve
    from magicdec_model.perfmodel.sweep import _ADDITIVE, _additive_derivatives, _axes, _step_times

    base = load_engine("eager-pytorch").with_values({"per_token_s": 3e-6, **extra})
    scn = resolve(Query(model="llama-3.1-8b", batch=[1, 16], seq_len=[4000, 32000], gpus=[8],
                        gamma=[2, 5], draft=draft, acceptance=0.7, engine=base))[0]
    b, s, k, g = _axes(scn)
    steps = _step_times(scn, b, s, k, g)
    for key in _ADDITIVE:
        if key not in base.terms and key != "draft_step_s":
            continue
        h = 1e-6
        value = base.term(key) if key in base.terms else base.terms["host_step_s"]
        moved = scn.with_engine(base.with_values({key: value + h}))
        fd = [(m.time - o.time) / h for m, o in zip(_step_times(moved, b, s, k, g), steps, strict=True)]
        fd_phase = (moved.draft_phase(b) - scn.draft_phase(b)) / h
        d_t, d_d, d_v, d_phase, _ = _additive_derivatives(scn, key, b, g, steps)
        for exact, approx in ((d_t, fd[0]), (d_d, fd[1]), (d_v, fd[2]), (d_phase, fd_phase)):
            assert np.allclose(np.broadcast_to(exact, np.shape(approx)), approx, rtol=1e-4, atol=1e-3), key
