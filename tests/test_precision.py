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
        monkeypatch.setattr(precision, "cpu_bf16_speedup", lambda workload="lm", s=speedup: s)
        assert precision.resolve("auto") == expected
    # the machine's answer is kept: a later probe that would read otherwise is not run
    monkeypatch.setattr(precision, "cpu_bf16_speedup", lambda workload="lm": 9.0)
    assert precision.resolve("auto") == "fp32"
    kept = json.loads(precision.cache_file().read_text())
    assert kept["precision"] == "fp32" and kept["bf16_speedup"] == 0.6 and "torch" in kept["machine"]


def test_each_workload_is_probed_and_kept_on_its_own(monkeypatch, tmp_path):
    """The LM (forward + backward) and the frozen tower (no-grad forward) can prefer different precisions on
    one machine: each gets its own probe and its own cache file; "lm" keeps the file name it always had."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert precision.cache_file("lm") == precision.cache_file() and precision.cache_file("lm").name.startswith("precision-")
    assert precision.cache_file("tower").name.startswith("precision-tower-")
    assert precision.cache_file("tower").parent == precision.cache_file().parent
    probed = []

    def probe(workload="lm"):
        probed.append(workload)
        return {"lm": 0.8, "tower": 2.4}[workload]

    monkeypatch.setattr(precision, "cpu_bf16_speedup", probe)
    assert precision.resolve("auto", "tower") == "bf16" and precision.resolve("auto") == "fp32"
    assert precision.resolve("auto", "tower") == "bf16" and precision.resolve("auto", "lm") == "fp32"
    assert probed == ["tower", "lm"]  # once each, then from the cache
    assert json.loads(precision.cache_file("tower").read_text())["bf16_speedup"] == 2.4
    assert precision.resolve("fp32", "tower") == "fp32"  # an explicit choice needs no probe
    with pytest.raises(ValueError, match="workload must be one of lm, tower, got 'encoder'"):
        precision.resolve("auto", "encoder")


@pytest.mark.parametrize("workload", ["lm", "tower"])
def test_probe_measures_and_leaves_the_random_stream_alone(workload):
    torch.manual_seed(3)
    expected = torch.rand(3)
    torch.manual_seed(3)
    speedup = precision.cpu_bf16_speedup(workload, reps=1)
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
