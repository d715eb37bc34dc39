"""The CLI contract of `predict`, `sweep`, `models` and `hardware`, through typer's CliRunner."""

import json

import pandas as pd
import pytest
from typer.testing import CliRunner

from magicdec_model.cli.main import app

pytestmark = pytest.mark.unit

runner = CliRunner()

EXAMPLE = [
    "predict", "--model", "llama-3.1-8b", "--draft", "self", "--kv-budget", "512",
    "--hardware", "a100-80gb-sxm", "--gpus", "8", "--batch", "32,64,128,256",
    "--seq-len", "8000,32000,100000", "--acceptance", "0.8", "--gamma", "auto",
]
CONTRACT_KEYS = {
    "model", "draft", "kv_method", "kv_budget", "hardware", "gpus", "batch", "seq_len", "gamma",
    "acceptance", "acceptance_source", "t_target_s", "t_draft_s", "t_verify_s", "expected_tokens",
    "speedup", "throughput_ar_tok_s", "throughput_sd_tok_s", "latency_ar_s", "latency_sd_s",
    "regime", "kv_fraction", "fits_memory",
}


def invoke(args):
    return runner.invoke(app, args)


def test_example_table_fits_80_columns():
    result = invoke(EXAMPLE)
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert max(len(line) for line in lines) <= 80
    # one row per (batch, seq_len): 4 x 3 = 12 data rows, each starting with the batch size
    rows = [ln for ln in lines if ln.split() and ln.split()[0] in {"32", "64", "128", "256"}]
    assert len(rows) == 12


def test_example_json_contract():
    result = invoke([*EXAMPLE, "--format", "json"])
    assert result.exit_code == 0, result.output
    rows = json.loads(result.output)
    assert len(rows) == 12
    for row in rows:
        assert CONTRACT_KEYS <= set(row)
        assert 1 <= row["gamma"] <= 16
        assert row["regime"] in {"memory", "compute"}
        assert isinstance(row["fits_memory"], bool)
        assert row["acceptance_source"] == "given by --acceptance"
    # LLaMA-3.1-8B KV: 128 KiB/token (models.md) -> 256 x 100000 tokens = 3.36e12 B > 8 x 80 GiB:
    # reported as not fitting, not dropped
    big = [r for r in rows if r["batch"] == 256 and r["seq_len"] == 100000]
    assert len(big) == 1 and big[0]["fits_memory"] is False
    small = [r for r in rows if r["batch"] == 32 and r["seq_len"] == 8000]
    assert small[0]["fits_memory"] is True


def test_csv_format_cross_product():
    result = invoke(["predict", "--batch", "1,2", "--seq-len", "4k,8k", "--kv-budget", "256,512",
                     "--gpus", "1,2", "--gamma", "2,3", "--format", "csv"])
    assert result.exit_code == 0, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 + 2 * 2 * 2 * 2 * 2
    assert lines[0].startswith("model,draft,kv_method,kv_budget,hardware,engine,gpus,batch,seq_len,gamma")


def test_acceptance_from_table_names_source():
    result = invoke(["predict", "--model", "llama-3.1-8b", "--batch", "32", "--seq-len", "8000,50000",
                     "--format", "json"])
    rows = json.loads(result.output)
    # magicdec-paper.md 3.1: 0.83 at 8000 (measured); 50000 lies between 0.81 (32K) and 0.79 (64K)
    assert rows[0]["acceptance"] == pytest.approx(0.83)
    assert rows[0]["acceptance_source"].startswith("measured")
    assert 0.79 < rows[1]["acceptance"] < 0.81
    assert rows[1]["acceptance_source"].startswith("interpolated")


def test_default_acceptance_is_named():
    result = invoke(["predict", "--model", "llama-2-7b-32k", "--draft", "tinyllama-1.1b",
                     "--batch", "32", "--seq-len", "8000", "--gpus", "8", "--format", "json"])
    assert result.exit_code == 0, result.output
    row = json.loads(result.output)[0]
    assert row["acceptance"] == 0.8
    assert "default" in row["acceptance_source"] and "tinyllama-1.1b" in row["acceptance_source"]
    # TinyLlama has 4 KV heads: at 8 GPUs they are replicated, and the output says so
    assert "replicated" in row["notes"]


def test_kv_replication_note_in_table():
    result = invoke(["predict", "--model", "llama-3.1-8b", "--gpus", "16", "--batch", "8",
                     "--seq-len", "32k"])
    assert result.exit_code == 0
    assert "replicated" in result.output


def test_ideal_mode_is_faster_and_labelled():
    base = json.loads(invoke(["predict", "--batch", "8", "--seq-len", "32k", "--format", "json"]).output)
    ideal = json.loads(invoke(["predict", "--batch", "8", "--seq-len", "32k", "--ideal",
                               "--format", "json"]).output)
    assert ideal[0]["t_target_s"] < base[0]["t_target_s"]
    assert ideal[0]["hardware"].endswith("(ideal)")


def test_hf_config_json(tmp_path):
    # A LLaMA-2-7B-shaped config without num_key_value_heads (-> MHA) and without head_dim
    cfg = {"hidden_size": 4096, "num_attention_heads": 32, "num_hidden_layers": 32,
           "intermediate_size": 11008, "vocab_size": 32000, "max_position_embeddings": 4096}
    path = tmp_path / "config.json"
    path.write_text(json.dumps(cfg))
    mine = json.loads(invoke(["predict", "--model", str(path), "--batch", "4", "--seq-len", "2000",
                              "--acceptance", "0.7", "--gamma", "3", "--format", "json"]).output)
    ref = json.loads(invoke(["predict", "--model", "llama-2-7b", "--batch", "4", "--seq-len", "2000",
                             "--acceptance", "0.7", "--gamma", "3", "--format", "json"]).output)
    assert mine[0]["t_target_s"] == pytest.approx(ref[0]["t_target_s"], rel=1e-12)
    shown = invoke(["models", "show", str(path)])
    assert "num_kv_heads       32" in shown.output and "head_dim           128" in shown.output


