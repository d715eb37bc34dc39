"""Everything the commands print for people: one layout for every table, and the formatting of
prediction DataFrames (table, CSV or JSON).

The layout rule (:func:`show`): a table is printed as a table only where its natural width (every
column as wide as its widest cell) fits the output; otherwise every row becomes a block, one record
per block: its ``name: value`` fields packed into lines, continuation lines indented.  No column is
dropped and no cell is cut, whatever the width.  The width is the terminal's, or ``$COLUMNS``, or
80 where stdout is a pipe or a file (rich's rule).  Footers and legends are wrapped between phrases
(:func:`legend`), long text between words with a hanging indent (:func:`wrap`), never inside a word
nor between a number and its unit.
"""

from __future__ import annotations

import json
import re
import sys
import textwrap
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from rich.cells import cell_len
from rich.console import Console
from rich.text import Text

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

    from magicdec_model.perfmodel.engine import EngineProfile

#: Spaces between two table columns.
GAP = 1
#: Spaces between two fields on one line of a block.
GAP_BLOCK = 3
#: Indent of the continuation lines of a wrapped line.
HANG = "  "


def console() -> Console:
    """The console every command prints with: no syntax highlighting, rich's width rule."""
    return Console(highlight=False)


def width_of(con: Console | None = None) -> int:
    """Columns available for output: the terminal's, ``$COLUMNS``, or 80 for a pipe (at least 20)."""
    return max(20, (con or console()).width)


@dataclass(frozen=True)
class Column:
    """A table column: its header, its name in the one-record-per-block layout, its alignment."""

    head: str
    name: str = ""
    left: bool = False

    @property
    def label(self) -> str:
        """The column's name where it labels a value in a block."""
        return self.name or self.head


Cell = str | Text


def _text(cell: Cell) -> Text:
    return cell if isinstance(cell, Text) else Text(str(cell))


def styled(value: str, style: str | None) -> Text:
    """A cell printed in ``style`` on a terminal (plain text on a pipe)."""
    return Text(value, style=style or "")


#: A number ('0.5', '1,024', '80%', '2.1x'), kept on one line with the short word after it, its unit.
_NUMBER = re.compile(r"[-+(]?[\d][\d.,]*(%|x)?")
#: Longest word kept with the number before it.
_UNIT_LEN = 16
_NBSP = "\u00a0"


def _glue_units(text: str) -> str:
    words = text.split(" ")
    out = [words[0]]
    for prev, word in zip(words, words[1:], strict=False):
        glue = _NUMBER.fullmatch(prev) is not None and 0 < len(word) <= _UNIT_LEN
        out.append((_NBSP if glue else " ") + word)
    return "".join(out)


def wrap(text: str, width: int, indent: str = HANG) -> list[str]:
    """``text`` in lines of at most ``width`` columns, broken between words only (a word longer than
    the line stays whole, and a number stays with the word after it, its unit); continuation lines
    indented by ``indent``."""
    glued = _glue_units(text)  # textwrap breaks at ASCII whitespace only
    lines = textwrap.wrap(glued, width=width, subsequent_indent=indent, break_long_words=False,
                          break_on_hyphens=False)
    return [ln.replace(_NBSP, " ") for ln in lines] or [""]


def natural_width(columns: Sequence[Column], rows: Sequence[Sequence[Cell]]) -> int:
    """Width of the table with every column as wide as its widest cell or header."""
    widths = [cell_len(c.head) for c in columns]
    for row in rows:
        for i, cell in enumerate(row):
            widths[i] = max(widths[i], _text(cell).cell_len)
    return sum(widths) + GAP * (len(columns) - 1)


def table_lines(columns: Sequence[Column], rows: Sequence[Sequence[Cell]]) -> list[Text]:
    """The rows as aligned table lines (header first), every cell whole."""
    widths = [cell_len(c.head) for c in columns]
    cells = [[_text(c) for c in row] for row in rows]
    for row in cells:
        for i, cell in enumerate(row):
            widths[i] = max(widths[i], cell.cell_len)

    def line(items: Sequence[Text], style: str = "") -> Text:
        out = Text(style=style)
        for i, (col, cell) in enumerate(zip(columns, items, strict=True)):
            pad = " " * (widths[i] - cell.cell_len)
            last = i == len(columns) - 1
            out.append_text(Text(cell.plain + ("" if last else pad), style=cell.style) if col.left
                            else Text(pad) + cell)
            if not last:
                out.append(" " * GAP)
        out.rstrip()
        return out

    return [line([Text(c.head) for c in columns], "bold"), *(line(r) for r in cells)]


