"""`acceptance measure`: the estimators and intervals by hand, the table that predict reads
unchanged, the row rule for several gammas / temperatures, bad flags, and (slow) the real model."""

from __future__ import annotations

import csv
import io

import numpy as np
import pandas as pd
import pytest

from magicdec_model.perfmodel.acceptance import load_table, lookup
from magicdec_model.validate.acceptance_table import (
    TABLE_COLUMNS,
    pool,
    table_csv,
    table_rows,
    wilson,
)

pytestmark = pytest.mark.unit

# three windows, gamma 4: rounds by accepted count a = 0..4
RUNS = [
    {"accept_counts": [1, 0, 2, 0, 3], "accepted": 16, "rejections": 3, "rounds": 6},
    {"accept_counts": [2, 1, 0, 1, 1], "accepted": 8, "rejections": 4, "rounds": 5},
    {"accept_counts": [0, 1, 1, 1, 2], "accepted": 14, "rejections": 3, "rounds": 5},
]


def test_pooled_estimators_by_hand():
    est = pool(RUNS, gamma=4)
    # accepted 16 + 8 + 14 = 38 of tested (16+3) + (8+4) + (14+3) = 48
    assert est["acceptance"] == pytest.approx(38 / 48)
    assert est["accepted_per_drafted"] == pytest.approx(38 / (4 * 16))
    # emitted per step: (38 accepted + 16 corrections/bonuses) / 16 steps
    assert est["tokens_per_step"] == pytest.approx(54 / 16)
    # pooled counts 3 2 3 2 6 (16 rounds): reached position i = 16, 13, 11, 8, 6
    assert [est[f"pos{i}_rate"] for i in range(1, 5)] == pytest.approx([13 / 16, 11 / 13, 8 / 11, 6 / 8])
    assert (est["n_windows"], est["n_steps"]) == (3, 16)
    # cluster interval, worked by hand: r = 38/48; residuals 16 - 19r, 8 - 12r, 14 - 17r =
    # 0.958333, -1.5, 0.541667; var = 3/2 * 3.461806 / 48^2 = 0.0022538, se = 0.047474,
    # t(0.975, 2 df) = 4.302653 -> half-width 0.204264
    assert (est["acceptance_lo"], est["acceptance_hi"]) == pytest.approx((0.587403, 0.995931), abs=2e-6)
    # tokens per step: residuals 22 - 6r, 13 - 5r, 19 - 5r with r = 3.375: 1.75, -3.875, 2.125;
    # var = 3/2 * 22.59375 / 16^2 = 0.132385, se = 0.363848 -> half-width 1.565512
    assert (est["tokens_per_step_lo"], est["tokens_per_step_hi"]) == pytest.approx((1.809488, 4.940512),
                                                                                    abs=2e-6)


def test_wilson_interval_matches_the_textbook_value():
    # 8 successes of 10 at 95 %: Wilson score interval (0.4902, 0.9433) (e.g. Newcombe 1998,
    # Stat. Med. 17:857, method 3, worked with z = 1.96)
    assert wilson(8, 10) == pytest.approx((0.4902, 0.9433), abs=1e-4)


def test_one_window_and_unreached_positions():
    est = pool([{"accept_counts": [3, 0, 0], "accepted": 0, "rejections": 3, "rounds": 3}], gamma=2)
    assert est["acceptance"] == 0.0 and est["acceptance_lo"] == 0.0 and 0 < est["acceptance_hi"] < 1
    assert est["pos1_rate"] == 0.0 and est["pos2_rate"] is None  # position 2 never reached
    assert est["tokens_per_step"] == 1.0 == est["tokens_per_step_lo"]


META = {"model": "smollm2-135m", "draft": "self", "dataset": "test text", "source": "hand-made",
        "new_tokens": 64}


def _log_rows(**over):
    base = {"method": "streamingllm", "budget": 64, "seq_len": 512, "gamma": 4, "temperature": 0.0}
    return [{**base, **over, **r, "accept_counts": " ".join(map(str, r["accept_counts"]))} for r in RUNS]


