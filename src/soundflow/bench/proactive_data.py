"""Proactive-Sound-Bench-mini data (DESIGN section 8, benchmark 7): streams of sound events that a
proactive assistant must respond to or ignore, built from the corpus's own event synthesizers.

What is built (``build``):

- Events come from ``soundflow.data.events.EVENT_TYPES`` (its six domains and its respond/ignore
  labels), rendered exactly as the corpus renders an event piece (``compose.render_piece``: real
  freedesktop recording with the corpus's probability where one exists, else procedural; music as
  a procedural melody). The two spoken events (``SPEECH_EVENTS``: cry_for_help, tv_speech) need
  TTS and are left out.
- ``n_events`` events in all, ``round(n_events * 267 / 644)`` of them "respond" (the paper's
  267/377 ratio), each action shared out as evenly as possible over the six domains and, inside a
  domain, over its event types.
- "must_ignore" streams: at least ``must_ignore_s`` seconds of audio, split into streams of at most
  ``must_ignore_stream_s``, holding ``round(n_ignore * must_ignore_share)`` ignore events spread
  over them with long background-only stretches between; no respond event. They give false alarms
  per hour.
- "mixed" streams: all respond events and the other ignore events, one domain per stream (like the
  paper's Multiple tier: same-category events one after another), 3 to 8 events a stream.
- Layout: a lead of at least ``LEAD_S[0]`` s, events separated by at least ``GAP_S[0]`` s (more
  than the default 2 s scoring tolerance plus two 400 ms chunks, so no two scoring windows share a
  chunk), and at least ``TAIL_S`` s after the last event. Streams are a whole number of 400 ms
  chunks (6400 samples at 16 kHz).
- Background noise like the corpus composer: with probability ``p_noise`` the stream is "noisy"
  at an SNR drawn uniformly from ``snr_db``, else "clean" at ``clean_snr_db``; white, pink or brown
  noise scaled against the active power of the events (``mix.scale_to_snr``); the stream is then
  peak-normalised to -1 dBFS (``mix.normalize_peak``). ``CORPUS_NOISE`` mirrors params.yaml
  ``data`` (a test checks they agree). Babble (needs speech), ambient beds, unannotated background
  events and reverb are not used: every sound in a stream is an annotated event.
- Seeds: every random draw derives from ``seed`` (default ``BENCH_SEED`` = the corpus seed plus a
  fixed offset) through ``plan.derive_seed`` with a "proactive-bench" tag, so no bench item equals a
  training item; same seed -> byte-identical outputs, whatever ``workers`` is.

Outputs: ``<out>/audio/<id>.wav`` (16-bit PCM via ``audio.write_wav``, atomic), ``<out>/manifest.jsonl``
(one stream per line: id, audio, duration_s, kind, domain, seed, noise, snr_db, events[start_s,
end_s, domain, event, action, source]) and ``<out>/summary.json``, both written to a temp name and
renamed. An event's [start_s, end_s] is the extent of its placed clip (rounded to 1 ms).

``load_manifest`` reads and validates a manifest in the same format, ours or a user's own
recordings.
"""
from __future__ import annotations

import json
import math
import multiprocessing as mp
import os
from collections import Counter
from pathlib import Path

import numpy as np
from tqdm import tqdm

from soundflow import CHUNK_SECONDS, SAMPLE_RATE
from soundflow.audio import atomic_path, write_wav
from soundflow.data import events, mix
from soundflow.data.compose import render_piece
from soundflow.data.plan import Piece, derive_seed

SR = SAMPLE_RATE
CHUNK_SAMPLES = round(CHUNK_SECONDS * SR)  # 6400
CORPUS_SEED = 20261125  # params.yaml data.seed
BENCH_SEED = CORPUS_SEED + 807  # test-only: benchmark 7 of section 8
CALIBRATION_SEED = CORPUS_SEED + 808  # the energy baseline's calibration build, never the bench
TAG = "proactive-bench"

PAPER_RESPOND, PAPER_IGNORE = 267, 377
PAPER_RESPOND_SHARE = PAPER_RESPOND / (PAPER_RESPOND + PAPER_IGNORE)
ACTIONS = ("respond", "ignore")
KINDS = ("mixed", "must_ignore")
DOMAINS = tuple(sorted({e.domain for e in events.EVENT_TYPES.values()}))
TYPES = {  # (domain, action) -> event type names, sorted
    (d, a): sorted(n for n, e in events.EVENT_TYPES.items() if e.domain == d and e.action == a)
    for d in DOMAINS for a in ACTIONS
}

