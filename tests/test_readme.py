"""Every command in the README runs as pasted (issue 17, section 5).

The README's indented code blocks are read as a shell would: ``\\`` continues a line, ``#``
starts a comment, ``&&`` chains commands, ``> FILE`` redirects standard output and
``cat > FILE <<'EOF'`` writes a file.  The ``magicdec-model`` commands run in order, through
typer's CliRunner, in one scratch folder (so a file one command writes is there for the next),
where ``perfmodel/`` points at the source tree's data (the sample AR-steps CSV).  Skipped, each
for the reason in :data:`SKIP`: installs, the test suite, benchmarks, validate (minutes, torch)
and what reads its output, and shell completion (it edits the user's shell set-up; tested in
test_cli_conventions.py).
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
from typer.testing import CliRunner

from magicdec_model.cli.main import app

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
SAMPLE_STEPS = "perfmodel/data/engines/magicdec-8xa100-ar-steps.csv"

#: (test on the argument list, reason): commands not run here
SKIP: list[tuple[object, str]] = [
    (lambda a: a[0] in ("pip", "pytest"), "installs packages / runs the test suite itself"),
    (lambda a: a[0] == "python" and "benchmarks/" in " ".join(a), "benchmarks take minutes"),
    (lambda a: a[:2] == ["magicdec-model", "validate"],
     "validate times real kernels for minutes and needs torch (test_validate_cli.py, .ci/run)"),
    (lambda a: any("runs/" in x for x in a), "reads the output of the validate run above"),
    (lambda a: a[:3] == ["magicdec-model", "acceptance", "measure"],
     "real speculative decoding of the real model for minutes (test_acceptance_measure.py, slow tier)"),
    (lambda a: "acc.csv" in a, "reads the output of the acceptance measure run above"),
    (lambda a: "--install-completion" in a or "--show-completion" in a,
     "changes or depends on the user's shell; test_cli_conventions.py tests completion"),
]


def code_blocks(text: str) -> list[list[str]]:
    """The README's indented code blocks (4 spaces, after a blank line), as lists of lines."""
    blocks: list[list[str]] = []
    current: list[str] | None = None
    previous_blank = True
    for line in text.splitlines():
        if line.startswith("    ") and (current is not None or previous_blank):
            current = current if current is not None else []
            current.append(line[4:])
        elif current is not None and not line.strip():
            current.append("")
        else:
            if current is not None:
                blocks.append(current)
            current = None
        previous_blank = not line.strip()
    if current is not None:
        blocks.append(current)
    return blocks


def commands(text: str) -> list[tuple[str, object]]:
    """Shell steps: ('run', argv), or ('write', (path, content)) for a heredoc."""
    steps: list[tuple[str, object]] = []
    for block in code_blocks(text):
        lines = iter(block)
        pending = ""
        for line in lines:
            if line.rstrip().endswith("\\"):
                pending += line.rstrip()[:-1] + " "
                continue
            line, pending = pending + line, ""
            heredoc = re.match(r"cat > (\S+) <<'(\w+)'$", line.strip())
            if heredoc:
                body = []
                for inner in lines:
                    if inner.strip() == heredoc.group(2):
                        break
                    body.append(inner)
                steps.append(("write", (heredoc.group(1), "\n".join(body) + "\n")))
                continue
            argv = shlex.split(line, comments=True)
            while argv:
                cut = argv.index("&&") if "&&" in argv else len(argv)
                steps.append(("run", argv[:cut]))
                argv = argv[cut + 1:]
    return steps


def _skip_reason(argv: list[str]) -> str | None:
    return next((why for test, why in SKIP if test(argv)), None)  # type: ignore[operator]


def test_readme_names_the_sample_steps_and_the_validate_install():
    text = README.read_text()
    assert SAMPLE_STEPS in text and (ROOT / SAMPLE_STEPS).is_file()
    runs = [a for kind, a in commands(text) if kind == "run"]
    assert ["pip", "install", ".[validate]"] in runs
    assert any(a[:2] == ["magicdec-model", "calibrate"] and SAMPLE_STEPS in a for a in runs)


def test_readme_commands_have_no_placeholders():
    runs = [a for kind, a in commands(README.read_text()) if kind == "run"]
    assert len(runs) > 20
    for argv in runs:
        assert "..." not in argv and not any("path/to" in a for a in argv), argv


def test_parser_reads_continuations_comments_chains_and_heredocs():
    text = ("Intro\n\n    magicdec-model predict --batch 1 \\\n        --gpus 8   # note\n"
            "    pip install . && magicdec-model --version\n\n    cat > a.toml <<'EOF'\n    x = 1\n    EOF\n")
    assert commands(text) == [("run", ["magicdec-model", "predict", "--batch", "1", "--gpus", "8"]),
                              ("run", ["pip", "install", "."]), ("run", ["magicdec-model", "--version"]),
                              ("write", ("a.toml", "x = 1\n"))]


def costly(argv: list[str]) -> bool:
    """Costly commands (seconds each: calibrate's cross-validation, the report's figures) and what
    reads their output: the fast tier leaves them to the slow test."""
    slow_commands = (["magicdec-model", "calibrate"], ["magicdec-model", "report"])
    return argv[:2] in slow_commands or "my-engine.toml" in argv


def _run_readme(tmp_path: Path, skip_costly: bool) -> tuple[int, list[tuple[str, str]]]:
    (tmp_path / "perfmodel").symlink_to(ROOT / "perfmodel", target_is_directory=True)
    runner = CliRunner()
    ran, skipped, failed = 0, [], []
    for kind, step in commands(README.read_text()):
        if kind == "write":
            path, content = step
            Path(path).write_text(content)
            continue
        argv = list(step)
        why = _skip_reason(argv) or ("costly: run by the slow test" if skip_costly and costly(argv) else None)
        if why:
            skipped.append((" ".join(argv[:3]), why))
            continue
        assert argv[0] == "magicdec-model", f"a README command this test cannot run: {argv}"
        out_file = None
        if ">" in argv:
            i = argv.index(">")
            out_file, argv = argv[i + 1], argv[:i]
        result = runner.invoke(app, argv[1:])
        ran += 1
        if result.exit_code != 0:
            failed.append(f"{shlex.join(argv)}: exit {result.exit_code}: {result.output.strip()[-300:]}")
        elif out_file:
            Path(out_file).write_text(result.output)
    assert not failed, "\n".join(failed)
    return ran, skipped


def test_readme_cheap_commands_run_as_pasted(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    ran, skipped = _run_readme(tmp_path, skip_costly=True)
    assert ran >= 18, (ran, skipped)
    for name in ("grid.parquet", "my-gpu.toml", "run.csv"):  # what the commands wrote is there
        assert (tmp_path / name).is_file(), name


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_readme_every_command_runs_as_pasted(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    ran, skipped = _run_readme(tmp_path, skip_costly=False)
    assert ran >= 22, (ran, skipped)
    for name in ("grid.parquet", "report.html", "my-engine.toml", "my-gpu.toml", "run.csv"):
        assert (tmp_path / name).is_file(), name
