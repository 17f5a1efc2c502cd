"""Float precision of training and of the frozen-encoder passes: bf16 autocast or fp32.

On GPUs `auto` takes bf16 (the paper profile's DeepSpeed bf16; not timed here, no GPU). On CPUs it depends
on the chip, and a stand-in shape does not predict it: a lone 256-wide layer read bf16 1.38x faster on an
AMD EPYC where real tiny s3 steps ran 1.68x faster, and 1.25-1.30x on an Intel Xeon with AMX where they ran
0.69x (reports/arms/lm_precision.json). So `auto` times the real work both ways: a training stage passes a
probe that runs its own model on its own first batch (`train-<key>`, the key naming the model and what the
stage trains), the frozen tower a no-grad forward of a Whisper-base layer (`tower`: 3x faster in bf16 on a
Xeon with AMX, 2.1 against 6.3 ms a chunk), the runtime's LM a short session of its own (`runtime-<key>`,
soundflow.runtime.decoder.lm_bf16_speedup). bf16 is taken only where it is clearly faster
(BF16_MIN_SPEEDUP). The answer is kept per machine and workload (CPU model, cores, threads, torch version)
in ~/.cache/soundflow, so every stage, run and test on one machine computes in the same precision: a probe
repeated per process could flip under load and break the step-for-step reproducibility of the stages.
"""
from __future__ import annotations

import fcntl
import hashlib
import json
import os
import platform
import statistics
import time
from pathlib import Path
from typing import Callable

import torch

from soundflow.audio import atomic_path

CHOICES = ("bf16", "fp32", "auto")
# The lead bf16 needs, a margin so that a chip where both are alike does not flip between machines of a kind.
BF16_MIN_SPEEDUP = {"train": 1.15, "tower": 1.2, "runtime": 1.15}


def autocast(precision: str):
    """bf16 autocast on the CPU for "bf16"; a no-op for "fp32" and on GPUs (they run bf16 through DeepSpeed)."""
    if precision not in ("bf16", "fp32"):
        raise ValueError(f"autocast needs 'bf16' or 'fp32' (resolve 'auto' first), got '{precision}'")
    on_cpu = not torch.cuda.is_available()
    return torch.autocast("cpu", dtype=torch.bfloat16, enabled=on_cpu and precision == "bf16")


def resolve(precision: str, workload: str, probe: Callable[[], float] | None = None) -> str:
    """"bf16" or "fp32"; "auto" measures which one this machine runs `workload` faster in: "tower" (the
    built-in probe), or "train-<key>" / "runtime-<key>" with `probe`, which returns the bf16 speedup of the
    caller's own work. Processes that resolve the same workload at once (a benchmark's worker pool) wait for
    the first one's answer rather than probe side by side."""
    if precision not in CHOICES:
        raise ValueError(f"precision must be one of {', '.join(CHOICES)}, got '{precision}'")
    if precision != "auto":
        return precision
    if torch.cuda.is_available():
        return "bf16"
    kind = workload.split("-", 1)[0]
    if workload != "tower" and not (kind in ("train", "runtime") and probe is not None):
        raise ValueError(f"workload must be 'tower', or 'train-<key>' or 'runtime-<key>' with a probe, got '{workload}'")
    cache = cache_file(workload)
    cache.parent.mkdir(parents=True, exist_ok=True)
    with open(cache.with_suffix(".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        if cache.is_file():
            return json.loads(cache.read_text())["precision"]
        speedup = probe() if probe is not None else tower_bf16_speedup()
        choice = "bf16" if speedup >= BF16_MIN_SPEEDUP[kind] else "fp32"
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


def cache_file(workload: str) -> Path:
    root = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "soundflow"
    return root / f"precision-{workload}-{hashlib.sha1(machine().encode()).hexdigest()[:12]}.json"


def bf16_speedup(step: Callable[[], None], pairs: int = 3, max_s: float = 30.0) -> float:
    """fp32 time / bf16-autocast time of `step()`: the median over back-to-back pairs after a warm-up
    pair, so a load that comes and goes weighs on both sides alike. It stops after `pairs` pairs or once
    `max_s` seconds are spent (one pair at least), so the probe of a large model stays short. The caller's
    random stream is left where it was."""
    def seconds(bf16: bool) -> float:
        start = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            step()
        return time.perf_counter() - start

    with torch.random.fork_rng():
        torch.manual_seed(0)
        begin = time.perf_counter()
        seconds(False), seconds(True)  # warm-up
        ratios = []
        while not ratios or (len(ratios) < pairs and time.perf_counter() - begin < max_s):
            ratios.append(seconds(False) / seconds(True))
    return statistics.median(ratios)


def tower_bf16_speedup(pairs: int = 7) -> float:
    """bf16_speedup of a no-grad forward of a Whisper-base-wide layer on 4 x 300 frames. A few seconds."""
    with torch.random.fork_rng():
        torch.manual_seed(0)
        layer, x = _TowerLayer(512, 8, 2048), torch.randn(4, 300, 512)

    def step() -> None:
        with torch.no_grad():
            layer(x)

    return bf16_speedup(step, pairs)


class _TowerLayer(torch.nn.Module):
    """A pre-LN transformer layer built like the Whisper tower's (soundflow.models.whisper_tower)."""

    def __init__(self, width: int, heads: int, ff: int):
        super().__init__()
        self.heads = heads
        self.norm1, self.norm2 = torch.nn.LayerNorm(width), torch.nn.LayerNorm(width)
        self.qkv, self.out = torch.nn.Linear(width, 3 * width), torch.nn.Linear(width, width)
        self.fc1, self.fc2 = torch.nn.Linear(width, ff), torch.nn.Linear(ff, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, d = x.shape
        q, k, v = self.qkv(self.norm1(x)).view(b, t, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        x = x + self.out(torch.nn.functional.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(b, t, d))
        return x + self.fc2(torch.nn.functional.gelu(self.fc1(self.norm2(x))))
