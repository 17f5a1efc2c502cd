"""Proactive-Sound-Bench-mini scoring and baselines (DESIGN section 8, benchmark 7), model-free.

A system's output for one stream is one decision per 400 ms chunk: True = it responded (spoke) at
that chunk, False = it stayed silent. Chunk i covers [0.4 i, 0.4 (i+1)) s; the decisions must cover
the whole stream (at least up to the end of its last event).

Definitions (``score``), with tolerance T (default 2.0 s) and chunk length c (0.4 s):

- **Window** of an event: the chunks i whose span meets [start_s, end_s + T], i.e.
  (i+1) c > start_s and i c <= end_s + T. A chunk that ends at or before the onset is never in it
  (a system cannot react to a sound before it has heard some of it).
- **Detected** respond event: the system responds in at least one chunk of its window.
  **Correctly ignored** ignore event: no response in its window. An event's decision is right
  when it is a detected respond event or a correctly ignored ignore event.
- **Decision accuracy** (the paper's metric, micro-averaged): right decisions / all events, over
  every stream (mixed and must-ignore). Also per domain and per action
  (respond_accuracy = recall, ignore_accuracy).
- **Response runs**: maximal runs of consecutive responding chunks; a run is one response onset.
- **Precision / recall / F1** of responding, event-level:
  TP = detected respond events (one per event, however many chunks respond in its window);
  FP = ignore events with a response in their window (one per event) + "stray" runs, i.e. runs
  with no chunk in any event's window (a run touching a window is charged to that window only);
  FN = respond events not detected. precision = TP / (TP + FP), recall = TP / (TP + FN),
  F1 = 2 P R / (P + R); 0.0 where a denominator is 0 (e.g. precision of a silent system).
  Repeated responses inside one respond window are not penalised.
- **Detection latency**: for each detected respond event, (end of the first responding chunk of
  its window) - start_s, i.e. (i+1) c - start_s > 0; mean, median and 90th percentile over detected
  events (None when nothing is detected).
- **False alarms per hour**: response runs on must-ignore streams (all of them: inside ignore
  windows or not) / hours of those streams, hours = chunks x c / 3600 (None without such streams).

Windows of the bench's own streams never share a chunk (events are >= 3 s apart); in an external
manifest where they do, a responding chunk counts for every window it is in.

Baselines, same decision format, from the raw audio only:

- ``always_silent``: never responds (decision accuracy = share of ignore events; recall 0).
- ``energy_trigger``: per-chunk energy e_i = 10 log10(mean square) dB; noise floor f_i = the
  ``floor_percentile`` (10th) percentile of e over the last ``floor_window_s`` (10 s = 25 chunks,
  chunk i included, so it is causal); responds where e_i - f_i > threshold_db. Its threshold is
  chosen by ``calibrate_energy_threshold`` on a calibration build made with CALIBRATION_SEED (never
  the bench seed): the threshold of a grid (0 to 60 dB, step 0.5) with the highest decision
  accuracy, ties going to the higher F1, then the lower threshold. ``calibrate_on_build`` does
  both steps.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from soundflow import CHUNK_SECONDS, SAMPLE_RATE
from soundflow.audio import as_mono, read_audio
from soundflow.bench import bootstrap, proactive_data

SR = SAMPLE_RATE
TOLERANCE_S = 2.0
FLOOR_WINDOW_S = 10.0
FLOOR_PERCENTILE = 10.0
THRESHOLDS_DB = tuple(float(t) for t in np.round(np.arange(0.0, 60.01, 0.5), 2))
# What calibrate_on_build() with its defaults chose (322 events, CALIBRATION_SEED; accuracy 0.612 there).
# At this level the trigger fires almost only in the "clean" (35 dB SNR) streams; recalibrate when the
# event synthesizers or CORPUS_NOISE change.
ENERGY_THRESHOLD_DB = 34.5


# ---------------------------------------------------------------------------------------------
# scoring


def _decisions(decisions, where: str) -> np.ndarray:
    d = np.asarray(decisions)
    if d.ndim != 1 or d.size == 0:
        raise ValueError(f"{where}: decisions must be a non-empty 1-D sequence of booleans, got shape {d.shape}")
    if d.dtype != bool:
        if not np.all(np.isin(d, (0, 1))):
            raise ValueError(f"{where}: decisions must be booleans (or 0/1)")
        d = d.astype(bool)
    return d


def _event(ev, where: str) -> dict:
    if not isinstance(ev, dict):
        raise ValueError(f"{where} must be a dict")
    for key in ("start_s", "end_s", "action"):
        if key not in ev:
            raise ValueError(f"{where}: missing key '{key}'")
    if ev["action"] not in ("respond", "ignore"):
        raise ValueError(f"{where}: key 'action' must be 'respond' or 'ignore', got {ev['action']!r}")
    if not 0 <= ev["start_s"] < ev["end_s"]:
        raise ValueError(f"{where}: need 0 <= start_s < end_s, got {ev['start_s']!r}, {ev['end_s']!r}")
    return ev


def window(ev: dict, n_chunks: int, tolerance_s: float = TOLERANCE_S,
           chunk_s: float = CHUNK_SECONDS) -> tuple[int, int]:
    """[lo, hi) chunk indices of an event's scoring window (see the module docstring)."""
    lo = math.floor(round(ev["start_s"] / chunk_s, 9))
    hi = math.floor(round((ev["end_s"] + tolerance_s) / chunk_s, 9)) + 1
    return max(lo, 0), min(hi, n_chunks)


