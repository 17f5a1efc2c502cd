"""Benchmark 2: streaming translation, BLEU and chrF (sacrebleu), both directions (DESIGN section 8).

Items
- Corpus (default): the online test items of the ``cfg["sub_tasks"]`` sub-tasks (st_en2zh, st_zh2en,
  st_noisy, st_switch), decoded as streams (``decode_streams``, the item's instruction as the prefix).
  A **segment** is one turn of kind "sentence": its reference is the turn's reply (the translation),
  its direction ``<src_lang>2<tgt_lang>`` from the turn's meta: en2zh (st_en2zh, st_noisy, st_switch
  before the switch), zh2en (st_zh2en), and en2en for st_switch sentences after the user asked for
  English output (the "translation" is then the sentence itself; scored as its own direction).
- External manifest (``ctx.manifest``, JSON lines): keys id, audio, instruction, lang, direction
  ("en2zh", "zh2en", ...), references (list of per-turn target strings, in order); optional
  ``turn_starts`` (list of seconds, one per reference: when each source sentence starts).

Alignment (``split_events``): the stream is cut at the turns' start times; turn i owns the events with
start_i <= time_s < start_{i+1} (the first turn also owns anything before it, the last turn everything
after it). time_s is the end of the chunk the reply was written in, so a translation written after the
sentence ended, but before the next sentence began, belongs to that sentence; a reply that comes only
once the next sentence has started is charged to the next one (late = wrong segment, as in a live
caption). A segment's hypothesis is its replies joined (``join_replies``: "" for a Chinese target,
" " otherwise). Turns that are not sentences (st_switch's spoken instruction and its acknowledgement)
own a window too, but are not scored, so an acknowledgement never counts against a sentence.
External rows without ``turn_starts`` (or with a count that does not match references) are scored as
one segment each: everything said over the stream against the references joined (whole-stream
concatenation; BLEU is then a document-level score).

Metrics per direction (``score_translation``): sacrebleu ``corpus_bleu`` with tokenize "zh" for a
Chinese target and "13a" otherwise, and ``corpus_chrf`` (chrF2: character 6-grams, beta 2, whitespace
ignored), over all segments of that direction pooled across items and sub-tasks; the signatures are in
``signatures``. ``lang_acc_<dir>``: share of segments whose hypothesis is mostly in the target script
(``in_language``: CJK characters for zh, Latin letters otherwise; an empty hypothesis is wrong).

Offline format (corpus only): the offline st_* test items (one sentence each, the instruction as the
user text) answered by ``answer_rows`` with the streaming bundle (``offline_*``) and, when
``ctx.offline_bundle`` is set and ``cfg["baseline"]``, with the offline baseline (``baseline_*``).

Top-level keys (numbers, or None where a direction has no segments):
  bleu_en2zh, chrf_en2zh, bleu_zh2en, chrf_zh2en, lang_acc_en2zh, lang_acc_zh2en, segments_en2zh,
  segments_zh2en (and the same with _en2en, or any other direction found, when present);
  offline_bleu_<dir>, offline_chrf_<dir>, offline_segments_<dir>; baseline_bleu_<dir>, ...;
  n_items, n_segments, segments_whole_stream (segments scored by whole-stream concatenation), wall_s.
Nested: per_sub_task {sub_task: {direction: {bleu, chrf, segments}}}, signatures, examples, ci95 (95 %
bootstrap intervals of every BLEU and chrF over its segments, keyed like them; ``corpus_interval``).
"""
from __future__ import annotations

import bisect
import time
import unicodedata
from collections import defaultdict
from collections.abc import Sequence

import sacrebleu

from soundflow.bench import bootstrap
from soundflow.bench.streams import BenchContext, answer_rows, decode_streams, load_manifest, load_rows

