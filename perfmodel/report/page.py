"""Self-contained HTML pages with plotly figures: the one place that writes the page skeleton.

Shared by the design-space report (:mod:`.build`) and validate's predicted-vs-measured report
(:mod:`magicdec_model.validate.report`): a head with the style sheet and plotly.js inlined once (the
page opens offline, no CDN), figures as divs, pandas tables as HTML tables, atomic writing.
"""

from __future__ import annotations

import html
from pathlib import Path

import pandas as pd
import plotly.graph_objects as go
import plotly.io as pio
from plotly.offline import get_plotlyjs

from ..outfiles import atomic_write_text

#: plotly's options for every figure of a page: no plotly logo, resizes with the window.
PLOTLY_CONFIG = {"displaylogo": False, "responsive": True}

STYLE = (
    "body{font-family:sans-serif;margin:16px 24px;color:#222}"
    "table{border-collapse:collapse;font-size:13px;margin-bottom:24px}"
    "td,th{border:1px solid #ccc;padding:3px 6px;text-align:left;vertical-align:top}"
    "th{background:#f0f0f0}.caption{color:#555;font-size:13px;margin:0 0 28px 0}"
)


def slug(key: str) -> str:
    """An HTML id for a figure key: ``fig-`` and the key with every non-alphanumeric character as ``-``."""
    return "fig-" + "".join(ch if ch.isalnum() else "-" for ch in key).strip("-")


def figure_div(fig: go.Figure, div_id: str) -> str:
    """The figure as a ``<div id=div_id>`` and the script that draws it (plotly.js not included)."""
    return pio.to_html(fig, include_plotlyjs=False, full_html=False, div_id=div_id,
                       config=PLOTLY_CONFIG, validate=False)


def figure_section(key: str, fig: go.Figure, caption: str) -> str:
    """A ``<section data-figure=key>``: the figure (id from :func:`slug`) and its caption below."""
    return (f'<section class="figure" data-figure="{html.escape(key)}">{figure_div(fig, slug(key))}'
            f'<p class="caption">{html.escape(caption)}</p></section>')


def table_html(df: pd.DataFrame, table_id: str | None = None) -> str:
    """The frame as an HTML table: column names as the header, values escaped, missing values empty,
    no index."""
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in df.columns)
    body = []
    for row in df.itertuples(index=False):
        cells = "".join(
            f"<td>{'' if pd.isna(v) else html.escape(str(v))}</td>" for v in row
        )
        body.append(f"<tr>{cells}</tr>")
    attrs = f' id="{html.escape(table_id)}"' if table_id else ""
    return (f"<table{attrs}><thead><tr>{head}</tr></thead>"
            f"<tbody>{''.join(body)}</tbody></table>")


def html_page(title: str, body: str) -> str:
    """A complete page: head (title, style, plotly.js inlined once), ``<h1>title</h1>``, then ``body``
    (HTML, inserted as given)."""
    return (
        "<!DOCTYPE html><html><head><meta charset=\"utf-8\">"
        f"<title>{html.escape(title)}</title><style>{STYLE}</style>"
        f'<script type="text/javascript">{get_plotlyjs()}</script></head><body>'
        f"<h1>{html.escape(title)}</h1>"
        + body + "</body></html>"
    )


def write_page(path: str | Path, page: str) -> Path:
    """Write ``page`` to ``path`` (UTF-8, atomically: a complete file or none) and return the path."""
    return atomic_write_text(path, page)
