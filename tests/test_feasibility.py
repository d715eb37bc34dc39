"""Answers that respect memory and context: headlines, verdicts and defaults consider only points that
can run, say how many cannot, and say what would make a workload fit."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from magicdec_model.cli.main import app
from magicdec_model.perfmodel.feasibility import Infeasible, best, feasible, target_fit
from magicdec_model.perfmodel.sweep import MEMORY_UTILIZATION, Query, predict

pytestmark = pytest.mark.unit

runner = CliRunner()
ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
GiB = 2**30


def _frame(fits, within, speedup) -> pd.DataFrame:
    return pd.DataFrame({"fits_memory": fits, "within_context": within, "speedup": speedup,
                         "batch": range(len(fits))})


def test_counts_and_best_leave_out_points_that_cannot_run():
    df = _frame([True, False, True, False], [True, True, False, False], [1.5, 3.0, 2.5, 9.0])
    assert feasible(df).tolist() == [True, False, False, False]
    lost = Infeasible.of(df)
    assert (lost.total, lost.no_memory, lost.beyond_context, lost.left_out) == (4, 2, 2, 3)
    text = lost.describe()
    assert text.startswith("3 of 4 points cannot run: 2 do not fit in memory") and "2 exceed" in text
    assert best(df)["speedup"] == 1.5
    assert best(_frame([False], [True], [2.0])) is None
    assert Infeasible.of(_frame([True], [True], [1.0])).describe() == ""


def test_within_context_column_follows_max_positions():
    # llama-68m: max_position_embeddings 2048 (its registry record); 2046 + gamma 3 + 1 > 2048
    df = predict(Query(model="llama-68m", batch=[1], seq_len=[1024, 2046], kv_budget=[64], gamma=[3],
                       acceptance=0.8, intervals=False))
    assert df["within_context"].tolist() == [True, False]


def test_target_alone_for_the_issue_workload_by_hand():
    """llama-3.1-70b, 4 x H100 (80 GiB), batch 64, 32k: models.md shape (80 layers, 8 KV heads of
    128, hidden 8192, MLP 28672, vocab 128256, untied).  By hand: parameters 80 x (2 x 8192^2 +
    2 x 8192 x 1024 + 3 x 8192 x 28672) + 2 x 128256 x 8192 = 70.55 G; per GPU in bf16 everything
    but the embedding is split in 4: (70.55 - 1.05) G x 2 B / 4 + 1.05 G x 2 B = 36.85 GB.  KV per
    token per GPU: 80 x 2 x 2 heads x 128 x 2 B = 81,920 B; at 32,001 tokens 2.6215 GB per
    sequence.  Largest batch: (0.9 x 80 GiB - 36.85 GB) / 2.6215 GB = 15.4 -> 15.  fp8 KV on 8 GPUs:
    19.5 GB + 64 x 32,001 x 20,480 B = 61.4 GB < 77.3 GB; bf16 on 8 (KV 83.9 GB), fp8 on 4 (KV
    83.9 GB) and 16 GPUs (8 KV heads: replicated, KV as on 8) do not fit."""
    fit = target_fit(Query(model="llama-3.1-70b", batch=[64], seq_len=[32000], hardware="h100-sxm",
                           gpus=[4]))
    assert not fit.fits
    assert fit.usable_bytes == pytest.approx(MEMORY_UTILIZATION * 80 * GiB)
    assert fit.need_bytes == pytest.approx(36.85e9 + 64 * 2.6215e9, rel=0.01)
    assert fit.max_batch == 15
    assert fit.fixes == ["an fp8 KV cache on 8 GPUs (--kv-dtype fp8 --gpus 8)"]


def test_each_change_that_suffices_alone_is_named():
    # llama-3.1-8b on one A100 at batch 16, 32k: 16 GB + 16 x 32,001 x 131,072 B = 83 GB > 77.3 GB;
    # fp8 KV halves the cache: 16 + 33.6 = 50 GB; fp8 weights (embedding and LM head, 1.05 G, stay bf16):
    # 6.98 G x 1 B + 1.05 G x 2 B = 9.1 GB + 67.1 GB = 76.2 GB; 2 GPUs: 8.6 + 33.6 GB
    fit = target_fit(Query(model="llama-3.1-8b", batch=[16], seq_len=[32000], gpus=[1]))
    assert not fit.fits
    assert fit.fixes == ["an fp8 KV cache (--kv-dtype fp8)", "fp8 weights (--weight-dtype fp8)",
                         "2 GPUs (--gpus 2)"]
    assert fit.max_batch == 14  # (77.3 - 16.1) GB / 4.19 GB = 14.6


def test_advise_says_the_target_does_not_fit_and_answers_for_a_batch_that_does():
    res = runner.invoke(app, ["advise", "--model", "llama-3.1-70b", "--hardware", "h100-sxm", "--gpus", "4",
                              "--batch", "64", "--seq-len", "32k", "--format", "json"])
    assert res.exit_code == 0, res.output
    doc = json.loads(res.output)
    assert doc["requested_batch"] == 64 and doc["target_fits"] is False
    assert doc["target_max_batch"] == 15 and doc["fixes"]
    assert 1 <= doc["batch"] <= 15
    assert "alone does not fit" in doc["notes"][0] and "largest batch that fits is 15" in doc["notes"][0]
    assert "--kv-dtype fp8" in doc["notes"][0] and "--gpus 8" in doc["notes"][0]
    assert f"At batch {doc['batch']}" in doc["verdict"]
    ranked = [c for c in doc["candidates"] if c["rank"]]
    assert ranked and all(c["fits_memory"] for c in ranked)
    table = runner.invoke(app, ["advise", "--model", "llama-3.1-70b", "--hardware", "h100-sxm", "--gpus",
                                "4", "--batch", "64", "--seq-len", "32k"])
    assert table.exit_code == 0 and "alone does not fit" in table.output


def test_sweep_headlines_only_points_that_fit(tmp_path):
    """The issue's sweep: the best speedup of the whole grid needs more memory than a GPU has."""
    out = tmp_path / "grid.parquet"
    res = runner.invoke(app, ["sweep", "--batch", "1,2,4,8,16,32,64,128,256", "--seq-len", "1k,4k,16k,64k",
                              "--kv-budget", "256,512,1024", "--gpus", "8", "--out", str(out)])
    assert res.exit_code == 0, res.output
    df = pd.read_parquet(out)
    top = df.loc[df["speedup"].idxmax()]
    assert not top["fits_memory"]  # what the old headline named
    ok = df[df["fits_memory"] & df["within_context"]]
    want = ok.loc[ok["speedup"].idxmax()]
    m = re.search(r"best speedup ([\d.]+) at batch (\d+), seq_len (\d+)", res.output)
    assert m and float(m[1]) == pytest.approx(want["speedup"], abs=0.005)
    assert (int(m[2]), int(m[3])) == (want["batch"], want["seq_len"])
    n_out = int((~(df["fits_memory"] & df["within_context"])).sum())
    assert f"{n_out} of {len(df)} points cannot run" in res.output


