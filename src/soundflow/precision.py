"""Float precision of training and of the frozen-encoder passes: bf16 autocast or fp32.

On GPUs `auto` takes bf16 (the paper profile's DeepSpeed bf16; not timed here, no GPU). On CPUs it depends
on the chip: bf16 autocast trained the CTC encoder 1.55x faster than fp32 on the AMD EPYC machines of
feasibility.md, and it ran 1.6x slower (s3 steps 0.69 s against 0.43 s)
on an Intel Xeon of this project's machine kind (avx512_bf16, no AMX) on 2026-11-30. `auto` times one
LM-sized forward and backward pass both ways and takes bf16 only where it is clearly faster. The answer
is kept per machine (CPU model, cores, threads, torch version) in ~/.cache/soundflow, so every stage, run
and test on one machine trains in the same precision: a probe repeated per process could flip under load
and break the step-for-step reproducibility of the stages.
"""
from __future__ import annotations

import hashlib
import json
import os
import platform
import statistics
import time
from pathlib import Path

import torch

from soundflow.audio import atomic_path

CHOICES = ("bf16", "fp32", "auto")
BF16_MIN_SPEEDUP = 1.2  # a margin, so that a chip where both are alike does not flip between runs


def autocast(precision: str):
    """bf16 autocast on the CPU for "bf16"; a no-op for "fp32" and on GPUs (they run bf16 through DeepSpeed)."""
    if precision not in ("bf16", "fp32"):
        raise ValueError(f"autocast needs 'bf16' or 'fp32' (resolve 'auto' first), got '{precision}'")
    on_cpu = not torch.cuda.is_available()
    return torch.autocast("cpu", dtype=torch.bfloat16, enabled=on_cpu and precision == "bf16")


def resolve(precision: str) -> str:
    """"bf16" or "fp32"; "auto" measures which one this machine runs faster."""
    if precision not in CHOICES:
        raise ValueError(f"precision must be one of {', '.join(CHOICES)}, got '{precision}'")
    if precision != "auto":
        return precision
    if torch.cuda.is_available():
        return "bf16"
    cache = cache_file()
    if cache.is_file():
        return json.loads(cache.read_text())["precision"]
    speedup = cpu_bf16_speedup()
    choice = "bf16" if speedup >= BF16_MIN_SPEEDUP else "fp32"
    tmp = atomic_path(cache)
    tmp.write_text(json.dumps({"precision": choice, "bf16_speedup": round(speedup, 3), "machine": machine()}) + "\n")
    os.replace(tmp, cache)
    return choice


def machine() -> str:
    """What the probe's answer holds for: CPU model, cores, torch threads and version."""
    model = platform.processor()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        model = next((line.split(":", 1)[1].strip() for line in cpuinfo.read_text().splitlines()
                      if line.startswith("model name")), model)
    return f"{model} | {os.cpu_count()} cores | {torch.get_num_threads()} threads | torch {torch.__version__}"


def cache_file() -> Path:
    root = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "soundflow"
    return root / f"precision-{hashlib.sha1(machine().encode()).hexdigest()[:12]}.json"


def cpu_bf16_speedup(reps: int = 7) -> float:
    """fp32 time / bf16-autocast time of a forward+backward pass of a 256-wide transformer layer on
    8 x 256 positions (the tiny LM's shape): the median over `reps` back-to-back pairs, so a load
    that comes and goes weighs on both sides alike. A few seconds."""
    with torch.random.fork_rng():  # the probe must not move the caller's random stream
        torch.manual_seed(0)
        layer = torch.nn.TransformerEncoderLayer(256, 4, 768, batch_first=True)
        x = torch.randn(8, 256, 256)

        def seconds(bf16: bool) -> float:
            start = time.perf_counter()
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                loss = layer(x).float().square().mean()
            loss.backward()
            layer.zero_grad(set_to_none=True)
            return time.perf_counter() - start

        seconds(False), seconds(True)  # warm-up
        return statistics.median(seconds(False) / seconds(True) for _ in range(reps))
