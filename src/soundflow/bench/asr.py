"""Benchmark 1, real-time ASR (DESIGN section 8): streaming and offline WER of the model, streaming
latency, and two peers (Whisper tiny.en, pocketsphinx) on the same audio. `run(ctx) -> dict`.

Items
-----
Corpus (default): the online `asr_*` items of the test split (held-out voices of seen engines
`heldout_voice`, and an engine never trained on `unseen_engine`) for streaming and the peers; the
offline `asr_*` items for offline WER. External manifest (`ctx.manifest`, JSON lines): keys id, audio,
instruction, lang, transcript (reference of the whole recording), optional condition (default
"unspecified") and turns [{start_s, end_s, text?}] (speech spans; needed for the latency metrics
and the peers' segmentation, every turn is scored). Offline WER in manifest mode runs the manifest
recordings of at most `offline_max_s` seconds in the offline format.

Turns and reference
-------------------
A corpus stream's turns are its sentences (turn kind "sentence": the text to transcribe) and its
mix-ins (kind "event", "irrelevant", "question": a sound event, speech not addressed to the
assistant, a recall question). The whole-stream reference is the sentences' text in order (taken
from the turns, not from references["transcripts"], which lists sentences that mix-ins replaced).
What any system outputs in a mix-in's span is left out of ASR scoring: there the reference
response is silence, a proactive reply or a recall answer (other benchmarks score them). Everything
else, also output before the first turn, is part of the hypothesis.

Ours, streaming (scheduler "sync", soundflow.bench.streams.decode_streams)
------------------------------------------------------------------------
An event belongs to turn i when its time (the end of its chunk) t satisfies start_i < t <= start_{i+1}
(the last turn: to the end of the stream; t <= start_0: before the first turn). Hypothesis = the
"respond" texts of all events outside the mix-ins' windows, joined by spaces (`reply_text`).
Per sentence turn, its events give append-only partials (t, all text of the turn's window so far),
scored with soundflow.bench.asr_metrics.stream_scores against the turn's [start_s, end_s]:
time to first partial (first word - speech start), finalization latency (time the turn's text is
complete - speech end, signed) and flicker. The model only appends text, so flicker is 0 by
construction (it is computed anyway, as a check). Times are stream (audio) times: the compute
time of the model is not in them (benchmark 8 measures it, with the RTF).

Ours, offline: offline items through `answer_rows` (the instruction as the user text) -> WER; the
same with `ctx.offline_bundle` (the baseline trained without streaming) when given.

Peers (offline on this machine's CPU, soundflow.bench.peers)
------------------------------------------------------------
Both hear the whole stream. Segment boundaries for the peers are the middles of the gaps between
consecutive turns (an oracle endpointer; at the next turn's start where turns touch), the first
segment starts at 0 and the last ends with the stream; segment i belongs to turn i.

- Whisper tiny.en: the whole stream in one call with word timestamps; a word belongs to the segment
  holding the middle of its span. Hypothesis = words outside mix-in segments. No latency (offline).
- pocketsphinx: its streaming decoder (400 ms chunks, PocketsphinxPeer.stream) on the segments in
  order, one utterance per segment, the front end adapting over the whole stream (reset only at
  the stream start). Hypothesis = final texts of the segments outside mix-ins. Per sentence turn,
  the segment's partials (stream time; audio time, like ours) give the same three latency metrics;
  pocketsphinx revises its partials, so its flicker is > 0. Its search is narrowed by default
  (cfg pocketsphinx_options: maxhmmpf 3000, no fwdflat pass; about 3x faster on the noisy streams
  at the same WER); {} gives pocketsphinx's own defaults.
RTF = compute seconds / audio seconds over all calls (wall clock of the decoding process).

WER = corpus-level (S + D + I) / N over the items of a condition after normalisation
(soundflow.bench.asr_metrics.wer_counts); `all` = every item.

Result keys
-----------
Top level, numbers (None where not measured: no items of a condition, peer off or unavailable,
no turns in a manifest):
  items, offline_items, turns_scored, audio_s
  wer_stream_all, wer_stream_heldout_voice, wer_stream_unseen_engine (+ wer_stream_<condition>
      for any other condition of a manifest)
  wer_offline, wer_offline_baseline
  first_partial_s, finalization_s, flicker            (ours, mean over sentence turns)
  whisper_wer_all, whisper_wer_<condition>, whisper_rtf
  pocketsphinx_wer_all, pocketsphinx_wer_<condition>, pocketsphinx_first_partial_s,
      pocketsphinx_finalization_s, pocketsphinx_flicker, pocketsphinx_rtf
Nested: "ours" (stream WER counts per condition, `wer_stream_all_raw` = WER of everything it said
mix-ins included, latency summary, offline), "whisper_tiny_en", "pocketsphinx" (same layout, or
{"skipped": reason}), "reference_timeline" (corpus mode: the corpus's reference responses scored
by the same code, a self-check: WER 0 and the latency the training targets teach), "per_item"
(id, condition, duration_s, turns, ref_words, wer, whisper_wer, pocketsphinx_wer), "timings_s",
"config", "ci95" (95 % bootstrap intervals of the WERs over streams and of the latency and flicker over
turns, keyed like the numbers; soundflow.bench.bootstrap). Hypotheses per item go to <work>/hypotheses.jsonl.
"""
from __future__ import annotations

