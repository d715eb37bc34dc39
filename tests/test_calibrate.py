"""calibrate: recovers known engine terms, chooses what the data determines, states honest
intervals, refuses bad step files; the shipped paper engine is what calibrate makes of its data."""

from __future__ import annotations

import re
from importlib import resources

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from magicdec_model.cli.main import app
from magicdec_model.perfmodel.architecture import get_model
from magicdec_model.perfmodel.calibrate import StepData, calibrate, read_steps, step_model, steps_from_frame
from magicdec_model.perfmodel.engine import load_engine
from magicdec_model.perfmodel.errors import InputError
from magicdec_model.perfmodel.hardware import load_profile
from magicdec_model.perfmodel.sweep import Query, predict

pytestmark = pytest.mark.unit
runner = CliRunner()
MODEL = get_model("llama-2-7b-32k")
HW = load_profile("a100-80gb-sxm")
#: the engine the synthetic steps are drawn from (none of these is the prior's value)
TRUE = {"host_step_s": 3.0e-3, "host_per_seq_s": 6.0e-6, "attention_bw": 0.74}
FREE = ["host_step_s", "attention_bw", "host_per_seq_s"]


def _true_engine():
    return load_engine("generic").with_values(TRUE)


def _steps(batches, seqs, sigma, seed):
    B, S = np.meshgrid(np.asarray(batches), np.asarray(seqs), indexing="ij")
    B, S = B.ravel(), S.ravel()
    n = B.size
    data = StepData(B, S, np.ones(n, np.int64), S.copy(), np.full(n, 8), np.full(n, "decode", object),
                    np.ones(n), "synthetic")
    model = step_model(MODEL, HW, load_engine("generic"))
    exact = model.times(data, _true_engine())
    rng = np.random.default_rng(seed)
    data.step_s = exact * np.exp(rng.normal(0.0, sigma, n))
    return model, data, exact


def test_noise_free_steps_give_back_the_engine_exactly():
    model, data, _ = _steps([16, 32, 64, 128, 256], [2000, 8000, 32000], 0.0, 0)
    res = calibrate(model, data, fit=FREE)
    for k, v in TRUE.items():
        assert res.values[k] == pytest.approx(v, rel=1e-5), k
    assert res.mape_in_sample < 1e-3


def test_noisy_steps_give_back_the_terms_within_their_standard_errors():
    model, data, _ = _steps([16, 32, 48, 64, 128, 256], [2000, 4000, 8000, 16000, 32000], 0.03, 1)
    res = calibrate(model, data, fit=FREE)
    for k, v in TRUE.items():
        assert res.stderr[k] > 0
        assert abs(res.values[k] - v) <= 3 * res.stderr[k], (k, res.values[k], res.stderr[k])
    assert res.residual_sd_log == pytest.approx(0.03, rel=0.4)
    assert res.mape_cv >= res.mape_in_sample


def test_auto_choice_frees_what_the_data_determines_and_says_why_not_the_rest():
    model, data, _ = _steps([16, 32, 64, 128, 256], [2000, 8000, 32000], 0.02, 2)
    res = calibrate(model, data)
    assert res.fitted[:2] == ["host_step_s", "attention_bw"]
    # a per-kernel launch cost is a per-step constant at one model and GPU count: it cannot be told
    # apart from the host time per step, so it keeps its prior and the reason is given
    assert "collinear" in res.kept_prior["launch_s"]
    assert "sd_iteration_s" not in res.fitted  # never in AR steps
    e = res.engine
    assert e.sources["host_step_s"].startswith("fitted by magicdec-model calibrate")
    assert e.sources["launch_s"].startswith("not fitted")
    assert e.calibration["parameters"] == res.fitted


