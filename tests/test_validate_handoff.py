"""validate's hand-off: the predict command it prints runs and reproduces comparison.csv (fp32 number
formats, the engine it used), the README's sequence matches it, and poor fits and uncalibrated
engines are said in words."""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from magicdec_model.cli.main import app
from magicdec_model.perfmodel.architecture import get_model
from magicdec_model.perfmodel.sweep import Query, predict
from magicdec_model.validate.handoff import (
    POOR_FIT_MAPE,
    command_line,
    fit_warnings,
    layers_note,
    predict_command,
)
from magicdec_model.validate.run import ValidateConfig

runner = CliRunner()
README = Path(__file__).resolve().parents[1] / "README.md"


def _cfg(**over) -> ValidateConfig:
    base = dict(device="cpu", model="llama-68m", layers=2, batch=[1, 2, 4], seq_len=[256, 1024],
                kv_budget=[64, 128], kv_method="streamingllm", gamma=[3], acceptance=0.8,
                out=Path("runs/cpu"))
    base.update(over)
    return ValidateConfig(**base)


def _fp32(arch):
    from dataclasses import replace

    return replace(arch, dtype_bytes=4)


def _run(argv: list[str]):
    assert argv[0] == "magicdec-model"
    return runner.invoke(app, argv[1:])


@pytest.mark.unit
def test_printed_command_is_complete_and_runs(tmp_path):
    arch = get_model("llama-68m")
    argv = predict_command(_cfg(), arch, _fp32(arch), Path("a100-80gb-sxm"), tmp_path / "engine.toml")
    line = command_line(argv)
    assert "..." not in line and shlex.split(line) == argv
    for flag in ("--model", "--hardware", "--gpus", "--batch", "--seq-len", "--kv-budget", "--kv-method",
                 "--gamma", "--acceptance", "--weight-dtype", "--kv-dtype"):
        assert flag in argv, flag
    assert "--engine" not in argv  # engine.toml does not exist here, and no --engine was given
    res = _run([*argv, "--format", "json"])
    assert res.exit_code == 0, res.output
    rows = json.loads(res.output)
    assert len(rows) == 3 * 2 * 2  # batch x seq_len x budget: every comparison point
    assert {r["formats"] for r in rows} == {"weights fp32, KV fp32"}


@pytest.mark.unit
def test_engine_flag_only_where_the_file_exists(tmp_path):
    arch = get_model("llama-68m")
    engine = tmp_path / "engine.toml"
    argv = predict_command(_cfg(), arch, _fp32(arch), Path("p.toml"), engine)
    assert "--engine" not in argv
    engine.write_text("x")
    argv = predict_command(_cfg(), arch, _fp32(arch), Path("p.toml"), engine)
    assert argv[argv.index("--engine") + 1] == str(engine)
    # no engine.toml, but validate was given --engine: that engine is what its comparison used
    argv = predict_command(_cfg(engine="vllm-h100"), arch, _fp32(arch), Path("p.toml"), tmp_path / "no")
    assert argv[argv.index("--engine") + 1] == "vllm-h100"


@pytest.mark.unit
def test_real_acceptance_is_carried_as_the_measured_mean():
    arch = get_model("llama-68m")
    comp = pd.DataFrame({"quantity": ["speedup", "speedup", "draft"], "acceptance": [0.5, 0.7, 0.1]})
    argv = predict_command(_cfg(acceptance=None), arch, _fp32(arch), Path("p.toml"), None, comp)
    assert argv[argv.index("--acceptance") + 1] == "0.6"


@pytest.mark.unit
def test_a_checkpoint_is_named_by_its_registry_record_or_its_folder():
    arch = get_model("llama-68m")
    argv = predict_command(_cfg(checkpoint="some.gguf", acceptance=0.5), arch, _fp32(arch), Path("p"), None)
    assert argv[argv.index("--model") + 1] == "llama-68m"  # a record of that name: predict resolves it
    from dataclasses import replace

    own = replace(arch, name="my-local-model")
    argv = predict_command(_cfg(checkpoint="ckpt/dir", acceptance=0.5), own, _fp32(own), Path("p"), None)
    assert argv[argv.index("--model") + 1] == "ckpt/dir"  # its config.json


@pytest.mark.unit
def test_gpu_run_in_bf16_names_bf16():
    arch = get_model("llama-3.1-8b")
    argv = predict_command(_cfg(model="llama-3.1-8b", device="cuda"), arch, arch, Path("p.toml"), None)
    assert argv[argv.index("--weight-dtype") + 1] == "bf16"
    assert argv[argv.index("--kv-dtype") + 1] == "bf16"