import bisect
import json
import math
import multiprocessing as mp
import os
from pathlib import Path
from time import perf_counter

import soundfile as sf

from soundflow import CHUNK_SECONDS, SAMPLE_RATE
from soundflow.bench.asr_metrics import stream_scores, summarize_streams, wer_counts
from soundflow.bench.streams import (
    BenchContext, answer_rows, decode_streams, load_manifest, load_rows, with_defaults,
)

CONDITIONS = ("heldout_voice", "unseen_engine")  # always reported (None without items)
PEERS = ("whisper_tiny_en", "pocketsphinx")
DEFAULTS = {
    "peers": list(PEERS),  # which peers to run on the same audio
    "whisper_beam": 5,  # Whisper beam size (1 = greedy)
    "offline": True,  # offline-format WER of the model
    "offline_baseline": True,  # ... and of ctx.offline_bundle when given
    "offline_max_s": 30.0,  # manifest mode: longest recording decoded offline
    # pocketsphinx search settings: its defaults (maxhmmpf 30000, fwdflat on) cost RTF ~0.4 CPU on the
    # noisy test streams; these ~0.14 at the same WER (4 test streams: 0.754 vs 0.768); {} = its defaults
    "pocketsphinx_options": {"maxhmmpf": 3000, "fwdflat": False},
}
SCORED_KIND = "sentence"


def settings(cfg: dict | None) -> dict:
    """cfg (params.yaml bench.asr) over DEFAULTS; unknown keys and unknown peers are refused."""
    out = with_defaults("asr", cfg, DEFAULTS)
    out["peers"] = list(out["peers"] or [])
    bad = sorted(set(out["peers"]) - set(PEERS))
    if bad:
        raise ValueError(f"bench.asr.peers: unknown peer(s) {bad}; known: {list(PEERS)}")
    if not (isinstance(out["whisper_beam"], int) and out["whisper_beam"] >= 1):
        raise ValueError(f"bench.asr.whisper_beam must be an int >= 1, got {out['whisper_beam']!r}")
    if not isinstance(out["pocketsphinx_options"], dict):
        raise ValueError(f"bench.asr.pocketsphinx_options must be a mapping, got {out['pocketsphinx_options']!r}")
    out["pocketsphinx_options"] = dict(out["pocketsphinx_options"])
    return out


# ---------------------------------------------------------------------------------------------
# items


def _turn(t: dict, scored: bool, where: str) -> dict:
    try:
        start, end = float(t["start_s"]), float(t["end_s"])
    except (KeyError, TypeError, ValueError):
        raise ValueError(f"{where}: a turn needs numeric start_s and end_s, got {t!r}") from None
    if not 0 <= start <= end:
        raise ValueError(f"{where}: need 0 <= start_s <= end_s, got {start}, {end}")
    return {"start_s": start, "end_s": end, "text": str(t.get("text") or ""), "scored": scored}


def corpus_items(corpus: Path) -> list[dict]:
    """Online asr_* test items: id, audio, instruction, lang, condition, duration_s, reference,
    turns [{start_s, end_s, text, scored}] sorted by start, timeline (reference responses)."""
    items = []
    for row in load_rows(corpus, ("asr_",), "online"):
        turns = sorted((_turn({**t, "text": t["reply"]}, t["kind"] == SCORED_KIND, row["id"]) for t in row["turns"]),
                       key=lambda t: t["start_s"])
        items.append({"id": row["id"], "audio": row["audio"], "instruction": row["instruction"], "lang": row["lang"],
                      "condition": row["condition"], "duration_s": float(row["duration_s"]),
                      "reference": " ".join(t["text"] for t in turns if t["scored"]),
                      "turns": turns, "timeline": row["timeline"] or []})
    return items