def runs(decisions) -> list[tuple[int, int]]:
    """[start, end) chunk spans of the runs of consecutive True decisions."""
    d = np.concatenate(([False], np.asarray(decisions, dtype=bool), [False])).astype(np.int8)
    edges = np.flatnonzero(np.diff(d))
    return list(zip(edges[::2].tolist(), edges[1::2].tolist()))


def _ratio(a: float, b: float) -> float:
    return a / b if b else 0.0


def score(streams: Sequence[tuple[Sequence[dict], Sequence[bool]]], must_ignore: Sequence[bool] | None = None,
          tolerance_s: float = TOLERANCE_S, chunk_s: float = CHUNK_SECONDS, ci: bool = True) -> dict:
    """Score per-chunk decisions against annotated events; ``streams`` holds (events, decisions)
    pairs, ``must_ignore`` one flag per stream (default: none is). Keys: see the module docstring;
    with ``ci``, "ci95" holds 95 % bootstrap intervals over streams (``intervals``)."""
    streams = list(streams)
    flags = [False] * len(streams) if must_ignore is None else [bool(f) for f in must_ignore]
    if len(flags) != len(streams):
        raise ValueError(f"must_ignore has {len(flags)} flags for {len(streams)} streams")
    if not streams:
        raise ValueError("no streams to score")
    if not (math.isfinite(tolerance_s) and tolerance_s >= 0):
        raise ValueError(f"tolerance_s must be a non-negative number, got {tolerance_s!r}")
    n = {"respond": 0, "ignore": 0}
    right = {"respond": 0, "ignore": 0}
    per_domain: dict[str, list[int]] = {}
    latencies, fp_ignore, fp_stray = [], 0, 0
    mi_runs, mi_chunks = 0, 0
    rows = []  # per stream, for the intervals: STREAM_STATS

    def totals() -> tuple:  # the running counts of STREAM_STATS[:6]
        return (right["respond"] + right["ignore"], n["respond"] + n["ignore"], right["respond"], n["respond"],
                fp_ignore + fp_stray, len(latencies))

    for s, ((evs, decisions), flag) in enumerate(zip(streams, flags)):
        before = totals()
        d = _decisions(decisions, f"stream {s}")
        in_window = np.zeros(len(d), bool)
        for k, ev in enumerate(evs):
            ev = _event(ev, f"stream {s} event {k}")
            if ev["end_s"] > len(d) * chunk_s + 1e-9:
                raise ValueError(f"stream {s} event {k}: ends at {ev['end_s']} s but the decisions cover only "
                                 f"{len(d)} chunks ({len(d) * chunk_s:.1f} s)")
            if flag and ev["action"] == "respond":
                raise ValueError(f"stream {s} event {k}: a must-ignore stream holds a respond event")
            lo, hi = window(ev, len(d), tolerance_s, chunk_s)
            in_window[lo:hi] = True
            hits = np.flatnonzero(d[lo:hi])
            responded = hits.size > 0
            ok = responded == (ev["action"] == "respond")
            n[ev["action"]] += 1
            right[ev["action"]] += ok
            cell = per_domain.setdefault(str(ev.get("domain", "unknown")), [0, 0])
            cell[0] += ok
            cell[1] += 1
            if ev["action"] == "respond" and responded:
                latencies.append((lo + int(hits[0]) + 1) * chunk_s - ev["start_s"])
            if ev["action"] == "ignore" and responded:
                fp_ignore += 1
        stream_runs = runs(d)
        fp_stray += sum(not in_window[a:b].any() for a, b in stream_runs)
        if flag:
            mi_runs += len(stream_runs)
            mi_chunks += len(d)
        rows.append([b - a for a, b in zip(before, totals())] + [
            sum(latencies[before[-1]:]), len(stream_runs) if flag else 0, len(d) * chunk_s / 3600 if flag else 0.0])
    n_events = n["respond"] + n["ignore"]
    tp = right["respond"]
    fp = fp_ignore + fp_stray
    precision, recall = _ratio(tp, tp + fp), _ratio(tp, n["respond"])
    mi_hours = mi_chunks * chunk_s / 3600
    lat = np.array(latencies)
    return {
        "events": n_events,
        "respond_events": n["respond"],
        "ignore_events": n["ignore"],
        "accuracy": _ratio(right["respond"] + right["ignore"], n_events),
        "respond_accuracy": _ratio(right["respond"], n["respond"]),
        "ignore_accuracy": _ratio(right["ignore"], n["ignore"]),
        "tp": tp,
        "fp": fp,
        "fp_ignore_events": fp_ignore,
        "fp_stray_runs": fp_stray,
        "fn": n["respond"] - tp,
        "precision": precision,
        "recall": recall,
        "f1": _ratio(2 * precision * recall, precision + recall),
        "latency_mean_s": float(lat.mean()) if lat.size else None,
        "latency_median_s": float(np.median(lat)) if lat.size else None,
        "latency_p90_s": float(np.percentile(lat, 90)) if lat.size else None,
        "must_ignore_hours": mi_hours,
        "false_alarms": mi_runs,
        "false_alarms_per_hour": mi_runs / mi_hours if mi_hours else None,
        "per_domain": {dom: {"accuracy": c[0] / c[1], "events": c[1]} for dom, c in sorted(per_domain.items())},
        "tolerance_s": tolerance_s,
        **({"ci95": intervals(rows)} if ci else {}),
    }


