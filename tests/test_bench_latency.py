"""Benchmark 8's measurement logic: latency figures from event clocks, the calibrated time-scaled speed,
and the real-time audio budget."""
from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf

from soundflow.bench.latency import latency_stats, load_speed, load_test_streams, summarize
from soundflow.runtime import Event


def event(chunk, arrived, decided, finished=None, action="silent", encoded=None):
    """encoded: when the listener took the chunk in (default: right away, 5 ms after it arrived)."""
    return Event(chunk, 0.4 * (chunk + 1), action, "x" if action == "respond" else "", "normal", arrived,
                 arrived + 0.005 if encoded is None else encoded, decided, decided if finished is None else finished)


def test_latency_stats_resume_counts_from_the_reply_end_to_the_newest_waiting_chunk():
    events = [
        event(0, 0.4, 0.41, finished=1.3, action="respond"),  # reply ends at 1.3 s; chunks 1 and 2 arrived by then
        event(1, 0.8, 1.32),
        event(2, 1.2, 1.35),  # the newest chunk waiting at 1.3 s: resume = 1.35 - 1.3
        event(3, 1.6, 1.61),
    ]
    stats = latency_stats(events, chunk_interval_s=0.4)
    assert stats["resume_s"] == pytest.approx([0.05])
    assert stats["reply_s"] == pytest.approx([0.89])
    assert stats["late"] == 1  # chunk 1 was decided after chunk 2 had arrived ...
    assert stats["stalls"] == 0  # ... but the listener had taken every chunk in on time (FIFO's drained backlog)
    assert stats["decide_s"] == pytest.approx([0.01, 0.52, 0.15, 0.01])


def test_a_chunk_taken_in_after_the_next_one_arrived_is_a_stall():
    events = [event(0, 0.4, 0.41, finished=1.3, action="respond"),
              event(1, 0.8, 1.32, encoded=1.31),  # sync: nothing is encoded while the reply is written
              event(2, 1.2, 1.34, encoded=1.33)]
    stats = latency_stats(events, chunk_interval_s=0.4)
    assert stats["stalls"] == 1 and stats["late"] == 1  # chunk 2 was taken in 0.13 s after it arrived: no stall
    assert summarize([stats])["stall_rate"] == pytest.approx(1 / 3)


def test_resume_waits_for_the_next_chunk_when_none_was_waiting():
    events = [event(0, 0.4, 0.41, finished=0.45, action="respond"), event(1, 0.8, 0.83)]
    assert latency_stats(events, 0.4)["resume_s"] == pytest.approx([0.03])  # from the chunk's arrival, not the reply end


def test_summarize_reports_medians_and_reply_times_in_ms():
    stats = latency_stats([event(0, 0.4, 0.41, finished=0.51, action="respond"), event(1, 0.8, 0.83),
                           event(2, 1.2, 1.21)], 0.4)
    out = summarize([stats])
    assert out["first_chunk_median_ms"] == pytest.approx(10.0)
    assert out["first_chunk_ms"] == pytest.approx(50 / 3)
    assert out["reply_ms"] == pytest.approx(100.0) and out["replies"] == 1
    assert out["stall_rate"] == 0.0 and out["late_rate"] == 0.0


def test_load_speed_makes_listening_fill_the_load_of_a_chunk_interval():
    assert load_speed({"first_chunk_median_ms": 16.0}, 0.4, 0.6) == pytest.approx(15.0)  # 16 ms of 400/15 ms
    assert load_speed({"first_chunk_median_ms": 500.0}, 0.4, 0.6) == 1.0  # never slower than real time
    with pytest.raises(ValueError, match="calibrate"):
        load_speed({"first_chunk_median_ms": 0.0}, 0.4, 0.6)


def test_realtime_audio_is_cut_to_the_budget(tmp_path):
    lines = []
    for i, seconds in enumerate((3.0, 2.0, 4.0)):
        path = tmp_path / f"s{i}.wav"
        sf.write(path, np.zeros(int(seconds * 16000), np.float32), 16000)
        lines.append(json.dumps({"id": f"s{i}", "audio": path.name, "instruction": "hi", "lang": "en"}))
    manifest = tmp_path / "items.jsonl"
    manifest.write_text("\n".join(lines))
    streams = load_test_streams(tmp_path, manifest, limit_s=4.5)
    assert [s["id"] for s in streams] == ["s0", "s1"]
    assert sum(s["audio"].size for s in streams) / 16000 == pytest.approx(4.5)
    assert [s["id"] for s in load_test_streams(tmp_path, manifest, limit_n=2)] == ["s0", "s1"]


def test_repeated_realtime_reports_the_median_of_alternating_repeats(monkeypatch):
    from soundflow.bench import latency

    calls = []

    def fake_stats(bundle, streams, scheduler, speed=1.0, desc=""):
        calls.append(scheduler)
        k = len(calls)  # the k-th run: its reply ends k * 10 ms before the next decision
        events = [event(0, 0.4, 0.41, finished=0.5, action="respond"), event(1, 0.8, 0.8 + k / 100)]
        return [latency_stats(events, 0.4)]

    monkeypatch.setattr(latency, "stream_stats", fake_stats)
    out = latency.repeated_realtime(None, [], 5)
    assert calls == ["sync", "fifo"] * 5  # alternating, so a slow spell of the machine hits both
    assert out["sync"]["repeats"]["resume_ms"] == pytest.approx([10, 30, 50, 70, 90])
    assert out["sync"]["resume_ms"] == pytest.approx(50) and out["fifo"]["resume_ms"] == pytest.approx(60)
    assert out["fifo"]["repeats"]["resume_ms_spread"] == pytest.approx([20, 100])
    assert out["sync"]["replies"] == 5 and "ci95" in out["sync"]  # the rest pools every repeat's streams
