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


@pytest.mark.unit
def test_no_module_imports_torch_at_top_level():
    for p in VALIDATE.glob("*.py"):
        lines = p.read_text().splitlines()
        top = [ln for ln in lines if re.match(r"^(import torch|from torch)", ln)]
        assert not top, p.name
