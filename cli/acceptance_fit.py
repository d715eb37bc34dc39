"""`acceptance fit`: fit the acceptance model to the published and measured tables, print its
parameters and cross-validated error, and optionally write it as TOML (the shipped
``perfmodel/data/acceptance_model.toml`` is written this way).

Registered on the ``acceptance`` command group: ``acceptance_app.command("fit",
epilog=FIT_EPILOG)(fit_cmd)``.
"""

from __future__ import annotations

from typing import Annotated

import typer

from .options import guard

FIT_EPILOG = """\
\b
Examples:
  magicdec-model acceptance fit
  magicdec-model acceptance fit --table my_acceptance.csv --out my_model.toml
  magicdec-model acceptance fit --out perfmodel/data/acceptance_model.toml   (the shipped model)
"""


@guard
def fit_cmd(
    table: Annotated[
        list[str] | None,
        typer.Option("--table", help="Measured acceptance table(s) (CSV, the measure command's "
                     "format); default: the shipped perfmodel/data/acceptance_measured/*.csv."),
    ] = None,
    published: Annotated[
        bool, typer.Option("--published/--no-published",
                           help="Include the built-in published rows (MagicDec's budget-512 curve).")
    ] = True,
    out: Annotated[str | None, typer.Option("--out", help="Write the fitted model here (.toml).")] = None,
) -> None:
    """Fit acceptance(method, budget, context) of sparse-KV self-drafts (docs/acceptance.md)."""
    import numpy as np
    from rich.console import Console
    from rich.table import Table

    from magicdec_model.perfmodel.acceptance_model import (
        cross_validate,
        cv_summary,
        data_hashes,
        fit_model,
        fit_rows,
        model_to_toml,
    )
    from magicdec_model.perfmodel.outfiles import atomic_write_text, check_out_file

    path = check_out_file(out, (".toml",)) if out is not None else None
    rows = fit_rows(table, published=published)
    result = fit_model(rows)
    result.cv = cross_validate(rows)
    m = result.model
    console = Console(width=110, highlight=False)
    params = Table(box=None, header_style="bold", title="fitted parameters (± one standard error)")
    for col in ("group", "points", "kappa", "d0 (tokens)", "p", "residual / (1 - alpha)"):
        params.add_column(col, justify="left" if col == "group" else "right")
    key = rows["model"] + "/" + rows["draft"]
    for g in m.groups:
        i = [m.index(f"{g}:{t}") for t in ("logit_kappa", "log_d0", "log_p")]
        se = np.sqrt(np.diag(m.covariance)[i])
        k = 1.0 / (1.0 + np.exp(-m.values[i[0]]))
        d0, p = np.exp(m.values[i[1]]), np.exp(m.values[i[2]])
        params.add_row(g, str(int((key == g).sum())), f"{k:.3f} ± {k * (1 - k) * se[0]:.3f}",
                       f"{d0:.3g} ± {d0 * se[1]:.2g}", f"{p:.3f} ± {p * se[2]:.3f}",
                       f"{m.residual_rel[g]:.3f}")
    console.print(params)
    for meth in m.methods:
        j = m.index(f"method:{meth}:log_scale")
        s = float(np.exp(m.values[j]))
        console.print(f"{meth}: distance scale m = {s:.3f} ± {s * np.sqrt(m.covariance[j, j]):.3f} "
                      f"(streamingllm: 1)")
    summary = cv_summary(result.cv)
    if not summary.empty:
        cv = Table(box=None, header_style="bold", title="cross-validated error of alpha (held out)")
        for col in ("scheme", "group", "method", "points", "RMSE", "max |error|", "data's own sd"):
            cv.add_column(col, justify="left" if col in ("scheme", "group", "method") else "right")
        for _, r in summary.iterrows():
            cv.add_row(r["scheme"], r["group"], r["method"], str(int(r["points"])), f"{r['rmse']:.4f}",
                       f"{r['max_abs']:.4f}", f"{r['noise_rms']:.4f}")
        console.print(cv)
    pos = sorted((c for c in rows.columns if c.startswith("pos") and c.endswith("_rate")),
                 key=lambda c: int(c[3:-5]) if c[3:-5].isdigit() else 0)
    if pos:
        diffs = [float(np.nanmean(rows[c].to_numpy(float) - rows["acceptance"].to_numpy(float)))
                 for c in pos]
        console.print("per-position check (conditional rate at position i minus alpha, mean over rows; "
                      "0 under Eq. 1's i.i.d. assumption): "
                      + ", ".join(f"{c[:-5]} {d:+.3f}" for c, d in zip(pos, diffs, strict=True)))
    if path is not None:
        from pathlib import Path

        files = [Path(t) for t in table] if table else None
        atomic_write_text(path, model_to_toml(result, data_hashes(files)))
        typer.echo(f"wrote {path}")