@pytest.mark.unit
def test_a_slice_of_layers_is_noted():
    assert layers_note(_cfg(), get_model("llama-68m")) is None  # llama-68m has 2 layers
    note = layers_note(_cfg(model="llama-3.1-8b", layers=4), get_model("llama-3.1-8b"))
    assert "4 of llama-3.1-8b's 32 layers" in note and "8x" in note


@pytest.mark.unit
def test_fp32_doubles_every_byte_of_memory():
    """fp32 weights run in fp32: weights, activations and KV all take 4 bytes, so the memory per GPU
    is exactly twice bf16's (same parameters, same cached tokens)."""
    q = dict(model="llama-68m", batch=[1, 8], seq_len=[1024], kv_budget=[64], gamma=[3], acceptance=0.8,
             hardware="a100-80gb-sxm", intervals=False)
    bf16 = predict(Query(**q, weight_dtype="bf16", kv_dtype="bf16"))
    fp32 = predict(Query(**q, weight_dtype="fp32", kv_dtype="fp32"))
    assert (fp32["memory_per_gpu_bytes"] / bf16["memory_per_gpu_bytes"]).tolist() == pytest.approx([2, 2])
    # llama-68m by hand (models.md: h 768, 2 layers, 12 KV heads of 64, vocab 32000, untied): KV per
    # token 2 layers x 2 (K, V) x 12 x 64 x 4 B = 12,288 B in fp32; weights 68.03 M parameters x 4 B
    params = 2 * 32000 * 768 + 2 * (4 * 768 * 768 + 3 * 768 * 3072 + 2 * 768) + 768
    tokens = (1024 + 4) + (64 + 4)  # target cache + self-draft cache, each with gamma + 1 verified
    assert fp32["memory_per_gpu_bytes"].iloc[0] == pytest.approx(params * 4 + tokens * 12288)


@pytest.mark.unit
def test_fp32_gemms_use_the_fp32_peak():
    """At a compute-bound shape, fp32 GEMMs run at peak_flops_fp32 (19.5 TFLOP/s on A100, hardware.md),
    not the bf16 tensor-core peak (312): the verify step of a 64 x 16-token batch slows by far more than
    the 2x of its bytes."""
    q = dict(model="llama-3.1-8b", batch=[256], seq_len=[1024], kv_budget=[64], gamma=[15],
             acceptance=0.8, hardware="a100-80gb-sxm", ideal=True, intervals=False)
    bf16 = predict(Query(**q, weight_dtype="bf16"))
    fp32 = predict(Query(**q, weight_dtype="fp32"))
    assert fp32["t_verify_s"].iloc[0] / bf16["t_verify_s"].iloc[0] > 5.0


@pytest.mark.unit
def test_readme_predict_command_is_the_one_validate_prints(tmp_path):
    """The README's 'Validate the model on this machine' sequence: its predict line is exactly what
    validate prints for its validate line (engine.toml is written on every run)."""
    text = README.read_text()
    block = text[text.index("## Validate the model on this machine"):]
    joined = re.sub(r"\\\n\s*", " ", block)  # continuation lines joined
    cmds = re.findall(r"^    (magicdec-model .*)$", joined, flags=re.M)
    validate_line, predict_line = (shlex.split(c) for c in cmds[:2])
    assert validate_line[1] == "validate" and predict_line[1] == "predict"
    opts = dict(zip(validate_line[2::2], validate_line[3::2], strict=True))
    cfg = _cfg(model=opts["--model"], layers=int(opts["--layers"]),
               batch=[int(x) for x in opts["--batch"].split(",")],
               seq_len=[int(x) for x in opts["--seq-len"].split(",")],
               kv_budget=[int(x) for x in opts["--kv-budget"].split(",")],
               gamma=[int(x) for x in opts["--gamma"].split(",")], acceptance=float(opts["--acceptance"]),
               out=Path(opts["--out"]))
    arch = get_model(cfg.model)
    (tmp_path / "engine.toml").write_text("")  # written on every run
    want = predict_command(cfg, arch, _fp32(arch), tmp_path / "profile.toml", tmp_path / "engine.toml")
    assert predict_line == [w.replace(str(tmp_path), opts["--out"]) for w in want]


@pytest.mark.unit
def test_poor_fit_is_warned_with_what_it_means():
    assert fit_warnings(12.0, 40) == []
    (w,) = fit_warnings(59.0, 42)
    assert "59.0%" in w and "42 microbenchmarks" in w and "comparison.csv" in w
    (w,) = fit_warnings(float("nan"), 0, POOR_FIT_MAPE + 1, 6)
    assert "6 measured AR steps" in w and "calibrated on them" in w and "speedups" in w
    (w,) = fit_warnings(float("nan"), 0, 59.0, 6, ar_calibrated=False)
    assert "the prior engine" in w and "59.0%" in w