SUB_TASKS = ("st_en2zh", "st_zh2en", "st_noisy", "st_switch")
MAIN_DIRECTIONS = ("en2zh", "zh2en")
MANIFEST_KEYS = ("direction", "references")
N_EXAMPLES = 6
SMALL_JOB = 12  # offline jobs up to this many items run in this process: a worker pool costs more to start


SMALL_STREAM_JOB = 2  # the same for streams (seconds of work each)


def workers_for(n_jobs: int, workers: int, small: int = SMALL_JOB) -> int:
    """Worker processes for a decode job: 1 (in-process) for up to `small` jobs, else `workers`."""
    return 1 if n_jobs <= small else workers


# ---------------------------------------------------------------------------------------------
# alignment and text


def split_events(events: Sequence[dict], starts: Sequence[float]) -> list[list[dict]]:
    """The events of a stream grouped by turn: turn i gets the events with starts[i] <= time_s <
    starts[i+1]; events before starts[0] go to turn 0 and the last turn keeps everything after it.
    `starts` must be non-decreasing and non-empty."""
    starts = [float(s) for s in starts]
    if not starts:
        raise ValueError("split_events needs at least one turn start")
    if any(b < a for a, b in zip(starts, starts[1:])):
        raise ValueError(f"turn starts must be non-decreasing, got {starts}")
    out: list[list[dict]] = [[] for _ in starts]
    for e in events:
        i = max(bisect.bisect_right(starts, float(e["time_s"])) - 1, 0)
        out[i].append(e)
    return out


def join_replies(texts: Sequence[str], lang: str) -> str:
    """Replies in order: concatenated for Chinese, space-separated otherwise."""
    parts = [t.strip() for t in texts if t and t.strip()]
    return ("" if lang == "zh" else " ").join(parts)


def spoken_texts(events: Sequence[dict]) -> list[str]:
    """The texts of the respond events (in order)."""
    return [e["text"] for e in events if e["action"] == "respond" and e["text"].strip()]


def _is_cjk(ch: str) -> bool:
    return "CJK" in unicodedata.name(ch, "")


def in_language(text: str, lang: str) -> bool:
    """True when most letters of `text` are in the script of `lang` (CJK for zh, Latin otherwise)."""
    letters = [ch for ch in text if ch.isalpha()]
    if not letters:
        return False
    cjk = sum(_is_cjk(ch) for ch in letters)
    share = cjk / len(letters) if lang == "zh" else 1 - cjk / len(letters)
    return share > 0.5


def target_lang(direction: str) -> str:
    """"en2zh" -> "zh"."""
    src, sep, tgt = direction.partition("2")
    if not sep or not src or not tgt:
        raise ValueError(f"direction must look like 'en2zh', got {direction!r}")
    return tgt


def tokenizer_for(lang: str) -> str:
    return "zh" if lang == "zh" else "13a"


def score_translation(hyps: Sequence[str], refs: Sequence[str], lang: str) -> dict:
    """Corpus BLEU and chrF of hypotheses against one reference each, target language `lang`."""
    if len(hyps) != len(refs):
        raise ValueError(f"{len(hyps)} hypotheses for {len(refs)} references")
    if not refs:
        return {"bleu": None, "chrf": None, "segments": 0, "lang_acc": None}
    bleu = sacrebleu.metrics.BLEU(tokenize=tokenizer_for(lang))
    chrf = sacrebleu.metrics.CHRF()
    hyps, refs = list(hyps), list(refs)
    return {
        "bleu": float(bleu.corpus_score(hyps, [refs]).score),
        "chrf": float(chrf.corpus_score(hyps, [refs]).score),
        "bleu_ci95": corpus_interval(bleu, hyps, refs),
        "chrf_ci95": corpus_interval(chrf, hyps, refs),
        "segments": len(refs),
        "lang_acc": sum(in_language(h, lang) for h in hyps) / len(hyps),
        "bleu_signature": str(bleu.get_signature()),
        "chrf_signature": str(chrf.get_signature()),
    }


