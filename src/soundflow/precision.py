"""Float precision of training and of the frozen-encoder passes: bf16 autocast or fp32.

On GPUs `auto` takes bf16 (the paper profile's DeepSpeed bf16; not timed here, no GPU). On CPUs it depends
on the chip: bf16 autocast trained the CTC encoder 1.55x faster than fp32 on the AMD EPYC machines of
feasibility.md, and it ran 1.6x slower (s3 steps 0.69 s against 0.43 s)
on an Intel Xeon of this project's machine kind (avx512_bf16, no AMX) on 2026-11-30, while on a Xeon with
AMX the frozen Whisper tower's forward ran 3x faster in bf16 (2.1 against 6.3 ms a chunk, 2026-12-02).
`auto` times the workload's shape both ways (`lm`: one forward and backward pass of a tiny-LM layer;
`tower`: a no-grad forward of a Whisper-base layer) and takes bf16 only where it is clearly faster
(BF16_MIN_SPEEDUP). The answer is kept per machine and workload (CPU model, cores, threads, torch version)
in ~/.cache/soundflow, so every stage, run and test on one machine computes in the same precision: a probe repeated per process could flip under load
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
# The lead bf16 needs in the probe, a margin so that a chip where both are alike does not flip between runs.
# The lm probe over-reads real training: 1.25-1.30 on a Xeon with AMX (2026-12-02) where an s3 stage ran
# 1.44x slower in bf16 (40 steps: 0.69 against 0.48 s a step), so it needs a larger lead.
BF16_MIN_SPEEDUP = {"lm": 1.4, "tower": 1.2}


def autocast(precision: str):
    """bf16 autocast on the CPU for "bf16"; a no-op for "fp32" and on GPUs (they run bf16 through DeepSpeed)."""
    if precision not in ("bf16", "fp32"):
        raise ValueError(f"autocast needs 'bf16' or 'fp32' (resolve 'auto' first), got '{precision}'")
    on_cpu = not torch.cuda.is_available()
    return torch.autocast("cpu", dtype=torch.bfloat16, enabled=on_cpu and precision == "bf16")


WORKLOADS = ("lm", "tower")


def resolve(precision: str, workload: str = "lm") -> str:
    """"bf16" or "fp32"; "auto" measures which one this machine runs `workload` faster in."""
    if precision not in CHOICES:
        raise ValueError(f"precision must be one of {', '.join(CHOICES)}, got '{precision}'")
    if precision != "auto":
        return precision
    if torch.cuda.is_available():
        return "bf16"
    if workload not in WORKLOADS:
        raise ValueError(f"workload must be one of {', '.join(WORKLOADS)}, got '{workload}'")
    cache = cache_file(workload)
    if cache.is_file():
        return json.loads(cache.read_text())["precision"]
    speedup = cpu_bf16_speedup(workload)
    choice = "bf16" if speedup >= BF16_MIN_SPEEDUP[workload] else "fp32"
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


def cache_file(workload: str = "lm") -> Path:
    root = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "soundflow"
    name = "precision" if workload == "lm" else f"precision-{workload}"  # "lm" keeps its earlier file name
    return root / f"{name}-{hashlib.sha1(machine().encode()).hexdigest()[:12]}.json"


def cpu_bf16_speedup(workload: str = "lm", reps: int = 7) -> float:
    """fp32 time / bf16-autocast time of the workload's shape: a forward+backward pass of a 256-wide
    transformer layer on 8 x 256 positions (lm), or a no-grad forward of a Whisper-base-wide layer on
    4 x 300 frames (tower): the median over `reps` back-to-back pairs, so a load that comes and goes weighs
    on both sides alike. A few seconds."""
    with torch.random.fork_rng():  # the probe must not move the caller's random stream
        torch.manual_seed(0)
        if workload == "lm":
            layer, x = torch.nn.TransformerEncoderLayer(256, 4, 768, batch_first=True), torch.randn(8, 256, 256)
        else:  # Whisper base's shape, as the tower runs it (plain Linear layers and SDPA, no dropout)
            layer, x = _TowerLayer(512, 8, 2048), torch.randn(4, 300, 512)

        def seconds(bf16: bool) -> float:
            start = time.perf_counter()
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16), torch.set_grad_enabled(workload == "lm"):
                loss = layer(x).float().square().mean()
            if workload == "lm":
                loss.backward()
                layer.zero_grad(set_to_none=True)
            return time.perf_counter() - start

        seconds(False), seconds(True)  # warm-up
        return statistics.median(seconds(False) / seconds(True) for _ in range(reps))


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
