"""What users install: every module and data file of the source tree is in the installed package.

CI installs the package the regular way (not editable), so a sub-package or data file missing
from the wheel fails here instead of on a user's machine (a missing ``validate/attention`` once
shipped a validate that died with ModuleNotFoundError).
"""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
#: the source folders installed as magicdec_model.<folder> (setup.py's ROOTS)
ROOTS = ("perfmodel", "validate", "hardware_profiles", "cli")
#: files the installed package must carry besides modules (pyproject's package-data)
DATA_SUFFIXES = (".py", ".toml", ".csv")


def _shipped(folder: Path) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*")
            if p.is_file() and p.suffix in DATA_SUFFIXES and "__pycache__" not in p.parts}


@pytest.mark.unit
@pytest.mark.parametrize("root", ROOTS)
def test_installed_package_holds_every_source_file(root):
    installed = Path(importlib.import_module(f"magicdec_model.{root}").__file__).parent
    missing = sorted(_shipped(REPO / root) - _shipped(installed))
    assert not missing, f"not in the installed magicdec_model.{root}: {missing}"


@pytest.mark.unit
def test_every_source_package_is_importable_once_installed():
    for root in ROOTS:
        for init in (REPO / root).rglob("__init__.py"):
            rel = init.parent.relative_to(REPO)
            name = "magicdec_model." + ".".join(rel.parts)
            if "validate" in rel.parts[:1]:
                pytest.importorskip("torch")
            importlib.import_module(name)
