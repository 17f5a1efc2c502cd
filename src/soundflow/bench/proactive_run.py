"""Proactive-Sound-Bench-mini with the streaming model (DESIGN section 8, benchmark 7): the model
hook-up of ``proactive_data`` (the bench) and ``proactive`` (scoring and baselines).

Steps of ``run(ctx)``:

1. The bench: ``<work>/bench`` built with ``proactive_data.build`` (BENCH_SEED; ``n_events``,
   ``must_ignore_s``, ``must_ignore_share`` from cfg; default the full 644 events at the paper's
   267/377 ratio and half an hour of must-ignore streams, about 1.55 h of audio). An existing build is
   reused when its summary.json matches those settings, else rebuilt. With an external manifest
   (``ctx.manifest``, ``proactive_data.load_manifest`` format) that is used instead and nothing is
   built.
2. The energy-trigger threshold: ``energy_threshold_db`` from cfg, or (null, the default) calibrated
   by ``proactive.calibrate_on_build`` on ``<work>/calibration`` (CALIBRATION_SEED, never the
   bench seed; ``calibration_events`` events, no must-ignore streams).
3. Every stream decoded by the streaming model (``ctx.bundle``) with the proactive training
   instruction (``soundflow.data.tasks.proactive.INSTRUCTION``; a manifest row may carry its own
   ``instruction``/``lang``), longest streams first over ``ctx.workers`` processes. Decisions = one
   per 400 ms chunk, True where the event's action is "respond".
4. ``proactive.score`` on (events, decisions) with the must-ignore flags (``tolerance_s``); the
   always-silent and energy-trigger baselines scored by ``proactive.evaluate`` on the same streams.

Returns ``{"ours": score, "always_silent": score, "energy_trigger": score + threshold_db,
"bench": summary}`` (score keys: see ``proactive``'s docstring) plus top-level numbers for the
summary table and a quality gate: ``accuracy``, ``precision``, ``recall``, ``f1``,
``latency_mean_s`` (None when nothing is detected), ``false_alarms_per_hour`` (None without
must-ignore streams), ``events``, ``audio_h``, ``always_silent_accuracy``,
``energy_trigger_accuracy``, ``energy_trigger_f1``, ``energy_threshold_db``, ``decode_s`` (wall
time of step 3) and ``wall_s``; ``ci95``: ours' 95 % bootstrap intervals over streams (the baselines'
are in their own blocks).
"""
from __future__ import annotations

import json
import math
import time
from pathlib import Path

from soundflow.bench import proactive, proactive_data
from soundflow.bench.streams import BenchContext, decode_streams, with_defaults
from soundflow.data.tasks.proactive import INSTRUCTION

DEFAULTS = {
    "n_events": proactive_data.PAPER_RESPOND + proactive_data.PAPER_IGNORE,  # 644 events (267 respond / 377 ignore)
    "must_ignore_s": 3600.0,  # seconds of must-ignore streams (false alarms per hour)
    "must_ignore_share": 0.4,  # share of the ignore events placed in the must-ignore streams
    "calibration_events": 322,  # events of the energy-trigger calibration build (CALIBRATION_SEED)
    "energy_threshold_db": None,  # fixed energy-trigger threshold; null = calibrate
    "tolerance_s": proactive.TOLERANCE_S,  # an event's scoring window runs to its end + this
}


def settings(cfg: dict | None) -> dict:
    s = with_defaults("proactive", cfg, DEFAULTS)
    t = s["energy_threshold_db"]
    if t is not None and not (isinstance(t, (int, float)) and math.isfinite(t)):
        raise ValueError(f"bench.proactive.energy_threshold_db must be a number or null, got {t!r}")
    return s