def manifest_items(path: Path) -> list[dict]:
    """Items of an external manifest (see the module docstring), in the form of `corpus_items`."""
    items = []
    for row in load_manifest(path, ("transcript",)):
        where = f"{path}: item {row['id']}"
        if not isinstance(row["transcript"], str):
            raise ValueError(f"{where}: key 'transcript' must be a string")
        turns = sorted((_turn(t, True, where) for t in row.get("turns") or []), key=lambda t: t["start_s"])
        items.append({"id": str(row["id"]), "audio": row["audio"], "instruction": row["instruction"],
                      "lang": row["lang"], "condition": str(row.get("condition") or "unspecified"),
                      "duration_s": float(sf.info(row["audio"]).duration), "reference": row["transcript"],
                      "turns": turns, "timeline": None})
    return items


def offline_items(corpus: Path) -> list[dict]:
    """Offline asr_* test items (one sentence each) with their reference."""
    out = []
    for row in load_rows(corpus, ("asr_",), "offline"):
        ref = " ".join(t["reply"] for t in row["turns"] if t["kind"] == SCORED_KIND) or row["references"]["reply"]
        out.append({**row, "reference": ref})
    return out


# ---------------------------------------------------------------------------------------------
# scoring


def ours_stream(events: list[dict], turns: list[dict]) -> dict:
    """Split a stream's events by turn windows (start_i, start_{i+1}]: hypothesis (mix-in windows left
    out), raw (everything said) and, per scored turn, append-only partials [(t, text so far)]."""
    starts = [t["start_s"] for t in turns]
    kept, raw, partials = [], [], [[] for _ in turns]
    pieces = [[] for _ in turns]
    for e in sorted(events, key=lambda e: e["time_s"]):
        t = float(e["time_s"])
        i = bisect.bisect_left(starts, t) - 1  # starts[i] < t <= starts[i + 1]
        text = e["text"].strip() if e["action"] == "respond" else ""
        if text:
            raw.append(text)
            if i < 0 or turns[i]["scored"]:
                kept.append(text)
        if i >= 0 and turns[i]["scored"]:
            if text:
                pieces[i].append(text)
            partials[i].append((t, " ".join(pieces[i])))
    return {"hypothesis": " ".join(kept), "raw": " ".join(raw),
            "partials": [p for p, turn in zip(partials, turns) if turn["scored"]]}


def peer_cuts(turns: list[dict], duration_s: float) -> list[float]:
    """Segment boundaries for the peers: 0, the middle of each gap between turns, the stream end
    (len(turns) + 1 values; [0, duration] without turns)."""
    cuts = [0.0]
    for prev, nxt in zip(turns, turns[1:]):
        cuts.append((prev["end_s"] + nxt["start_s"]) / 2 if prev["end_s"] < nxt["start_s"] else nxt["start_s"])
    cuts.append(max(float(duration_s), cuts[-1]))
    return cuts


def _segment_scored(turns: list[dict], k: int) -> bool:
    return not turns or turns[k]["scored"]


def words_by_segment(words: list[tuple[float, float, str]], turns: list[dict], duration_s: float) -> dict:
    """Timed words (Whisper) -> hypothesis (words whose middle lies in a scored segment) and raw."""
    cuts = peer_cuts(turns, duration_s)
    n = max(len(turns), 1)
    kept = [w for s, e, w in words
            if _segment_scored(turns, min(max(bisect.bisect_right(cuts, (s + e) / 2) - 1, 0), n - 1))]
    return {"hypothesis": " ".join(kept), "raw": " ".join(w for _, _, w in words)}


def wer_by_condition(items: list[dict], hyps: list[str], conditions: tuple[str, ...]) -> dict:
    """{condition: wer_counts (with its ci95) or None} for each condition and "all"."""
    out = {}
    for cond in ("all", *conditions):
        pairs = [(it["reference"], h) for it, h in zip(items, hyps) if cond == "all" or it["condition"] == cond]
        out[cond] = _round(wer_counts(*map(list, zip(*pairs)))) if pairs else None
    return out


def _rates(counts: dict, prefix: str) -> dict:
    return {f"{prefix}{cond}": (c["wer"] if c else None) for cond, c in counts.items()}