def test_predict_flags_and_counts_rows_that_cannot_run():
    res = runner.invoke(app, ["predict", "--gpus", "8", "--batch", "32,256", "--seq-len", "8000,100000",
                              "--acceptance", "0.8"])
    assert res.exit_code == 0, res.output
    # 256 x 100000 tokens x 16 KiB per GPU = 420 GB: the only row that does not fit (8 x A100)
    rows = [ln.split() for ln in res.output.splitlines() if ln.split()[:1] in (["32"], ["256"])]
    assert [r[-1] for r in rows] == ["yes", "yes", "yes", "NO"]
    assert "1 of 4 rows cannot run" in res.output


def test_predict_defaults_fit():
    res = runner.invoke(app, ["predict", "--format", "json"])
    assert res.exit_code == 0, res.output
    (row,) = json.loads(res.output)
    assert row["fits_memory"] and row["within_context"]


def _readme_commands() -> list[list[str]]:
    text = re.sub(r"\\\n\s*", " ", README.read_text())
    cmds = []
    for line in re.findall(r"magicdec-model ((?:predict|advise) [^#\n]*)", text):
        argv = shlex.split(line)
        # commands over files the reader makes first (their own profile, validate's output, a
        # --config file) are left to tests/test_readme.py
        if "..." in argv or "--config" in argv or any(
                ("/" in a or a.endswith((".toml", ".csv", ".json"))) and not (ROOT / a).exists()
                for a in argv):
            continue
        cmds.append(argv)
    return cmds


@pytest.mark.parametrize("argv", _readme_commands(), ids=lambda a: " ".join(a)[:60])
def test_every_readme_example_lands_on_points_that_fit(argv):
    argv = [a for a in argv if a not in ("--format", "json", "table")]
    res = runner.invoke(app, [*argv, "--format", "json"])
    assert res.exit_code == 0, res.output
    doc = json.loads(res.output)
    if argv[0] == "advise":
        assert doc["batch"] == doc["requested_batch"]
        rows = [c for c in doc["candidates"] if c["rank"]]
    else:
        rows = doc
    assert rows and all(r["fits_memory"] for r in rows)
    assert all(r.get("within_context", True) for r in rows)


