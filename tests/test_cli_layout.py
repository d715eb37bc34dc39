"""Output people can read anywhere: every table-printing command at 80 columns (CliRunner with
COLUMNS=80, and a real pipe) drops no column and cuts no name or number; a wide terminal gets the
table, a narrow one one record per block; footers break between phrases only.

The layout itself (cli/output.py) is tested on small hand-made tables first.
"""

from __future__ import annotations

import os
import re

import pytest
from layout_cases import COMMANDS, _args, _check
from rich.console import Console
from typer.testing import CliRunner

from magicdec_model.cli.main import app
from magicdec_model.cli.output import Column, legend, show, wrap

pytestmark = pytest.mark.unit

# ------------------------------------------------------------------ the layout, by hand


COLS = [Column("name", left=True), Column("γ", "gamma"), Column("80% range", "80% interval")]
ROWS = [["llama-3.2-1b", "4", "1.82-2.17"], ["a-rather-long-draft-name", "12", "0.95-1.03"]]


def _render(width: int, fn=show, *args) -> str:
    con = Console(width=width, record=True, file=open(os.devnull, "w"), highlight=False)  # noqa: SIM115
    fn(*args, con=con, width=width)
    con.file.close()
    return con.export_text()


def test_a_table_that_fits_is_printed_as_a_table():
    # natural width: 24 (longest name) + 1 + 2 ("12") + 1 + 9 ("80% range") = 37 columns
    text = _render(37, show, COLS, ROWS)
    lines = text.splitlines()
    assert lines[0].split() == ["name", "γ", "80%", "range"]
    assert lines[2] == "a-rather-long-draft-name 12 0.95-1.03"
    assert len(lines) == 3


def test_one_column_too_narrow_gives_one_record_per_block_with_every_value_whole():
    text = _render(36, show, COLS, ROWS)
    assert "name: llama-3.2-1b" in text and "gamma: 4" in text and "80% interval: 1.82-2.17" in text
    assert "name: a-rather-long-draft-name" in text and "80% interval: 0.95-1.03" in text
    assert all(len(ln) <= 36 for ln in text.splitlines())
    # a block's continuation lines are indented; each record starts flush left
    starts = [ln for ln in text.splitlines() if not ln.startswith(" ")]
    assert len(starts) == 2


def test_legend_breaks_between_phrases_and_wrap_between_words():
    phrases = ["speedup = Ω / (γT_D/T_T + T_V/T_T) (MagicDec Eq. 1)",
               "KV: draft KV method and budget (stream = StreamingLLM, snap = SnapKV)", "acc = acceptance"]
    text = _render(80, legend, phrases)
    lines = text.splitlines()
    # phrases 1 and 2 fit one line of 80 together (86 columns do not: a break between them)
    assert lines == [phrases[0] + ";", phrases[1] + ";", phrases[2]]
    text = _render(130, legend, phrases)
    assert text.splitlines() == [phrases[0] + "; " + phrases[1] + ";", phrases[2]]
    assert wrap("one two three", 8) == ["one two", "  three"]
    assert wrap("averyveryverylongword x", 8) == ["averyveryverylongword", "  x"]  # never cut
    # a number keeps its unit: never 'SD loop 0.5' / 'ms/iteration'
    assert wrap("SD loop 0.5 ms/iteration", 14) == ["SD loop", "  0.5 ms/iteration"]
    assert wrap("carry 80% intervals", 12) == ["carry", "  80% intervals"]


# ------------------------------------------------------------------ every command, in process


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_every_command_at_80_columns_cuts_nothing(name, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    res = CliRunner().invoke(app, _args(name), env={"COLUMNS": "80"})
    assert res.exit_code == 0, res.output
    _check(res.stdout, name, 80)


@pytest.mark.parametrize("name", ["predict", "advise", "compare-paper", "models-list"])
def test_a_wide_terminal_gets_the_table(name):
    res = CliRunner().invoke(app, _args(name), env={"COLUMNS": "200"})
    assert res.exit_code == 0, res.output
    _check(res.stdout, name, 200)
    assert not re.search(r"^\w[\w ]*: ", res.stdout.splitlines()[2])  # a row, not a block line


def test_predict_example_keeps_its_table_at_80_columns():
    """The README's first example fits 80 columns as a table: one row per point, every column."""
    res = CliRunner().invoke(app, COMMANDS["predict"][0], env={"COLUMNS": "80"})
    lines = res.stdout.splitlines()
    header = lines[1].split()
    for col in ("B", "S", "T_tgt", "T_drf", "T_ver", "γ", "Ω", "spdup", "AR/s", "SD/s", "regime", "fit"):
        assert col in header
    rows = [ln for ln in lines if ln.split() and ln.split()[0] in {"32", "64", "128", "256"}]
    assert len(rows) == 12


def test_the_tree_example_prints_no_nan():
    res = CliRunner().invoke(app, ["predict", "--draft", "eagle", "--gamma", "4", "--verify-tokens", "21",
                                   "--accept-len", "3.5"], env={"COLUMNS": "80"})
    assert res.exit_code == 0, res.output
    assert "nan" not in res.stdout.lower()
    assert "acceptance: --accept-len 3.5 tokens per step" in res.stdout
