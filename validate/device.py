"""The device a validate run measures: its name, memory, and recovery from a failed point."""

from __future__ import annotations

import gc
import os
import platform
import socket

import torch


def device_name(device: torch.device) -> str:
    """The GPU's name, or ``CPU <model>, <threads> threads (<host>)`` (each thread count is a
    different device: the peaks are measured with it)."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    model = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as fh:
            for line in fh:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return f"CPU {model}, {torch.get_num_threads()} threads ({socket.gethostname()})"


def capacity(device: torch.device) -> float:
    """Memory of the device in bytes: one GPU's total memory, or the machine's physical RAM."""
    if device.type == "cuda":
        return float(torch.cuda.get_device_properties(device).total_memory)
    return float(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))


def is_oom(exc: BaseException) -> bool:
    """Whether ``exc`` says the device (or the host) ran out of memory."""
    text = str(exc).lower()
    return "out of memory" in text or "can't allocate memory" in text or type(exc).__name__ in (
        "OutOfMemoryError",
    )


def free_memory(device: torch.device) -> None:
    """Release what a failed point left behind (Python garbage, CUDA's cached blocks)."""
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()
