"""Small defects of issue 17 section 4: closest-name hints by similarity, START:STOP:COUNT ranges in
every integer list flag, predict over lists of drafts and KV methods, values printed with units."""

from __future__ import annotations

import io

import pandas as pd
import pytest
from typer.testing import CliRunner

from magicdec_model.cli.main import app
from magicdec_model.perfmodel.architecture import builtin_model_names
from magicdec_model.perfmodel.errors import closest
from magicdec_model.perfmodel.hardware import builtin_hardware_names
from magicdec_model.perfmodel.inputs import parse_int_list
from magicdec_model.perfmodel.units import with_unit

pytestmark = pytest.mark.unit

runner = CliRunner()


def _csv(args: list[str]) -> pd.DataFrame:
    res = runner.invoke(app, [*args, "--format", "csv"])
    assert res.exit_code == 0, res.output
    return pd.read_csv(io.StringIO(res.stdout))


def test_closest_names_are_the_most_similar_not_the_first_alphabetically():
    models = builtin_model_names()
    assert closest("Llama-3.1-8B", models).split(", ")[0] == "llama-3.1-8b"  # case-insensitive
    assert closest("llama3-8b", models).split(", ")[0] == "llama-3-8b"
    assert closest("h100", builtin_hardware_names()).split(", ")[:2] == ["h100-sxm", "h100-pcie"]
    # nothing alike: no alphabetical filler (it used to say deepseek-v3)
    assert closest("self,eagle", models) == "none similar"
    res = runner.invoke(app, ["predict", "--model", "self,eagle"])
    assert res.exit_code == 2 and "deepseek" not in res.stderr and "none similar" in res.stderr


def test_ranges_expand_geometrically_in_every_integer_list():
    # 1 to 256 in 9 geometric steps: the powers of two (ratio 256^(1/8) = 2)
    assert parse_int_list("1:256:9", "--batch") == [1, 2, 4, 8, 16, 32, 64, 128, 256]
    assert parse_int_list("2,1:4:3", "--batch") == [2, 1, 2, 4]  # order and repeats as typed
    assert parse_int_list("1k:4k:3", "--seq-len") == [1000, 2000, 4000]
    df = _csv(["predict", "--batch", "1:64:3", "--seq-len", "8k:32k:2", "--kv-budget", "256:512:2"])
    assert sorted(df["batch"].unique()) == [1, 8, 64]  # 64^(1/2) = 8
    assert sorted(df["seq_len"].unique()) == [8000, 32000]
    assert sorted(df["kv_budget"].unique()) == [256, 512]
    assert runner.invoke(app, ["advise", "--batch", "64:64:1", "--seq-len", "32k"]).exit_code == 0
    assert runner.invoke(app, ["breakdown", "--seq-len", "8k:8k:1", "--format", "csv"]).exit_code == 0
    bad = runner.invoke(app, ["predict", "--batch", "8:1:3"])
    assert bad.exit_code == 2 and "--batch '8:1:3'" in bad.stderr


def test_predict_takes_lists_of_drafts_and_kv_methods_as_a_cross_product():
    both = _csv(["predict", "--draft", "self,llama-3.2-1b", "--kv-method", "streamingllm,snapkv",
                 "--batch", "8,32", "--seq-len", "32k"])
    pairs = set(zip(both["draft"], both["kv_method"], strict=True))
    assert pairs == {("self", "streamingllm"), ("self", "snapkv"), ("llama-3.2-1b", "streamingllm"),
                     ("llama-3.2-1b", "snapkv")}
    assert len(both) == 4 * 2
    one = _csv(["predict", "--draft", "llama-3.2-1b", "--kv-method", "snapkv", "--batch", "8,32",
                "--seq-len", "32k"])
    part = both[(both["draft"] == "llama-3.2-1b") & (both["kv_method"] == "snapkv")]
    assert part["speedup"].tolist() == one["speedup"].tolist()


def test_values_carry_their_units():
    # hand conversions of the H100 SXM datasheet (hardware_profiles/h100-sxm.toml)
    assert with_unit("peak_flops_bf16", 989.4e12) == "989.4 TFLOP/s"
    assert with_unit("mem_bw", 3.35e12) == "3.35 TB/s"
    assert with_unit("mem_capacity", 80 * 2**30) == "80 GiB"
    assert with_unit("kernel_fixed_s", 1.3e-6) == "1.3 us"
    assert with_unit("host_step_s", 2e-3) == "2 ms"
    assert with_unit("gemm_bw", 0.9) == "0.9 of peak"
    assert with_unit("sm_count", 132) == "132"
    shown = runner.invoke(app, ["hardware", "show", "h100-sxm"], env={"COLUMNS": "200"}).stdout
    keyed = [ln for ln in shown.splitlines() if ln.startswith("  ") and ln[2] != " "]  # not continuations
    assert len(keyed) >= 9 + 10  # the H100's datasheet and efficiency keys
    for line in keyed:
        if line:
            assert any(u in line for u in ("/s", "GiB", "MiB", " us", " ms", "of peak", "sm_count")), line


def test_calibrate_prints_fractions_as_fractions_and_times_as_times(tmp_path, monkeypatch):
    from importlib import resources
    monkeypatch.chdir(tmp_path)
    steps = resources.files("magicdec_model.perfmodel").joinpath("data/engines/magicdec-8xa100-ar-steps.csv")
    res = runner.invoke(app, ["calibrate", "--steps", str(steps), "--model", "llama-2-7b-32k", "--gpus", "8",
                              "--out", "e.toml"], env={"COLUMNS": "200"})
    assert res.exit_code == 0, res.output
    rows = {ln.split()[0]: ln for ln in res.stdout.splitlines() if ln.split()}
    assert "of peak" in rows["attention_bw"] and " ms" not in rows["attention_bw"]
    assert " ms" in rows["host_step_s"] or " us" in rows["host_step_s"]
    assert "e+" not in res.stdout
    assert "predict ..." not in res.stdout and "--engine e.toml" in res.stdout


def test_report_default_grid_is_round(tmp_path):
    out = tmp_path / "r.html"
    res = runner.invoke(app, ["report", "--gpus", "8", "--out", str(out)])
    assert res.exit_code == 0, res.output
    # batch 1:256:9 = powers of two; seq_len 1k, 2k, ..., 128k (k = 1,000)
    assert "9 batches x 8 sequence lengths" in " ".join(res.stdout.split())
    assert '"ticktext":["1k","2k","4k","8k","16k","32k","64k","128k"]' in out.read_text(encoding="utf-8")


#: How each command's help names the draft kinds of perfmodel.drafts.make_draft (advise has no
#: --draft: its description lists the kinds it ranks).
KIND_WORDS = {"flag": ("'self'", "registry draft model", "'eagle'", "'mtp'", "'ngram'"),
              "advise": ("self-speculation", "registry drafts", "EAGLE", "MTP", "n-gram")}


@pytest.mark.parametrize("command", ["predict", "sweep", "report", "advise", "breakdown"])
def test_help_lists_every_draft_kind(command):
    text = " ".join(runner.invoke(app, [command, "--help"], env={"COLUMNS": "200"}).stdout.split())
    for kind in KIND_WORDS["advise" if command == "advise" else "flag"]:
        assert kind in text, (command, kind)
