"""DeepSpeed engine set-up: single-process ZeRO on the CPU (gloo) here, ZeRO with bf16 on GPUs.

A client torch AdamW is passed in, so DeepSpeed never JIT-compiles its fused CPU Adam (about 60 s).
Each job gets its own rendezvous port (from its stage name) unless MASTER_PORT is already set, so
concurrent jobs never collide.
"""
from __future__ import annotations

import logging
import os
import zlib

import torch


def _rendezvous_env(job: str) -> None:
    os.environ.setdefault("RANK", "0")
    os.environ.setdefault("LOCAL_RANK", "0")
    os.environ.setdefault("WORLD_SIZE", "1")
    os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
    os.environ.setdefault("MASTER_PORT", str(29500 + zlib.crc32(job.encode()) % 2000))
    if not torch.cuda.is_available():
        os.environ.setdefault("DS_ACCELERATOR", "cpu")


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


def make_engine(model: torch.nn.Module, params: list[torch.nn.Parameter], cfg: dict, job: str):
    """(engine, optimizer) for the trainable `params`; everything else in `model` stays frozen."""
    _rendezvous_env(job)
    import deepspeed

    for logger in ("DeepSpeed", "deepspeed"):
        logging.getLogger(logger).setLevel(logging.WARNING)
    on_gpu = torch.cuda.is_available()
    deepspeed.init_distributed(dist_backend="nccl" if on_gpu else "gloo", verbose=False)
    optimizer = torch.optim.AdamW(params, lr=cfg["lr"], betas=(0.9, 0.98), weight_decay=0.01)
    engine, optimizer, _, _ = deepspeed.initialize(model=model, optimizer=optimizer, config=ds_config(cfg, on_gpu))
    return engine, optimizer
