"""Benchmark 7 with a model (proactive_run): decisions from decoded events, the build-or-reuse rule,
the hook-up checked against a stand-in decoder with a known answer, and run(ctx) on the random tiny
bundle over a tiny build and over a hand-made external manifest."""
from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf

from soundflow import SAMPLE_RATE
from soundflow.bench import proactive as P
from soundflow.bench import proactive_data as D
from soundflow.bench import proactive_run as PR
from soundflow.bench.streams import BenchContext

TINY = {"n_events": 24, "must_ignore_s": 60, "must_ignore_share": 0.3}


def test_decisions_from_events():
    ev = [{"chunk": 0, "action": "silent"}, {"chunk": 1, "action": "respond"}, {"chunk": 3, "action": "respond"}]
    assert PR.decisions_from_events(ev, 5) == [False, True, False, True, False]
    assert PR.decisions_from_events([], 2) == [False, False]


def test_settings_validate():
    assert PR.settings({})["n_events"] == 644 and PR.settings({})["must_ignore_s"] >= 3600
    with pytest.raises(ValueError, match="unknown key.*n_event"):
        PR.settings({"n_event": 10})
    with pytest.raises(ValueError, match="energy_threshold_db"):
        PR.settings({"energy_threshold_db": "loud"})


@pytest.fixture(scope="module")
def tiny_work(tmp_path_factory):
    work = tmp_path_factory.mktemp("prun")
    PR.ensure_bench(work / "bench", PR.settings(TINY), workers=1)
    return work


def test_ensure_bench_builds_once_and_rebuilds_on_new_settings(tiny_work, tmp_path):
    manifest = tiny_work / "bench/manifest.jsonl"
    stamp = manifest.stat().st_mtime_ns
    assert PR.ensure_bench(tiny_work / "bench", PR.settings(TINY), workers=1) == manifest
    assert manifest.stat().st_mtime_ns == stamp  # reused
    other = tmp_path / "bench"
    PR.ensure_bench(other, PR.settings(TINY), workers=1)
    PR.ensure_bench(other, PR.settings({**TINY, "n_events": 30}), workers=1)
    assert json.loads((other / "summary.json").read_text())["events"] == 30


def test_hookup_scores_what_the_decoder_says(tiny_work, monkeypatch):
    """A stand-in decoder that responds at every chunk of the mixed streams only: every respond event is
    detected, every mixed ignore event is a false positive, must-ignore streams stay silent."""
    seen = []

    def fake_decode(bundle, rows, workers, desc=""):
        seen.extend(rows)
        return [[{"chunk": i, "action": "silent" if r["id"].startswith("ignore") else "respond"}
                 for i in range(P.n_chunks(sf.read(r["audio"])[0]))] for r in rows]

    monkeypatch.setattr(PR, "decode_streams", fake_decode)
    ctx = BenchContext(bundle=tiny_work / "no-bundle", offline_bundle=None, corpus=tiny_work, work=tiny_work,
                       cfg={**TINY, "energy_threshold_db": 20.0}, workers=1)
    out = PR.run(ctx)
    loaded = P.load_streams(tiny_work / "bench/manifest.jsonl")
    want = P.evaluate(loaded, lambda a: [True] * P.n_chunks(a))  # all-respond everywhere ...
    assert out["ours"]["respond_accuracy"] == 1.0 and out["ours"]["tp"] == want["tp"] == 10
    mi_ignore = sum(len(r["events"]) for r, _ in loaded if r["kind"] == "must_ignore")
    assert out["ours"]["ignore_accuracy"] == pytest.approx(mi_ignore / 14)  # ... but silent on must-ignore
    assert out["ours"]["false_alarms"] == 0 and out["ours"]["false_alarms_per_hour"] == 0.0
    assert out["accuracy"] == out["ours"]["accuracy"] == pytest.approx((10 + mi_ignore) / 24)
    assert out["always_silent_accuracy"] == pytest.approx(14 / 24)
    assert out["energy_trigger"] == {**P.evaluate(loaded, lambda a: P.energy_trigger(a, 20.0)), "threshold_db": 20.0}
    assert out["bench"]["events"] == 24 and out["bench"]["respond"] == 10
    assert {r["instruction"] for r in seen} == {PR.INSTRUCTION}
    # longest streams first, and each stream's decisions went back to that stream
    durations = [sf.info(r["audio"]).duration for r in seen]
    assert durations == sorted(durations, reverse=True)
    json.dumps(out)


def test_run_with_tiny_bundle_and_calibration(tiny_work, tiny_bundle):
    ctx = BenchContext(bundle=tiny_bundle, offline_bundle=None, corpus=tiny_work, work=tiny_work,
                       cfg={**TINY, "calibration_events": 24}, workers=1)
    out = PR.run(ctx)
    assert (tiny_work / "calibration/manifest.jsonl").is_file()
    assert json.loads((tiny_work / "calibration/summary.json").read_text())["seed"] == D.CALIBRATION_SEED
    ours = out["ours"]
    assert ours["events"] == out["events"] == 24 and ours["respond_events"] == 10
    for key in ("accuracy", "precision", "recall", "f1"):
        assert 0.0 <= out[key] <= 1.0 and out[key] == ours[key]
    assert out["false_alarms_per_hour"] == ours["false_alarms"] / ours["must_ignore_hours"]
    assert out["energy_threshold_db"] in P.THRESHOLDS_DB
    assert set(out) >= {"ours", "always_silent", "energy_trigger", "bench", "decode_s", "audio_h"}


def test_run_on_external_manifest_builds_nothing(tmp_path, tiny_bundle):
    rng = np.random.default_rng(0)
    x = rng.normal(0, 0.003, 8 * SAMPLE_RATE).astype(np.float32)
    x[2 * SAMPLE_RATE: 3 * SAMPLE_RATE] = rng.normal(0, 0.3, SAMPLE_RATE)
    sf.write(tmp_path / "s.wav", x, SAMPLE_RATE, subtype="PCM_16")
    (tmp_path / "m.jsonl").write_text(json.dumps({"id": "s", "audio": "s.wav", "events": [
        {"start_s": 2.0, "end_s": 3.0, "action": "respond", "domain": "alarm"},
        {"start_s": 5.5, "end_s": 5.9, "action": "ignore", "domain": "ambient"}]}) + "\n")
    ctx = BenchContext(bundle=tiny_bundle, offline_bundle=None, corpus=tmp_path, work=tmp_path / "w",
                       cfg={"energy_threshold_db": 20.0}, manifest=tmp_path / "m.jsonl", workers=1)
    out = PR.run(ctx)
    assert out["events"] == 2 and out["false_alarms_per_hour"] is None
    assert out["energy_trigger"]["respond_accuracy"] == 1.0  # the 40 dB burst
    assert out["always_silent_accuracy"] == 0.5
    assert not (tmp_path / "w").exists()
