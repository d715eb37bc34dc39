"""Which draft strategies an engine can run ([supports]), and how predict, advise and report flag
the ones it cannot."""

from __future__ import annotations

import json

import pytest
import tomllib
from typer.testing import CliRunner

from magicdec_model.cli.main import app
from magicdec_model.perfmodel.advise import advise
from magicdec_model.perfmodel.engine import engine_from_dict, engine_to_toml, load_engine
from magicdec_model.perfmodel.errors import InputError
from magicdec_model.perfmodel.report import build_report
from magicdec_model.perfmodel.strategy import Strategy
from magicdec_model.perfmodel.sweep import Query

pytestmark = pytest.mark.unit

runner = CliRunner()


def test_shipped_engines_declare_what_they_run():
    # vLLM's --speculative-config methods: draft_model, ngram, eagle, mtp; no sparse-KV draft cache
    vllm = load_engine("vllm-h100")
    assert vllm.runs("eagle", "full") and vllm.runs("ngram", "full") and vllm.runs("mtp", "full")
    assert vllm.runs("llama-3.2-1b", "full")
    assert not vllm.runs("self", "streamingllm") and not vllm.runs("tinyllama-1.1b", "streamingllm")
    assert "docs.vllm.ai" in vllm.supports_source
    # MagicDec's engine: self-speculation (StreamingLLM, SnapKV), a small draft with StreamingLLM
    magic = load_engine("magicdec-8xa100")
    assert magic.runs("self", "snapkv") and magic.runs("tinyllama-1.1b", "streamingllm")
    assert not magic.runs("eagle", "full") and not magic.runs("ngram", "full")
    # a cost model without [supports] runs everything
    generic = load_engine("generic")
    assert generic.runs("self", "streamingllm") and generic.runs("eagle", "full")


def test_supports_round_trips_and_bad_entries_are_refused():
    vllm = load_engine("vllm-h100")
    again = engine_from_dict(tomllib.loads(engine_to_toml(vllm)), "x.toml")
    assert again.supports == vllm.supports and again.supports_source == vllm.supports_source
    doc = tomllib.loads(engine_to_toml(vllm))
    for bad in ({"strategies": ["self+h2o"], "source": "s"}, {"strategies": ["medusa"], "source": "s"},
                {"strategies": [], "source": "s"}, {"strategies": ["eagle"]},
                {"strategies": ["eagle"], "source": "s", "other": 1}):
        with pytest.raises(InputError, match=r"\[supports\]"):
            engine_from_dict({**doc, "supports": bad}, "bad.toml")


def test_predict_notes_a_strategy_the_engine_cannot_run():
    res = runner.invoke(app, ["predict", "--hardware", "h100-sxm", "--engine", "vllm-h100",
                              "--format", "json"])
    assert res.exit_code == 0, res.output
    (row,) = json.loads(res.output)
    assert "engine vllm-h100 cannot run self with a streamingllm KV cache" in row["notes"]
    ok = runner.invoke(app, ["predict", "--hardware", "h100-sxm", "--engine", "vllm-h100", "--draft", "eagle",
                             "--format", "json"])
    assert "cannot run" not in json.loads(ok.output)[0]["notes"]


def test_advise_excludes_and_flags_what_the_engine_cannot_run():
    adv = advise("llama-3.1-8b", "h100-sxm", 1, 8, 8000, engine="vllm-h100")
    df = adv.ranking
    sparse = df["kv_method"].isin(["streamingllm", "snapkv"])
    assert sparse.any() and not df.loc[sparse, "engine_runs"].any()
    assert not df.loc[sparse, "eligible"].any() and (df.loc[sparse, "rank"] == 0).all()
    assert df.loc[sparse, "why_excluded"].str.contains("engine vllm-h100 cannot run it").all()
    top = df[df["rank"] == 1].iloc[0]
    assert top["kv_method"] == "full" and top["engine_runs"]
    assert any("vllm-h100 cannot run" in n for n in adv.notes)
    assert top["strategy"] in adv.verdict


def test_report_flags_and_leaves_out_strategies_the_engine_cannot_run():
    q = Query(model="llama-3.1-8b", batch=[1, 8], seq_len=[4000, 8000], hardware="h100-sxm",
              engine="vllm-h100", gamma="auto")
    rep = build_report(q, [Strategy("self", "streamingllm", 512), Strategy("eagle", "full", 0)])
    assert set(rep.tables["best"]["strategy"]) == {"eagle + full KV"}
    inputs = rep.tables["inputs"]
    flagged = inputs[inputs["value"].str.contains("FLAGGED", regex=False)]
    assert list(flagged["input"]) == ["draft strategy: self + streamingllm 512"]
    assert any("cannot run self" in n for n in rep.notes)
    assert "cannot run self" in rep.to_html()


def test_report_best_table_leaves_out_points_beyond_the_context():
    # llama-68m: max_position_embeddings 2048; at seq_len 4000 nothing can run
    q = Query(model="llama-68m", batch=[1, 4], seq_len=[1000, 4000], hardware="a100-80gb-sxm",
              acceptance=0.8, gamma="auto")
    rep = build_report(q, [Strategy("self", "streamingllm", 256)])
    best = rep.tables["best"].set_index("seq_len")
    assert best.loc[1000, "strategy"] == "self + streamingllm 256"
    assert best.loc[4000, "strategy"].startswith("nothing can run")
    assert any("2 of 4 points" in n and "maximum context" in n for n in rep.notes)


def test_engines_show_prints_what_an_engine_runs():
    res = runner.invoke(app, ["engines", "show", "vllm-h100"])
    assert res.exit_code == 0, res.output
    assert "[supports]" in res.output and "eagle, mtp, ngram, model+full" in res.output
    assert "any draft strategy" in runner.invoke(app, ["engines", "show", "generic"]).output


def test_report_command_says_what_its_tables_leave_out(tmp_path):
    res = runner.invoke(app, ["report", "--model", "llama-3.1-8b", "--hardware", "h100-sxm",
                              "--engine", "vllm-h100", "--draft", "self,eagle", "--batch", "1,8,64",
                              "--seq-len", "4k,32k", "--out", str(tmp_path / "r.html")])
    assert res.exit_code == 0, res.output
    # llama-3.1-8b at batch 64 x 32k on one 80 GiB H100: 16 GB + 64 x 32,001 x 128 KiB = 285 GB
    assert "note: 2 of 12 points" in res.output and "do not fit in memory" in res.output
    assert "note: self + streamingllm 512: engine vllm-h100 cannot run self" in res.output