def test_readme_sweep_lands_on_points_that_fit(tmp_path):
    text = re.sub(r"\\\n\s*", " ", README.read_text())
    (sweep,) = [s for s in re.findall(r"magicdec-model (sweep [^#\n]*)", text) if "grid.parquet" in s]
    argv = shlex.split(sweep)
    argv[argv.index("--out") + 1] = str(tmp_path / "grid.parquet")
    res = runner.invoke(app, argv)
    assert res.exit_code == 0, res.output
    df = pd.read_parquet(tmp_path / "grid.parquet")
    assert len(df) > 50 and df["fits_memory"].all() and df["within_context"].all()
    assert "cannot run" not in res.output


def test_readme_examples_were_found():
    kinds = [a[0] for a in _readme_commands()]
    assert kinds.count("predict") >= 5 and kinds.count("advise") >= 1


def test_advise_over_the_latency_budget_answers_for_the_largest_batch_that_meets_it():
    from magicdec_model.perfmodel.advise import advise

    adv = advise("llama-3.1-8b", "a100-80gb-sxm", 8, 256, 8000, latency_budget_s=8e-3)
    assert adv.requested_batch == 256 and adv.target_fit.fits
    assert adv.notes[0].startswith("At batch 256 no candidate of ")
    assert "miss the latency budget" in adv.notes[0]
    assert 1 <= adv.batch < 256 and f"At batch {adv.batch}" in adv.verdict
    ranked = adv.ranking[adv.ranking["rank"] > 0]
    assert len(ranked) and (ranked["latency_sd_s"] <= 8e-3).all()
    # the batch is the largest that works: one more and no candidate meets the budget
    above = advise("llama-3.1-8b", "a100-80gb-sxm", 8, adv.batch + 1, 8000, latency_budget_s=8e-3)
    assert above.batch == adv.batch


@settings(max_examples=25, deadline=None)
@given(model=st.sampled_from(["llama-3.1-8b", "llama-3.1-70b", "qwen2.5-7b", "mixtral-8x7b"]),
       gpus=st.sampled_from([1, 2, 4, 8]), seq_len=st.integers(1000, 128_000),
       kv=st.sampled_from(["native", "fp8"]))
def test_largest_batch_is_the_boundary_of_what_fits(model, gpus, seq_len, kv):
    """The largest batch fits (its predicted memory is within the usable share) and one more does not."""
    from magicdec_model.perfmodel.errors import InputError

    q = Query(model=model, batch=[1], seq_len=[seq_len], gpus=[gpus], hardware="h100-sxm", kv_dtype=kv)
    try:
        top = target_fit(q).max_batch
    except InputError:  # a split the model's heads do not allow (qwen2.5-7b's 28 over 8 GPUs)
        assume(False)
    assume(top >= 1)
    at = predict(Query(model=model, batch=[top, top + 1], seq_len=[seq_len], gpus=[gpus], hardware="h100-sxm",
                       kv_dtype=kv, draft="ngram", gamma=[1], acceptance=0.5, intervals=False))
    # the n-gram draft holds nothing: its row's memory is the target's, with gamma + 1 = 2 tokens verified
    usable = MEMORY_UTILIZATION * at["memory_capacity_bytes"].iloc[0]
    per_seq = (at["memory_per_gpu_bytes"].iloc[1] - at["memory_per_gpu_bytes"].iloc[0])
    assert per_seq > 0
    one_token = per_seq / (seq_len + 2)  # per sequence: the memory at S + 1 cached tokens is one less
    assert at["memory_per_gpu_bytes"].iloc[0] - top * one_token <= usable
    assert at["memory_per_gpu_bytes"].iloc[1] - (top + 1) * one_token > usable


def test_sweep_where_nothing_can_run_says_so(tmp_path):
    # llama-3.1-70b's 141 GB of bf16 weights on one 80 GiB A100: no point fits
    res = runner.invoke(app, ["sweep", "--model", "llama-3.1-70b", "--batch", "1,2", "--seq-len", "1k",
                              "--out", str(tmp_path / "g.csv")])
    assert res.exit_code == 0, res.output
    assert "no point can run" in res.output and "best speedup" not in res.output
    assert "2 of 2 points cannot run: 2 do not fit in memory" in res.output
