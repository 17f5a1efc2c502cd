"""Benchmark 8: inference latency of the streaming runtime, sync vs FIFO scheduler, on the test streams.

Measured from the events' clocks (runtime/session.py), all in one run on the same machine:
- first_chunk_ms: a chunk's audio fully arrived -> its decision available (mean over chunks; p95 beside it);
- resume_ms: a reply finished -> the listener decides on live audio again: the decision on the newest
  chunk that had arrived by the end of the reply (or on the next chunk, if none was waiting), counted
  from when both the reply was done and that chunk was there (mean over replies);
- stall_rate: share of chunks the listener took in (encoded) only after the next chunk had arrived: the
  listener fell behind the microphone, the stall on encoder-decoder synchronization the paper's FIFO removes
  (sync encodes nothing while it writes a reply; FIFO's encoder thread never waits for the decoder);
- late_rate: share of chunks decided after the next chunk had arrived. FIFO's drained backlog counts here
  (chunks that queued up during a reply enter the cache with an implied <silent> after it), so at real
  time with replies longer than a chunk it is not zero for either scheduler;
- rtf: processing wall time / audio time, fed as fast as possible.
The real-time runs are repeated `realtime_repeats` times per scheduler (alternating); first_chunk_ms, resume_ms,
stall_rate and late_rate are then the median over repeats, each repeat's value and the spread in `repeats`. Each
scheduler's block has ci95: 95 % bootstrap intervals of first_chunk_ms (over chunks), resume_ms (over replies),
stall_rate and late_rate (over streams), all repeats pooled.
Latencies come from feeding at wall-clock rate (a live microphone). The tiny model writes a reply in tens of
ms (`sync.reply_ms`), well inside one 400 ms chunk, so at real time no backlog ever forms and both schedulers do the same
work. The regime FIFO is for (the paper's 3B model, slow enough that replies outlast chunks) is measured by
time scaling: the same audio fed `speed` times faster than real time is the same as a model `speed` times
slower in every step. The speeds are not fixed numbers but calibrated on this machine from the real-time sync
run, one per `load` of the sweep: at load L, listening (the median chunk -> decision cost) fills L of each
chunk interval, and replies come on top. Sync falls behind once listening plus replying passes real time;
FIFO drains the backlog in one call. (A fixed 16x gave 2.5x or 14x on two machines of this kind, because
sync sat right at that edge.) rtf comes from as-fast-as-possible (lockstep) runs, which must give identical
decisions for both schedulers. A chunk-size sweep measures runtime cost per chunk length (the model is trained
on 0.4 s; other lengths only measure cost), and one long stream measures memory under the context policy.
"""
from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from soundflow import SAMPLE_RATE
from soundflow.audio import read_audio, save_figure
from soundflow.bench import bootstrap
from soundflow.bench.streams import BenchContext, load_manifest, load_rows
from soundflow.runtime import Event, StreamingSession, load_bundle, run_stream


def load_test_streams(corpus: Path, manifest: Path | None = None, limit_s: float | None = None,
                      limit_n: int | None = None) -> list[dict]:
    """Online test streams (or an external manifest's items, in its order), those with the most reference
    replies first (latency needs replies), as {id, audio (array), instruction, lang}."""
    if manifest is not None:
        rows = load_manifest(manifest)
    else:
        rows = load_rows(corpus, ("",))
        rows.sort(key=lambda r: (-sum(t["action"] == "respond" for t in r["timeline"]), r["id"]))
    out, total = [], 0.0
    for row in rows:
        if (limit_s is not None and total >= limit_s) or (limit_n is not None and len(out) >= limit_n):
            break
        audio = read_audio(row["audio"])
        if limit_s is not None:  # the last stream is cut so the audio adds up to limit_s, not past it
            audio = audio[: round((limit_s - total) * SAMPLE_RATE)]
        out.append({"id": row["id"], "audio": audio, "instruction": row["instruction"], "lang": row["lang"]})
        total += audio.size / SAMPLE_RATE
    return out


