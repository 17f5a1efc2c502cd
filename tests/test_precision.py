"""Precision: explicit choices pass through, `auto` measures, and autocast refuses what it cannot run."""
import pytest
import torch

from soundflow import precision


def test_explicit_precision_is_kept_and_unknown_is_refused():
    assert precision.resolve("bf16") == "bf16" and precision.resolve("fp32") == "fp32"
    with pytest.raises(ValueError, match="precision must be one of bf16, fp32, auto, got 'fp16'"):
        precision.resolve("fp16")


def test_auto_follows_the_probe(monkeypatch):
    monkeypatch.setattr(precision, "cpu_bf16_speedup", lambda: 1.5)
    assert precision.resolve("auto") == "bf16"
    monkeypatch.setattr(precision, "cpu_bf16_speedup", lambda: 1.1)  # inside the margin: fp32
    assert precision.resolve("auto") == "fp32"
    monkeypatch.setattr(precision, "cpu_bf16_speedup", lambda: 0.6)
    assert precision.resolve("auto") == "fp32"


def test_probe_measures_and_leaves_the_random_stream_alone():
    torch.manual_seed(3)
    expected = torch.rand(3)
    torch.manual_seed(3)
    speedup = precision.cpu_bf16_speedup.__wrapped__(reps=1)
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