def test_table_is_read_unchanged_and_the_rule_for_several_gammas(tmp_path):
    rows = table_rows(_log_rows() + _log_rows(gamma=2, temperature=1.0)
                      + _log_rows(budget=128, seq_len=1024), META)
    text = table_csv(rows)
    header = next(csv.reader(io.StringIO(text)))
    assert header[:8] == ["model", "draft", "method", "budget", "seq_len", "acceptance", "dataset", "source"]
    assert header[: len(TABLE_COLUMNS)] == list(TABLE_COLUMNS)
    assert header[len(TABLE_COLUMNS):] == ["pos1_rate", "pos2_rate", "pos3_rate", "pos4_rate"]
    path = tmp_path / "acc.csv"
    path.write_text(text)
    table = load_table(path)
    assert {"acceptance_lo", "n_steps", "pos4_rate"} <= set(table.columns)  # extra columns kept
    # the greedy row (temperature 0) is used for budget 64 at 512, not the sampled gamma-2 one
    got = lookup(table, "smollm2-135m", "self", "streamingllm", 64, np.array([512.0]))
    assert got.value[0] == pytest.approx(38 / 48, abs=1e-6)
    assert got.source[0].startswith("measured: hand-made")


def test_rule_prefers_lowest_temperature_then_most_steps(tmp_path):
    base = {"model": "m", "draft": "self", "method": "snapkv", "budget": 64, "seq_len": 100,
            "dataset": "d", "source": "s"}
    df = pd.DataFrame([
        {**base, "acceptance": 0.1, "temperature": 1.0, "n_steps": 900, "n_windows": 8},
        {**base, "acceptance": 0.2, "temperature": 0.0, "n_steps": 10, "n_windows": 8},
        {**base, "acceptance": 0.3, "temperature": 0.0, "n_steps": 50, "n_windows": 8},
        {**base, "acceptance": 0.4, "temperature": 0.0, "n_steps": 50, "n_windows": 4},
    ])
    path = tmp_path / "t.csv"
    df.to_csv(path, index=False)
    got = lookup(load_table(path), "m", "self", "snapkv", 64, np.array([100.0]))
    assert got.value[0] == pytest.approx(0.3)  # greedy, most steps, then the first in the file
    # one measurement (same conditions) with two acceptances is refused, not silently dropped
    from magicdec_model.perfmodel.errors import InputError

    df.loc[3, "n_windows"] = 8
    df.to_csv(path, index=False)
    with pytest.raises(InputError, match="rows 3 and 4"):
        load_table(path)


def test_extra_column_with_a_bad_value_is_a_one_line_error(tmp_path):
    from magicdec_model.perfmodel.errors import InputError

    path = tmp_path / "t.csv"
    path.write_text("model,draft,method,budget,seq_len,acceptance,dataset,source,temperature\n"
                    "m,self,snapkv,64,100,0.5,d,s,hot\n")
    with pytest.raises(InputError, match="temperature='hot'"):
        load_table(path)


BAD_FLAGS = [
    (["--kv-method", "h2o"], "--kv-method 'h2o' is not one of"),
    (["--kv-budget", "2"], "--kv-budget"),
    (["--seq-len", "0"], "--seq-len"),
    (["--gamma", "0"], "--gamma"),
    (["--temperature", "-1"], "--temperature"),
    (["--temperature", "nan"], "--temperature"),
    (["--windows", "0"], "--windows"),
    (["--new-tokens", "1"], "--new-tokens"),
    (["--out", "acc.txt"], "must end in .csv"),
    (["--text", "/nonexistent/file.txt"], "--text"),
    (["--checkpoint", "/nonexistent.gguf"], "--checkpoint"),
]


@pytest.mark.parametrize(("args", "needle"), BAD_FLAGS, ids=[a[0] for a, _ in BAD_FLAGS])
def test_bad_flags_are_one_line_errors_with_exit_2(tmp_path, monkeypatch, args, needle):
    from typer.testing import CliRunner

    from magicdec_model.cli.main import app

    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(app, ["acceptance", "measure", "--out", "acc.csv", *args])
    assert result.exit_code == 2, result.output
    lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and needle in lines[0], lines
    assert not (tmp_path / "acc.csv").exists()


