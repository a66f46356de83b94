"""Every torch.distributed call lives here. A single process (no torchrun) is a world of size 1.

Backend follows the device: NCCL on CUDA, gloo on CPU. Helpers are no-ops when not distributed, so callers never
guard barriers themselves (the original crashed single-process runs with unconditional barriers).
"""

from __future__ import annotations

import datetime
import logging
import os
import re
from dataclasses import dataclass
from typing import Any, TypeVar

import torch
import torch.distributed as torch_dist

from vigc.errors import ConfigError

logger = logging.getLogger(__name__)

T = TypeVar("T")
_DEVICE = re.compile(r"^cuda(?::(?P<index>\d+))?$")


@dataclass(frozen=True)
class DistInfo:
    """Where this process sits in the job.

    Attributes:
        rank: global rank (0 when not distributed).
        world_size: number of processes.
        local_rank: rank on this machine.
        device: the device this process uses.
    """

    rank: int
    world_size: int
    local_rank: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def init_distributed(device: str = "auto", timeout_minutes: int = 60) -> DistInfo:
    """Join the process group when launched by torchrun (env `WORLD_SIZE` > 1), else describe a single process.

    Args:
        device: "auto" (CUDA if available), "cpu", "cuda" or "cuda:N".
        timeout_minutes: collective timeout.
    """
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    use_cuda = torch.cuda.is_available() if device == "auto" else device.startswith("cuda")
    if use_cuda and not torch.cuda.is_available():
        logger.warning("device %r asked for, but CUDA is not available here: running on the CPU", device)
        use_cuda = False
    if use_cuda:
        index = local_rank if device in ("auto", "cuda") else int(device.split(":")[1])
        torch.cuda.set_device(index)
        target = torch.device("cuda", index)
    else:
        target = torch.device("cpu")
    if world_size > 1 and not torch_dist.is_initialized():
        backend = "nccl" if use_cuda else "gloo"
        torch_dist.init_process_group(backend, timeout=datetime.timedelta(minutes=timeout_minutes))
        logger.info("joined process group: rank %d of %d (%s)", rank, world_size, backend)
    return DistInfo(rank=rank, world_size=world_size, local_rank=local_rank, device=target)


def is_initialized() -> bool:
    """Whether a process group exists."""
    return torch_dist.is_available() and torch_dist.is_initialized()


def barrier() -> None:
    """Wait for every process; a no-op in a single process."""
    if is_initialized():
        torch_dist.barrier()


def all_gather_object(obj: T) -> list[T]:
    """Gather a picklable object from every rank, in rank order ([obj] in a single process)."""
    if not is_initialized():
        return [obj]
    gathered: list[Any] = [None] * torch_dist.get_world_size()
    torch_dist.all_gather_object(gathered, obj)
    return gathered


def broadcast_object(obj: T, src: int = 0) -> T:
    """Rank `src`'s object on every rank."""
    if not is_initialized():
        return obj
    box: list[Any] = [obj]
    torch_dist.broadcast_object_list(box, src=src)
    return box[0]


def all_reduce_mean(tensor: torch.Tensor) -> torch.Tensor:
    """Mean of a tensor over ranks (the tensor itself in a single process)."""
    if not is_initialized():
        return tensor
    out = tensor.clone()
    torch_dist.all_reduce(out, op=torch_dist.ReduceOp.SUM)
    return out / torch_dist.get_world_size()


def cleanup() -> None:
    """Leave the process group if one was joined."""
    if is_initialized():
        torch_dist.destroy_process_group()


def check_device(device: str, *, key: str, fallback: bool) -> None:
    """Check a device setting before anything is built on it.

    Args:
        device: ``auto``, ``cpu``, ``cuda`` or ``cuda:N``.
        key: The config key, for messages.
        fallback: Whether ``cuda`` without CUDA is allowed (the run falls back to the CPU with a warning).

    Raises:
        ConfigError: If the value is none of those, or names CUDA (or a GPU index) this machine does not have.
    """
    if device in ("auto", "cpu"):
        return
    match = _DEVICE.match(device)
    if match is None:
        raise ConfigError(f"{key} = {device!r} is not a device; use auto, cpu, cuda or cuda:N.")
    if not torch.cuda.is_available():
        if fallback:
            return
        raise ConfigError(
            f"{key} = {device!r}, but this PyTorch build has no usable CUDA (torch {torch.__version__}); "
            "set it to cpu or auto, or install a CUDA build of PyTorch."
        )
    index = int(match["index"] or 0)
    if index >= torch.cuda.device_count():
        raise ConfigError(f"{key} = {device!r}, but this machine has {torch.cuda.device_count()} GPU(s).")