def ensure_bench(out_dir: Path, s: dict, workers: int) -> Path:
    """The bench manifest under out_dir, built unless a build with the same settings is there."""
    out_dir = Path(out_dir)
    manifest, summary = out_dir / "manifest.jsonl", out_dir / "summary.json"
    want = {"seed": proactive_data.BENCH_SEED, "n_events_asked": int(s["n_events"]),
            "must_ignore_s_asked": float(s["must_ignore_s"]), "must_ignore_share": float(s["must_ignore_share"])}
    if manifest.is_file() and summary.is_file():
        have = json.loads(summary.read_text())
        if all(have.get(k) == v for k, v in want.items()):
            return manifest
    proactive_data.build(out_dir, seed=proactive_data.BENCH_SEED, n_events=int(s["n_events"]),
                         must_ignore_s=float(s["must_ignore_s"]), must_ignore_share=float(s["must_ignore_share"]),
                         workers=workers)
    return manifest


def decisions_from_events(events: list[dict], n_chunks: int) -> list[bool]:
    """One decision per chunk (True = responded), from a decode's events; missing chunks are silent."""
    d = [False] * max(n_chunks, len(events))
    for e in events:
        d[e["chunk"]] = e["action"] == "respond"
    return d


def decode_decisions(bundle: Path, loaded: list[tuple[dict, object]], workers: int) -> list[list[bool]]:
    """The streaming model's per-chunk decisions on loaded (row, audio) streams, in their order."""
    order = sorted(range(len(loaded)), key=lambda k: -len(loaded[k][1]))  # longest first: balanced workers
    jobs = [{"id": loaded[k][0]["id"], "audio": loaded[k][0]["audio_path"],
             "instruction": loaded[k][0].get("instruction") or INSTRUCTION,
             "lang": loaded[k][0].get("lang") or "en"} for k in order]
    events = decode_streams(bundle, jobs, workers, desc="proactive streaming")
    out: list[list[bool]] = [[] for _ in loaded]
    for k, ev in zip(order, events):
        out[k] = decisions_from_events(ev, proactive.n_chunks(loaded[k][1]))
    return out


def run(ctx: BenchContext) -> dict:
    started = time.perf_counter()
    s = settings(ctx.cfg)
    work = Path(ctx.work)
    if ctx.manifest is not None:
        manifest = Path(ctx.manifest)
    else:
        manifest = ensure_bench(work / "bench", s, ctx.workers)
    loaded = proactive.load_streams(manifest)
    bench = proactive_data.summarize([{"duration_s": len(audio) / proactive.SR, **row} for row, audio in loaded])

    threshold = s["energy_threshold_db"]
    if threshold is None:
        threshold, _ = proactive.calibrate_on_build(work / "calibration", n_events=int(s["calibration_events"]),
                                                    workers=ctx.workers, tolerance_s=float(s["tolerance_s"]))

    t0 = time.perf_counter()
    decisions = decode_decisions(ctx.bundle, loaded, ctx.workers)
    decode_s = time.perf_counter() - t0
    ours = proactive.score([(row["events"], d) for (row, _), d in zip(loaded, decisions)],
                           [row["kind"] == "must_ignore" for row, _ in loaded], float(s["tolerance_s"]))
    silent = proactive.evaluate(loaded, proactive.always_silent, float(s["tolerance_s"]))
    energy = {**proactive.evaluate(loaded, lambda a: proactive.energy_trigger(a, float(threshold)),
                                   float(s["tolerance_s"])), "threshold_db": float(threshold)}
    audio_h = sum(proactive.n_chunks(a) for _, a in loaded) * proactive_data.CHUNK_SAMPLES / proactive.SR / 3600
    return {
        "accuracy": ours["accuracy"],
        "precision": ours["precision"],
        "recall": ours["recall"],
        "f1": ours["f1"],
        "latency_mean_s": ours["latency_mean_s"],
        "false_alarms_per_hour": ours["false_alarms_per_hour"],
        "events": ours["events"],
        "audio_h": round(audio_h, 4),
        "always_silent_accuracy": silent["accuracy"],
        "energy_trigger_accuracy": energy["accuracy"],
        "energy_trigger_f1": energy["f1"],
        "energy_threshold_db": float(threshold),
        "decode_s": round(decode_s, 2),
        "wall_s": round(time.perf_counter() - started, 2),
        "ours": ours,
        "always_silent": silent,
        "energy_trigger": energy,
        "bench": bench,
        "ci95": ours["ci95"],
    }