def corpus_interval(metric, hyps: list[str], refs: list[str]) -> list[float] | None:
    """95 % bootstrap interval of a sacrebleu corpus score over segments: the segments' sufficient statistics
    (n-gram matches and lengths) are resampled and scored as sacrebleu's own n_bootstrap does (its private
    statistics API, sacrebleu 2.x), with soundflow.bench.bootstrap's percentiles and seed."""
    stats = metric._extract_corpus_statistics(hyps, [refs])
    return bootstrap.interval(stats, lambda sums: metric._compute_score_from_stats(list(sums)).score)


# ---------------------------------------------------------------------------------------------
# segments: (item id, sub_task, direction, hypothesis, reference)


def corpus_segments(rows: Sequence[dict], events: Sequence[Sequence[dict]]) -> list[dict]:
    """Per-turn segments of corpus st items (module docstring)."""
    segments = []
    for row, evs in zip(rows, events):
        turns = row["turns"] or []
        if not turns:
            continue
        by_turn = split_events(evs, [t["start_s"] for t in turns])
        for turn, own in zip(turns, by_turn):
            if turn["kind"] != "sentence" or not turn["reply"]:
                continue
            meta = turn["meta"]
            direction = f"{meta.get('src_lang', 'en')}2{meta.get('tgt_lang', row['lang'])}"
            lang = target_lang(direction)
            segments.append({"id": row["id"], "sub_task": row["sub_task"], "turn": turn["index"],
                             "direction": direction, "hyp": join_replies(spoken_texts(own), lang),
                             "ref": turn["reply"]})
    return segments


def manifest_segments(rows: Sequence[dict], events: Sequence[Sequence[dict]]) -> list[dict]:
    """Segments of external-manifest rows: per turn with turn_starts, else whole-stream."""
    segments = []
    for row, evs in zip(rows, events):
        direction, refs = row["direction"], list(row["references"])
        lang = target_lang(direction)
        starts = row.get("turn_starts")
        if starts and len(starts) == len(refs):
            for k, (own, ref) in enumerate(zip(split_events(evs, starts), refs)):
                segments.append({"id": row["id"], "sub_task": "external", "turn": k, "direction": direction,
                                 "hyp": join_replies(spoken_texts(own), lang), "ref": ref})
        else:
            segments.append({"id": row["id"], "sub_task": "external", "turn": None, "direction": direction,
                             "hyp": join_replies(spoken_texts(evs), lang), "ref": join_replies(refs, lang)})
    return segments


def offline_segments(rows: Sequence[dict], answers: Sequence[dict]) -> list[dict]:
    """One segment per offline corpus item: the answer against references["reply"]."""
    segments = []
    for row, ans in zip(rows, answers):
        turn = (row["turns"] or [{}])[0]
        meta = turn.get("meta") or {}
        direction = f"{meta.get('src_lang', 'en')}2{meta.get('tgt_lang', row['lang'])}"
        segments.append({"id": row["id"], "sub_task": row["sub_task"], "turn": 0, "direction": direction,
                         "hyp": ans["text"].strip(), "ref": row["references"].get("reply", turn.get("reply", ""))})
    return segments


def score_segments(segments: Sequence[dict]) -> dict[str, dict]:
    """{direction: score_translation(...)} over the segments of each direction."""
    by_dir: dict[str, list[dict]] = defaultdict(list)
    for s in segments:
        by_dir[s["direction"]].append(s)
    return {d: score_translation([s["hyp"] for s in ss], [s["ref"] for s in ss], target_lang(d))
            for d, ss in sorted(by_dir.items())}


def _flatten(scores: dict[str, dict], prefix: str, out: dict, with_lang: bool = True) -> None:
    for d in sorted(set(MAIN_DIRECTIONS) | set(scores)):
        s = scores.get(d, {"bleu": None, "chrf": None, "segments": 0, "lang_acc": None})
        out[f"{prefix}bleu_{d}"] = s["bleu"]
        out[f"{prefix}chrf_{d}"] = s["chrf"]
        out.setdefault("ci95", {}).update({f"{prefix}bleu_{d}": s.get("bleu_ci95"), f"{prefix}chrf_{d}": s.get("chrf_ci95")})
        if with_lang:
            out[f"{prefix}lang_acc_{d}"] = s["lang_acc"]
        out[f"{prefix}segments_{d}"] = s["segments"]


