"""The few collective steps our own training code needs when a trainer runs on several processes (``torchrun``,
``accelerate launch``): every rank sees the same decisions and the same corpus vectors. With one process each
function is the identity."""

from __future__ import annotations

import hashlib

import numpy as np
import torch.distributed as dist


def world() -> tuple[int, int]:
    """``(rank, world size)`` of this process; ``(0, 1)`` without a process group."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def all_gather(value) -> list:
    """Every rank's ``value`` (any picklable object), in rank order."""
    rank, size = world()
    if size == 1:
        return [value]
    values = [None] * size
    dist.all_gather_object(values, value)
    return values


def from_main(value):
    """The main process's ``value`` on every rank."""
    if world()[1] == 1:
        return value
    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def digest(array: np.ndarray) -> str:
    """A short hash of an array's bytes, to compare what ranks hold."""
    return hashlib.sha256(np.ascontiguousarray(array).tobytes()).hexdigest()[:16]
