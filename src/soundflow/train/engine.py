"""DeepSpeed engine set-up: ZeRO on the CPU (gloo) here, ZeRO with bf16 on GPUs, one process or many.

A client torch AdamW is passed in, so DeepSpeed never JIT-compiles its fused CPU Adam (about 60 s).
Several processes are started by the standard launcher (`torchrun`, under `srun` on a SLURM cluster),
which sets RANK / LOCAL_RANK / WORLD_SIZE / MASTER_ADDR / MASTER_PORT. A process started alone gets a
free rendezvous port from the kernel, so concurrent jobs on one machine never collide.
"""
from __future__ import annotations

import logging
import os
import socket

import torch


def world() -> tuple[int, int]:
    """(rank, world size) of this process: from the launcher's environment, before or after init."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))


def is_main() -> bool:
    return world()[0] == 0


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _rendezvous_env() -> None:
    if int(os.environ.get("WORLD_SIZE", 1)) > 1 and "MASTER_PORT" not in os.environ:
        raise RuntimeError("WORLD_SIZE > 1 without MASTER_ADDR/MASTER_PORT: start several processes with torchrun")
    os.environ.setdefault("RANK", "0")
    os.environ.setdefault("LOCAL_RANK", "0")
    os.environ.setdefault("WORLD_SIZE", "1")
    os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
    if "MASTER_PORT" not in os.environ:  # alone: any free port (a fixed one collides with a twin job)
        os.environ["MASTER_PORT"] = str(free_port())
    if not torch.cuda.is_available():
        os.environ.setdefault("DS_ACCELERATOR", "cpu")


def init_distributed() -> None:
    """Join the process group (idempotent): nccl on GPUs, gloo on the CPU."""
    _rendezvous_env()
    import deepspeed

    for logger in ("DeepSpeed", "deepspeed"):
        logging.getLogger(logger).setLevel(logging.WARNING)
    if torch.cuda.is_available():
        torch.cuda.set_device(int(os.environ["LOCAL_RANK"]))
    deepspeed.init_distributed(dist_backend="nccl" if torch.cuda.is_available() else "gloo", verbose=False)


def barrier() -> None:
    if world()[1] > 1:
        torch.distributed.barrier()


def to_device(batch, device: torch.device):
    """A batch's tensors (in dicts and lists) on `device`; a no-op on the CPU."""
    if device.type == "cpu":
        return batch
    if torch.is_tensor(batch):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, dict):
        return {k: to_device(v, device) for k, v in batch.items()}
    if isinstance(batch, list) and batch and torch.is_tensor(batch[0]):
        return [to_device(v, device) for v in batch]
    return batch


def ds_config(cfg: dict, on_gpu: bool) -> dict:
    return {
        "train_micro_batch_size_per_gpu": 1,  # batches are token-budgeted by our sampler
        "gradient_accumulation_steps": 1,
        "gradient_clipping": cfg["grad_clip"],
        "zero_optimization": {"stage": cfg["zero_stage"]},
        # On GPUs DeepSpeed runs bf16 itself; on the CPU the loop autocasts (soundflow.precision).
        "bf16": {"enabled": on_gpu and cfg["precision"] == "bf16"},
        "steps_per_print": 10**9,
        "wall_clock_breakdown": False,
    }


def make_engine(model: torch.nn.Module, params: list[torch.nn.Parameter], cfg: dict):
    """(engine, optimizer) for the trainable `params`; everything else in `model` stays frozen."""
    init_distributed()
    import deepspeed

    if cfg.get("gradient_checkpointing"):
        # recompute the LM's activations in backward (the frozen tower's frames are cached, not recomputed)
        model.lm.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    on_gpu = torch.cuda.is_available()
    optimizer = torch.optim.AdamW(params, lr=cfg["lr"], betas=(0.9, 0.98), weight_decay=0.01)
    engine, optimizer, _, _ = deepspeed.initialize(model=model, optimizer=optimizer, config=ds_config(cfg, on_gpu))
    return engine, optimizer
