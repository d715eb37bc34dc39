"""`breakdown`: per-op rows add up to the step time that `predict` reports."""

import json

import pytest
from typer.testing import CliRunner

from magicdec_model.cli.main import app
from magicdec_model.perfmodel.breakdown import ENGINE_ROWS, step_breakdown
from magicdec_model.perfmodel.ops import OP_NAMES
from magicdec_model.perfmodel.sweep import Query, predict

pytestmark = pytest.mark.unit


@pytest.mark.parametrize("step,column", [("target", "t_target_s"), ("verify", "t_verify_s"),
                                         ("draft", "t_draft_s")])
def test_breakdown_sums_to_predicted_step_time(step, column):
    df = step_breakdown("llama-3.1-8b", step, 32, 32000, gpus=8, gamma=3, kv_budget=512)
    assert list(df["op"]) == list(OP_NAMES) + [name for name, _, _ in ENGINE_ROWS]
    pred = predict(Query(model="llama-3.1-8b", batch=[32], seq_len=[32000], gpus=[8], gamma=[3],
                         acceptance=0.8, kv_budget=[512]))
    assert df["time_s"].sum() == pytest.approx(float(pred[column].iloc[0]), rel=1e-12)
    assert df["share"].sum() == pytest.approx(1.0)


def test_breakdown_regimes():
    df = step_breakdown("llama-3.1-8b", "target", 1, 32000).set_index("op")
    # batch 1: every projection reads each weight for one token -> memory-bound
    assert df.loc["qkv_proj", "regime"] == "memory"
    big = step_breakdown("llama-3.1-8b", "verify", 256, 1000, gamma=7).set_index("op")
    # 256 x 8 = 2048 tokens per weight read: intensity ~2048 FLOP/B-element, above the A100 ridge
    # of 153 FLOP/byte (magicdec-paper.md 1.6) -> compute-bound
    assert big.loc["gate_up_proj", "regime"] == "compute"
    assert df.loc["allreduce_attn", "time_s"] == 0.0  # one GPU: no all-reduce


def test_breakdown_cli():
    runner = CliRunner()
    out = runner.invoke(app, ["breakdown", "--gpus", "8", "--step", "draft", "--format", "json"])
    assert out.exit_code == 0, out.output
    rows = json.loads(out.output)
    assert {r["op"] for r in rows} == set(OP_NAMES) | {name for name, _, _ in ENGINE_ROWS}
    bad = runner.invoke(app, ["breakdown", "--step", "prefill"])
    assert bad.exit_code == 2 and "--step" in bad.stderr
    bad = runner.invoke(app, ["breakdown", "--batch", "1,2"])
    assert bad.exit_code == 2 and "one value" in bad.stderr
    table = runner.invoke(app, ["breakdown"])
    assert table.exit_code == 0 and max(len(x) for x in table.output.splitlines()) <= 80


def test_engine_rows_charge_the_engine_terms():
    # generic engine (perfmodel/data/engines/generic.toml): 2.0 ms per step, 2.0 us per sequence,
    # no launch cost; batch 32 -> 2.0 ms and 32 x 2 us = 64 us
    df = step_breakdown("llama-3.1-8b", "draft", 32, 32000, gpus=8).set_index("op")
    assert df.loc["engine_host_step", "time_s"] == pytest.approx(2.0e-3)
    assert df.loc["engine_host_seq", "time_s"] == pytest.approx(64e-6)
    assert df.loc["engine_launch", "time_s"] == 0.0
    # eager engine: 5 us per kernel launch; at TP=8: 32 layers x 11 ops (both all-reduces active)
    # + embedding, final_norm, lm_head, sampling + the two argmax all-reduces = 358 kernels
    eager = step_breakdown("llama-3.1-8b", "draft", 32, 32000, gpus=8, engine="eager-pytorch")
    eager = eager.set_index("op")
    assert eager.loc["engine_launch", "count"] == 32 * 11 + 4 + 2
    assert eager.loc["engine_launch", "time_s"] == pytest.approx(358 * 5e-6)
    kernel_only = step_breakdown("llama-3.1-8b", "draft", 32, 32000, gpus=8, engine="cuda-graph")
    assert kernel_only.set_index("op").loc[[n for n, _, _ in ENGINE_ROWS], "time_s"].sum() == 0.0