# The corpus composer's noise draw (params.yaml data.snr_db, clean_snr_db, p_noise, p_real_event).
CORPUS_NOISE = {"snr_db": (5.0, 20.0), "clean_snr_db": 35.0, "p_noise": 0.6, "p_real_event": 0.3}
NOISE_KINDS = ("white", "pink", "brown")  # compose.NOISE_KINDS less babble (no speech here)

LEAD_S = (1.0, 2.0)  # silence (noise) before the first event
GAP_S = (3.0, 5.0)  # between events of a mixed stream; GAP_S[0] is also the minimum in must-ignore streams
TAIL_S = 3.0  # after the last event: >= default tolerance (2 s) + one chunk, so every window fits
EVENTS_PER_STREAM = (3, 8)  # events in a mixed stream (the last stream of a domain may hold fewer)
MUST_IGNORE_STREAM_S = 300.0  # longest must-ignore stream
MAX_EVENT_S = 7.0  # longest rendered event (freedesktop alarm-clock-elapsed is 6.1 s), for the capacity check


# ---------------------------------------------------------------------------------------------
# planning (cheap, main process)


def _split_evenly(total: int, n: int, rng) -> list[int]:
    """total shared over n bins as evenly as possible; the bins that get one more are drawn."""
    counts = [total // n] * n
    for i in rng.permutation(n)[: total % n]:
        counts[int(i)] += 1
    return counts


def event_counts(n_events: int) -> tuple[int, int]:
    """(respond, ignore) counts for n_events at the paper's 267/377 ratio."""
    n_respond = int(math.floor(n_events * PAPER_RESPOND_SHARE + 0.5))
    return n_respond, n_events - n_respond


def _plan_events(n_events: int, rng) -> list[dict]:
    n_respond, n_ignore = event_counts(n_events)
    out = []
    for action, total in zip(ACTIONS, (n_respond, n_ignore)):
        for domain, count in zip(DOMAINS, _split_evenly(total, len(DOMAINS), rng)):
            names = [str(x) for x in rng.permutation(TYPES[domain, action])]
            out += [{"domain": domain, "event": names[i % len(names)], "action": action} for i in range(count)]
    return out


def _ceil_chunks(seconds: float) -> int:
    return math.ceil(round(seconds / CHUNK_SECONDS, 6))


def plan(seed: int = BENCH_SEED, n_events: int = PAPER_RESPOND + PAPER_IGNORE, must_ignore_s: float = 3600.0,
         must_ignore_share: float = 0.4, must_ignore_stream_s: float = MUST_IGNORE_STREAM_S) -> list[dict]:
    """Stream specs (id, kind, domain, seed, events, n_samples for must-ignore streams), no audio."""
    n_respond, n_ignore = event_counts(n_events) if isinstance(n_events, int) else (0, 0)
    if isinstance(n_events, bool) or not isinstance(n_events, int) or min(n_respond, n_ignore) < len(DOMAINS):
        raise ValueError(f"n_events must be an integer giving at least {len(DOMAINS)} respond and "
                         f"{len(DOMAINS)} ignore events (one per domain), got {n_events!r}")
    if not (isinstance(must_ignore_s, (int, float)) and math.isfinite(must_ignore_s) and must_ignore_s >= 0):
        raise ValueError(f"must_ignore_s must be a non-negative number of seconds, got {must_ignore_s!r}")
    if not 0.0 <= must_ignore_share <= 1.0:
        raise ValueError(f"must_ignore_share must be in [0, 1], got {must_ignore_share!r}")
    if not must_ignore_stream_s > 0:
        raise ValueError(f"must_ignore_stream_s must be positive, got {must_ignore_stream_s!r}")
    rng = np.random.default_rng(derive_seed(seed, TAG, "plan"))
    evs = _plan_events(n_events, rng)
    ignore_idx = [i for i, e in enumerate(evs) if e["action"] == "ignore"]

    specs = []
    n_mi_streams = math.ceil(must_ignore_s / must_ignore_stream_s) if must_ignore_s > 0 else 0
    taken: set[int] = set()
    if n_mi_streams:
        n_mi_events = int(math.floor(len(ignore_idx) * must_ignore_share + 0.5))
        chunks = _ceil_chunks(must_ignore_s / n_mi_streams)
        per_stream = _split_evenly(n_mi_events, n_mi_streams, rng)
        need = max(per_stream) * (MAX_EVENT_S + GAP_S[0]) + LEAD_S[0] + TAIL_S
        if min(per_stream) < 1 or need > chunks * CHUNK_SECONDS:
            raise ValueError(
                f"{n_mi_events} ignore events do not fit {n_mi_streams} must-ignore stream(s) of "
                f"{chunks * CHUNK_SECONDS:.1f} s (each stream needs 1 to "
                f"{int((chunks * CHUNK_SECONDS - LEAD_S[0] - TAIL_S) // (MAX_EVENT_S + GAP_S[0]))} events): "
                "change must_ignore_share, must_ignore_s or n_events")
        chosen = [ignore_idx[int(i)] for i in rng.permutation(len(ignore_idx))[:n_mi_events]]
        taken = set(chosen)
        pos = 0
        for k, count in enumerate(per_stream):
            sid = f"ignore-{k:03d}"
            specs.append({"id": sid, "kind": "must_ignore", "domain": "all", "seed": derive_seed(seed, TAG, sid),
                          "events": [evs[i] for i in chosen[pos:pos + count]], "n_samples": chunks * CHUNK_SAMPLES})
            pos += count

    mixed = []
    for domain in DOMAINS:
        pool = [evs[i] for i in rng.permutation(len(evs)) if i not in taken and evs[i]["domain"] == domain]
        k = 0
        while pool:
            size = int(rng.integers(EVENTS_PER_STREAM[0], EVENTS_PER_STREAM[1] + 1))
            sid = f"mixed-{domain}-{k:03d}"
            mixed.append({"id": sid, "kind": "mixed", "domain": domain, "seed": derive_seed(seed, TAG, sid),
                          "events": pool[:size], "n_samples": None})
            pool, k = pool[size:], k + 1
    return mixed + specs


# ---------------------------------------------------------------------------------------------
# rendering (one stream, in a worker)


def _render_event(ev: dict, piece_seed: int, rng, p_real: float) -> tuple[np.ndarray, str]:
    if ev["event"] == "music":  # as the corpus's ignore_turn: a melody piece, not an event piece
        attrs = {"tempo": str(rng.choice(events.MUSIC_TEMPOS)), "direction": str(rng.choice(events.MUSIC_DIRECTIONS)),
                 "timbre": str(rng.choice(events.MUSIC_TIMBRES))}
        piece = Piece(kind="music", label="music", attrs=attrs, seed=piece_seed)
    else:
        piece = Piece(kind="event", label=ev["event"], seed=piece_seed)
    return render_piece(piece, Path("."), p_real)


def _offsets_mixed(rng, lengths: list[int]) -> tuple[list[int], int]:
    t, starts = float(rng.uniform(*LEAD_S)), []
    for i, m in enumerate(lengths):
        if i:
            t += float(rng.uniform(*GAP_S))
        starts.append(round(t * SR))
        t = starts[-1] / SR + m / SR
    return starts, _ceil_chunks(t + TAIL_S) * CHUNK_SAMPLES


def _offsets_spread(rng, lengths: list[int], n: int, sid: str) -> list[int]:
    """Events spread over n samples: minimum lead, gaps and tail, the free time shared at random."""
    fixed = round(LEAD_S[0] * SR) + round(TAIL_S * SR) + (len(lengths) - 1) * round(GAP_S[0] * SR) + sum(lengths)
    free = n - fixed
    if free < 0:
        raise ValueError(f"stream {sid}: {len(lengths)} events ({sum(lengths) / SR:.1f} s) do not fit {n / SR:.1f} s")
    extra = np.floor(free * rng.dirichlet(np.ones(len(lengths) + 1))).astype(int)
    starts, pos = [], round(LEAD_S[0] * SR) + int(extra[0])
    for i, m in enumerate(lengths):
        if i:
            pos += round(GAP_S[0] * SR) + int(extra[i])
        starts.append(pos)
        pos += m
    return starts


def render_stream(spec: dict, noise_cfg: dict = CORPUS_NOISE) -> tuple[np.ndarray, dict]:
    """Audio (float32, whole chunks) and manifest row (without the audio path) of one planned stream."""
    rng = np.random.default_rng(spec["seed"])
    clips = [_render_event(ev, derive_seed(spec["seed"], "event", i), rng, noise_cfg["p_real_event"])
             for i, ev in enumerate(spec["events"])]
    lengths = [len(a) for a, _ in clips]
    if spec["n_samples"] is None:
        starts, n = _offsets_mixed(rng, lengths)
    else:
        n = spec["n_samples"]
        starts = _offsets_spread(rng, lengths, n, spec["id"])
    fg = np.zeros(n, np.float32)
    for start, (audio, _) in zip(starts, clips):
        mix.place(fg, audio, start)
    noisy = bool(rng.random() < noise_cfg["p_noise"])
    snr = float(rng.uniform(*noise_cfg["snr_db"])) if noisy else float(noise_cfg["clean_snr_db"])
    kind = NOISE_KINDS[int(rng.integers(len(NOISE_KINDS)))]
    out = mix.normalize_peak(fg + mix.scale_to_snr(fg, events.colored_noise(kind, n, rng), snr))
    row = {
        "id": spec["id"],
        "duration_s": round(n / SR, 3),
        "kind": spec["kind"],
        "domain": spec["domain"],
        "seed": spec["seed"],
        "noise": f"{'noisy' if noisy else 'clean'}:{kind}",
        "snr_db": round(snr, 3),
        "events": [
            {"start_s": round(s / SR, 3), "end_s": round((s + m) / SR, 3), **ev, "source": src}
            for s, m, ev, (_, src) in zip(starts, lengths, spec["events"], clips)
        ],
    }
    return out.astype(np.float32), row


def _render_and_write(args) -> dict:
    spec, out_dir, noise_cfg = args
    audio, row = render_stream(spec, noise_cfg)
    rel = f"audio/{spec['id']}.wav"
    write_wav(Path(out_dir) / rel, audio, SR)
    return {"id": row["id"], "audio": rel, **{k: v for k, v in row.items() if k != "id"}}


# ---------------------------------------------------------------------------------------------
# build


def _write_text_atomic(path: Path, text: str) -> None:
    tmp = atomic_path(path)
    try:
        tmp.write_text(text)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def summarize(rows: list[dict]) -> dict:
    """Counts per domain and action, per event type, per stream kind; hours."""
    evs = [e for r in rows for e in r["events"]]
    n_resp = sum(e["action"] == "respond" for e in evs)
    per_domain = {d: {a: 0 for a in ACTIONS} for d in sorted({e["domain"] for e in evs})}
    for e in evs:
        per_domain[e["domain"]][e["action"]] += 1
    hours = {k: round(sum(r["duration_s"] for r in rows if r["kind"] == k) / 3600, 4) for k in KINDS}
    return {
        "streams": dict(Counter(r["kind"] for r in rows)),
        "events": len(evs),
        "respond": n_resp,
        "ignore": len(evs) - n_resp,
        "respond_share": round(n_resp / len(evs), 4) if evs else None,
        "events_by_kind": {k: sum(len(r["events"]) for r in rows if r["kind"] == k) for k in KINDS},
        "per_domain": per_domain,
        "per_event": dict(sorted(Counter(e["event"] for e in evs).items())),
        "hours": {**hours, "total": round(sum(hours.values()), 4)},
    }


def build(out_dir, seed: int = BENCH_SEED, n_events: int = PAPER_RESPOND + PAPER_IGNORE,
          must_ignore_s: float = 3600.0, workers: int = 2, must_ignore_share: float = 0.4,
          must_ignore_stream_s: float = MUST_IGNORE_STREAM_S, noise_cfg: dict | None = None,
          progress: bool = True) -> dict:
    """Build the bench into out_dir; returns the summary (also written to summary.json).

    Stale ``audio/*.wav`` files of an earlier build that the new manifest does not name are removed.
    """
    out_dir = Path(out_dir)
    noise_cfg = dict(CORPUS_NOISE if noise_cfg is None else noise_cfg)
    specs = plan(seed, n_events, must_ignore_s, must_ignore_share, must_ignore_stream_s)
    (out_dir / "audio").mkdir(parents=True, exist_ok=True)
    args = [(spec, str(out_dir), noise_cfg) for spec in specs]
    bar = dict(total=len(args), desc="proactive bench streams", unit="stream", disable=not progress)
    if workers > 1:
        with mp.get_context("fork").Pool(workers) as pool:
            rows = list(tqdm(pool.imap(_render_and_write, args), **bar))
    else:
        rows = [_render_and_write(a) for a in tqdm(args, **bar)]
    summary = {"seed": seed, "n_events_asked": n_events, "must_ignore_s_asked": must_ignore_s,
               "must_ignore_share": must_ignore_share, "noise": noise_cfg, **summarize(rows)}
    _write_text_atomic(out_dir / "manifest.jsonl", "".join(json.dumps(r, sort_keys=True) + "\n" for r in rows))
    _write_text_atomic(out_dir / "summary.json", json.dumps(summary, indent=2, sort_keys=True) + "\n")
    keep = {r["audio"] for r in rows}
    for path in (out_dir / "audio").glob("*.wav"):
        if f"audio/{path.name}" not in keep:
            path.unlink()
    return summary


# ---------------------------------------------------------------------------------------------
# loading (ours or a user's manifest)

STREAM_KEYS = ("id", "audio", "events")
EVENT_KEYS = ("start_s", "end_s", "action")


def _number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def load_manifest(path) -> list[dict]:
    """Read and validate a bench manifest (jsonl, one stream a line).

    Required per stream: id, audio (path relative to the manifest's folder, or absolute), events
    (list); optional: kind ("mixed" default | "must_ignore"), duration_s, domain. Required per event:
    start_s, end_s (seconds, 0 <= start_s < end_s), action ("respond" | "ignore"); optional: domain
    (default "unknown"), event (default ""). Every problem raises one ValueError naming the file, the
    line and the key. Rows come back with defaults filled in and "audio_path" (absolute) added.
    """
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"manifest not found: {path}")
    rows, seen = [], {}
    for lineno, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        where = f"{path}:{lineno}"
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ValueError(f"{where}: not valid JSON ({exc.msg})") from None
        if not isinstance(row, dict):
            raise ValueError(f"{where}: a line must be a JSON object")
        for key in STREAM_KEYS:
            if key not in row:
                raise ValueError(f"{where}: missing key '{key}'")
        if row["id"] in seen:
            raise ValueError(f"{where}: key 'id': duplicate id {row['id']!r} (first on line {seen[row['id']]})")
        seen[row["id"]] = lineno
        kind = row.setdefault("kind", "mixed")
        if kind not in KINDS:
            raise ValueError(f"{where}: key 'kind' must be one of {', '.join(KINDS)}, got {kind!r}")
        if "duration_s" in row and not (_number(row["duration_s"]) and row["duration_s"] > 0):
            raise ValueError(f"{where}: key 'duration_s' must be a positive number, got {row['duration_s']!r}")
        audio = Path(str(row["audio"]))
        audio = audio if audio.is_absolute() else path.parent / audio
        if not audio.is_file():
            raise ValueError(f"{where}: key 'audio': audio file not found: {audio}")
        row["audio_path"] = str(audio.resolve())
        if not isinstance(row["events"], list):
            raise ValueError(f"{where}: key 'events' must be a list")
        for i, ev in enumerate(row["events"]):
            at = f"{where}: events[{i}]"
            if not isinstance(ev, dict):
                raise ValueError(f"{at} must be a JSON object")
            for key in EVENT_KEYS:
                if key not in ev:
                    raise ValueError(f"{at}: missing key '{key}'")
            if ev["action"] not in ACTIONS:
                raise ValueError(f"{at}: key 'action' must be 'respond' or 'ignore', got {ev['action']!r}")
            if not (_number(ev["start_s"]) and _number(ev["end_s"]) and 0 <= ev["start_s"] < ev["end_s"]):
                raise ValueError(f"{at}: keys 'start_s'/'end_s' must be seconds with 0 <= start_s < end_s, "
                                 f"got {ev['start_s']!r}, {ev['end_s']!r}")
            if kind == "must_ignore" and ev["action"] == "respond":
                raise ValueError(f"{at}: key 'action': a must_ignore stream holds no respond event")
            ev.setdefault("domain", "unknown")
            ev.setdefault("event", "")
        rows.append(row)
    if not rows:
        raise ValueError(f"{path}: manifest has no streams")
    return rows