def test_tied_embeddings_from_config(tmp_path):
    cfg = {"hidden_size": 2048, "num_attention_heads": 32, "num_key_value_heads": 8, "head_dim": 64,
           "num_hidden_layers": 16, "intermediate_size": 8192, "vocab_size": 128256,
           "tie_word_embeddings": True}
    path = tmp_path / "config.json"
    path.write_text(json.dumps(cfg))
    shown = invoke(["models", "show", str(path)])
    assert "tie_embeddings     True" in shown.output
    # Llama-3.2-1B: 1.24 B parameters (models.md) with the LM head tied; by hand:
    # embedding 128256*2048 + 16 layers x (2048*(2048+2*512) + 2048*2048 + 3*2048*8192 + 2*2048)
    # + final norm 2048 = 262,668,288 + 16 x 60,821,504 + 2048 = 1,235,814,400
    assert "params             1,235,814,400" in shown.output


def test_sweep_csv_and_parquet(tmp_path):
    for ext in ("csv", "parquet"):
        out = tmp_path / f"grid.{ext}"
        result = invoke(["sweep", "--batch", "1,8,64", "--seq-len", "1k,32k", "--kv-budget",
                         "256,2048", "--out", str(out)])
        assert result.exit_code == 0, result.output
        df = pd.read_csv(out) if ext == "csv" else pd.read_parquet(out)
        assert len(df) == 3 * 2 * 2
        capped = df[(df["seq_len"] == 1000) & (df["kv_budget"] == 2048)]
        assert capped["notes"].str.contains("full KV").all()


def test_models_and_hardware_listings():
    models = invoke(["models", "list"])
    assert models.exit_code == 0
    for name in ("llama-2-7b-32k", "llama-3.1-8b", "qwen2.5-32b", "yi-1.5-34b", "llama-68m"):
        assert name in models.output
    hw = invoke(["hardware", "list"])
    assert hw.exit_code == 0 and "h100-sxm" in hw.output and "mi300x" in hw.output
    show = invoke(["hardware", "show", "a100-80gb-sxm"])
    assert "mem_bw" in show.output and "datasheet" in show.output.lower()


BAD_INPUTS = [
    (["predict", "--model", "llama-3.1-8x"], "llama-3.1-8b"),
    (["predict", "--hardware", "a100-80gb"], "a100-80gb-sxm"),
    (["predict", "--batch", "0"], "--batch"),
    (["predict", "--batch", "-4"], "--batch"),
    (["predict", "--batch", "3.5"], "--batch"),
    (["predict", "--seq-len", "abc"], "--seq-len"),
    (["predict", "--gpus", "0"], "--gpus"),
    (["predict", "--gpus", "1.5"], "--gpus"),
    (["predict", "--kv-budget", "-1"], "--kv-budget"),
    (["predict", "--gamma", "0"], "--gamma"),
    (["predict", "--gamma", "17"], "--gamma"),
    (["predict", "--gamma", "three"], "--gamma"),
    (["predict", "--acceptance", "1"], "--acceptance"),
    (["predict", "--acceptance", "-0.1"], "--acceptance"),
    (["predict", "--acceptance", "high"], "--acceptance"),
    (["predict", "--gpus", "3"], "--gpus 3"),
    (["predict", "--model", "llama-2-7b", "--gpus", "64"], "--gpus 64"),
    (["predict", "--kv-budget", "8192", "--seq-len", "8000"], "full KV"),
    (["predict", "--kv-method", "h2o"], "--kv-method"),
    (["predict", "--draft", "llama-3.2-1b", "--model", "llama-2-7b"], "tokenizer"),
    (["predict", "--format", "xml"], "--format"),
    (["predict", "--model", "/nonexistent/config.json"], "does not exist"),
    (["predict", "--hardware", "/nonexistent/gpu.toml"], "does not exist"),
    (["sweep", "--out", "grid.xlsx"], "--out"),
    (["models", "show", "gpt-5"], "unknown model"),
    (["hardware", "show", "tpu-v5"], "unknown hardware"),
]


@pytest.mark.parametrize(("args", "needle"), BAD_INPUTS)
def test_bad_input_one_line_exit_2(args, needle):
    result = invoke(args)
    assert result.exit_code == 2, result.output
    err = result.stderr if result.stderr else result.output
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith("error: ")
    assert needle in lines[0]
    assert "Traceback" not in result.output


def test_malformed_config_json(tmp_path):
    bad = tmp_path / "config.json"
    bad.write_text("{not json")
    result = invoke(["predict", "--model", str(bad)])
    assert result.exit_code == 2 and "not valid JSON" in result.stderr
    bad.write_text(json.dumps({"hidden_size": 4096}))
    result = invoke(["predict", "--model", str(bad)])
    assert result.exit_code == 2 and "num_attention_heads" in result.stderr


def test_malformed_toml(tmp_path):
    bad = tmp_path / "gpu.toml"
    bad.write_text("[datasheet\nmem_bw = ")
    result = invoke(["predict", "--hardware", str(bad)])
    assert result.exit_code == 2 and "not valid TOML" in result.stderr
    bad.write_text("[datasheet]\nmem_bw = 1e12\n")
    result = invoke(["predict", "--hardware", str(bad)])
    assert result.exit_code == 2 and "[efficiency]" in result.stderr