def latency_stats(events: list[Event], chunk_interval_s: float) -> dict:
    """Latency figures of one stream's events (sorted by chunk); chunk_interval_s = wall time between chunks."""
    decide = np.array([e.decided - e.arrived for e in events])
    stalls = np.array([e.encoded > e.arrived + chunk_interval_s for e in events])
    late = np.array([e.decided > e.arrived + chunk_interval_s for e in events])
    resume, reply = [], [e.finished - e.decided for e in events if e.action == "respond"]
    for k, e in enumerate(events[:-1]):
        if e.action != "respond":
            continue
        waiting = [n for n in events[k + 1:] if n.arrived <= e.finished]
        live = waiting[-1] if waiting else events[k + 1]
        resume.append(live.decided - max(e.finished, live.arrived))
    return {"decide_s": decide.tolist(), "stalls": int(stalls.sum()), "late": int(late.sum()), "chunks": len(events),
            "resume_s": resume, "reply_s": reply}


def summarize(per_stream: list[dict]) -> dict:
    decide = np.concatenate([s["decide_s"] for s in per_stream]) * 1000
    resume = np.array([r for s in per_stream for r in s["resume_s"]]) * 1000
    reply = np.array([r for s in per_stream for r in s["reply_s"]]) * 1000
    chunks = sum(s["chunks"] for s in per_stream)
    return {
        "first_chunk_ms": float(decide.mean()),
        "first_chunk_median_ms": float(np.median(decide)),
        "first_chunk_p95_ms": float(np.percentile(decide, 95)),
        "reply_ms": float(reply.mean()) if reply.size else None,
        "resume_ms": float(resume.mean()) if resume.size else None,
        "resume_p95_ms": float(np.percentile(resume, 95)) if resume.size else None,
        "replies": int(resume.size),
        "stall_rate": sum(s["stalls"] for s in per_stream) / chunks,
        "late_rate": sum(s["late"] for s in per_stream) / chunks,
        "chunks": chunks,
        "ci95": {"first_chunk_ms": bootstrap.mean_interval(decide.tolist()),  # over chunks
                 "resume_ms": bootstrap.mean_interval(resume.tolist()),  # over replies
                 "stall_rate": _share_interval(per_stream, "stalls"),  # over streams
                 "late_rate": _share_interval(per_stream, "late")},
    }


def _share_interval(per_stream: list[dict], key: str) -> list[float]:
    """95 % interval of the share of chunks counted under `key`, resampling streams."""
    return bootstrap.interval([(s[key], s["chunks"]) for s in per_stream], bootstrap.ratio)


def realtime_run(bundle, streams: list[dict], scheduler: str, speed: float = 1.0) -> dict:
    return summarize(stream_stats(bundle, streams, scheduler, speed))


def stream_stats(bundle, streams: list[dict], scheduler: str, speed: float = 1.0, desc: str = "") -> list[dict]:
    per_stream = []
    for s in tqdm(streams, desc=f"{speed:g}x real time, {scheduler}{desc}", unit="stream"):
        events = run_stream(bundle, s["audio"], s["instruction"], s["lang"], scheduler, realtime=True, speed=speed)
        per_stream.append(latency_stats(events, bundle.settings.chunk_seconds / speed))
    return per_stream


REPEATED = ("first_chunk_ms", "resume_ms", "stall_rate", "late_rate")  # the headline numbers taken as the median of repeats


def repeated_realtime(bundle, streams: list[dict], repeats: int) -> dict:
    """Both schedulers at real time, `repeats` times (alternating, so a slow spell of the machine hits both).
    Per scheduler: the summary of every repeat's streams pooled, with REPEATED replaced by the median over
    repeats, and "repeats": {key: [value of each repeat], key_spread: [min, max]}."""
    runs = {"sync": [], "fifo": []}
    for r in range(repeats):
        for scheduler, done in runs.items():
            done.append(stream_stats(bundle, streams, scheduler, desc=f", repeat {r + 1}/{repeats}"))
    out = {}
    for scheduler, done in runs.items():
        pooled = summarize([stats for repeat in done for stats in repeat])
        each = [summarize(repeat) for repeat in done]
        pooled["repeats"] = {}
        for key in REPEATED:
            values = [e[key] for e in each]
            known = [v for v in values if v is not None]
            pooled[key] = float(np.median(known)) if known else None
            pooled["repeats"] |= {key: values, f"{key}_spread": [min(known), max(known)] if known else None}
        out[scheduler] = pooled
    return out