def test_80_percent_intervals_cover_70_to_90_percent_of_held_out_steps():
    model, train, _ = _steps([16, 32, 64, 128, 256], [2000, 4000, 8000, 16000, 32000, 24000], 0.05, 3)
    engine = calibrate(model, train, fit=FREE).engine
    held_b = [12, 20, 24, 40, 56, 72, 96, 112, 160, 192]
    held_s = [1500, 2500, 3000, 5000, 6000, 10000, 12000, 20000, 28000, 30000]
    df = predict(Query(model=MODEL, batch=held_b, seq_len=held_s, gpus=[8], hardware=HW,
                       engine=engine, gamma=[3], acceptance=0.8, kv_budget=[512]))
    # fresh measurements at the held-out points, drawn from the true engine with the same noise
    _, held, _ = _steps(held_b, held_s, 0.05, 4)
    key = list(zip(held.batch, held.seq_len, strict=True))
    pred = df.set_index(["batch", "seq_len"]).loc[key]
    lo, hi = pred["t_target_s_lo"].to_numpy(), pred["t_target_s_hi"].to_numpy()
    inside = (held.step_s >= lo) & (held.step_s <= hi)
    assert len(inside) == 100
    assert 0.70 <= inside.mean() <= 0.90, inside.mean()


def test_shipped_paper_engine_is_what_calibrate_makes_of_the_shipped_ar_steps():
    path = resources.files("magicdec_model.perfmodel").joinpath("data/engines/magicdec-8xa100-ar-steps.csv")
    data = read_steps(str(path), 8)
    assert len(data) == 20 and set(data.gpus) == {8}
    # engines.md section 3: prefill 8000, batch 32 measured 16.53 ms per AR token (Figure 1a)
    row = (data.batch == 32) & (data.seq_len == 8000)
    assert data.step_s[row] == pytest.approx([16.53e-3])
    res = calibrate(step_model(MODEL, HW, load_engine("generic")), data)
    shipped = load_engine("magicdec-8xa100")
    for k in res.fitted:
        assert shipped.value(k) == pytest.approx(res.values[k], rel=1e-4), k
    assert sorted(shipped.calibration["parameters"]) == sorted(res.fitted)


def test_validate_measurements_csv_is_read_as_its_ar_steps():
    df = pd.DataFrame({
        "key": ["check|ar|B=1|S=128|G=1", "check|sd|B=1", "micro|x", "check|ar|B=2|S=128|G=1"],
        "stage": ["check", "check", "micro", "check"],
        "op": ["target_decode", "draft", "qkv_proj", "target_decode"],
        "status": ["ok", "ok", "ok", "ok"], "batch": [1, 1, 1, 2], "seq_len": [128, 128, 0, 128],
        "gpus": [1, 1, 1, 1], "value": [0.01, 0.004, 1e-5, 0.012],
    })
    data = steps_from_frame(df, 1, "m.csv")
    assert list(data.batch) == [1, 2] and list(data.step_s) == [0.01, 0.012]


@pytest.mark.parametrize("csv,match", [
    ("batch,seq_len\n32,8000\n", "missing columns \\['step_s'\\]"),
    ("batch,seq_len,step_s\n32,8000,0\n", "row 1 has step_s=0"),
    ("batch,seq_len,step_s\n32,8000,nan\n", "row 1 has step_s=nan"),
    ("batch,seq_len,step_s\n32,8000,-0.01\n", "row 1 has step_s=-0.01"),
    ("batch,seq_len,step_s\n32.5,8000,0.01\n", "batch=32.5; allowed: an integer"),
    ("batch,seq_len,step_s,kind\n32,8000,0.01,prefill\n", "kind='prefill'; allowed: decode"),
    ("batch,seq_len,step_s\n32,8000,0.01\n", "needs at least 2"),
    ("", "not a readable CSV"),
])
def test_bad_step_files_exit_2_with_one_line(tmp_path, csv, match):
    steps = tmp_path / "steps.csv"
    steps.write_text(csv, encoding="utf-8")
    res = runner.invoke(app, ["calibrate", "--steps", str(steps), "--model", "llama-2-7b-32k",
                              "--gpus", "8", "--out", str(tmp_path / "e.toml")])
    assert res.exit_code == 2, res.output
    line = res.stderr.strip()
    assert "\n" not in line and line.startswith("error: ")
    assert re.search(match, line), line
    assert not (tmp_path / "e.toml").exists()