def score_ours(items: list[dict], events: list[list[dict]], conditions: tuple[str, ...] = CONDITIONS) -> dict:
    """Streaming WER per condition and per-turn latency of one system's events (see module docstring)."""
    split = [ours_stream(ev, it["turns"]) for it, ev in zip(items, events)]
    scores = [stream_scores(p, t["start_s"], t["end_s"])
              for it, s in zip(items, split) for p, t in zip(s["partials"], [t for t in it["turns"] if t["scored"]])]
    counts = wer_by_condition(items, [s["hypothesis"] for s in split], conditions)
    raw = wer_by_condition(items, [s["raw"] for s in split], ())["all"]
    return {**_rates(counts, "wer_stream_"), "wer_stream_all_raw": raw["wer"], "wer_counts": counts,
            "latency": _round(summarize_streams(scores)), "split": split}


def timeline_events(timeline: list[dict], chunk_s: float = CHUNK_SECONDS) -> list[dict]:
    """The corpus's reference responses as events (time = end of their chunk)."""
    return [{"chunk": e["chunk"], "time_s": round((e["chunk"] + 1) * chunk_s, 6), "action": e["action"],
             "text": e["text"] if e["action"] == "respond" else ""} for e in sorted(timeline, key=lambda e: e["chunk"])]


def _round(x, digits: int = 4):
    if isinstance(x, float):
        return round(x, digits) if math.isfinite(x) else None
    if isinstance(x, dict):
        return {k: _round(v, digits) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_round(v, digits) for v in x]
    return x


# ---------------------------------------------------------------------------------------------
# peers


_SPHINX = None


def _sphinx_init(options: dict) -> None:
    global _SPHINX
    from soundflow.bench.peers import PocketsphinxPeer

    _SPHINX = PocketsphinxPeer(**options)


def _sphinx_job(job: tuple[str, list[float]]) -> dict:
    """One stream, its segments decoded in order as utterances; partials in stream time."""
    from soundflow.audio import read_audio

    path, cuts = job
    audio = read_audio(path, sr=SAMPLE_RATE)
    before = (_SPHINX.compute_s, _SPHINX.audio_s)
    segments = []
    for k, (a, b) in enumerate(zip(cuts, cuts[1:])):
        lo, hi = round(a * SAMPLE_RATE), min(round(b * SAMPLE_RATE), audio.size)
        if hi - lo < SAMPLE_RATE // 100:  # under 10 ms (a cut at the very end): nothing to decode
            segments.append([(round(b, 6), "")])
            continue
        parts = _SPHINX.stream(audio[lo:hi], chunk_s=CHUNK_SECONDS, reset=k == 0)
        segments.append([(round(a + t, 6), text) for t, text in parts])
    return {"segments": segments, "compute_s": _SPHINX.compute_s - before[0], "audio_s": _SPHINX.audio_s - before[1],
            "load_s": _SPHINX.load_s}


def run_pocketsphinx(items: list[dict], workers: int, conditions: tuple[str, ...], options: dict | None = None) -> dict:
    jobs = [(it["audio"], peer_cuts(it["turns"], it["duration_s"])) for it in items]
    order = sorted(range(len(jobs)), key=lambda i: -items[i]["duration_s"])  # longest first: balanced pool
    workers = max(1, min(workers, len(jobs), os.cpu_count() or 1))
    options = dict(options or {})
    if workers == 1:
        _sphinx_init(options)
        done = {i: _sphinx_job(jobs[i]) for i in order}
    else:
        from soundflow.bench.peers import PocketsphinxPeer

        PocketsphinxPeer(**options)  # a missing package or a bad setting fails here, not in a worker
        with mp.get_context("spawn").Pool(workers, initializer=_sphinx_init, initargs=(options,)) as pool:
            done = dict(zip(order, pool.map(_sphinx_job, [jobs[i] for i in order], chunksize=1)))
    results = [done[i] for i in range(len(jobs))]
    hyps, raws, scores = [], [], []
    for it, res in zip(items, results):
        finals = [seg[-1][1] for seg in res["segments"]]
        hyps.append(" ".join(f for k, f in enumerate(finals) if f and _segment_scored(it["turns"], k)))
        raws.append(" ".join(f for f in finals if f))
        scores += [stream_scores(seg, t["start_s"], t["end_s"])
                   for seg, t in zip(res["segments"], it["turns"]) if t["scored"]]
    counts = wer_by_condition(items, hyps, conditions)
    audio_s, compute_s = sum(r["audio_s"] for r in results), sum(r["compute_s"] for r in results)
    return {**_rates(counts, "wer_"), "wer_all_raw": wer_by_condition(items, raws, ())["all"]["wer"],
            "wer_counts": counts, "latency": _round(summarize_streams(scores)) if scores else None,
            "rtf": compute_s / audio_s if audio_s else None, "load_s": max(r["load_s"] for r in results),
            "workers": workers, "options": options, "hypotheses": hyps}


