"""The CLI contract of `simulate` (typer's CliRunner) and its Dask executor on a local cluster."""

from __future__ import annotations

import io
import json

import pandas as pd
import pytest
from typer.testing import CliRunner

from magicdec_model.cli.main import app
from magicdec_model.perfmodel.serving.metrics import COLUMNS

pytestmark = pytest.mark.unit

runner = CliRunner()
BASE = ["simulate", "--model", "llama-3.1-8b", "--hardware", "h100-sxm", "--engine", "vllm-h100",
        "--draft", "eagle", "--workload", "gsm8k", "--num-requests", "40"]

#: the columns the issue names, in its order
ISSUE_COLUMNS = ["policy", "qps", "concurrency", "throughput_tok_s", "goodput_req_s", "ttft_p50_s",
                 "ttft_p99_s", "tpot_p50_s", "tpot_p99_s", "itl_p50_s", "e2e_p50_s", "e2e_p99_s",
                 "mean_batch", "mean_gamma", "tokens_per_step", "preemptions", "slo_attainment"]


def invoke(args):
    return runner.invoke(app, args)


def test_json_rows_have_exactly_the_issue_columns():
    r = invoke(BASE + ["--qps", "5,20", "--policy", "off,fixed:3,optimal", "--format", "json"])
    assert r.exit_code == 0, r.output
    rows = json.loads(r.stdout)
    assert list(COLUMNS) == ISSUE_COLUMNS
    assert [list(row) for row in rows] == [ISSUE_COLUMNS] * 6
    assert [row["policy"] for row in rows] == ["off", "off", "fixed:3", "fixed:3", "optimal", "optimal"]
    off = [row for row in rows if row["policy"] == "off"]
    assert all(row["mean_gamma"] == 0 and row["tokens_per_step"] == 1 for row in off)


def test_csv_and_range_loads():
    r = invoke(BASE + ["--concurrency", "1:9:3", "--policy", "fixed:2", "--format", "csv"])
    assert r.exit_code == 0, r.output
    df = pd.read_csv(io.StringIO(r.stdout))
    assert list(df.columns) == ISSUE_COLUMNS
    assert df["concurrency"].tolist() == [1, 5, 9]


def test_html_page_and_export(tmp_path):
    page, spec = tmp_path / "s.html", tmp_path / "spec.json"
    # at 10 req/s (seed 0) EAGLE with gamma 2 beats SD off, so the export is its vLLM JSON
    r = invoke(BASE + ["--qps", "10", "--policy", "off,fixed:2", "--html", str(page), "--export", "vllm",
                       "--out", str(spec)])
    assert r.exit_code == 0, r.output
    text = page.read_text()
    assert all(f'data-figure="{k}"' in text for k in ("latency", "tradeoff", "payoff", "gamma"))
    cfg = json.loads(spec.read_text())
    assert cfg["method"] == "eagle" and cfg["num_speculative_tokens"] == 2


@pytest.mark.slow
def test_max_qps_under_slo_is_reported_per_policy():
    r = invoke(BASE + ["--policy", "off,fixed:3", "--max-qps-under-slo", "--slo-ttft", "0.5",
                       "--slo-tpot", "0.02", "--format", "json"])
    assert r.exit_code == 0, r.output
    rows = json.loads(r.stdout)
    assert {row["policy"] for row in rows} == {"off", "fixed:3"}
    assert all(row["max_qps_under_slo"] > 0 for row in rows)


@pytest.mark.parametrize("args", [
    ["--qps", "0"], ["--qps", "abc"], ["--concurrency", "5:1:3"], ["--policy", "sometimes", "--qps", "1"],
    ["--workload", "nosuch", "--qps", "1"], ["--prompt", "uniform:9:1", "--qps", "1"],
    ["--export", "tgi", "--out", "x.json", "--qps", "1"], ["--qps", "1", "--slo-tpot", "-1"],
    [], ["--qps", "1", "--executor", "ray"], ["--trace", "/nonexistent.csv"],
    ["--draft", "self", "--qps", "1", "--export", "vllm", "--out", "x.json"],
])
def test_bad_input_is_one_line_and_exit_2(args):
    r = invoke(BASE + args)
    assert r.exit_code == 2, r.output
    assert len(r.stderr.strip().splitlines()) == 1, r.stderr


def test_trace_arrivals(tmp_path):
    trace = tmp_path / "t.csv"
    trace.write_text("arrival_s,prompt_tokens,output_tokens\n0,100,20\n0.5,300,50\n0.1,50,5\n")
    r = invoke(BASE + ["--trace", str(trace), "--policy", "off", "--format", "json"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)[0]["throughput_tok_s"] > 0


def test_dask_executor_on_a_local_cluster_gives_the_local_rows():
    pytest.importorskip("dask.distributed")
    from magicdec_model.perfmodel.serving.costs import serving_model
    from magicdec_model.perfmodel.serving.policy import parse_policies
    from magicdec_model.perfmodel.serving.runner import Point, SimSpec, run_points
    from magicdec_model.perfmodel.serving.workload import parse_length
    from magicdec_model.perfmodel.sweep import Query

    m = serving_model(Query(model="llama-3.1-8b", batch=[1], seq_len=[300], draft="ngram",
                            hardware="h100-sxm", gamma=[3]), 300)
    spec = SimSpec(m, parse_length("gsm8k", "--prompt", "prompt"),
                   parse_length("gsm8k", "--output", "output"), 20)
    points = [Point(p, qps=5.0) for p in parse_policies("off,fixed:3", [3])]
    local = run_points(spec, points, "local", 1)
    dask = run_points(spec, points, "dask", 1)  # one in-process worker: a light LocalCluster
    assert dask == local
