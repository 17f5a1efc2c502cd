"""Proactive-Sound-Bench-mini: tiny builds (counts, determinism, annotations), scoring on hand-made
decisions with known answers, and the two baselines."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest
import soundfile as sf

from soundflow import config
from soundflow.bench import proactive as P
from soundflow.bench import proactive_data as D

TINY = dict(n_events=24, must_ignore_s=60, must_ignore_share=0.3, progress=False)
QUIET = {**D.CORPUS_NOISE, "p_noise": 0.0, "clean_snr_db": 80.0}  # noise 80 dB down: event spans stand out


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("pbench")
    out = {
        "a": root / "a", "b": root / "b", "other": root / "other", "quiet": root / "quiet",
    }
    D.build(out["a"], seed=D.BENCH_SEED, workers=1, **TINY)
    D.build(out["b"], seed=D.BENCH_SEED, workers=2, **TINY)
    D.build(out["other"], seed=D.BENCH_SEED + 1, workers=1, **TINY)
    D.build(out["quiet"], seed=D.BENCH_SEED, workers=1, noise_cfg=QUIET, **TINY)
    return out


def _rows(folder):
    return [json.loads(line) for line in (folder / "manifest.jsonl").read_text().splitlines()]


def _files(folder):
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


# ---------------------------------------------------------------------------------------------
# data


def test_ratio_arithmetic():
    assert D.event_counts(644) == (267, 377)
    assert D.event_counts(24) == (10, 14)
    for n in range(100, 2000, 13):
        r, i = D.event_counts(n)
        assert r + i == n and abs(r / n - 267 / 644) <= 0.005


def test_six_domains_each_with_both_actions():
    assert len(D.DOMAINS) == 6
    assert all(D.TYPES[d, a] for d in D.DOMAINS for a in D.ACTIONS)


def test_corpus_noise_settings_match_params_yaml():
    data = config.load()["data"]
    assert tuple(data["snr_db"]) == D.CORPUS_NOISE["snr_db"]
    for key in ("clean_snr_db", "p_noise", "p_real_event"):
        assert data[key] == D.CORPUS_NOISE[key]
    assert D.BENCH_SEED != data["seed"] and D.CALIBRATION_SEED not in (data["seed"], D.BENCH_SEED)


def test_tiny_build_counts(tiny):
    rows, summary = _rows(tiny["a"]), json.loads((tiny["a"] / "summary.json").read_text())
    evs = [e for r in rows for e in r["events"]]
    assert len(evs) == summary["events"] == 24
    assert sum(e["action"] == "respond" for e in evs) == summary["respond"] == 10
    assert summary["per_domain"].keys() == set(D.DOMAINS)
    assert all(c["respond"] >= 1 and c["ignore"] >= 1 for c in summary["per_domain"].values())
    for e in evs:  # labels are the events module's own
        assert D.events.EVENT_TYPES[e["event"]].domain == e["domain"]
        assert D.events.EVENT_TYPES[e["event"]].action == e["action"]
    must = [r for r in rows if r["kind"] == "must_ignore"]
    assert sum(r["duration_s"] for r in must) >= 60
    assert sum(len(r["events"]) for r in must) == round(14 * 0.3) == summary["events_by_kind"]["must_ignore"]
    assert all(e["action"] == "ignore" for r in must for e in r["events"])
    assert all(len({e["domain"] for e in r["events"]}) == 1 for r in rows if r["kind"] == "mixed")
    for r in rows:
        if r["noise"].startswith("noisy"):
            assert 5.0 <= r["snr_db"] <= 20.0
        else:
            assert r["snr_db"] == 35.0


def test_same_seed_same_bytes_different_seed_different(tiny):
    a, b, other = _files(tiny["a"]), _files(tiny["b"]), _files(tiny["other"])
    assert a.keys() == b.keys() and all(a[k] == b[k] for k in a)  # 1 worker or 2: same bytes
    assert a["manifest.jsonl"] != other["manifest.jsonl"]
    shared = [k for k in a if k.endswith(".wav") and k in other]
    assert shared and all(a[k] != other[k] for k in shared)


def test_audio_chunk_aligned_and_annotations_inside(tiny):
    for row in _rows(tiny["a"]):
        audio, sr = sf.read(tiny["a"] / row["audio"])
        assert sr == 16000 and audio.ndim == 1
        assert len(audio) % D.CHUNK_SAMPLES == 0 and len(audio) / sr == row["duration_s"]
        evs = row["events"]
        assert evs and evs[0]["start_s"] >= D.LEAD_S[0]
        assert evs[-1]["end_s"] + P.TOLERANCE_S + 0.4 <= row["duration_s"]  # last window inside the stream
        for e, nxt in zip(evs, evs[1:]):
            assert nxt["start_s"] - e["end_s"] >= D.GAP_S[0] - 1e-3
        for e in evs:
            assert 0 <= e["start_s"] < e["end_s"] <= row["duration_s"]


def test_annotations_cover_exactly_the_events(tiny):
    """With the noise 80 dB down, the audio is silent outside the annotated spans, loud inside each."""
    for row in _rows(tiny["quiet"]):
        audio, sr = sf.read(tiny["quiet"] / row["audio"])
        inside = np.zeros(len(audio), bool)
        for e in row["events"]:
            lo, hi = round(e["start_s"] * sr), round(e["end_s"] * sr)
            assert np.max(np.abs(audio[lo:hi])) > 0.05, (row["id"], e)
            inside[max(lo - 2, 0): hi + 2] = True
        assert np.max(np.abs(audio[~inside])) < 2e-3, row["id"]


def test_plan_rejects_bad_sizes():
    with pytest.raises(ValueError, match="n_events"):
        D.plan(n_events=10)
    with pytest.raises(ValueError, match="do not fit"):
        D.plan(n_events=644, must_ignore_s=60, must_ignore_share=1.0)


def test_loads_own_manifest(tiny):
    rows = D.load_manifest(tiny["a"] / "manifest.jsonl")
    assert len(rows) == len(_rows(tiny["a"]))
    assert all(r["audio_path"].endswith(f"{r['id']}.wav") for r in rows)


@pytest.mark.parametrize("broken, message", [
    ({"events": None}, r":2: missing key 'events'"),
    ({"audio": "audio/nowhere.wav"}, r":2: key 'audio': audio file not found"),
    ({"events": [{"start_s": 1.0, "end_s": 2.0}]}, r":2: events\[0\]: missing key 'action'"),
    ({"kind": "sometimes"}, r":2: key 'kind'"),
    ({"events": [{"start_s": 3.0, "end_s": 2.0, "action": "respond"}]}, r":2: events\[0\]: keys 'start_s'/'end_s'"),
])
def test_external_manifest_errors(tmp_path, broken, message):
    sf.write(tmp_path / "ok.wav", np.zeros(6400), 16000)
    good = {"id": "s1", "audio": "ok.wav", "events": [{"start_s": 0.5, "end_s": 1.0, "action": "ignore"}]}
    bad = {**good, "id": "s2", **broken}
    bad = {k: v for k, v in bad.items() if v is not None}
    path = tmp_path / "mine.jsonl"
    path.write_text(json.dumps(good) + "\n" + json.dumps(bad) + "\n")
    with pytest.raises(ValueError, match=r"mine\.jsonl" + message):
        D.load_manifest(path)


# ---------------------------------------------------------------------------------------------
# scoring

# windows (T = 2 s): event 0 -> chunks 2..12, event 1 -> 15..22, event 2 -> 25..32
EVENTS = [
    {"start_s": 1.0, "end_s": 3.0, "action": "respond", "domain": "alarm"},
    {"start_s": 6.0, "end_s": 7.0, "action": "ignore", "domain": "alarm"},
    {"start_s": 10.2, "end_s": 11.0, "action": "respond", "domain": "outdoor"},
]


def _decide(*chunks, n=40):
    d = [False] * n
    for c in chunks:
        d[c] = True
    return d


def test_windows():
    assert [P.window(e, 40) for e in EVENTS] == [(2, 13), (15, 23), (25, 33)]
    assert P.runs([True, True, False, True, False, False, True]) == [(0, 2), (3, 4), (6, 7)]


def test_perfect_system_and_exact_latency():
    s = P.score([(EVENTS, _decide(3, 4, 28))])
    assert s["accuracy"] == 1.0 and s["precision"] == 1.0 and s["recall"] == 1.0 and s["f1"] == 1.0
    # event 0: end of chunk 3 = 1.6 s - 1.0 s; event 2: end of chunk 28 = 11.6 s - 10.2 s
    assert s["latency_mean_s"] == pytest.approx(1.0) and s["latency_median_s"] == pytest.approx(1.0)
    assert P.score([(EVENTS, _decide(2, 25))])["latency_mean_s"] == pytest.approx((0.2 + 0.2) / 2)
    assert s["per_domain"] == {"alarm": {"accuracy": 1.0, "events": 2}, "outdoor": {"accuracy": 1.0, "events": 1}}


def test_always_silent_scores():
    s = P.score([(EVENTS, _decide())])
    assert s["recall"] == 0.0 and s["precision"] == 0.0 and s["f1"] == 0.0
    assert s["accuracy"] == pytest.approx(1 / 3)  # = share of ignore events
    assert s["latency_mean_s"] is None and s["false_alarms_per_hour"] is None


def test_window_edges():
    before, first, last, after = _decide(1), _decide(2), _decide(12), _decide(13)
    assert P.score([(EVENTS, before)])["tp"] == 0 and P.score([(EVENTS, before)])["fp_stray_runs"] == 1
    assert P.score([(EVENTS, first)])["latency_mean_s"] == pytest.approx(0.2)
    assert P.score([(EVENTS, last)])["latency_mean_s"] == pytest.approx(13 * 0.4 - 1.0)
    assert P.score([(EVENTS, after)])["tp"] == 0 and P.score([(EVENTS, after)])["fp_stray_runs"] == 1
    assert P.score([(EVENTS, _decide(3))], tolerance_s=0.0)["tp"] == 1
    assert P.score([(EVENTS, _decide(12))], tolerance_s=0.0)["tp"] == 0


def test_false_positives_precision_f1():
    s = P.score([(EVENTS, _decide(3, 16, 17, 26, 37))])  # both hits, the ignore event, one stray
    assert (s["tp"], s["fp_ignore_events"], s["fp_stray_runs"], s["fp"]) == (2, 1, 1, 2)
    assert s["accuracy"] == pytest.approx(2 / 3) and s["ignore_accuracy"] == 0.0
    assert s["precision"] == pytest.approx(0.5) and s["recall"] == 1.0 and s["f1"] == pytest.approx(2 / 3)


def test_false_alarms_per_hour():
    hour = 9000  # chunks of 0.4 s
    quiet = [{"start_s": 10.0, "end_s": 12.0, "action": "ignore"}]
    one = _decide(5000, 5001, 5002, n=hour)  # one run of three chunks = one false alarm
    s = P.score([(quiet, one), (EVENTS, _decide(3, 26))], must_ignore=[True, False])
    assert s["must_ignore_hours"] == pytest.approx(1.0)
    assert s["false_alarms"] == 1 and s["false_alarms_per_hour"] == pytest.approx(1.0)
    half = _decide(1, 2, 4, 26, n=hour // 2)  # three runs in half an hour, one inside the ignore window
    s = P.score([(quiet, half)], must_ignore=[True])
    assert s["false_alarms"] == 3 and s["false_alarms_per_hour"] == pytest.approx(6.0)
    assert s["accuracy"] == 0.0 and s["fp_stray_runs"] == 2


def test_score_rejects_bad_input():
    with pytest.raises(ValueError, match="cover only"):
        P.score([(EVENTS, _decide(n=20))])
    with pytest.raises(ValueError, match="must-ignore"):
        P.score([(EVENTS, _decide())], must_ignore=[True])
    with pytest.raises(ValueError, match="missing key 'action'"):
        P.score([([{"start_s": 1.0, "end_s": 2.0}], _decide())])
    with pytest.raises(ValueError, match="flags"):
        P.score([(EVENTS, _decide())], must_ignore=[True, False])


# ---------------------------------------------------------------------------------------------
# baselines


def _tone_stream(levels_db, seed=0):
    """10 s of noise at -60 dBFS, then 1 s tones at the given levels above it, 5 s apart."""
    rng = np.random.default_rng(seed)
    n = (10 + 5 * len(levels_db) + 4) * 16000
    audio = 1e-3 * rng.standard_normal(n)
    evs = []
    for k, level in enumerate(levels_db):
        start = 10 + 5 * k
        t = np.arange(16000) / 16000
        amp = 1e-3 * math.sqrt(2) * 10 ** (level / 20)
        audio[start * 16000:(start + 1) * 16000] += amp * np.sin(2 * np.pi * 1000 * t)
        evs.append({"start_s": float(start), "end_s": start + 1.0, "action": "respond" if level > 18 else "ignore"})
    return audio, evs


def test_always_silent_and_energy_trigger_on_tones():
    audio, evs = _tone_stream([25])
    assert P.always_silent(audio) == [False] * 48 and P.always_silent(audio[:-1]) == [False] * 48  # 47.5 chunks
    d = P.energy_trigger(audio, threshold_db=10)
    assert [i for i, x in enumerate(d) if x] == [25, 26, 27]  # the tone's 10..11 s: chunks 25, 26 and half of 27
    assert P.score([(evs, d)])["latency_mean_s"] == pytest.approx(0.4)


def test_calibration_finds_a_separating_threshold():
    streams = [_tone_stream([25, 10, 30, 12], seed=s) for s in range(2)]
    threshold, sweep = P.calibrate_energy_threshold(streams)
    best = max(r["accuracy"] for r in sweep)
    assert best == 1.0 and next(r for r in sweep if r["threshold_db"] == threshold)["accuracy"] == 1.0
    assert 12 <= threshold < 25
    assert len(sweep) == len(P.THRESHOLDS_DB)


def test_energy_trigger_beats_silence_on_tiny_build(tiny):
    loaded = P.load_streams(tiny["a"] / "manifest.jsonl")
    silent = P.evaluate(loaded, P.always_silent)
    energy = P.evaluate(loaded, lambda a: P.energy_trigger(a, threshold_db=6.0))
    assert silent["recall"] == 0.0 and silent["accuracy"] == pytest.approx(14 / 24)
    assert silent["false_alarms_per_hour"] == 0.0
    assert energy["recall"] > 0.5 and energy["false_alarms_per_hour"] > 0


def test_calibration_refuses_the_bench_seed(tmp_path):
    with pytest.raises(ValueError, match="bench seed"):
        P.calibrate_on_build(tmp_path, seed=D.BENCH_SEED)