def load_speed(sync_realtime: dict, chunk_s: float, load: float) -> float:
    """Feeding speed at which sync's median listening cost per chunk fills `load` of each chunk interval."""
    cost_s = sync_realtime["first_chunk_median_ms"] / 1000
    if cost_s <= 0:
        raise ValueError("latency: the real-time sync run measured no listening cost to calibrate the time-scaled runs")
    return max(1.0, load * chunk_s / cost_s)


def resume_speedup(runs: dict) -> float | None:
    sync, fifo = runs["sync"]["resume_ms"], runs["fifo"]["resume_ms"]
    return sync / fifo if sync and fifo else None


def time_scaled(bundle, streams: list[dict], sync_realtime: dict, loads: list[float]) -> dict:
    """Both schedulers at each load's calibrated speed: {"load_80": {load, speed, reply_chunks, sync, fifo, ...}}."""
    chunk_s, reply_ms = bundle.settings.chunk_seconds, sync_realtime["reply_ms"]
    out = {}
    for load in loads:
        speed = load_speed(sync_realtime, chunk_s, load)
        runs = {"load": load, "speed": speed,
                "reply_chunks": reply_ms * speed / (1000 * chunk_s) if reply_ms else None}  # reply in scaled chunks
        runs.update({scheduler: realtime_run(bundle, streams, scheduler, speed) for scheduler in ("sync", "fifo")})
        runs["resume_speedup_fifo"] = resume_speedup(runs)
        out[f"load_{round(load * 100)}"] = runs
    return out


def fast_run(bundle, streams: list[dict], scheduler: str) -> tuple[float, list[list[tuple]]]:
    """(rtf, decisions per stream) fed as fast as possible."""
    audio_s, wall, decisions = 0.0, 0.0, []
    for s in tqdm(streams, desc=f"fast, {scheduler}", unit="stream"):
        start = time.perf_counter()
        events = run_stream(bundle, s["audio"], s["instruction"], s["lang"], scheduler)
        wall += time.perf_counter() - start
        audio_s += s["audio"].size / bundle.settings.sample_rate
        decisions.append([(e.action, e.text) for e in events])
    return wall / audio_s, decisions


