"""CLI contract of `report`, `advise` and `compare-paper` through typer's CliRunner, bad input included."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from typer.testing import CliRunner

from magicdec_model.cli.main import app
from magicdec_model.cli.options import grid_list
from magicdec_model.perfmodel.errors import InputError

pytestmark = pytest.mark.unit

runner = CliRunner()


def _bad(args: list[str], needle: str) -> None:
    res = runner.invoke(app, args)
    assert res.exit_code == 2, (args, res.output)
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), res.stderr
    assert needle in lines[0], lines[0]
    assert "Traceback" not in res.output


def test_report_writes_html(tmp_path):
    out = tmp_path / "r.html"
    res = runner.invoke(app, ["report", "--model", "llama-3.1-8b", "--gpus", "8", "--batch", "1:64:4",
                              "--seq-len", "1k:32k:4", "--draft", "self,llama-3.2-1b", "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert "wrote" in res.stdout and "2 strategies x 4 batches x 4 sequence lengths" in res.stdout
    text = out.read_text(encoding="utf-8")
    assert text.count('class="plotly-graph-div"') == 9  # 8 + acceptance (a self-draft is in)


def test_report_acceptance_table_is_used(tmp_path):
    acc = tmp_path / "acc.csv"
    pd.DataFrame([{"model": "llama-3.1-8b", "draft": "self", "method": "streamingllm", "budget": 512,
                   "seq_len": 8000, "acceptance": 0.55, "dataset": "mine", "source": "USER-MEASURED"}]
                 ).to_csv(acc, index=False)
    out = tmp_path / "r.html"
    res = runner.invoke(app, ["report", "--gpus", "8", "--batch", "8,64", "--seq-len", "8k,32k",
                              "--acceptance-table", str(acc), "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert "USER-MEASURED" in out.read_text(encoding="utf-8")


def test_advise_table_and_json():
    res = runner.invoke(app, ["advise", "--model", "llama-3.1-8b", "--gpus", "8", "--batch", "64",
                              "--seq-len", "32k", "--top", "5"])
    assert res.exit_code == 0, res.output
    assert "SD pays off" in res.stdout and "γT_D/T_T" in res.stdout
    assert max(len(line) for line in res.stdout.splitlines()) <= 80
    res = runner.invoke(app, ["advise", "--model", "llama-3.2-1b", "--batch", "1", "--seq-len", "1k",
                              "--acceptance", "0.02", "--format", "json"])
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    assert doc["worth_it"] is False and "not worth it" in doc["verdict"]
    assert doc["candidates"] and {"speedup", "gamma", "memory_per_gpu_bytes"} <= set(doc["candidates"][0])


def test_compare_paper_table_and_json(paper_speedups, hand_ideal_paper_row):
    res = runner.invoke(app, ["compare-paper"])
    assert res.exit_code == 0, res.output
    assert "MAPE" in res.stdout and "budget" in res.stdout
    res = runner.invoke(app, ["compare-paper", "--format", "json", "--acceptance", "0.75"])
    doc = json.loads(res.stdout)
    assert len(doc["rows"]) == 12
    assert all(r["acceptance"] == 0.75 for r in doc["rows"])
    # the published column is the project page's table (literals in conftest.py), and the MAPE
    # printed is the mean |model - published| / published of the printed predictions
    assert [r["speedup_paper"] for r in doc["rows"]] == paper_speedups
    errors = [abs(r["speedup_model"] - pub) / pub * 100
              for r, pub in zip(doc["rows"], paper_speedups, strict=True)]
    assert doc["mape_pct"] == pytest.approx(sum(errors) / 12, rel=1e-6)
    # --ideal --gamma paper reaches the kernel-only model: one row equals its hand derivation
    hand = hand_ideal_paper_row
    res = runner.invoke(app, ["compare-paper", "--format", "json", "--ideal", "--gamma", "paper",
                              "--acceptance", str(hand.acceptance)])
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    (row,) = [r for r in doc["rows"] if (r["target"], r["draft"], r["prefill"], r["batch"])
              == (hand.target, hand.draft, hand.prefill, hand.batch)]
    assert row["gamma_model"] == hand.gamma
    assert row["speedup_model"] == pytest.approx(hand.speedup, rel=1e-8)


def test_grid_list_ranges():
    assert grid_list("1:256:9", "--batch") == [1, 2, 4, 8, 16, 32, 64, 128, 256]
    assert grid_list("1:64:64", "--batch") == list(range(1, 65))
    assert len(grid_list("1k:128k:64", "--seq-len")) == 64
    with pytest.raises(InputError, match="START:STOP:COUNT"):
        grid_list("1:2", "--batch")


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["report", "--out", "r.txt"], "must end in .html"),
        (["report", "--out", "/no/such/dir/r.html"], "does not exist"),
        (["report", "--out", "r.html", "--batch", "8:1:3"], "--batch '8:1:3'"),
        (["report", "--out", "r.html", "--gpus", "1,8"], "one GPU count"),
        (["report", "--out", "r.html", "--draft", "self", "--kv-method", "full"], "no draft strategy"),
        (["report", "--out", "r.html", "--acceptance-table", "missing.csv"], "does not exist"),
        (["advise", "--gpus", "3"], "--gpus 3"),
        (["advise", "--batch", "1,2"], "one value"),
        (["advise", "--latency-budget-ms", "0"], "--latency-budget-ms 0"),
        (["advise", "--acceptance", "1.5"], "--acceptance 1.5"),
        (["advise", "--acceptance-table", "missing.csv"], "does not exist"),
        (["advise", "--model", "nope"], "unknown model 'nope'"),
        (["compare-paper", "--gamma", "best"], "--gamma 'best'"),
        (["compare-paper", "--format", "xml"], "--format 'xml'"),
        (["compare-paper", "--acceptance-table", "missing.csv"], "does not exist"),
        (["compare-paper", "--hardware", "tpu"], "tpu"),
    ],
)
def test_bad_input_one_line_exit_2(args, needle, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    _bad(args, needle)
