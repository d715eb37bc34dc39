"""Chunked grids (perfmodel/grid.py) and chunk-by-chunk grid files (perfmodel/gridfile.py)."""

from __future__ import annotations

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from magicdec_model.perfmodel.errors import InputError
from magicdec_model.perfmodel.grid import chunk_queries, grid_evaluations, grid_rows, predict_chunks
from magicdec_model.perfmodel.gridfile import write_grid
from magicdec_model.perfmodel.outfiles import OutputLock, OutputLockedError
from magicdec_model.perfmodel.sweep import RESULT_COLUMNS, Query, predict

pytestmark = pytest.mark.unit


def test_grid_size_by_hand():
    q = Query(model="llama-3.1-8b", batch=[1, 2, 3], seq_len=[1000, 8000], kv_budget=[256, 512],
              gpus=[1, 2], gamma="auto")
    assert grid_rows(q) == 2 * 3 * 2 * 2  # GPUs x batches x seq_lens x budgets = 24 rows
    assert grid_evaluations(q) == 24 * 16  # gamma='auto' tries 1..16 per row
    q3 = Query(model="llama-3.1-8b", batch=[1, 2, 3], seq_len=[1000], gamma=[1, 2, 3])
    assert grid_rows(q3) == 9 and grid_evaluations(q3) == 9
    full = Query(model="llama-3.1-8b", draft="llama-3.2-1b", kv_method="full", batch=[1, 2],
                 seq_len=[1000], kv_budget=[128, 256, 512], gamma=[2])
    assert grid_rows(full) == 2  # a full-KV draft ignores the budgets


@settings(max_examples=12, deadline=None)
@given(
    batch=st.lists(st.integers(1, 512), min_size=1, max_size=6),
    seq=st.lists(st.integers(64, 200_000), min_size=1, max_size=5),
    budgets=st.lists(st.integers(16, 4096), min_size=1, max_size=3),
    gpus=st.lists(st.sampled_from([1, 2, 8]), min_size=1, max_size=2),
    gamma=st.one_of(st.just("auto"), st.lists(st.integers(1, 16), min_size=1, max_size=4)),
    budget=st.integers(16, 400),
)
def test_chunks_are_bounded_and_concatenate_to_the_whole_prediction(batch, seq, budgets, gpus, gamma,
                                                                    budget):
    q = Query(model="llama-3.1-8b", batch=batch, seq_len=seq, kv_budget=budgets, gpus=gpus, gamma=gamma,
              acceptance=0.8)
    subs = list(chunk_queries(q, budget))
    assert all(grid_evaluations(s) <= budget for s in subs)
    assert sum(grid_rows(s) for s in subs) == grid_rows(q)
    whole = predict(q)
    chunked = pd.concat(list(predict_chunks(q, budget)), ignore_index=True)
    # text columns are categoricals per chunk; concatenating chunks of other categories gives object
    pd.testing.assert_frame_equal(chunked, whole, check_dtype=False, check_categorical=False)


def test_chunking_refuses_out_of_bound_axes():
    with pytest.raises(InputError, match="--batch"):
        list(chunk_queries(Query(model="llama-3.1-8b", batch=[10**30], seq_len=[1000])))


QUERY = Query(model="llama-3.1-8b", batch=[1, 2, 8, 64], seq_len=[1000, 8000, 100_000],
              kv_budget=[256, 512, 4096], gpus=[1, 2], gamma="auto")


@pytest.mark.parametrize("ext", ["csv", "parquet"])
def test_grid_file_holds_exactly_the_prediction_over_many_chunks(tmp_path, ext):
    target = tmp_path / f"g.{ext}"
    seen = []
    res = write_grid(QUERY, target, max_evaluations=64, on_rows=lambda done, total: seen.append(done))
    expected = predict(QUERY)
    assert len(seen) > 10 and seen[-1] == len(expected) == res.rows == 72
    got = pd.read_csv(target) if ext == "csv" else pd.read_parquet(target)
    assert list(got.columns) == list(RESULT_COLUMNS)
    if ext == "csv":  # what the earlier DataFrame.to_csv output read back as
        old = tmp_path / "old.csv"
        expected.to_csv(old, index=False)
        # same values; an all-zero float column reads back as int from pyarrow's '0'
        pd.testing.assert_frame_equal(got, pd.read_csv(old), check_dtype=False)
    else:
        pd.testing.assert_frame_equal(got, expected, check_dtype=False, check_categorical=False)
    runs = expected["fits_memory"] & expected["within_context"]  # the headline names runnable points only
    assert res.best["speedup"] == pytest.approx(expected.loc[runs, "speedup"].max())
    assert res.infeasible.left_out == int((~runs).sum()) and res.infeasible.total == 72
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([target.name] + (
        ["old.csv"] if ext == "csv" else []))


def test_a_grid_too_large_for_the_disk_is_refused_with_its_estimate(tmp_path):
    target = tmp_path / "g.csv"
    with pytest.raises(InputError) as exc:
        write_grid(QUERY, target, max_evaluations=64, free_bytes=lambda folder: 10_000)
    msg = str(exc.value)
    assert "72 rows" in msg and "free" in msg and "kB" in msg
    assert list(tmp_path.iterdir()) == []  # no target, no partial, no lock


def test_an_interrupted_grid_leaves_the_previous_file_untouched(tmp_path):
    target = tmp_path / "g.csv"
    target.write_text("previous complete file\n")

    def stop(done, total):
        if done > 20:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        write_grid(QUERY, target, max_evaluations=64, on_rows=stop)
    assert target.read_text() == "previous complete file\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["g.csv"]


def test_a_grid_being_written_by_another_run_is_refused(tmp_path):
    target = tmp_path / "g.csv"
    with OutputLock(target), pytest.raises(OutputLockedError, match="another magicdec-model run"):
        write_grid(QUERY, target)
    assert not target.exists()


def test_sweep_cli_full_disk_is_one_line_and_writes_nothing(tmp_path, monkeypatch):
    import errno

    from typer.testing import CliRunner

    from magicdec_model.cli.main import app
    from magicdec_model.perfmodel import gridfile

    def full(self, df):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(gridfile._Writer, "write", full)
    res = CliRunner().invoke(app, ["sweep", "--out", str(tmp_path / "g.csv"), "--batch", "1,2"])
    assert res.exit_code == 2
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and "No space left on device" in lines[0] and "g.csv" in lines[0]
    assert list(tmp_path.iterdir()) == []
