"""`magicdec-model validate --device cpu` end to end on a tiny model, and its bad-input errors."""

from __future__ import annotations

import re
import subprocess
import sys

import pandas as pd
import pytest
import tomllib

CLI = [sys.executable, "-m", "magicdec_model.cli.main"]
TINY = ["--device", "cpu", "--model", "llama-68m", "--layers", "1", "--batch", "1,2",
        "--seq-len", "128", "--kv-budget", "32", "--gamma", "2", "--new-tokens", "8", "--threads", "1"]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("validate") / "cpu"
    res = subprocess.run([*CLI, "validate", *TINY, "--out", str(out)], capture_output=True, text=True,
                         timeout=300)
    assert res.returncode == 0, res.stderr
    return out, res


@pytest.mark.e2e
@pytest.mark.slow
@pytest.mark.timeout(400)  # the validate subprocess has 300 s of its own; ~15 s when quiet
def test_validate_writes_all_files_and_ends_with_the_mape_line(run):
    out, res = run
    for name in ("measurements.csv", "profile.toml", "comparison.csv", "report.html"):
        assert (out / name).stat().st_size > 0, name
    # engine.toml when the AR steps determine an engine term; else the run says so.  On a CPU the
    # validator's host cost is ~0 and the 2 AR steps here determine it only about as well as the
    # prior knows it, so either outcome is legitimate (docs/validation.md)
    assert (out / "engine.toml").is_file() or "the engine is not calibrated" in res.stderr
    last = res.stdout.strip().splitlines()[-1]
    assert last.startswith("MAPE AR (fit): ")
    assert "  MAPE SD step-time (held out): " in last and "  MAPE SD speedup (held out): " in last
    assert "n/a" not in last
    html = (out / "report.html").read_text()
    assert "plotly" in html.lower() and "SD loop" in html and "roofline" in html.lower()