# columns of score's per-stream rows
STREAM_STATS = ("right", "events", "tp", "respond_events", "fp", "latencies", "latency_sum_s", "false_alarms",
                "must_ignore_hours")
_COL = {name: i for i, name in enumerate(STREAM_STATS)}


def _sums_ratio(a: str, b: str):
    return bootstrap.column_ratio(_COL[a], _COL[b])


def _precision(sums: np.ndarray) -> float:
    return _ratio(sums[_COL["tp"]], sums[_COL["tp"]] + sums[_COL["fp"]])


def _f1(sums: np.ndarray) -> float:
    precision, recall = _precision(sums), _ratio(sums[_COL["tp"]], sums[_COL["respond_events"]])
    return _ratio(2 * precision * recall, precision + recall)


def intervals(rows: list[list[float]]) -> dict:
    """95 % bootstrap intervals of score's headline numbers, resampling streams (rows: STREAM_STATS)."""
    return {"accuracy": bootstrap.interval(rows, _sums_ratio("right", "events")),
            "precision": bootstrap.interval(rows, _precision),
            "recall": bootstrap.interval(rows, _sums_ratio("tp", "respond_events")),
            "f1": bootstrap.interval(rows, _f1),
            "latency_mean_s": bootstrap.interval(rows, _sums_ratio("latency_sum_s", "latencies")),
            "false_alarms_per_hour": bootstrap.interval(rows, _sums_ratio("false_alarms", "must_ignore_hours"))}


# ---------------------------------------------------------------------------------------------
# baselines


def n_chunks(audio, sr: int = SR, chunk_s: float = CHUNK_SECONDS) -> int:
    """Chunks of a stream; a partial last chunk counts as one."""
    return math.ceil(len(as_mono(audio)) / round(chunk_s * sr))


def always_silent(audio, sr: int = SR, chunk_s: float = CHUNK_SECONDS) -> list[bool]:
    return [False] * n_chunks(audio, sr, chunk_s)


def chunk_energy_db(audio, sr: int = SR, chunk_s: float = CHUNK_SECONDS) -> np.ndarray:
    """10 log10(mean square + 1e-12) of each chunk (the last one zero-padded)."""
    x = as_mono(audio)
    m = round(chunk_s * sr)
    x = np.concatenate([x, np.zeros(-len(x) % m)]).reshape(-1, m)
    return 10 * np.log10(np.mean(x * x, axis=1) + 1e-12)


def energy_above_floor_db(audio, sr: int = SR, chunk_s: float = CHUNK_SECONDS,
                          floor_window_s: float = FLOOR_WINDOW_S,
                          floor_percentile: float = FLOOR_PERCENTILE) -> np.ndarray:
    """e_i - f_i per chunk: energy over the causal running noise-floor estimate (module docstring)."""
    e = chunk_energy_db(audio, sr, chunk_s)
    w = max(1, round(floor_window_s / chunk_s))
    floor = np.array([np.percentile(e[max(0, i - w + 1): i + 1], floor_percentile) for i in range(len(e))])
    return e - floor