def test_fewer_points_than_free_parameters_is_refused(tmp_path):
    steps = tmp_path / "steps.csv"
    steps.write_text("batch,seq_len,step_s\n32,8000,0.0165\n64,8000,0.0315\n", encoding="utf-8")
    res = runner.invoke(app, ["calibrate", "--steps", str(steps), "--model", "llama-2-7b-32k",
                              "--gpus", "8", "--fit", "host_step_s,attention_bw",
                              "--out", str(tmp_path / "e.toml")])
    assert res.exit_code == 2 and "frees 2 parameter(s) but the steps file has 2 point(s)" in res.stderr
    res = runner.invoke(app, ["calibrate", "--steps", str(steps), "--model", "llama-2-7b-32k",
                              "--fit", "warp_s", "--out", str(tmp_path / "e.toml")])
    assert res.exit_code == 2 and "--fit 'warp_s'" in res.stderr


def test_calibrate_cli_writes_an_engine_that_predict_loads(tmp_path):
    path = resources.files("magicdec_model.perfmodel").joinpath("data/engines/magicdec-8xa100-ar-steps.csv")
    out = tmp_path / "mine.toml"
    res = runner.invoke(app, ["calibrate", "--steps", str(path), "--model", "llama-2-7b-32k",
                              "--hardware", "a100-80gb-sxm", "--gpus", "8", "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert "leave-one-out cross-validated" in res.stdout and "not fitted: launch_s" in res.stdout
    pred = runner.invoke(app, ["predict", "--model", "llama-2-7b-32k", "--gpus", "8", "--batch", "32",
                               "--seq-len", "8k", "--engine", str(out), "--format", "csv"])
    assert pred.exit_code == 0 and ",mine," in pred.stdout
    with pytest.raises(InputError):
        steps_from_frame(pd.DataFrame({"batch": [], "seq_len": [], "step_s": []}), 1, "empty")


def test_a_term_the_data_put_near_zero_is_fitted_not_reset_to_its_prior():
    # truth: no host time at all; the prior says 2.0 +- 0.9 ms (generic.toml). The data determine
    # the term (near 0 with a small standard error), so the engine must not fall back to 2 ms.
    model, data, _ = _steps([16, 32, 64, 128, 256], [2000, 8000, 32000], 0.01, 7)
    zero = load_engine("generic").with_values({"host_step_s": 0.0, "host_per_seq_s": 0.0,
                                               "attention_bw": TRUE["attention_bw"]})
    data.step_s = model.times(data, zero) * np.exp(np.random.default_rng(8).normal(0, 0.01, len(data)))
    res = calibrate(model, data)
    assert "host_step_s" in res.fitted
    assert res.values["host_step_s"] < 3 * res.stderr["host_step_s"] + 1e-6
    assert res.values["host_step_s"] < 0.5e-3  # far from the 2 ms prior


def test_copies_of_one_measurement_are_refused_not_fitted_with_zero_error():
    """Issue 17: five copies of one step fitted host_step_s with standard error 0 and MAPE 0%."""
    model, data, _ = _steps([32], [8000], 0.0, 0)
    five = data.subset(np.zeros(5, dtype=int))  # the same row five times
    with pytest.raises(InputError, match="all 5 steps are at one point"):
        calibrate(model, five)
    with pytest.raises(InputError, match="all 5 steps are at one point"):
        calibrate(model, five, fit=["host_step_s"])


def test_a_collinear_fit_set_is_refused_naming_the_parameter():
    """host_step_s and launch_s add the same time to every step: no data tells them apart."""
    model, data, _ = _steps([16, 32, 64, 128], [2000, 8000], 0.02, 3)
    with pytest.raises(InputError, match="--fit host_step_s,launch_s: launch_s: not told apart from "
                                         "host_step_s"):
        calibrate(model, data, fit=["host_step_s", "launch_s"])
    res = calibrate(model, data, fit=["host_step_s"])
    assert res.stderr["host_step_s"] > 0


def test_draft_rows_need_a_draft_that_runs_steps():
    target = get_model("llama-2-7b-32k")
    model = step_model(target, HW, load_engine("generic"), "ngram")
    _, data, _ = _steps([16, 32, 64], [2000], 0.02, 4)
    data.kind = np.asarray(["decode", "decode", "draft"], dtype=object)
    with pytest.raises(InputError, match="1 draft row\\(s\\), but --draft ngram runs no draft forward step"):
        calibrate(model, data)
