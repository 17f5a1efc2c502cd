"""Precision: explicit choices pass through, `auto` measures, and autocast refuses what it cannot run."""
import json

import pytest
import torch

from soundflow import precision


def test_explicit_precision_is_kept_and_unknown_is_refused():
    assert precision.resolve("bf16") == "bf16" and precision.resolve("fp32") == "fp32"
    with pytest.raises(ValueError, match="precision must be one of bf16, fp32, auto, got 'fp16'"):
        precision.resolve("fp16")


def test_auto_follows_the_probe_once_per_machine(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    for speedup, expected in ((1.5, "bf16"), (1.1, "fp32"), (0.6, "fp32")):  # 1.1: inside the margin
        precision.cache_file().unlink(missing_ok=True)
        monkeypatch.setattr(precision, "cpu_bf16_speedup", lambda s=speedup: s)
        assert precision.resolve("auto") == expected
    # the machine's answer is kept: a later probe that would read otherwise is not run
    monkeypatch.setattr(precision, "cpu_bf16_speedup", lambda: 9.0)
    assert precision.resolve("auto") == "fp32"
    kept = json.loads(precision.cache_file().read_text())
    assert kept["precision"] == "fp32" and kept["bf16_speedup"] == 0.6 and "torch" in kept["machine"]


def test_probe_measures_and_leaves_the_random_stream_alone():
    torch.manual_seed(3)
    expected = torch.rand(3)
    torch.manual_seed(3)
    speedup = precision.cpu_bf16_speedup(reps=1)
    assert speedup > 0
    assert torch.equal(torch.rand(3), expected)


def test_autocast_runs_bf16_only_when_asked():
    x = torch.randn(4, 8)
    layer = torch.nn.Linear(8, 8)
    with precision.autocast("bf16"):
        assert layer(x).dtype == torch.bfloat16
    with precision.autocast("fp32"):
        assert layer(x).dtype == torch.float32
    with pytest.raises(ValueError, match="resolve 'auto' first"):
        precision.autocast("auto")
