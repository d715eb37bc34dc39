"""The CPU timer's repetition rule: the time budget counts the cache flushes."""

from __future__ import annotations

import time

import pytest

pytest.importorskip("torch")

from magicdec_model.validate.timing import Timer, TimerConfig  # noqa: E402

pytestmark = pytest.mark.unit


class _SlowFlush:
    """Stands in for the cache flusher: each flush takes 20 ms, like a large L3's."""

    calls = 0

    def flush(self) -> None:
        self.calls += 1
        time.sleep(0.02)


def test_flushes_count_towards_the_time_budget():
    # 50 ms budget, at least 5 reps: five 20 ms flushes already spend it, so exactly 5 calls are
    # timed (counting only the timed calls, a near-empty call would be repeated max_reps = 50 times)
    timer = Timer("cpu", TimerConfig(warmup=0, min_reps=5, max_reps=50, min_time_s=0.05, flush_cache=False))
    timer.flusher = _SlowFlush()
    t = timer(lambda: None)
    assert t.reps == 5 and timer.flusher.calls == 5
    assert t.median < 0.02  # the flush is not inside the timed call


def test_without_flush_a_fast_call_is_repeated_up_to_max_reps():
    timer = Timer("cpu", TimerConfig(warmup=0, min_reps=5, max_reps=50, min_time_s=0.05, flush_cache=False))
    t = timer(lambda: None)
    assert t.reps == 50
