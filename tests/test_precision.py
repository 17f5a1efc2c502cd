"""Precision: explicit choices pass through, `auto` measures the real work once per machine and workload,
and autocast refuses what it cannot run."""
import json

import pytest
import torch

from soundflow import precision


def test_explicit_precision_is_kept_and_unknown_is_refused():
    assert precision.resolve("bf16", "tower") == "bf16" and precision.resolve("fp32", "train-x") == "fp32"
    with pytest.raises(ValueError, match="precision must be one of bf16, fp32, auto, got 'fp16'"):
        precision.resolve("fp16", "tower")


def test_auto_follows_the_probe_once_per_machine_and_workload(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    for speedup, expected in ((1.5, "bf16"), (1.1, "fp32"), (0.6, "fp32")):  # 1.1: inside the margin
        precision.cache_file("train-a").unlink(missing_ok=True)
        assert precision.resolve("auto", "train-a", lambda s=speedup: s) == expected
    # the machine's answer is kept: a later probe that would read otherwise is not run
    assert precision.resolve("auto", "train-a", lambda: 9.0) == "fp32"
    kept = json.loads(precision.cache_file("train-a").read_text())
    assert kept["precision"] == "fp32" and kept["bf16_speedup"] == 0.6 and "torch" in kept["machine"]
    # another workload (another model, or another part of it trained) is probed on its own
    assert precision.resolve("auto", "train-b", lambda: 1.5) == "bf16"
    monkeypatch.setattr(precision, "tower_bf16_speedup", lambda: 2.4)
    assert precision.resolve("auto", "tower") == "bf16"
    assert json.loads(precision.cache_file("tower").read_text())["bf16_speedup"] == 2.4
    assert len({precision.cache_file(w) for w in ("train-a", "train-b", "tower")}) == 3


def test_a_training_workload_needs_its_probe():
    with pytest.raises(ValueError, match="workload must be 'tower', or 'train-<key>' or 'runtime-<key>' with a "
                                         "probe, got 'train-a'"):
        precision.resolve("auto", "train-a")
    with pytest.raises(ValueError, match="got 'runtime-a'"):
        precision.resolve("auto", "runtime-a")
    with pytest.raises(ValueError, match="got 'encoder'"):
        precision.resolve("auto", "encoder", lambda: 1.0)


def test_probe_times_the_step_both_ways_and_leaves_the_random_stream_alone():
    layer = torch.nn.Linear(64, 64)
    seen = []

    def step():
        seen.append(layer(torch.randn(32, 64)).dtype)

    torch.manual_seed(3)
    expected = torch.rand(3)
    torch.manual_seed(3)
    assert precision.bf16_speedup(step, pairs=2) > 0
    assert torch.equal(torch.rand(3), expected)
    assert seen == [torch.float32, torch.bfloat16] * 3  # warm-up pair, then two timed pairs
    assert precision.tower_bf16_speedup(pairs=1) > 0


def test_probe_of_a_slow_step_stops_after_its_time():
    seen = []
    assert precision.bf16_speedup(lambda: seen.append(1), pairs=50, max_s=0.0) > 0
    assert len(seen) == 4  # the warm-up pair and the one pair it always takes


def test_autocast_runs_bf16_only_when_asked():
    x = torch.randn(4, 8)
    layer = torch.nn.Linear(8, 8)
    with precision.autocast("bf16"):
        assert layer(x).dtype == torch.bfloat16
    with precision.autocast("fp32"):
        assert layer(x).dtype == torch.float32
    with pytest.raises(ValueError, match="resolve 'auto' first"):
        precision.autocast("auto")


def test_processes_resolving_one_workload_at_once_probe_it_once(monkeypatch, tmp_path):
    """A benchmark's worker pool resolves the runtime's precision in every worker: the first probes, the
    others wait for its answer (two probes side by side would time each other and could disagree)."""
    import multiprocessing as mp

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    with mp.get_context("fork").Pool(3) as pool:
        answers = pool.map(_resolve_runtime_with_slow_probe, [str(tmp_path)] * 3)
    assert answers == ["bf16"] * 3
    assert len(list(tmp_path.glob("probe-*"))) == 1


def _resolve_runtime_with_slow_probe(root: str) -> str:
    import os
    import time
    from pathlib import Path

    def probe() -> float:
        Path(root, f"probe-{os.getpid()}").touch()
        time.sleep(0.3)
        return 1.5

    return precision.resolve("auto", "runtime-x", probe)
