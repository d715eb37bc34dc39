"""The torch.distributed process group of a tensor-parallel run (NCCL on GPUs, gloo on CPU).

:func:`init_tensor_parallel` joins the group (torchrun's ``RANK`` / ``WORLD_SIZE`` /
``LOCAL_RANK``, or explicit values, as the tests' spawned workers pass) and returns the
:class:`TensorParallel` handle whose collectives :func:`.tensor_parallel.parallelize` installs in
a decoder; :func:`broadcast_from_rank0` and :func:`finish` are the run's other collective steps.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist


@dataclass
class TensorParallel:
    """This process's place in a tensor-parallel group."""

    rank: int
    world_size: int
    group: Any = None  # a torch.distributed process group; None = the default group

    def all_reduce(self, x: torch.Tensor) -> torch.Tensor:
        """Sum ``x`` over the group (in place on a contiguous copy) and return it."""
        x = x.contiguous()
        dist.all_reduce(x, group=self.group)
        return x

    def all_gather_last(self, x: torch.Tensor) -> torch.Tensor:
        """Concatenate every rank's ``x`` along the last dimension (rank order)."""
        parts = [torch.empty_like(x) for _ in range(self.world_size)]
        dist.all_gather(parts, x.contiguous(), group=self.group)
        return torch.cat(parts, dim=-1)


def init_tensor_parallel(
    backend: str | None = None,
    *,
    rank: int | None = None,
    world_size: int | None = None,
    init_method: str | None = None,
) -> tuple[TensorParallel, torch.device]:
    """Join the default process group; return the TP handle and this rank's device.

    Without ``rank``/``world_size`` the torchrun variables (``RANK``, ``WORLD_SIZE``,
    ``LOCAL_RANK``) are read.  ``backend`` defaults to NCCL when CUDA is available (the rank's
    device is set to ``cuda:LOCAL_RANK``), else gloo on CPU.
    """
    rank = int(os.environ.get("RANK", "0")) if rank is None else rank
    world_size = int(os.environ.get("WORLD_SIZE", "1")) if world_size is None else world_size
    local_rank = int(os.environ.get("LOCAL_RANK", str(rank)))
    if backend is None:
        backend = "nccl" if torch.cuda.is_available() else "gloo"
    if backend == "nccl":
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    else:
        device = torch.device("cpu")
    if not dist.is_initialized():
        kwargs: dict[str, Any] = {"backend": backend, "rank": rank, "world_size": world_size}
        if init_method is not None:
            kwargs["init_method"] = init_method
        if backend == "nccl":
            kwargs["device_id"] = device
        dist.init_process_group(**kwargs)
    return TensorParallel(rank=rank, world_size=world_size), device


def broadcast_from_rank0(value: Any) -> Any:
    """Rank 0's ``value`` (any picklable object) on every rank."""
    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def finish() -> None:
    """Wait for every rank (rank 0 writes the files last), then leave the group."""
    dist.barrier()
    dist.destroy_process_group()
