"""Open a real report in headless Chromium: every plot rendered, no console error, no uncaught exception.

Dependency-free: Chromium's ``--dump-dom`` gives the DOM after the page's scripts ran (virtual time
lets plotly finish), and a small probe script injected at the top of ``<head>`` records
``console.error``, uncaught errors and unhandled promise rejections into the DOM.  Chromium comes
from the Debian package ``chromium`` (``.ci/run`` installs it); where it is missing the test tries
``apt-get install -y chromium`` (as root) and skips, saying why, only if that fails.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from magicdec_model.perfmodel.report import build_report, write_report
from magicdec_model.perfmodel.strategy import Strategy
from magicdec_model.perfmodel.sweep import Query

# The browser fixture may apt-get chromium (up to 600 s) before two 120 s page loads.
pytestmark = [pytest.mark.e2e, pytest.mark.browser, pytest.mark.slow, pytest.mark.timeout(900)]

BROWSERS = ("chromium", "chromium-browser", "google-chrome")
FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--enable-logging=stderr", "--v=0", "--virtual-time-budget=4000",
)
PROBE = """<script>
window.__probe = [];
(function () {
  var orig = console.error;
  console.error = function () {
    window.__probe.push('console.error: ' + Array.prototype.join.call(arguments, ' '));
    orig.apply(console, arguments);
  };
  window.addEventListener('error', function (e) { window.__probe.push('uncaught: ' + e.message); });
  window.addEventListener('unhandledrejection', function (e) {
    window.__probe.push('unhandled rejection: ' + e.reason);
  });
  window.addEventListener('load', function () {
    setTimeout(function () {
      var pre = document.createElement('pre');
      pre.id = 'probe-result';
      pre.textContent = JSON.stringify(window.__probe);
      document.body.appendChild(pre);
    }, 1000);
  });
})();
</script>"""


def _find_browser() -> str | None:
    for name in BROWSERS:
        path = shutil.which(name)
        if path:
            return path
    return None


@pytest.fixture(scope="module")
def browser() -> str:
    path = _find_browser()
    if path:
        return path
    why = "no chromium on PATH"
    if os.geteuid() == 0 and shutil.which("apt-get"):
        try:
            subprocess.run(["apt-get", "install", "-y", "chromium"], capture_output=True, timeout=600,
                           check=True, env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"})
        except (subprocess.SubprocessError, OSError) as exc:
            why += f" and 'apt-get install -y chromium' failed ({exc.__class__.__name__})"
        path = _find_browser()
        if path:
            return path
    else:
        why += " and it cannot be installed here (needs root and apt-get: apt-get install -y chromium)"
    pytest.skip(why)


def _open(browser: str, html_file: Path, profile: Path) -> tuple[str, str]:
    """Load ``html_file`` with the probe injected; return (DOM after scripts ran, browser log)."""
    text = html_file.read_text(encoding="utf-8")
    probed = html_file.with_name(html_file.stem + ".probed.html")
    probed.write_text(text.replace("<head>", "<head>" + PROBE, 1), encoding="utf-8")
    res = subprocess.run(
        [browser, *FLAGS, f"--user-data-dir={profile}", "--dump-dom", probed.as_uri()],
        capture_output=True, text=True, timeout=120,
    )
    assert res.returncode == 0, res.stderr[-2000:]
    return res.stdout, res.stderr


def _errors(dom: str, log: str) -> list[str]:
    m = re.search(r'<pre id="probe-result">(.*?)</pre>', dom, re.S)
    assert m, "the probe did not run: the page's scripts did not execute"
    found = json.loads(m.group(1).replace("&quot;", '"').replace("&amp;", "&")
                       .replace("&lt;", "<").replace("&gt;", ">"))
    found += [ln for ln in log.splitlines() if "CONSOLE" in ln and "Uncaught" in ln]
    return found


def _plot_divs(dom: str) -> dict[str, str]:
    """Map each figure div id (fig-*) to its rendered HTML."""
    starts = [(m.start(), m.group(1)) for m in re.finditer(r'<div id="(fig-[^"]+)"', dom)]
    return {name: dom[s : (starts[i + 1][0] if i + 1 < len(starts) else len(dom))]
            for i, (s, name) in enumerate(starts)}


def test_report_renders_every_plot_without_console_errors(browser, tmp_path):
    q = Query(model="llama-3.1-8b", batch=[1, 2, 4, 8, 16, 32, 64, 128, 256],
              seq_len=[1000, 2000, 4000, 8000, 16000, 32000, 64000, 128000], gpus=[8])
    rep = build_report(q, [Strategy("self", "streamingllm", 512), Strategy("llama-3.2-1b", "full", 0)])
    path = write_report(tmp_path / "report.html", rep)
    dom, log = _open(browser, path, tmp_path / "profile")

    assert _errors(dom, log) == []
    divs = _plot_divs(dom)
    assert len(divs) == len(rep.figures) == 9  # 8 + the acceptance figure (a self-draft)
    for name, html in divs.items():
        assert 'class="main-svg"' in html, f"{name} not rendered"
    for name, html in divs.items():
        if (name.startswith("fig-speedup") and name != "fig-speedup-interval") or name == "fig-strategy-map":
            assert html.count("<image") >= 1, f"{name}: heatmap not drawn"
        if name == "fig-speedup-interval":
            assert re.search(r'<path class="js-fill" d="M', html), "interval band not shaded"
        if name in ("fig-kv-share", "fig-step-ratios", "fig-throughput-latency", "fig-speedup-interval"):
            lines = re.findall(r'<path class="js-line" d="M[^"]+"', html)
            assert len(lines) >= 2, f"{name}: {len(lines)} lines drawn"
    # the speedup = 1 contour of self-speculation is drawn as a path
    self_div = divs["fig-speedup-self---streamingllm-512"]
    assert re.search(r'<g class="contourlevel"><path class="openline" d="M', self_div)
    assert 'class="hm"' in divs["fig-regimes"]


def test_the_harness_catches_errors_and_unrendered_plots(browser, tmp_path):
    bad = tmp_path / "bad.html"
    bad.write_text('<html><head></head><body><div id="fig-empty"></div>'
                   '<script>console.error("boom"); undefinedFunction();</script></body></html>',
                   encoding="utf-8")
    dom, log = _open(browser, bad, tmp_path / "profile")
    errors = _errors(dom, log)
    assert any("console.error: boom" in e for e in errors)
    assert any("undefinedFunction" in e for e in errors)
    assert 'class="main-svg"' not in _plot_divs(dom)["fig-empty"]


def test_validate_report_renders_every_plot_without_console_errors(browser, tmp_path):
    from validate_report_frames import tiny_frames

    from magicdec_model.perfmodel.hardware import load_profile
    from magicdec_model.validate.report import build_report as build_validate_report

    micro, comparison = tiny_frames()
    path = tmp_path / "validate.html"
    build_validate_report(path, micro, comparison, load_profile("a100-80gb-sxm"), "validate", ["MAPE"])
    dom, log = _open(browser, path, tmp_path / "profile")

    assert _errors(dom, log) == []
    divs = _plot_divs(dom)
    assert sorted(divs) == ["fig-microbenchmarks", "fig-residuals", "fig-roofline", "fig-sd-loop",
                            "fig-speedup"]
    for name, html in divs.items():
        assert 'class="main-svg"' in html, f"{name} not rendered"