def energy_trigger(audio, threshold_db: float = ENERGY_THRESHOLD_DB, sr: int = SR,
                   chunk_s: float = CHUNK_SECONDS, floor_window_s: float = FLOOR_WINDOW_S,
                   floor_percentile: float = FLOOR_PERCENTILE) -> list[bool]:
    """Respond at every chunk whose energy is more than threshold_db above the running noise floor."""
    above = energy_above_floor_db(audio, sr, chunk_s, floor_window_s, floor_percentile)
    return (above > threshold_db).tolist()


def calibrate_energy_threshold(streams: Sequence[tuple[np.ndarray, Sequence[dict]]],
                               thresholds: Sequence[float] = THRESHOLDS_DB, tolerance_s: float = TOLERANCE_S,
                               sr: int = SR, chunk_s: float = CHUNK_SECONDS,
                               floor_window_s: float = FLOOR_WINDOW_S,
                               floor_percentile: float = FLOOR_PERCENTILE) -> tuple[float, list[dict]]:
    """The energy-trigger threshold with the best decision accuracy on (audio, events) calibration
    streams (ties: higher F1, then lower threshold); returns it and the whole sweep
    [{threshold_db, accuracy, f1, recall, precision}, ...]. Never call it on the test bench."""
    if not len(thresholds):
        raise ValueError("thresholds is empty")
    above = [(energy_above_floor_db(a, sr, chunk_s, floor_window_s, floor_percentile), evs) for a, evs in streams]
    if not above:
        raise ValueError("no calibration streams")
    sweep = []
    for t in sorted(float(x) for x in thresholds):
        s = score([(evs, a > t) for a, evs in above], tolerance_s=tolerance_s, chunk_s=chunk_s, ci=False)
        sweep.append({"threshold_db": t, "accuracy": s["accuracy"], "f1": s["f1"], "recall": s["recall"],
                      "precision": s["precision"]})
    best = max(sweep, key=lambda r: (r["accuracy"], r["f1"], -r["threshold_db"]))
    return best["threshold_db"], sweep


# ---------------------------------------------------------------------------------------------
# running a decision function over a manifest


def load_streams(manifest) -> list[tuple[dict, np.ndarray]]:
    """(row, audio) of every stream of a manifest (validated by proactive_data.load_manifest)."""
    return [(row, read_audio(row["audio_path"], SR)) for row in proactive_data.load_manifest(manifest)]


def evaluate(loaded: Sequence[tuple[dict, np.ndarray]], decide: Callable[[np.ndarray], Sequence[bool]],
             tolerance_s: float = TOLERANCE_S) -> dict:
    """Score ``decide(audio) -> per-chunk decisions`` on loaded streams (see load_streams)."""
    pairs, flags = [], []
    for row, audio in loaded:
        d = list(decide(audio))
        if len(d) < n_chunks(audio):
            raise ValueError(f"stream {row['id']}: {len(d)} decisions for {n_chunks(audio)} chunks")
        pairs.append((row["events"], d))
        flags.append(row["kind"] == "must_ignore")
    return score(pairs, flags, tolerance_s)


def calibrate_on_build(out_dir, seed: int = proactive_data.CALIBRATION_SEED, n_events: int = 322,
                       must_ignore_s: float = 0.0, workers: int = 2, **calibrate_kwargs) -> tuple[float, list[dict]]:
    """Build a small calibration set (CALIBRATION_SEED, not the bench seed) into out_dir and calibrate
    the energy-trigger threshold on it."""
    if seed == proactive_data.BENCH_SEED:
        raise ValueError("calibration must not use the bench seed")
    proactive_data.build(out_dir, seed=seed, n_events=n_events, must_ignore_s=must_ignore_s, workers=workers)
    loaded = load_streams(Path(out_dir) / "manifest.jsonl")
    return calibrate_energy_threshold([(audio, row["events"]) for row, audio in loaded], **calibrate_kwargs)


def baselines(bench_manifest, threshold_db: float, tolerance_s: float = TOLERANCE_S) -> dict[str, dict]:
    """Scores of always_silent and energy_trigger(threshold_db) on a bench manifest."""
    loaded = load_streams(bench_manifest)
    return {
        "always_silent": evaluate(loaded, always_silent, tolerance_s),
        "energy_trigger": {**evaluate(loaded, lambda a: energy_trigger(a, threshold_db), tolerance_s),
                           "threshold_db": threshold_db},
    }
