"""Running under torchrun: the process group, this process's rank and device, and the few
collective operations training needs. Without torchrun (no WORLD_SIZE in the environment) it is
one process and no process group."""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


@dataclass
class Processes:
    rank: int = 0
    world: int = 1
    device: torch.device = torch.device("cpu")
    owns_group: bool = False

    @property
    def main(self) -> bool:
        return self.rank == 0

    def barrier(self) -> None:
        if self.world > 1:
            dist.barrier()

    def mean(self, tensor: torch.Tensor) -> torch.Tensor:
        """The mean of `tensor` over all processes (gloo has no AVG, hence SUM / world)."""
        if self.world == 1:
            return tensor
        tensor = tensor.clone()
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
        return tensor / self.world

    def close(self) -> None:
        if self.owns_group:
            dist.destroy_process_group()
            self.owns_group = False


def start(device: str = "auto") -> Processes:
    """Join the process group torchrun describes (NCCL on CUDA, gloo on CPU), one device per
    process (cuda:LOCAL_RANK); a single process when not launched by torchrun."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    chosen = pick_device(device)
    if world == 1 and not dist.is_initialized():
        return Processes(device=chosen)
    if chosen.type == "cuda":
        local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        if local_rank >= torch.cuda.device_count():
            raise ValueError(f"LOCAL_RANK {local_rank} but only {torch.cuda.device_count()} CUDA devices are visible; "
                             f"use --nproc_per_node <= the number of GPUs")
        chosen = torch.device("cuda", local_rank)
        torch.cuda.set_device(chosen)
    owns = not dist.is_initialized()
    if owns:
        dist.init_process_group("nccl" if chosen.type == "cuda" else "gloo")
    return Processes(dist.get_rank(), dist.get_world_size(), chosen, owns)