def run_whisper(items: list[dict], beam: int, threads: int, conditions: tuple[str, ...]) -> dict:
    from soundflow.audio import read_audio
    from soundflow.bench.peers import WhisperPeer

    peer = WhisperPeer(beam_size=beam, cpu_threads=threads)
    split = [words_by_segment(peer.transcribe_words(read_audio(it["audio"], sr=SAMPLE_RATE)), it["turns"],
                              it["duration_s"]) for it in items]
    counts = wer_by_condition(items, [s["hypothesis"] for s in split], conditions)
    raw = wer_by_condition(items, [s["raw"] for s in split], ())["all"]["wer"]
    return {**_rates(counts, "wer_"), "wer_all_raw": raw, "wer_counts": counts, "rtf": peer.rtf,
            "load_s": peer.load_s, "beam_size": beam, "threads": threads,
            "hypotheses": [s["hypothesis"] for s in split]}


# ---------------------------------------------------------------------------------------------
# the benchmark


def _offline_wer(bundle: Path, rows: list[dict], workers: int, conditions: tuple[str, ...], desc: str) -> dict:
    # few short clips: decoding in this process beats starting a pool (spawn + model load per worker)
    audio_s = sum(float(r.get("duration_s") or sf.info(r["audio"]).duration) for r in rows)
    answers = answer_rows(bundle, rows, workers=workers if audio_s > 120 else 1, desc=desc)
    counts = wer_by_condition(rows, [a["text"] for a in answers], conditions)
    return {**_rates(counts, "wer_"), "items": len(rows), "wer_counts": counts,
            "hypotheses": [a["text"] for a in answers]}