def chunk_sweep(bundle_dir: Path, streams: list[dict], sizes: list[float], seconds: float) -> list[dict]:
    """Runtime cost per chunk length, sync, as fast as possible, on the first `seconds` of audio."""
    audio = np.concatenate([s["audio"] for s in streams])
    out = []
    for size in sizes:
        bundle = load_bundle(bundle_dir, chunk_seconds=size)
        clip = audio[: int(seconds * bundle.settings.sample_rate)]
        start = time.perf_counter()
        events = run_stream(bundle, clip, streams[0]["instruction"], streams[0]["lang"], "sync")
        wall = time.perf_counter() - start
        out.append({"chunk_s": size, "chunks": len(events), "ms_per_chunk": 1000 * wall / len(events),
                    "rtf": wall / (clip.size / bundle.settings.sample_rate)})
    return out


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def long_stream(bundle, streams: list[dict], minutes: float, probes: int = 10) -> dict:
    """One stream of `minutes` (the test streams end to end, repeated), fed as fast as possible, with
    the resident memory and the LM cache length probed along the way."""
    sr = bundle.settings.sample_rate
    audio = np.concatenate([s["audio"] for s in streams])
    total = int(minutes * 60 * sr)
    session = StreamingSession(bundle, streams[0]["instruction"], streams[0]["lang"], "sync")
    block = bundle.settings.chunk_samples * 25  # 10 s
    probe_every = max(block, total // probes // block * block)
    rows, max_cache, start = [], 0, time.perf_counter()
    for begin in tqdm(range(0, total, block), desc=f"long stream {minutes:g} min", unit="10s"):
        idx = np.arange(begin, min(begin + block, total)) % audio.size
        session.feed(audio[idx])
        max_cache = max(max_cache, session.decoder.cache_tokens())
        if begin % probe_every == 0:
            rows.append({"stream_min": begin / sr / 60, "rss_mb": rss_mb(), "cache_tokens": session.decoder.cache_tokens()})
    session.close()
    rows.append({"stream_min": total / sr / 60, "rss_mb": rss_mb(), "cache_tokens": session.decoder.cache_tokens()})
    settled = [r["rss_mb"] for r in rows if r["stream_min"] >= minutes * 0.1] or [rows[-1]["rss_mb"]]
    return {"minutes": minutes, "chunks": session.chunks_fed, "rtf": (time.perf_counter() - start) / (total / sr),
            "max_cache_tokens": max_cache, "context_rebuilds": session.decoder.rebuilds,
            "rss_mb_first": rows[0]["rss_mb"], "rss_mb_last": rows[-1]["rss_mb"],
            "rss_mb_growth_after_10pct": max(settled) - min(settled), "probes": rows}


def plot(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax4, ax2) = plt.subplots(1, 3, figsize=(15, 4))
    keys = ["first_chunk_ms", "resume_ms"]
    x = np.arange(len(keys))
    for i, name in enumerate(("sync", "fifo")):
        ax1.bar(x + (i - 0.5) * 0.38, [result[name][k] or 0 for k in keys], 0.38, label=name)
    ax1.set_xticks(x, ["chunk -> decision", "reply end -> next decision"])
    ax1.set_ylabel("ms (mean, wall-clock feeding)")
    ax1.set_title("Latency, sync vs FIFO, real time")
    ax1.legend()
    scaled = list(result.get("time_scaled", {}).values())
    for name in ("sync", "fifo"):
        ax4.plot([r["load"] for r in scaled], [r[name]["resume_ms"] or 0 for r in scaled], "o-", label=name)
    ax4.set_xlabel("load: listening cost / chunk interval (time-scaled)")
    ax4.set_ylabel("reply end -> next decision (ms, scaled clock)")
    ax4.set_title("Resume latency vs load")
    ax4.legend()
    sweep = result["chunk_sweep"]
    ax2.plot([r["chunk_s"] for r in sweep], [r["ms_per_chunk"] for r in sweep], "o-", label="ms per chunk")
    ax2.set_xlabel("chunk length (s)")
    ax2.set_ylabel("ms per chunk")
    ax3 = ax2.twinx()
    ax3.plot([r["chunk_s"] for r in sweep], [r["rtf"] for r in sweep], "s--", color="C1", label="RTF")
    ax3.set_ylabel("real-time factor")
    ax2.set_title("Runtime cost per chunk length (sync)")
    fig.tight_layout()
    save_figure(fig, path)


def run(ctx: BenchContext) -> dict:
    """ctx.cfg = params.yaml bench.latency. One thread for torch ops: the FIFO scheduler's two threads then
    use the two cores, and for single-stream inference one thread is also the faster setting here."""
    torch.set_num_threads(1)
    cfg = ctx.cfg
    bundle = load_bundle(ctx.bundle)
    realtime = load_test_streams(ctx.corpus, ctx.manifest, limit_s=cfg["realtime_s"])
    fast = load_test_streams(ctx.corpus, ctx.manifest, limit_n=cfg["fast_streams"])
    result = repeated_realtime(bundle, realtime, cfg["realtime_repeats"])
    result["time_scaled"] = time_scaled(bundle, realtime, result["sync"], cfg["loads"])
    decisions = {}
    for scheduler in ("sync", "fifo"):
        result[scheduler]["rtf"], decisions[scheduler] = fast_run(bundle, fast, scheduler)
    pairs = [(a, b) for sa, sb in zip(decisions["sync"], decisions["fifo"]) for a, b in zip(sa, sb)]
    result["schedulers_agree"] = sum(a == b for a, b in pairs) / len(pairs)
    result["resume_speedup_fifo"] = resume_speedup(result)
    result["chunk_sweep"] = chunk_sweep(ctx.bundle, fast, cfg["chunk_sweep"], cfg["sweep_s"])
    result["long_stream"] = long_stream(bundle, fast, cfg["long_stream_min"])
    result["setup"] = {"realtime_streams": len(realtime), "realtime_audio_s": sum(s["audio"].size for s in realtime) / bundle.settings.sample_rate,
                       "fast_streams": len(fast), "torch_threads": 1, "cpu_count": os.cpu_count()}
    return result