def block_lines(columns: Sequence[Column], rows: Sequence[Sequence[Cell]], width: int) -> list[Text]:
    """One block per row: its ``name value`` fields packed into lines of at most ``width`` columns,
    continuation lines indented; a field is never split unless it alone is longer than a line (then
    it is wrapped between words)."""
    out: list[Text] = []
    for row in rows:
        block: list[Text] = []
        for col, cell in zip(columns, row, strict=True):
            cell = _text(cell)
            field = Text(f"{col.label}: ", style="bold") + cell
            lead = HANG if block else ""
            if block and block[-1].cell_len + GAP_BLOCK + field.cell_len <= width:
                block[-1].append(" " * GAP_BLOCK)
                block[-1].append_text(field)
            elif cell_len(lead) + field.cell_len <= width:
                block.append(Text(lead) + field)
            else:
                for k, part in enumerate(wrap(f"{col.label}: {cell.plain}", width - len(HANG), HANG)):
                    block.append(Text(("" if not block and k == 0 else HANG) + part, style=cell.style))
        out.extend(block)
    return out


def show(columns: Sequence[Column], rows: Sequence[Sequence[Cell]], con: Console | None = None,
         width: int | None = None) -> str:
    """Print ``rows`` as a table where it fits the width, else one record per block; return the
    layout used ('table' or 'blocks')."""
    con = con or console()
    width = width or width_of(con)
    if natural_width(columns, rows) <= width:
        lines, layout = table_lines(columns, rows), "table"
    else:
        lines, layout = block_lines(columns, rows, width), "blocks"
    for ln in lines:
        con.print(ln, soft_wrap=True, crop=False, overflow="ignore")
    return layout


def say(text: str, con: Console | None = None, style: str = "", width: int | None = None,
        indent: str = HANG) -> None:
    """Print one sentence or line of text, wrapped between words to the width (no markup)."""
    con = con or console()
    for ln in wrap(text, width or width_of(con), indent):
        con.print(Text(ln, style=style), soft_wrap=True, crop=False, overflow="ignore")


def described(rows: Iterable[tuple[str, str, str]], con: Console | None = None, indent: str = "  ",
              width: int | None = None, key_width: int = 0) -> None:
    """Print ``(key, value, note)`` lines, keys and values aligned; a line too long for the width
    is wrapped between words under the note's column (or the value's, or a short indent, where that
    column leaves too little room)."""
    con = con or console()
    width = width or width_of(con)
    rows = list(rows)
    if not rows:
        return
    kw = key_width or max(cell_len(k) for k, _, _ in rows)  # a longer key overflows its column
    vw = max(cell_len(v) for _, v, n in rows if n) if any(n for _, _, n in rows) else 0
    for key, value, note in rows:
        head = f"{indent}{key.ljust(kw)} "
        text = head + (f"{value.ljust(vw)}  {note}" if note else value)
        hang = " " * (len(head) + vw + 2) if note else " " * len(head)
        if width - len(hang) < 30:
            hang = " " * len(head) if width - len(head) >= 30 else indent + "    "
        for ln in wrap(text, width, hang):
            con.print(Text(ln), soft_wrap=True, crop=False, overflow="ignore")


def command(words: Sequence[str], con: Console | None = None, width: int | None = None) -> None:
    """Print a shell command that can be pasted as printed: ``words`` (already quoted; a flag and its
    value may be one item, kept on one line) joined into lines broken between items, each line but
    the last ending in a backslash continuation."""
    con = con or console()
    width = width or width_of(con)
    lines: list[str] = []
    for word in words:
        if lines and cell_len(lines[-1]) + 1 + cell_len(word) + 2 <= width:
            lines[-1] += " " + word
        else:
            lines.append(("    " if lines else "") + word)
    for n, ln in enumerate(lines):
        con.print(Text(ln + (" \\" if n < len(lines) - 1 else "")), soft_wrap=True, crop=False,
                  overflow="ignore")