def run(ctx: BenchContext) -> dict:
    """Benchmark 1 on the corpus test split or ctx.manifest; keys: see the module docstring."""
    cfg = settings(ctx.cfg)
    t_start = perf_counter()
    timings = {}
    if ctx.manifest is not None:
        items = manifest_items(Path(ctx.manifest))
        off_rows = [it for it in items if it["duration_s"] <= cfg["offline_max_s"]]
    else:
        items = corpus_items(Path(ctx.corpus))
        off_rows = offline_items(Path(ctx.corpus))
        if not items:
            raise ValueError(f"{ctx.corpus}: no online asr_* items in the test split")
    extra = tuple(sorted({it["condition"] for it in items} - set(CONDITIONS)))
    conditions = CONDITIONS + extra
    Path(ctx.work).mkdir(parents=True, exist_ok=True)

    t0 = perf_counter()
    events = decode_streams(Path(ctx.bundle), items, workers=ctx.workers, desc="asr: streaming decode")
    ours = score_ours(items, events, conditions)
    timings["ours_stream"] = perf_counter() - t0

    offline, baseline = None, None
    t0 = perf_counter()
    if cfg["offline"] and off_rows:
        offline = _offline_wer(Path(ctx.bundle), off_rows, ctx.workers, conditions, "asr: offline decode")
    if cfg["offline_baseline"] and ctx.offline_bundle is not None and off_rows:
        baseline = _offline_wer(Path(ctx.offline_bundle), off_rows, ctx.workers, conditions,
                                "asr: offline baseline decode")
    timings["offline"] = perf_counter() - t0

    from soundflow.bench.peers import PeerUnavailable

    peers = {}
    for name in PEERS:
        if name not in cfg["peers"]:
            peers[name] = {"skipped": "off in bench.asr.peers"}
            continue
        t0 = perf_counter()
        try:
            if name == "whisper_tiny_en":
                peers[name] = run_whisper(items, cfg["whisper_beam"], max(1, ctx.workers), conditions)
            else:
                peers[name] = run_pocketsphinx(items, ctx.workers, conditions, cfg["pocketsphinx_options"])
        except PeerUnavailable as exc:
            peers[name] = {"skipped": str(exc)}
        timings[name] = perf_counter() - t0

    reference = None
    if ctx.manifest is None:
        ref = score_ours(items, [timeline_events(it["timeline"]) for it in items], conditions)
        reference = {"wer_stream_all": ref["wer_stream_all"], "latency": ref["latency"]}

    lat = ours["latency"]
    ps, wh = peers["pocketsphinx"], peers["whisper_tiny_en"]
    ps_lat = ps.get("latency") or {}
    result = {
        "items": len(items),
        "offline_items": len(off_rows) if offline or baseline else 0,
        "turns_scored": lat["utterances"],
        "audio_s": round(sum(it["duration_s"] for it in items), 3),
        **{k: v for k, v in ours.items() if k.startswith("wer_stream_") and k != "wer_stream_all_raw"},
        "wer_offline": offline["wer_all"] if offline else None,
        "wer_offline_baseline": baseline["wer_all"] if baseline else None,
        "first_partial_s": lat["first_partial_s"],
        "finalization_s": lat["finalization_s"],
        "flicker": lat["flicker"] if lat["utterances"] else None,
        **{f"whisper_wer_{c}": wh.get(f"wer_{c}") for c in ("all", *conditions)},
        "whisper_rtf": wh.get("rtf"),
        **{f"pocketsphinx_wer_{c}": ps.get(f"wer_{c}") for c in ("all", *conditions)},
        "pocketsphinx_first_partial_s": ps_lat.get("first_partial_s"),
        "pocketsphinx_finalization_s": ps_lat.get("finalization_s"),
        "pocketsphinx_flicker": ps_lat.get("flicker") if ps_lat.get("utterances") else None,
        "pocketsphinx_rtf": ps.get("rtf"),
        "ours": {k: v for k, v in ours.items() if k != "split"}
        | {"offline": _public(offline), "offline_baseline": _public(baseline)},
        "whisper_tiny_en": _public(wh),
        "pocketsphinx": _public(ps),
        "reference_timeline": reference,
        "per_item": [
            {"id": it["id"], "condition": it["condition"], "duration_s": it["duration_s"],
             "turns": sum(t["scored"] for t in it["turns"]),
             "ref_words": len(it["reference"].split()),
             "wer": _item_wer(it, s["hypothesis"]),
             "whisper_wer": _item_wer(it, wh["hypotheses"][i]) if "hypotheses" in wh else None,
             "pocketsphinx_wer": _item_wer(it, ps["hypotheses"][i]) if "hypotheses" in ps else None}
            for i, (it, s) in enumerate(zip(items, ours["split"]))],
        "config": cfg,
        "ci95": _intervals(ours, offline, baseline, wh, ps, conditions),
    }
    with open(Path(ctx.work) / "hypotheses.jsonl", "w") as fh:
        for i, (it, s) in enumerate(zip(items, ours["split"])):
            fh.write(json.dumps({"id": it["id"], "condition": it["condition"], "reference": it["reference"],
                                 "ours": s["hypothesis"], "ours_raw": s["raw"],
                                 "whisper": wh["hypotheses"][i] if "hypotheses" in wh else None,
                                 "pocketsphinx": ps["hypotheses"][i] if "hypotheses" in ps else None}) + "\n")
    timings["total"] = perf_counter() - t_start
    result["timings_s"] = timings
    return _round(result)


def _intervals(ours: dict, offline: dict | None, baseline: dict | None, whisper: dict, sphinx: dict,
               conditions: tuple[str, ...]) -> dict:
    """95 % bootstrap intervals (soundflow.bench.bootstrap) keyed like the result's numbers: WER over streams
    (offline: clips), latency and flicker over turns."""
    out = {}
    for prefix, counts in (("wer_stream_", ours["wer_counts"]), ("whisper_wer_", whisper.get("wer_counts")),
                           ("pocketsphinx_wer_", sphinx.get("wer_counts"))):
        out |= {f"{prefix}{c}": ((counts or {}).get(c) or {}).get("ci95") for c in ("all", *conditions)}
    for key, block in (("wer_offline", offline), ("wer_offline_baseline", baseline)):
        out[key] = block["wer_counts"]["all"]["ci95"] if block else None
    for prefix, latency in (("", ours["latency"]), ("pocketsphinx_", sphinx.get("latency"))):
        out |= {f"{prefix}{k}": v for k, v in ((latency or {}).get("ci95") or {}).items()}
    return out


def _public(block: dict | None) -> dict | None:
    return None if block is None else {k: v for k, v in block.items() if k != "hypotheses"}


def _item_wer(item: dict, hyp: str) -> float | None:
    return wer_counts(item["reference"], hyp)["wer"] if item["reference"].split() else None
