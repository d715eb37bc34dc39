"""Sources in what ships (docs, README, model/engine/hardware data) cite what a user can read: the
public paper, repository or benchmark, never a file of the development workspace that does not ship
(issue 17: 'shared/reference/engines.md', 'kernels-and-timing.md')."""

from __future__ import annotations

import re
from importlib import resources
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[1]
#: Names of the workspace's reference notes, which are not part of the project.
UNSHIPPED = re.compile(r"shared/reference|shared/design|kernels-and-timing|\b(engines|hardware|models|peers|"
                       r"magicdec-paper|serving-and-acceptance|design)\.md")


def _shipped_texts() -> dict[str, str]:
    out = {}
    for package in ("magicdec_model.perfmodel", "magicdec_model.hardware_profiles"):
        root = resources.files(package)
        stack = [root]
        while stack:
            node = stack.pop()
            for child in node.iterdir():
                if child.is_dir():
                    stack.append(child)
                elif child.name.endswith((".toml", ".csv", ".md", ".json")):
                    out[f"{package}/{child.name}"] = child.read_text(encoding="utf-8")
    for path in [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]:
        if path.exists():  # docs travel with the source tree, not the wheel
            out[str(path.relative_to(REPO))] = path.read_text(encoding="utf-8")
    return out


def test_no_shipped_text_cites_an_unshipped_workspace_file():
    texts = _shipped_texts()
    assert any(name.endswith("generic.toml") for name in texts)  # the engines were read
    bad = {name: m.group(0) for name, text in texts.items() if (m := UNSHIPPED.search(text))}
    assert not bad, bad
