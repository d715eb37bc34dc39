"""Every case of the bad-input corpus (tests/bad_inputs.py) does what the contract says.

Bad input: exit code 2, one ``error:`` line naming the value or flag, no traceback, nothing left
in the output folder.  Valid edge input: exit 0, and the correct result where a wrong one could
pass silently.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from bad_inputs import CASES, judge, make_files, run_case

pytestmark = pytest.mark.unit

IS_ROOT = hasattr(os, "geteuid") and os.geteuid() == 0


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("odd-files")
    made = make_files(root)
    yield made
    os.chmod(root / "rodir", 0o755)  # let pytest clean up


def _param(case):
    marks = []
    if case.pending:
        marks.append(pytest.mark.xfail(reason=case.pending, strict=False))
    if case.needs_non_root and IS_ROOT:
        marks.append(pytest.mark.skip(reason="root reads and writes any file"))
    return pytest.param(case, id=case.id, marks=marks)


@pytest.mark.parametrize("case", [_param(c) for c in CASES])
def test_corpus_case(case, files, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    outcome = run_case(case, files, Path(tmp_path))
    reason = judge(case, outcome)
    assert reason is None, f"{reason}\nstdout: {outcome.stdout[-400:]}\nstderr: {outcome.stderr[-400:]}"


def test_corpus_is_large_and_covers_every_subcommand():
    from typer.main import get_command

    from magicdec_model.cli.main import app

    group = get_command(app)
    names = set(group.commands)  # type: ignore[attr-defined]
    covered = {c.argv[0] for c in CASES}
    assert names <= covered, names - covered
    assert len(CASES) >= 550


def test_corpus_tries_every_flag_of_every_subcommand():
    """Issue 17: every option of every command (calibrate and engines included) has a case."""
    from typer.main import get_command

    from magicdec_model.cli.main import app

    def commands(group, prefix=()):
        for name, cmd in group.commands.items():
            if hasattr(cmd, "commands"):
                yield from commands(cmd, (*prefix, name))
            else:
                yield (*prefix, name), cmd

    for path, cmd in commands(get_command(app)):
        cases = [c for c in CASES if tuple(c.argv[:len(path)]) == path]
        assert cases, f"no case runs {' '.join(path)}"
        used = {a for c in cases for a in c.argv}
        flags = {next((o for o in p.opts if o.startswith("--")), None)
                 for p in cmd.params if p.name != "help"}
        missing = sorted(f for f in flags - used if f)
        assert not missing, f"{' '.join(path)}: no case sets {missing}"