def _signatures(*score_sets: dict[str, dict]) -> dict:
    sig = {}
    for scores in score_sets:
        for d, s in scores.items():
            if s.get("bleu_signature"):
                sig[d] = {"bleu": s["bleu_signature"], "chrf": s["chrf_signature"]}
    return sig


# ---------------------------------------------------------------------------------------------
# the benchmark


def run(ctx: BenchContext) -> dict:
    """Benchmark 2 (module docstring). cfg: sub_tasks, scheduler, offline, baseline."""
    t0 = time.perf_counter()
    cfg = ctx.cfg or {}
    scheduler = cfg.get("scheduler", "sync")
    result: dict = {}
    if ctx.manifest:
        rows = load_manifest(ctx.manifest, MANIFEST_KEYS)
        for row in rows:
            target_lang(row["direction"])
            if not isinstance(row["references"], list) or not all(isinstance(r, str) for r in row["references"]):
                raise ValueError(f"{ctx.manifest}: item {row['id']}: 'references' must be a list of strings")
        events = decode_streams(ctx.bundle, rows, workers_for(len(rows), ctx.workers, SMALL_STREAM_JOB), scheduler,
                              desc="st: streaming decode")
        segments = manifest_segments(rows, events)
    else:
        sub_tasks = tuple(cfg.get("sub_tasks", SUB_TASKS))
        rows = load_rows(ctx.corpus, sub_tasks, "online")
        if not rows:
            raise ValueError(f"no online test items of {sub_tasks} in {ctx.corpus}")
        events = decode_streams(ctx.bundle, rows, workers_for(len(rows), ctx.workers, SMALL_STREAM_JOB), scheduler,
                              desc="st: streaming decode")
        segments = corpus_segments(rows, events)
    scores = score_segments(segments)
    _flatten(scores, "", result)
    result["n_items"] = len(rows)
    result["n_segments"] = len(segments)

    per_sub: dict[str, dict] = {}
    for sub in sorted({s["sub_task"] for s in segments}):
        per_sub[sub] = {d: {k: v[k] for k in ("bleu", "chrf", "segments", "lang_acc")}
                        for d, v in score_segments([s for s in segments if s["sub_task"] == sub]).items()}
    offline_scores, baseline_scores = {}, {}
    if not ctx.manifest and cfg.get("offline", True):
        off_rows = load_rows(ctx.corpus, tuple(cfg.get("sub_tasks", SUB_TASKS)), "offline")
        if off_rows:
            answers = answer_rows(ctx.bundle, off_rows, workers_for(len(off_rows), ctx.workers),
                                  desc="st: offline decode")
            offline_scores = score_segments(offline_segments(off_rows, answers))
            _flatten(offline_scores, "offline_", result, with_lang=False)
            if ctx.offline_bundle and cfg.get("baseline", True):
                answers = answer_rows(ctx.offline_bundle, off_rows, workers_for(len(off_rows), ctx.workers),
                                      desc="st: baseline decode")
                baseline_scores = score_segments(offline_segments(off_rows, answers))
                _flatten(baseline_scores, "baseline_", result, with_lang=False)
    result["wall_s"] = round(time.perf_counter() - t0, 2)
    result["per_sub_task"] = per_sub
    result["signatures"] = _signatures(scores, offline_scores, baseline_scores)
    result["segments_whole_stream"] = sum(s["turn"] is None for s in segments)
    result["examples"] = [{k: s[k] for k in ("id", "direction", "hyp", "ref")} for s in segments[:N_EXAMPLES]]
    return result