def legend(items: Iterable[str], con: Console | None = None, style: str = "dim",
           width: int | None = None, sep: str = "; ") -> None:
    """Print short phrases joined by ``sep``, packed into lines without breaking a phrase (a phrase
    longer than a line is wrapped between its words)."""
    con = con or console()
    width = width or width_of(con)
    lines: list[str] = []
    for item in items:
        if lines and cell_len(lines[-1] + sep + item) <= width:
            lines[-1] += sep + item
        else:
            if lines:
                lines[-1] += sep.rstrip()
            lines.extend(wrap(item, width))
    for ln in lines:
        con.print(Text(ln, style=style), soft_wrap=True, crop=False, overflow="ignore")


FORMATS = ("table", "csv", "json")


def _tokens(n: float) -> str:
    if n >= 1000 and n % 1000 == 0:
        return f"{int(n) // 1000}K"
    return f"{int(n)}"


def _rate(x: float) -> str:
    if x >= 1e6:
        return f"{x / 1e6:.1f}M"
    if x >= 1e4:
        return f"{x / 1e3:.0f}k"
    if x >= 1e3:
        return f"{x / 1e3:.1f}k"
    return f"{x:.0f}"


def _ms(x: float) -> str:
    ms = x * 1e3
    return f"{ms:.2f}" if ms < 10 else f"{ms:.1f}" if ms < 100 else f"{ms:.0f}"


def records(df: pd.DataFrame) -> list[dict]:
    """Rows as JSON-ready dicts with the contract's columns (numpy scalars converted)."""
    from magicdec_model.perfmodel.sweep import RESULT_COLUMNS
    cols = [c for c in RESULT_COLUMNS if c in df.columns]
    return json.loads(df[cols].to_json(orient="records"))


def records_plain(df: pd.DataFrame, fmt: str) -> None:
    """Write any DataFrame to stdout as ``csv`` or ``json`` (all columns)."""
    if fmt == "json":
        sys.stdout.write(df.to_json(orient="records", indent=1) + "\n")
    else:
        df.to_csv(sys.stdout, index=False)


def emit(df: pd.DataFrame, fmt: str, width: int | None = None,
         engine: EngineProfile | None = None) -> None:
    """Write ``df`` to stdout as ``table``, ``csv`` or ``json`` (``engine`` for the table's footer)."""
    if fmt == "json":
        json.dump(records(df), sys.stdout, indent=1)
        sys.stdout.write("\n")
    elif fmt == "csv":
        from magicdec_model.perfmodel.sweep import RESULT_COLUMNS
        cols = [c for c in RESULT_COLUMNS if c in df.columns]
        df[cols].to_csv(sys.stdout, index=False)
    else:
        print_table(df, width=width, engine=engine)


def engine_footer(engine: EngineProfile) -> list[str]:
    """Lines saying which engine the step times rest on and how their intervals were made."""
    from magicdec_model.perfmodel.intervals import LEVEL
    lines = [engine.describe() + "."]
    if engine.calibrated:
        cal = engine.calibration
        cv = (f"{cal.get('cv', 'cross')}-validated {cal['mape_cv_pct']:.1f}%" if "mape_cv_pct" in cal
              else "not cross-validated")
        fit = f"in-sample MAPE {cal['mape_in_sample_pct']:.1f}%, " if "mape_in_sample_pct" in cal else ""
        lines.append(
            f"  calibrated on {cal.get('points')} measured steps of {cal.get('model')} on "
            f"{cal.get('hardware')} ({fit}{cv}); "
            f"{LEVEL:.0%} intervals from its covariance and residual spread"
        )
    elif engine.uncertain_parameters():
        lines.append(f"  {LEVEL:.0%} intervals from the engine's declared uncertainties "
                     "(not calibrated: 'magicdec-model calibrate' fits one to your measured steps)")
    else:
        lines.append("  no uncertainty declared: the intervals have zero width")
    return lines


def _fit_cell(r: pd.Series) -> Text:
    """The table's fit column: yes, NO (memory) or ctx (beyond the model's maximum context)."""
    if not r["fits_memory"]:
        return styled("NO", "red")
    return styled("yes", None) if r.get("within_context", True) else styled("ctx", "red")