# --------------------------------------------------------------------------- the real model (slow)
@pytest.fixture(scope="module")
def smollm2():
    pytest.importorskip("torch")
    pytest.importorskip("gguf")
    pytest.importorskip("tokenizers")
    from magicdec_model.perfmodel.errors import InputError
    from magicdec_model.validate.real_model import load_real_model, smollm2_path

    try:
        smollm2_path()
    except InputError as exc:  # CI installs it; a bare checkout may not
        pytest.skip(str(exc))
    return load_real_model("smollm2")


@pytest.mark.slow
@pytest.mark.timeout(600)
@pytest.mark.usefixtures("single_torch_thread")
def test_real_model_greedy_sd_equals_ar_on_real_text(smollm2):
    import torch

    from magicdec_model.validate.corpus import token_windows
    from magicdec_model.validate.speculative_loop import (
        DraftKV,
        autoregressive_generate,
        speculative_generate,
    )

    prompt = torch.tensor(token_windows(smollm2.tokenizer, 200, 3)[1:])  # two windows, one batch
    ar = autoregressive_generate(smollm2.decoder, prompt, 16, backend="torch").tokens
    for kv in (DraftKV("streamingllm", budget=48), DraftKV("snapkv", budget=64)):
        sd = speculative_generate(smollm2.decoder, prompt, 16, gamma=4, draft_kv=kv, backend="torch")
        assert torch.equal(sd.tokens, ar), kv.method
        assert 0.0 < sd.acceptance_rate < 1.0  # a small budget loses some agreement on real text


@pytest.mark.slow
@pytest.mark.timeout(900)
@pytest.mark.usefixtures("single_torch_thread")
def test_real_model_measure_resume_and_predict_reads_the_table(smollm2, tmp_path):
    from typer.testing import CliRunner

    from magicdec_model.cli.main import app

    out = tmp_path / "acc.csv"
    base = ["acceptance", "measure", "--checkpoint", "smollm2", "--seq-len", "96,160", "--gamma", "3",
            "--windows", "2", "--batch", "2", "--new-tokens", "8", "--out", str(out)]
    first = CliRunner().invoke(app, [*base, "--kv-budget", "32,512"])
    assert first.exit_code == 0, first.output
    table = pd.read_csv(out)
    assert len(table) == 2 * 2 * 2  # methods x budgets x contexts
    full = table[table["budget"] >= table["seq_len"]]
    assert (full["acceptance"] == 1.0).all() and (full["pos3_rate"] == 1.0).all()
    assert (table["n_windows"] == 2).all()
    # without --resume the log is not overwritten; with other settings --resume is refused
    again = CliRunner().invoke(app, [*base, "--kv-budget", "32,512"])
    assert again.exit_code == 2 and "--resume" in again.stderr
    other = CliRunner().invoke(app, [*base[:-4], "--new-tokens", "9", "--out", str(out), "--kv-budget", "32",
                                     "--resume"])
    assert other.exit_code == 2 and "new_tokens" in other.stderr
    # --resume adds a budget and measures only the new runs
    more = CliRunner().invoke(app, [*base, "--kv-budget", "32,64,512", "--resume"])
    assert more.exit_code == 0, more.output
    assert "measured 8 run(s), 16 already logged" in more.stdout
    assert len(pd.read_csv(out)) == 12
    # predict takes the file unchanged
    res = CliRunner().invoke(app, ["predict", "--model", "smollm2-135m", "--hardware", "a100-80gb-sxm",
                                   "--batch", "1", "--seq-len", "160", "--kv-budget", "64", "--gamma", "3",
                                   "--acceptance-table", str(out), "--format", "csv"])
    assert res.exit_code == 0, res.output
    row = pd.read_csv(io.StringIO(res.stdout)).iloc[0]
    measured = pd.read_csv(out).query("method == 'streamingllm' and budget == 64 and seq_len == 160")
    assert row["acceptance"] == pytest.approx(measured["acceptance"].iloc[0], abs=1e-6)
