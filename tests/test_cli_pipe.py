"""Every table-printing command with its stdout a real pipe (rich's width for a pipe is 80 columns):
no line wider than 80, no column dropped, no name or number cut, no colour codes
(the cases and checks are test_cli_layout.py's)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from layout_cases import COMMANDS, _args, _check

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_every_command_through_a_pipe_cuts_nothing(name, tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")}
    out = subprocess.run([sys.executable, "-m", "magicdec_model.cli.main", *_args(name)],
                         capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120)
    assert out.returncode == 0, out.stderr
    _check(out.stdout, name, 80)
    assert "\x1b[" not in out.stdout
