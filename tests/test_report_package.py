"""Layout of the report package: the numbers side imports no plotly, the package's names load lazily,
plotly stays inside the report package, and validate's page is written by the shared page module."""

from __future__ import annotations

import importlib
import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[1]


def _modules_after(statement: str) -> list[str]:
    """Top-level plotly and the report package's modules loaded by ``statement`` in a fresh process."""
    code = (f"import json, sys; {statement}; "
            "print(json.dumps(sorted(m for m in sys.modules if m == 'plotly' "
            "or m.startswith('magicdec_model.perfmodel.report'))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


@pytest.mark.e2e
@pytest.mark.timeout(240)
def test_importing_the_grid_module_does_not_import_plotly():
    loaded = _modules_after("import magicdec_model.perfmodel.report.grid")
    assert loaded == ["magicdec_model.perfmodel.report", "magicdec_model.perfmodel.report.grid"]
    # the package's lazy names do load plotly once a figure-side name is used
    loaded = _modules_after("from magicdec_model.perfmodel.report import build_report")
    assert "plotly" in loaded and "magicdec_model.perfmodel.report.build" in loaded


@pytest.mark.unit
def test_every_exported_name_resolves_to_its_module():
    report = importlib.import_module("magicdec_model.perfmodel.report")
    exports = report._EXPORTS
    assert sorted(report.__all__) == sorted(n for n in exports if not n.startswith("_"))
    for name, module in exports.items():
        obj = getattr(report, name)
        home = importlib.import_module(f"magicdec_model.perfmodel.report.{module}")
        assert obj is getattr(home, name), name
    assert report.build_report.__module__ == "magicdec_model.perfmodel.report.build"
    assert report.Grid.__module__ == "magicdec_model.perfmodel.report.grid"
    with pytest.raises(AttributeError, match="no attribute 'nonexistent'"):
        report.nonexistent  # noqa: B018


@pytest.mark.unit
def test_plotly_is_imported_only_by_the_report_package_the_serving_page_and_validate_report():
    pattern = re.compile(r"^\s*(import plotly|from plotly)", re.MULTILINE)
    importers = sorted(str(p.relative_to(ROOT)) for folder in ("perfmodel", "validate", "cli")
                       for p in (ROOT / folder).rglob("*.py") if pattern.search(p.read_text()))
    assert importers == ["perfmodel/report/build.py", "perfmodel/report/figures.py",
                         "perfmodel/report/page.py", "perfmodel/serving/page.py", "validate/report.py"]
    # the numbers side of the report stays plotly-free
    assert not pattern.search((ROOT / "perfmodel/report/grid.py").read_text())


@pytest.mark.unit
def test_table_html_escapes_values_and_leaves_missing_cells_empty():
    from magicdec_model.perfmodel.report.page import table_html

    df = pd.DataFrame({"name <x>": ["a & b", "<script>"], "value": [1.5, np.nan]})
    got = table_html(df, "t1")
    assert got.startswith('<table id="t1"><thead><tr><th>name &lt;x&gt;</th><th>value</th></tr>')
    assert "<td>a &amp; b</td><td>1.5</td>" in got
    assert "<td>&lt;script&gt;</td><td></td>" in got
    assert "<script>" not in got
    assert table_html(df).startswith("<table><thead>")


@pytest.mark.unit
def test_validate_report_is_written_by_the_shared_page(tmp_path):
    from plotly.offline import get_plotlyjs
    from validate_report_frames import tiny_frames

    from magicdec_model.perfmodel.hardware import load_profile
    from magicdec_model.perfmodel.report.page import STYLE
    from magicdec_model.validate.report import build_report

    micro, comparison = tiny_frames()
    profile = load_profile("a100-80gb-sxm")
    path = tmp_path / "report.html"
    build_report(path, micro, comparison, profile, "validate <cpu>", ["MAPE & more"])
    text = path.read_text(encoding="utf-8")
    assert text.count(get_plotlyjs()[:2000]) == 1  # plotly.js inlined once, in the head
    assert text.index(get_plotlyjs()[:2000]) < text.index("</head>")
    assert STYLE in text
    assert "<h1>validate &lt;cpu&gt;</h1>" in text and "<p>MAPE &amp; more</p>" in text
    assert text.count('class="plotly-graph-div"') == 5  # ops, SD loop, speedup, residuals, roofline
    table = text[text.index('<table id="table-efficiency">'):]
    table = table[:table.index("</table>")]
    assert table.count("<tr>") == 1 + len(profile.efficiency)
    for key in profile.efficiency:
        assert f"<td>{key}</td>" in table
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.html"]  # no .partial left behind
