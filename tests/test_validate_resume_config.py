"""validate --resume continues only a folder of the same configuration; duplicates and locks.

One real run of the issue's tiny configuration (llama-68m, one layer, CPU), then resumes of it
in-process with changed flags, with every row duplicated, and while another run holds the folder.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pandas as pd
import pytest
from typer.testing import CliRunner

from magicdec_model.cli.main import app
from magicdec_model.perfmodel.engine import load_engine

pytestmark = [pytest.mark.usefixtures("single_torch_thread"), pytest.mark.e2e, pytest.mark.slow]

V = ["--device", "cpu", "--model", "llama-68m", "--layers", "1", "--batch", "1,2", "--seq-len", "128",
     "--kv-budget", "32", "--gamma", "2", "--acceptance", "0.8", "--new-tokens", "4", "--threads", "1"]
FILES = ("measurements.csv", "config.json", "profile.toml", "comparison.csv", "report.html")
#: written where the AR steps determine an engine term (this tiny run's 2 AR steps may not)
OPTIONAL = ("engine.toml",)


@pytest.fixture(scope="module")
def done(tmp_path_factory):
    out = tmp_path_factory.mktemp("validate") / "r"
    res = subprocess.run([sys.executable, "-m", "magicdec_model.cli.main", "validate", *V, "--out", str(out)],
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    return out


def _copy(done, tmp_path):
    out = tmp_path / "r"
    shutil.copytree(done, out)
    return out


def _with(flag, value):
    args = list(V)
    if flag in args:
        args[args.index(flag) + 1] = value
    else:
        args += [flag, value]
    return args


def _snapshot(out):
    return {n: (out / n).read_bytes() for n in FILES + OPTIONAL if (out / n).exists()}


def test_the_run_configuration_is_recorded(done):
    cfg = json.loads((done / "config.json").read_text())
    assert cfg["model"] == "llama-68m" and cfg["layers"] == 1 and cfg["new_tokens"] == 4
    assert cfg["kv_method"] == "streamingllm" and cfg["seed"] == 0 and cfg["backend"] == "torch"
    assert cfg["device"] == "cpu" and cfg["dtype"] == "float32" and cfg["torch"]
    assert "1 threads" in cfg["device_name"]


@pytest.mark.parametrize(("flag", "value", "field"), [
    ("--model", "tinyllama-1.1b", "model 'llama-68m' -> 'tinyllama-1.1b'"),  # the reproduction
    ("--layers", "2", "layers 1 -> 2"),
    ("--new-tokens", "8", "new_tokens 4 -> 8"),
    ("--kv-method", "snapkv", "kv_method 'streamingllm' -> 'snapkv'"),
    ("--threads", "2", "device_name"),
])
def test_a_resume_with_another_configuration_is_refused_and_changes_nothing(done, tmp_path, flag, value,
                                                                              field):
    out = _copy(done, tmp_path)
    before = _snapshot(out)
    res = CliRunner().invoke(app, ["validate", *_with(flag, value), "--out", str(out), "--resume"])
    assert res.exit_code == 2, res.output
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: --resume") and field in lines[0], res.stderr
    assert _snapshot(out) == before
    assert sorted(p.name for p in out.iterdir()) == sorted(before)  # no lock left behind


def test_a_resume_without_config_json_is_refused(done, tmp_path):
    out = _copy(done, tmp_path)
    (out / "config.json").unlink()
    res = CliRunner().invoke(app, ["validate", *V, "--out", str(out), "--resume"])
    assert res.exit_code == 2 and "no config.json" in res.stderr


def test_resume_after_duplicated_rows_keeps_the_first_and_compares(done, tmp_path):
    out = _copy(done, tmp_path)
    csv = out / "measurements.csv"
    text = csv.read_text()
    # every row twice (what two unlocked runs on one folder once wrote), the copies with other values
    copies = pd.read_csv(csv, dtype=str, keep_default_na=False)
    copies["value"] = "999.0"
    csv.write_text(text + copies.to_csv(index=False, header=False, lineterminator="\n"))
    first = pd.read_csv(done / "comparison.csv")
    res = CliRunner().invoke(app, ["validate", *V, "--out", str(out), "--resume"])
    assert res.exit_code == 0, res.output
    assert "measured 0 point(s)" in res.stdout
    again = pd.read_csv(out / "comparison.csv")
    pd.testing.assert_frame_equal(again, first)  # the first rows count; the 999 s copies do not


def test_check_compare_does_not_crash_on_duplicate_rows(done):
    from magicdec_model.perfmodel.architecture import get_model
    from magicdec_model.perfmodel.hardware import load_profile
    from magicdec_model.validate.check import compare, run_arch

    meas = pd.read_csv(done / "measurements.csv")
    arch = run_arch(get_model("llama-68m"), 1, 4)
    prof = load_profile(str(done / "profile.toml"))
    engine = load_engine("cuda-graph")
    once = compare(meas, arch, prof, "streamingllm", engine)
    twice = compare(pd.concat([meas, meas], ignore_index=True), arch, prof, "streamingllm", engine)
    pd.testing.assert_frame_equal(once, twice)


def test_a_folder_held_by_another_run_is_refused(done, tmp_path):
    from magicdec_model.perfmodel.outfiles import OutputLock

    out = _copy(done, tmp_path)
    before = _snapshot(out)
    with OutputLock(out, folder=True):
        res = CliRunner().invoke(app, ["validate", *V, "--out", str(out), "--resume"])
    assert res.exit_code == 2
    assert "being written by another magicdec-model run" in res.stderr
    assert _snapshot(out) == before