def print_table(df: pd.DataFrame, width: int | None = None,
                engine: EngineProfile | None = None) -> None:
    """Print the predictions (one row per point and strategy) with :func:`show`, then a legend."""
    import numpy as np
    import pandas as pd

    from magicdec_model.perfmodel.feasibility import Infeasible
    from magicdec_model.perfmodel.sweep import MEMORY_UTILIZATION
    con = console()
    width = width or width_of(con)
    first = df.iloc[0]
    ideal = " [ideal: speed of light]" if bool(first["ideal"]) else ""
    strategies = df[["draft", "kv_method"]].drop_duplicates()
    if len(strategies) == 1:
        say(f"{first['model']} drafted by {first['draft']} ({first['kv_method']}) on "
            f"{first['hardware']}{ideal}", con, "bold", width)
    else:
        say(f"{first['model']} on {first['hardware']}{ideal}: {len(strategies)} draft strategies",
            con, "bold", width)
    ranged = bool((df["speedup_hi"] > df["speedup_lo"]).any()) if "speedup_lo" in df else False
    for _, strategy in strategies.iterrows():
        part = df[(df["draft"] == strategy["draft"]) & (df["kv_method"] == strategy["kv_method"])]
        if len(strategies) > 1:
            say(f"draft {strategy['draft']} ({strategy['kv_method']}):", con, "bold", width)
        multi = {c: part[c].nunique() > 1 for c in ("gpus", "kv_budget")}
        cols: list[Column] = []
        if multi["kv_budget"]:
            cols.append(Column("budg", "KV budget"))
        if multi["gpus"]:
            cols.append(Column("G", "GPUs"))
        cols += [Column("B", "batch"), Column("S", "seq_len"), Column("T_tgt", "T_target ms"),
                 Column("T_drf", "T_draft ms"), Column("T_ver", "T_verify ms"), Column("γ", "gamma"),
                 Column("Ω", "Omega"), Column("spdup", "speedup")]
        cols += [Column("80% range", "80% interval")] if ranged else []
        cols += [Column("AR/s", "AR tok/s"), Column("SD/s", "SD tok/s"), Column("SD ms", "SD ms/token"),
                 Column("regime", "regime, KV share", left=True), Column("fit", "fits memory", left=True)]
        rows = []
        for _, r in part.iterrows():
            cells: list[Cell] = []
            if multi["kv_budget"]:
                cells.append(str(r["kv_budget"]))
            if multi["gpus"]:
                cells.append(str(r["gpus"]))
            regime = f"{'mem' if r['regime'] == 'memory' else 'cmp'} {100 * r['kv_fraction']:.0f}%"
            cells += [
                str(r["batch"]), _tokens(r["seq_len"]), _ms(r["t_target_s"]), _ms(r["t_draft_s"]),
                _ms(r["t_verify_s"]), str(r["gamma"]), f"{r['expected_tokens']:.2f}",
                styled(f"{r['speedup']:.2f}", "red" if r["speedup"] < 1 else None),
                *([f"{r['speedup_lo']:.2f}-{r['speedup_hi']:.2f}"] if ranged else []),
                _rate(r["throughput_ar_tok_s"]), _rate(r["throughput_sd_tok_s"]), _ms(r["latency_sd_s"]),
                regime, _fit_cell(r),
            ]
            rows.append(cells)
        show(cols, rows, con, width)
    legend([
        "T_* step times in ms (target decode, one draft step, verify gamma+1)",
        "Ω tokens/step",
        "AR/s, SD/s tokens/s",
        "AR ms/token = T_tgt",
        "regime of the target step and its KV-read share",
        f"fit = weights + KV caches within {MEMORY_UTILIZATION:.0%} of GPU memory (NO: they are not; "
        "ctx: beyond the model's maximum context)",
    ], con, width=width)
    lost = Infeasible.of(df).describe("rows")
    if lost:
        say(f"{lost}; flagged NO / ctx in the fit column", con, "yellow", width)
    if engine is not None:
        for line in engine_footer(engine):
            say(line.strip(), con, "dim", width)
    elif "engine" in df:
        say(f"engine: {', '.join(pd.unique(df['engine']))}", con, "dim", width)
    for src in pd.unique(df["acceptance_source"]):
        accs = df.loc[df["acceptance_source"] == src, "acceptance"].to_numpy(float)
        accs = accs[np.isfinite(accs)]
        span = "acceptance"  # none per token where a tree's tokens per step are given
        if accs.size:
            lo, hi = float(np.min(accs)), float(np.max(accs))
            span += f" {lo:.3g}" if lo == hi else f" {lo:.3g}-{hi:.3g}"
        say(f"{span}: {src}", con, "dim", width)
    for note in pd.unique(df["notes"]):
        if note:
            say(f"note: {note}", con, "yellow", width)
