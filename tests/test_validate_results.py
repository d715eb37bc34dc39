"""Row schemas of validate's files (results.py) and the order of a run's stages."""

from __future__ import annotations

import csv

import pandas as pd
import pytest

pytest.importorskip("torch")

from magicdec_model.validate.results import (  # noqa: E402
    COMPARISON_COLUMNS,
    MEASUREMENT_COLUMNS,
    MeasurementLog,
    check_rows,
    comparison_row,
    micro_comparison,
)

pytestmark = pytest.mark.unit


def test_check_rows_fit_the_measurement_schema_and_name_each_quantity(tmp_path):
    from magicdec_model.validate.check import ARPoint, SDPoint

    sd = SDPoint(batch=2, seq_len=256, kv_budget=64, gamma=3, acceptance=0.8)
    ok = check_rows(sd, {"status": "ok", "value": {"draft": (1e-3, 9e-4, 1.1e-3, 5),
                                                    "omega": (2.5, 2.5, 2.5, 1)}, "detail": ""})
    assert [r["op"] for r in ok] == ["draft", "omega"] and [r["unit"] for r in ok] == ["s", "tokens"]
    assert all(r["kv_budget"] == 64 and r["gamma"] == 3 for r in ok)
    failed = check_rows(ARPoint(batch=1, seq_len=128), {"status": "oom", "detail": "x", "value": ""})
    assert [(r["op"], r["status"]) for r in failed] == [("ar", "oom")] and "kv_budget" not in failed[0]
    for r in ok + failed:
        assert set(r) <= set(MEASUREMENT_COLUMNS)
    log = MeasurementLog(tmp_path / "measurements.csv")
    log.append(ok)
    with open(log.path, newline="") as fh:
        assert tuple(next(csv.reader(fh))) == MEASUREMENT_COLUMNS


def test_comparison_rows_have_the_comparison_schema():
    from magicdec_model.validate.check import compare

    empty = compare(pd.DataFrame(columns=list(MEASUREMENT_COLUMNS)), None, None, "streamingllm", None)
    assert tuple(empty.columns) == COMPARISON_COLUMNS
    row = comparison_row("verify", 1, 256, 64, 3, 0.8, 1, predicted=0.011, measured=0.010)
    assert tuple(row) == COMPARISON_COLUMNS and row["error_percent"] == pytest.approx(10.0)
    micro = pd.DataFrame({"op": ["qkv_proj"], "batch": [2], "kv_len": [0], "gpus": [1],
                          "predicted": [3e-5], "measured": [4e-5]})
    mc = micro_comparison(micro)
    assert tuple(mc.columns) == COMPARISON_COLUMNS
    assert mc.loc[0, "stage"] == "micro" and mc.loc[0, "error_percent"] == pytest.approx(-25.0)


def test_the_stages_run_in_the_documented_order():
    from magicdec_model.validate import stages

    assert [s.__name__ for s in stages.STAGES] == ["peaks", "microbench", "fit", "check", "calibrate"]
