"""Package hygiene of validate/: lazy torch import, flashinfer imported in one module only."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

VALIDATE = Path(__file__).resolve().parents[1] / "validate"


@pytest.mark.e2e
@pytest.mark.timeout(120)
def test_importing_validate_does_not_import_torch_or_flashinfer():
    code = (
        "import sys, magicdec_model.validate as v; "
        "assert 'torch' not in sys.modules, 'torch imported'; "
        "assert 'flashinfer' not in sys.modules; "
        "assert 'speculative_generate' in v.__all__; print('ok')"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"


@pytest.mark.unit
def test_only_the_adapter_imports_flashinfer():
    pattern = re.compile(r"^\s*(import flashinfer|from flashinfer)", re.MULTILINE)
    importers = sorted(p.relative_to(VALIDATE).as_posix() for p in VALIDATE.rglob("*.py")
                       if pattern.search(p.read_text()))
    assert importers == ["attention/flashinfer_backend.py"]


#: the validate modules that load no torch when imported (the CLI checks flags with them before
#: torch is needed); they may import it inside functions.  Every other module is torch-only and
#: imports torch at the top.
TORCH_FREE = {"__init__.py", "run.py", "results.py", "runconfig.py", "fit.py", "corpus.py",
              "engine_fit.py", "handoff.py", "report.py", "attention/__init__.py", "attention/base.py",
              "attention/registry.py", "acceptance_table.py", "acceptance_run.py"}
TOP_TORCH = re.compile(r"^(import torch|from torch)", re.MULTILINE)
LAZY_TORCH = re.compile(r"^[ \t]+(import torch|from torch)", re.MULTILINE)


def _modules() -> dict[str, str]:
    return {p.relative_to(VALIDATE).as_posix(): p.read_text() for p in VALIDATE.rglob("*.py")}


@pytest.mark.unit
def test_torch_only_modules_import_torch_at_the_top_and_torch_free_ones_never_there():
    modules = _modules()
    assert TORCH_FREE <= set(modules), sorted(TORCH_FREE - set(modules))
    for name, text in modules.items():
        if name in TORCH_FREE:
            assert not TOP_TORCH.search(text), f"{name} is torch-free but imports torch at the top"
        else:
            assert not LAZY_TORCH.search(text), f"{name} is torch-only but imports torch lazily"


@pytest.mark.e2e
@pytest.mark.timeout(120)
def test_the_torch_free_modules_and_predict_load_no_torch():
    names = sorted("magicdec_model.validate" + ("" if n == "__init__.py" else "." + n[:-3].replace("/", "."))
                   for n in TORCH_FREE if n != "attention/__init__.py")
    code = ("import sys, importlib\n"
            f"for name in {names!r}:\n"
            "    importlib.import_module(name)\n"
            "    assert 'torch' not in sys.modules, name\n"
            "from magicdec_model.cli.main import run\n"
            "sys.argv = ['magicdec-model', 'predict', '--model', 'llama-3.1-8b',\n"
            "            '--hardware', 'a100-80gb-sxm', '--batch', '1', '--seq-len', '4096',\n"
            "            '--kv-budget', '512', '--gamma', '3', '--acceptance', '0.8', '--format', 'csv']\n"
            "try:\n"
            "    run()\n"
            "except SystemExit as exc:\n"
            "    assert not exc.code, exc.code\n"
            "assert 'torch' not in sys.modules, 'predict imported torch'\n"
            "print('ok', file=sys.stderr)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=100)
    assert out.returncode == 0, out.stderr
    assert out.stderr.strip().endswith("ok")
    assert out.stdout.count("\n") >= 2  # the CSV header and the row


@pytest.mark.unit
def test_torchrun_starts_the_command_line_and_validate_imports_no_cli():
    """The ranks run the one CLI (``-m magicdec_model.cli.main validate``); validate/ never imports
    cli/ (no second command line inside the library)."""
    import importlib.util

    from magicdec_model.cli.validate import TORCHRUN_MODULE

    assert TORCHRUN_MODULE == "magicdec_model.cli.main"
    assert importlib.util.find_spec(TORCHRUN_MODULE) is not None
    cli_import = re.compile(r"^\s*(from|import)\s+(magicdec_model\.cli|\.\.cli)\b", re.MULTILINE)
    assert [n for n, text in _modules().items() if cli_import.search(text)] == []


@pytest.mark.unit
def test_every_exported_name_resolves():
    pytest.importorskip("torch")
    import magicdec_model.validate as v
    import magicdec_model.validate.attention as a

    for package in (v, a):
        for name in package.__all__:
            assert getattr(package, name) is not None, f"{package.__name__}.{name}"


@pytest.mark.unit
def test_torchrun_is_given_the_users_flags_not_the_callers_argv(monkeypatch, tmp_path):
    """``--gpus 2`` re-runs the command under torchrun with the flags the user gave (rebuilt from
    the click context): invoked in-process, ``sys.argv`` is the caller's (here pytest's)."""
    from typer.testing import CliRunner

    import magicdec_model.cli.validate as cli_validate
    from magicdec_model.cli.main import app

    seen = []
    monkeypatch.setattr(cli_validate.subprocess, "call", lambda cmd: seen.append(cmd) or 0)
    monkeypatch.setattr(sys, "argv", ["pytest", "-q", "-p", "no:cacheprovider"])
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    out = tmp_path / "r"
    res = CliRunner().invoke(app, ["validate", "--gpus", "2", "--layers", "1", "--batch", "1,2",
                                   "--resume", "--out", str(out)])
    assert res.exit_code == 0, res.output
    (cmd,) = seen
    rank_args = cmd[cmd.index("validate") + 1:]
    assert "-q" not in rank_args and "no:cacheprovider" not in rank_args
    assert rank_args.count("--resume") == 1
    rest = [a for a in rank_args if a != "--resume"]
    pairs = dict(zip(rest[::2], rest[1::2], strict=True))
    assert pairs == {"--gpus": "2", "--layers": "1", "--batch": "1,2", "--out": str(out)}
    assert "--nproc_per_node=2" in cmd