@pytest.mark.unit
def test_uncalibrated_engine_says_which_reason():
    from magicdec_model.perfmodel.hardware import load_profile
    from magicdec_model.validate.engine_fit import calibrate_engine

    arch = get_model("llama-68m")

    def frame(n: int) -> pd.DataFrame:
        rows = [{"stage": "check", "op": "target_decode", "status": "ok", "batch": b, "seq_len": 256,
                 "gpus": 1, "value": 1e-3 * b, "key": f"check|ar|B={b}|S=256|G=1"} for b in range(1, n + 1)]
        rows.append({"stage": "micro", "op": "q_proj", "status": "ok", "batch": 1, "seq_len": 0, "gpus": 1,
                     "value": 1e-5, "key": "micro|x"})
        return pd.DataFrame(rows)

    hw = load_profile("a100-80gb-sxm")
    calib, why = calibrate_engine(frame(0), arch, hw, 1, date="d", device="cpu")
    assert calib is None and why.startswith("no AR step was measured")
    calib, why = calibrate_engine(frame(1), arch, hw, 1, date="d", device="cpu")
    assert calib is None and why.startswith("only 1 AR step was measured")


@pytest.mark.unit
def test_undetermined_engine_terms_are_the_named_reason(monkeypatch):
    from magicdec_model.perfmodel.errors import InputError
    from magicdec_model.perfmodel.hardware import load_profile
    from magicdec_model.validate import engine_fit

    def undetermined(*args, **kwargs):
        raise InputError("steps x: no engine parameter is determined by these 3 steps")

    monkeypatch.setattr(engine_fit, "calibrate", undetermined)
    rows = pd.DataFrame([{"stage": "check", "op": "target_decode", "status": "ok", "batch": b, "seq_len": 256,
                          "gpus": 1, "value": 1e-3 * b, "key": f"k{b}"} for b in (1, 2, 4)])
    calib, why = engine_fit.calibrate_engine(rows, get_model("llama-68m"), load_profile("a100-80gb-sxm"), 1,
                                             date="d", device="cpu")
    assert calib is None
    assert why.startswith("the 3 measured AR steps determine no engine term") and "host_step_s" in why


@pytest.mark.e2e
@pytest.mark.slow
@pytest.mark.timeout(400)  # the validate subprocess has 300 s of its own; ~20 s when quiet
def test_printed_command_reproduces_the_comparison(tmp_path):
    out = tmp_path / "cpu"
    res = subprocess.run(
        [sys.executable, "-m", "magicdec_model.cli.main", "validate", "--device", "cpu", "--model",
         "llama-68m", "--layers", "2", "--batch", "1,2", "--seq-len", "128", "--kv-budget", "32",
         "--gamma", "2", "--new-tokens", "8", "--threads", "1", "--out", str(out)],
        capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    lines = res.stdout.strip().splitlines()
    assert lines[-2].startswith("predict with it: ")
    argv = shlex.split(lines[-2].removeprefix("predict with it: "))
    assert (out / "engine.toml").is_file()  # written on every run: calibrated, or the prior it used
    assert argv[argv.index("--engine") + 1] == str(out / "engine.toml")
    err = " ".join(res.stderr.split())  # warnings are wrapped to the terminal's width
    if "the engine is not calibrated" in err:  # the reason is one of the two, named
        assert "AR step" in err and ("determine no engine term" in err or "needs at least 2" in err)
    got = _run([*argv, "--format", "csv"])
    assert got.exit_code == 0, got.output
    from io import StringIO

    pred = pd.read_csv(StringIO(got.output)).set_index(["batch", "seq_len", "kv_budget", "gamma"])
    comp = pd.read_csv(out / "comparison.csv")
    comp = comp[comp["stage"] == "check"]
    column = {"target_decode": "t_target_s", "draft": "t_draft_s", "verify": "t_verify_s",
              "sd_loop": "t_sd_loop_s"}
    checked = 0
    for _, r in comp.iterrows():
        if r["quantity"] == "speedup":
            row = pred.loc[(r["batch"], r["seq_len"], r["kv_budget"], r["gamma"])]
            assert row["speedup"] == pytest.approx(r["predicted_at_nominal_acceptance"], rel=1e-6)
        elif r["quantity"] in column:
            sel = pred.xs((r["batch"], r["seq_len"]), level=("batch", "seq_len"))
            want = r["predicted"]
            assert sel[column[r["quantity"]]].iloc[0] == pytest.approx(want, rel=1e-6), r["quantity"]
        checked += 1
    assert checked >= 2 * 5  # target, draft, verify, sd_loop, speedup at 2 batches
