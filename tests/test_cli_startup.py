"""Start-up: the command line imports no model code until a command runs (--help stays fast), and
the defaults it spells out for that agree with the library's constants."""

from __future__ import annotations

import subprocess
import sys

import pytest

pytestmark = pytest.mark.e2e


def test_loading_the_cli_imports_neither_numpy_pandas_plotly_nor_torch():
    code = ("import sys, magicdec_model.cli.main; "
            "print(sorted(m for m in ('numpy', 'pandas', 'plotly', 'torch', 'scipy') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_defaults_written_out_for_help_agree_with_the_library():
    from magicdec_model.cli.calibrate import CANDIDATES_HELP, PRIOR_DEFAULT
    from magicdec_model.cli.compare import PAPER_HARDWARE_DEFAULT
    from magicdec_model.perfmodel.calibrate import CANDIDATES
    from magicdec_model.perfmodel.engine import DEFAULT_ENGINE
    from magicdec_model.perfmodel.paper import PAPER_HARDWARE

    assert PRIOR_DEFAULT == DEFAULT_ENGINE
    assert CANDIDATES_HELP == ", ".join(CANDIDATES)
    assert PAPER_HARDWARE_DEFAULT == PAPER_HARDWARE


def test_predict_imports_neither_plotly_nor_the_report_package():
    code = ("import sys\n"
            "from typer.testing import CliRunner\n"
            "from magicdec_model.cli.main import app\n"
            "r = CliRunner().invoke(app, ['predict', '--batch', '8', '--seq-len', '8k', '--format', 'csv'])\n"
            "assert r.exit_code == 0, r.output\n"
            "print(sorted(m for m in sys.modules if m == 'plotly' "
            "or m.startswith('magicdec_model.perfmodel.report')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"