@pytest.mark.e2e
@pytest.mark.slow
@pytest.mark.timeout(400)  # the validate subprocess has 300 s of its own; ~15 s when quiet
def test_fitted_profile_is_marked_and_loads_in_predict(run):
    out, _ = run
    doc = tomllib.loads((out / "profile.toml").read_text())
    assert doc["meta"]["fitted"] is True
    assert doc["meta"]["device"].startswith("CPU")
    assert "allreduce_busbw" in doc["meta"]["not_fitted"]  # one process: no all-reduce data
    assert "measured by magicdec-model validate" in doc["sources"]["mem_bw"]
    assert "fitted by magicdec-model validate" in doc["sources"]["gemm_bw"]
    res = subprocess.run([*CLI, "predict", "--model", "llama-68m", "--hardware", str(out / "profile.toml"),
                          "--batch", "2", "--seq-len", "128", "--kv-budget", "32", "--gamma", "2",
                          "--acceptance", "0.8", "--format", "csv"], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    assert "fitted-" in res.stdout


@pytest.mark.e2e
@pytest.mark.slow
@pytest.mark.timeout(400)  # the validate subprocess has 300 s of its own; ~15 s when quiet
def test_comparison_has_measured_and_predicted_for_every_check_quantity(run):
    out, res = run
    comp = pd.read_csv(out / "comparison.csv")
    check = comp[comp["stage"] == "check"]
    assert set(check["quantity"]) == {"target_decode", "draft", "verify", "sd_loop", "speedup"}
    assert len(check[check["quantity"] == "speedup"]) == 2  # batch 1 and 2
    assert (check["measured"] > 0).all() and (check["predicted"] > 0).all()
    assert (comp["stage"] == "micro").sum() > 0

    # The measured side is the raw log: each timing in measurements.csv, and the measured
    # speedup = AR decode step / SD seconds per token (docs/validation.md), taken from it here.
    raw = pd.read_csv(out / "measurements.csv")
    raw = raw[(raw["stage"] == "check") & (raw["status"] == "ok")]

    def logged(kind: str, op: str, batch: int) -> float:
        v = raw[raw["key"].str.startswith(f"check|{kind}|") & (raw["op"] == op) & (raw["batch"] == batch)]
        assert len(v) == 1, (kind, op, batch)
        return float(v["value"].iloc[0])

    by = {B: check[check["batch"] == B].set_index("quantity") for B in (1, 2)}
    for B, rows in by.items():
        meas = rows["measured"]
        assert meas["target_decode"] == pytest.approx(logged("ar", "target_decode", B), rel=1e-9)
        assert meas["draft"] == pytest.approx(logged("sd", "draft", B), rel=1e-9)
        assert meas["verify"] == pytest.approx(logged("sd", "verify", B), rel=1e-9)
        ar, sd = logged("ar", "target_decode", B), logged("sd", "sd_token_latency", B)
        assert meas["speedup"] == pytest.approx(ar / sd, rel=1e-9)
        assert rows.loc["speedup", "omega_measured"] == pytest.approx(logged("sd", "omega", B))
        # The predicted side obeys the model's physics: the self-draft reads a budget of 32 + 1
        # keys instead of 128 + 1 (more KV is never faster); verifying gamma + 1 = 3 tokens is no
        # faster than decoding one; the speedup is at most the 3 tokens one round can emit.
        pred = rows["predicted"]
        assert pred["draft"] <= pred["target_decode"] < pred["verify"]
        assert 0 < pred["speedup"] <= 3
    for q in ("target_decode", "draft", "verify"):  # a second sequence never makes a step faster
        assert by[2].loc[q, "predicted"] >= by[1].loc[q, "predicted"], q

    # The printed MAPEs are mean |predicted / measured - 1| (docs/validation.md) of those values:
    # the AR steps the engine was fitted to, the held-out draft and verify steps, the speedups.
    ar_rows = check[check["quantity"] == "target_decode"]
    sd_rows = check[check["quantity"].isin(["draft", "verify"])]
    speed = check[check["quantity"] == "speedup"]
    expect = [float((d["predicted"] / d["measured"] - 1).abs().mean() * 100)
              for d in (ar_rows, sd_rows, speed)]
    printed = re.fullmatch(r"MAPE AR \(fit\): ([0-9.]+)%  MAPE SD step-time \(held out\): ([0-9.]+)%  "
                           r"MAPE SD speedup \(held out\): ([0-9.]+)%",
                           res.stdout.strip().splitlines()[-1])
    assert printed, res.stdout[-300:]
    assert [float(x) for x in printed.groups()] == pytest.approx(expect, abs=0.051)


@pytest.mark.e2e
@pytest.mark.slow  # 7 interpreters importing torch: ~20 s, a third of the fast tier's budget
@pytest.mark.timeout(120)
@pytest.mark.parametrize(
    ("flags", "needle"),
    [
        (["--device", "cuda"], "--device cpu"),
        (["--kv-method", "full"], "--kv-method 'full'"),
        (["--layers", "99"], "--layers 99"),
        (["--kv-budget", "512"], "--kv-budget 512"),
        (["--acceptance", "1.5"], "--acceptance 1.5"),
        (["--gamma", "0"], "--gamma"),
        (["--model", "no-such-model"], "no-such-model"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(tmp_path, flags, needle):
    args = {**dict(zip(TINY[::2], TINY[1::2], strict=True))}
    args.update(dict(zip(flags[::2], flags[1::2], strict=True)))
    argv = [x for kv in args.items() for x in kv]
    res = subprocess.run([*CLI, "validate", *argv, "--out", str(tmp_path / "o")], capture_output=True,
                         text=True)
    assert res.returncode == 2, res.stderr
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and needle in lines[0], res.stderr
    assert "Traceback" not in res.stderr


@pytest.mark.e2e
@pytest.mark.slow
@pytest.mark.timeout(400)  # the validate subprocess has 300 s of its own; ~15 s when quiet
def test_validate_with_a_checkpoint_measures_real_acceptance(tmp_path):
    from magicdec_model.validate.checkpoint import save_checkpoint
    from magicdec_model.validate.decoder import Decoder

    ckpt = save_checkpoint(Decoder.synthetic("llama-68m", layers=1, seed=3), tmp_path / "ckpt")
    out = tmp_path / "real"
    argv = [a for a in TINY if a not in ("--model", "llama-68m")]
    argv[argv.index("--batch") + 1] = "1"
    res = subprocess.run([*CLI, "validate", *argv, "--checkpoint", str(ckpt), "--out", str(out)],
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip().splitlines()[-1].startswith("MAPE AR (fit): ")
    meas = pd.read_csv(out / "measurements.csv")
    sd = meas[meas["key"].str.startswith("check|sd")]
    assert sd["key"].str.contains("a=greedy").all()
    rate = sd[sd["op"] == "acceptance_rate"]["value"]
    assert len(rate) == 1 and 0.0 <= float(rate.iloc[0]) <= 1.0
    comp = pd.read_csv(out / "comparison.csv")
    assert (comp["quantity"] == "speedup").sum() == 1


@pytest.mark.unit
def test_missing_flashinfer_falls_back_to_torch_with_a_warning_naming_the_extra():
    import torch

    from magicdec_model.validate.run import select_attention

    backend, notes = select_attention(torch.device("cuda"), "auto")  # no usable FlashInfer here
    assert backend.name == "torch"
    assert len(notes) == 1 and "magicdec-model[gpu]" in notes[0] and "torch SDPA" in notes[0]
    backend, notes = select_attention(torch.device("cpu"), "auto")
    assert backend.name == "torch" and notes == []


@pytest.mark.unit
def test_validate_without_torch_is_a_one_line_error(monkeypatch, tmp_path):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a, **k: None if name == "torch" else real(name, *a, **k))
    from typer.testing import CliRunner

    from magicdec_model.cli.main import app

    result = CliRunner().invoke(app, ["validate", "--device", "cpu", "--out", str(tmp_path / "v")])
    assert result.exit_code == 2
    lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "magicdec-model[validate]" in lines[0]


@pytest.mark.e2e
@pytest.mark.slow
@pytest.mark.timeout(400)
def test_engine_flag_is_the_calibration_prior(run, tmp_path):
    """``--engine`` sets the prior of the AR calibration: the SD-loop bookkeeping per round, which
    AR steps cannot determine, keeps the prior's value, and the held-out sd_loop rows predict it
    (calibrated or not).  generic.toml declares 0.5 ms; the prior here is generic.toml with 0.25."""
    import shutil
    from importlib import resources

    out, _ = run

    def sd_loop_predicted(folder) -> set[float]:
        comp = pd.read_csv(folder / "comparison.csv")
        return set(comp.loc[comp["quantity"] == "sd_loop", "predicted"].round(9))

    assert sd_loop_predicted(out) == {0.5e-3}
    text = resources.files("magicdec_model.perfmodel").joinpath("data/engines/generic.toml").read_text()
    assert "sd_iteration_s = 0.5e-3" in text
    prior = tmp_path / "my-prior.toml"
    prior.write_text(text.replace("sd_iteration_s = 0.5e-3", "sd_iteration_s = 0.25e-3", 1)
                     .replace('name = "generic"', 'name = "my-prior"', 1))
    copy = tmp_path / "cpu"
    shutil.copytree(out, copy)
    res = subprocess.run([*CLI, "validate", *TINY, "--out", str(copy), "--resume", "--engine", str(prior)],
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    assert "measured 0 point(s)" in res.stdout + res.stderr  # the measurements were reused
    assert sd_loop_predicted(copy) == {0.25e-3}
    if (copy / "engine.toml").exists():
        doc = tomllib.loads((copy / "engine.toml").read_text())
        assert doc["terms"]["sd_iteration_s"] == pytest.approx(0.25e-3)
    else:  # not calibrated: an earlier run's engine.toml must not stay behind
        assert "the engine is not calibrated" in res.stderr


@pytest.mark.e2e
@pytest.mark.slow
@pytest.mark.timeout(400)
def test_two_rank_validate_through_torchrun(tmp_path):
    """``--gpus 2`` on the CPU: the CLI starts torchrun (gloo), each rank gets the user's flags,
    rank 0 writes the files, every microbenchmark and check row is a 2-GPU one."""
    out = tmp_path / "tp2"
    res = subprocess.run([*CLI, "validate", *TINY, "--new-tokens", "4", "--gpus", "2", "--out", str(out)],
                         capture_output=True, text=True, timeout=360)
    assert res.returncode == 0, res.stderr[-2000:]
    assert res.stdout.strip().splitlines()[-1].startswith("MAPE AR (fit): ")
    meas = pd.read_csv(out / "measurements.csv")
    rows = meas[meas["stage"].isin(["micro", "check"])]
    assert len(rows) > 0 and set(rows["gpus"]) == {2}
    assert "allreduce_attn" in set(meas["op"])  # the all-reduce microbenchmark needs two ranks
