"""Timers for the validator: perf_counter on CPU, CUDA events on GPUs; medians with spread.

CPU: ``time.perf_counter`` around each call.  CUDA: a pair of ``torch.cuda.Event`` per call on
the current stream, read after one synchronise at the end.  Both warm up first (the first calls
include allocator growth, cuBLAS heuristics and FlashInfer's JIT compile), and both can clear the
last-level cache before every timed call by overwriting a buffer larger than it, so that a
kernel whose inputs fit in cache (one layer of a short draft KV, say) is not timed warm.  For
short CUDA kernels, ``graph=True`` captures ``graph_calls`` calls in a CUDA graph and times
replays, dividing by the count (launch overhead removed; the L2 is not flushed between the calls
inside one replay, so use it for kernels whose inputs exceed the L2 or when that is intended).

torch is imported lazily: importing this module costs nothing.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch


@dataclass(frozen=True)
class Timing:
    """Summary of repeated timings of one call (seconds)."""

    median: float
    p25: float
    p75: float
    reps: int

    @classmethod
    def of(cls, samples: list[float]) -> Timing:
        """Median and quartiles of ``samples`` (seconds)."""
        if not samples:
            raise ValueError("no timing samples")
        s = sorted(samples)
        if len(s) >= 4:
            q = statistics.quantiles(s, n=4, method="inclusive")
            p25, p75 = q[0], q[2]
        else:
            p25, p75 = s[0], s[-1]
        return cls(statistics.median(s), p25, p75, len(s))

    @property
    def spread(self) -> float:
        """Interquartile range relative to the median (0.05 = 5 %)."""
        return (self.p75 - self.p25) / self.median if self.median > 0 else 0.0


@dataclass(frozen=True)
class TimerConfig:
    """How long to time: warm-up calls, then at least ``min_reps`` repetitions and more until
    ``min_time_s`` (on the CPU: wall seconds including the cache flushes) or ``max_reps``."""

    warmup: int = 2
    min_reps: int = 5
    max_reps: int = 50
    min_time_s: float = 0.05
    flush_cache: bool = True
    graph: bool = False
    graph_calls: int = 10


class CacheFlusher:
    """A buffer larger than the last-level cache; :meth:`flush` overwrites it (evicting inputs)."""

    def __init__(self, device: Any, nbytes: int) -> None:
        self.buf = torch.empty(max(nbytes, 1 << 20) // 4, dtype=torch.float32, device=device)

    def flush(self) -> None:
        self.buf.fill_(1.0)


def cache_bytes(device: Any) -> int:
    """Bytes of the last-level cache to evict: L2 of a GPU, L3 of the CPU (doubled for margin)."""
    device = torch.device(device)
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        l2 = int(getattr(props, "L2_cache_size", 0) or 64 << 20)
        return 2 * l2
    return 2 * _cpu_llc_bytes()


def _cpu_llc_bytes() -> int:
    """Largest CPU cache reported by sysfs (bytes); 32 MiB when unknown."""
    import glob
    import re

    best = 0
    for path in glob.glob("/sys/devices/system/cpu/cpu0/cache/index*/size"):
        try:
            with open(path, encoding="ascii") as fh:
                text = fh.read().strip()
        except OSError:
            continue
        m = re.fullmatch(r"(\d+)([KMG]?)", text)
        if m:
            best = max(best, int(m.group(1)) * {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30}[m.group(2)])
    return best or 32 << 20


class Timer:
    """Times zero-argument callables on one device with a :class:`TimerConfig`."""

    def __init__(self, device: Any, config: TimerConfig | None = None) -> None:
        self.device = torch.device(device)
        self.config = config or TimerConfig()
        self.flusher = (
            CacheFlusher(self.device, cache_bytes(self.device)) if self.config.flush_cache else None
        )

    def __call__(self, fn: Callable[[], Any], flush: bool = True) -> Timing:
        """Time ``fn``; ``flush=False`` keeps the cache warm (inputs a real step just produced)."""
        self._flush_now = flush
        if self.device.type == "cuda":
            if self.config.graph:
                return self._cuda_graph(fn)
            return self._cuda_events(fn)
        return self._cpu(fn)

    _flush_now = True

    def _flush(self) -> None:
        if self.flusher is not None and self._flush_now:
            self.flusher.flush()

    def _cpu(self, fn: Callable[[], Any]) -> Timing:
        cfg = self.config
        for _ in range(cfg.warmup):
            fn()
        samples: list[float] = []
        # the budget is wall time with the cache flushes: a flush of a large CPU cache (~0.1 s for
        # a 480 MiB L3) costs more than most calls, and 50 flushed calls per point made a run slow
        begin = time.perf_counter()
        while len(samples) < cfg.max_reps and (
            len(samples) < cfg.min_reps or time.perf_counter() - begin < cfg.min_time_s
        ):
            self._flush()
            t0 = time.perf_counter()
            fn()
            samples.append(time.perf_counter() - t0)
        return Timing.of(samples)

    def _cuda_events(self, fn: Callable[[], Any]) -> Timing:
        cfg = self.config
        for _ in range(cfg.warmup):
            fn()
        torch.cuda.synchronize(self.device)
        # estimate one call to pick the repetition count, then time with events
        t0 = time.perf_counter()
        fn()
        torch.cuda.synchronize(self.device)
        one = max(time.perf_counter() - t0, 1e-6)
        reps = int(min(cfg.max_reps, max(cfg.min_reps, cfg.min_time_s / one)))
        starts = [torch.cuda.Event(enable_timing=True) for _ in range(reps)]
        ends = [torch.cuda.Event(enable_timing=True) for _ in range(reps)]
        for i in range(reps):
            self._flush()
            starts[i].record()
            fn()
            ends[i].record()
        torch.cuda.synchronize(self.device)
        return Timing.of([s.elapsed_time(e) * 1e-3 for s, e in zip(starts, ends, strict=True)])

    def _cuda_graph(self, fn: Callable[[], Any]) -> Timing:
        cfg = self.config
        stream = torch.cuda.Stream(self.device)
        stream.wait_stream(torch.cuda.current_stream(self.device))
        with torch.cuda.stream(stream):  # warm up on a side stream before capture
            for _ in range(max(cfg.warmup, 3)):
                fn()
        torch.cuda.current_stream(self.device).wait_stream(stream)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            for _ in range(cfg.graph_calls):
                fn()
        graph.replay()
        torch.cuda.synchronize(self.device)
        reps = max(cfg.min_reps, 10)
        starts = [torch.cuda.Event(enable_timing=True) for _ in range(reps)]
        ends = [torch.cuda.Event(enable_timing=True) for _ in range(reps)]
        for i in range(reps):
            self._flush()
            starts[i].record()
            graph.replay()
            ends[i].record()
        torch.cuda.synchronize(self.device)
        per_call = [s.elapsed_time(e) * 1e-3 / cfg.graph_calls for s, e in zip(starts, ends, strict=True)]
        return Timing.of(per_call)


def measure_peaks(device: Any, dtype: Any, timer: Timer | None = None) -> dict[str, float]:
    """Measured peaks of ``device``: FLOP/s of a large matmul in ``dtype`` and fp32, copy bytes/s.

    Returns ``peak_flops`` (``dtype``), ``peak_flops_fp32`` and ``mem_bw`` (read + write bytes of
    a large copy per second).  Used as the datasheet of a CPU, which has none in this package.
    """
    device = torch.device(device)
    timer = timer or Timer(device, TimerConfig(warmup=1, min_reps=3, max_reps=5, flush_cache=False))
    n = 4096 if device.type == "cuda" else 1024
    out: dict[str, float] = {}
    for key, dt in (("peak_flops", dtype), ("peak_flops_fp32", torch.float32)):
        a = torch.randn(n, n, device=device).to(dt)
        b = torch.randn(n, n, device=device).to(dt)
        out[key] = 2.0 * n**3 / timer(lambda a=a, b=b: a @ b).median
    nbytes = (1 << 30) if device.type == "cuda" else (128 << 20)
    src = torch.randn(nbytes // 4, device=device)
    dst = torch.empty_like(src)
    out["mem_bw"] = 2.0 * nbytes / timer(lambda: dst.copy_(src)).median
    return out
