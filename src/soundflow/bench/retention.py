"""Multi-turn retention (DESIGN section 8, benchmark 5): accuracy on a question heard alone (N = 1)
vs after N - 1 unrelated segments (N = 5), the streaming model vs the offline baseline.

The paper (section "context retention"): streams of N = 1..5 concatenated segments; the streaming
model keeps more than 91 % of its single-segment accuracy at N = 5, the offline baseline collapses.

**Segments.** A segment is one answerable question turn with its audio: from the corpus, every
non-mix-in turn of kind "question" of the online test items of ``sub_tasks`` (default chat_factqa,
spoken fact questions, and au_event_id, a sound then "what was that sound"), cut out of its item's
audio from ``lead_s`` before the turn to ``tail_s`` after it, never reaching into the previous or the
next turn. A segment is the same unit as an offline training clip (one question, one short reply),
so at N = 1 the offline baseline is on its home ground. With an external manifest (``ctx.manifest``,
JSON lines) each row is one segment clip: id, audio, instruction, lang, ``answer`` (a reference
string or a list of accepted strings); optional ``question_start_s`` (where the question starts in
the clip; default 0), ``question`` (the offline user text when ``offline_user_text`` is "question")
and ``source`` (rows with the same source are never put in one stream; default the id).

**Streams.** For each target segment (at most ``max_targets``, taken round-robin over the
sub-tasks in a seeded order) and each N of ``segments``: N - 1 segments of *other* items, drawn
with a seed derived from ``seed`` and the target id (the N = 3 prefix is the start of the N = 5 one),
then the target; written to ``<work>/streams/<target>-n<N>.wav`` (16-bit, atomic; same cfg -> same
bytes) and listed in ``<work>/streams.jsonl``; other wavs left there by an earlier run are removed.

**Systems.**
- online (``ctx.bundle``): streaming decode with the target's instruction; its answer = everything
  it says at chunks ending after the target's question starts (until the stream ends).
- offline (``ctx.offline_bundle``, skipped when None): ``answer_rows`` on the same stream wav, the
  user text being the target's instruction (``offline_user_text: instruction``, the offline training
  format: the question is spoken in the audio) or the question's text (``question``).

**Matching rule.** An answer is right when one accepted answer, normalised (``asr_metrics.normalize``:
lower case, digits spelled out, punctuation dropped), occurs as a contiguous word sequence in the
normalised reply. Accepted answers: the reference reply; for a turn about a sound event (meta
``event``, not a count) also the event's name phrase (``text.EVENT_TEXT[event][0]``, e.g. "a siren"),
so "that sounds like a siren" is right for "that was a siren".

**Top-level numeric keys** (N = each value of ``segments``, default 1 and 5; M = the largest):
``targets``; ``online_acc_n<N>`` and ``offline_acc_n<N>`` (share of targets answered right);
``online_retained`` and ``offline_retained`` = acc(N = M) / acc(N = 1), 0.0 when acc(N = 1) is 0
(nothing to retain; the ``*_correct_n1`` counts show it); ``online_correct_n<N>``,
``offline_correct_n<N>``; ``audio_s`` (all streams), ``wall_s``; ``ci95``: 95 % bootstrap intervals of the
accuracies and the retained ratios over the targets, keyed like them. Offline keys are absent without an
offline bundle. Also ``per_sub_task`` (accuracies per source sub-task) and ``items`` (every target
and N: the replies and verdicts).
"""
from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from soundflow import SAMPLE_RATE
from soundflow.audio import atomic_path, read_audio, write_wav
from soundflow.bench import bootstrap
from soundflow.bench.asr_metrics import normalize
from soundflow.bench.streams import (
    BenchContext, answer_rows, decode_streams, load_manifest, load_rows, reply_text, with_defaults,
)
from soundflow.data.plan import derive_seed
from soundflow.data.text import EVENT_TEXT

TAG = "retention-bench"
DEFAULTS = {
    "sub_tasks": ["chat_factqa", "au_event_id"],  # online test items whose question turns are the segments
    "segments": [1, 5],  # N: segments per stream (1 must be there; retained = acc(max N) / acc(1))
    "max_targets": 40,  # target questions (each gets one stream per N)
    "lead_s": 1.0,  # audio kept before a question turn (never into the previous turn)
    "tail_s": 2.0,  # audio kept after it: time to answer (never into the next turn)
    "seed": 5,  # draws the targets and the prefix segments
    "offline_user_text": "instruction",  # offline baseline's user text: "instruction" | "question"
}


@dataclass
class Segment:
    id: str
    source: str  # item id: segments of one source never share a stream
    sub_task: str
    audio: str  # absolute path of the clip or of the item it is cut from
    cut: tuple[float, float] | None  # [start, end) seconds cut from `audio`; None = the whole clip
    question_start_s: float  # where the question turn starts, seconds into the segment
    instruction: str
    lang: str
    question: str
    answers: list[str] = field(default_factory=list)


# ---------------------------------------------------------------------------------------------
# matching


def accepted_answers(reply: str, meta: dict | None = None) -> list[str]:
    """The reference reply, plus the event's name phrase for a question about one sound event."""
    out = [reply]
    meta = meta or {}
    if "event" in meta and "count" not in meta and meta["event"] in EVENT_TEXT:
        out.append(EVENT_TEXT[meta["event"]][0])
    return out


def is_correct(reply: str, answers: list[str] | str) -> bool:
    """Normalised containment (module docstring): one accepted answer as a word sequence of the reply."""
    answers = [answers] if isinstance(answers, str) else list(answers)
    hyp = f" {normalize(reply)} "
    for ans in answers:
        ref = normalize(ans)
        if ref and f" {ref} " in hyp:
            return True
    return False


def answer_window_text(events: list[dict], question_start_s: float) -> str:
    """What the model said at chunks that end after the question starts."""
    return reply_text([e for e in events if e["time_s"] > question_start_s + 1e-9])


# ---------------------------------------------------------------------------------------------
# segments


def corpus_segments(corpus: Path, sub_tasks: list[str], lead_s: float, tail_s: float) -> list[Segment]:
    """Every answerable question turn (kind "question", not a mix-in, not depending on an earlier turn)
    of the online test items of `sub_tasks`, cut between its neighbours."""
    out = []
    for row in load_rows(corpus, tuple(sub_tasks), "online"):
        turns = sorted(row["turns"] or [], key=lambda t: t["start_s"])
        for k, turn in enumerate(turns):
            meta = turn["meta"] or {}
            if turn["kind"] != "question" or turn["mixin"] or not (turn["reply"] or "").strip():
                continue
            if meta.get("depends_on") is not None or "asked_turn" in meta:
                continue
            lo = max(0.0, turn["start_s"] - lead_s, turns[k - 1]["end_s"] if k else 0.0)
            hi = min(row["duration_s"], turn["end_s"] + tail_s,
                     turns[k + 1]["start_s"] if k + 1 < len(turns) else row["duration_s"])
            out.append(Segment(
                id=f"{row['id']}-t{turn['index']:02d}", source=row["id"], sub_task=row["sub_task"], audio=row["audio"],
                cut=(lo, hi), question_start_s=turn["start_s"] - lo, instruction=row["instruction"], lang=row["lang"],
                question=str(meta.get("question", "")), answers=accepted_answers(turn["reply"], meta)))
    return out


def manifest_segments(path: Path) -> list[Segment]:
    out = []
    for row in load_manifest(path, ("answer",)):
        answers = row["answer"] if isinstance(row["answer"], list) else [row["answer"]]
        if not answers or not all(isinstance(a, str) and a.strip() for a in answers):
            raise ValueError(f"{path}: item {row['id']}: key 'answer' must be a non-empty string or list of strings")
        out.append(Segment(
            id=str(row["id"]), source=str(row.get("source", row["id"])), sub_task=str(row.get("sub_task", "manifest")),
            audio=row["audio"], cut=None, question_start_s=float(row.get("question_start_s", 0.0)),
            instruction=row["instruction"], lang=row["lang"], question=str(row.get("question", "")), answers=answers))
    return out


def pick_targets(segments: list[Segment], max_targets: int, seed: int) -> list[Segment]:
    """Up to max_targets segments, round-robin over sub-tasks, each sub-task in a seeded order."""
    by_task: dict[str, list[Segment]] = {}
    for s in sorted(segments, key=lambda s: s.id):
        by_task.setdefault(s.sub_task, []).append(s)
    rng = np.random.default_rng(derive_seed(seed, TAG, "targets"))
    queues = [[group[i] for i in rng.permutation(len(group))] for _, group in sorted(by_task.items())]
    out = []
    while len(out) < max_targets and any(queues):
        for q in queues:
            if q and len(out) < max_targets:
                out.append(q.pop(0))
    return out


def prefix_order(target: Segment, pool: list[Segment], seed: int) -> list[Segment]:
    """Segments of other sources in a seeded order for this target (take the first N - 1)."""
    others = sorted((s for s in pool if s.source != target.source), key=lambda s: s.id)
    rng = np.random.default_rng(derive_seed(seed, TAG, target.id))
    return [others[i] for i in rng.permutation(len(others))]


class _Clips:
    """Segment audio, read once per file."""

    def __init__(self):
        self._files: dict[str, np.ndarray] = {}

    def __call__(self, seg: Segment) -> np.ndarray:
        if seg.audio not in self._files:
            self._files[seg.audio] = read_audio(seg.audio, SAMPLE_RATE)
        audio = self._files[seg.audio]
        if seg.cut is None:
            return audio
        lo, hi = (round(t * SAMPLE_RATE) for t in seg.cut)
        return audio[lo:hi]


def build_streams(targets: list[Segment], pool: list[Segment], ns: list[int], seed: int, out: Path) -> list[dict]:
    """Write one stream per (target, N) under out/streams; returns their rows (also out/streams.jsonl)."""
    clips = _Clips()
    rows = []
    for target in targets:
        order = prefix_order(target, pool, seed)
        for n in ns:
            if len(order) < n - 1:
                raise ValueError(f"target {target.id}: N = {n} needs {n - 1} segments of other sources, "
                                 f"only {len(order)} exist")
            parts = order[: n - 1] + [target]
            audio = [clips(s) for s in parts]
            offset = sum(len(a) for a in audio[:-1]) / SAMPLE_RATE
            path = out / "streams" / f"{target.id}-n{n}.wav"
            write_wav(path, np.concatenate(audio), SAMPLE_RATE)
            rows.append({"id": f"{target.id}-n{n}", "target": target.id, "n": n, "audio": str(path),
                         "segments": [s.id for s in parts],
                         "question_start_s": round(offset + target.question_start_s, 4),
                         "duration_s": round(sum(len(a) for a in audio) / SAMPLE_RATE, 4)})
    tmp = atomic_path(out / "streams.jsonl")
    tmp.write_text("".join(json.dumps(r) + "\n" for r in rows))
    os.replace(tmp, out / "streams.jsonl")
    keep = {Path(r["audio"]).name for r in rows}
    for path in (out / "streams").glob("*.wav"):  # streams of an earlier run with other settings
        if path.name not in keep:
            path.unlink()
    return rows


# ---------------------------------------------------------------------------------------------
# run


def settings(cfg: dict | None) -> dict:
    s = with_defaults("retention", cfg, DEFAULTS)
    ns = sorted({int(n) for n in s["segments"]})
    if 1 not in ns or len(ns) < 2 or ns[0] < 1:
        raise ValueError(f"bench.retention.segments must hold 1 and at least one larger N, got {s['segments']!r}")
    s["segments"] = ns
    if s["offline_user_text"] not in ("instruction", "question"):
        raise ValueError(f"bench.retention.offline_user_text must be 'instruction' or 'question', "
                         f"got {s['offline_user_text']!r}")
    if int(s["max_targets"]) < 1:
        raise ValueError(f"bench.retention.max_targets must be >= 1, got {s['max_targets']!r}")
    return s


def _acc(flags: list[bool]) -> float:
    return sum(flags) / len(flags) if flags else 0.0


def run(ctx: BenchContext) -> dict:
    started = time.perf_counter()
    s = settings(ctx.cfg)
    ns, top = s["segments"], max(s["segments"])
    if ctx.manifest is not None:
        pool = manifest_segments(ctx.manifest)
    else:
        pool = corpus_segments(ctx.corpus, s["sub_tasks"], float(s["lead_s"]), float(s["tail_s"]))
    if not pool:
        raise ValueError(f"bench.retention: no question segments in {ctx.manifest or ctx.corpus} "
                         f"(sub_tasks {s['sub_tasks']})")
    targets = pick_targets(pool, int(s["max_targets"]), int(s["seed"]))
    by_id = {t.id: t for t in targets}
    work = Path(ctx.work)
    streams = build_streams(targets, pool, ns, int(s["seed"]), work)

    systems = {}
    jobs = [{"id": r["id"], "audio": r["audio"], "instruction": by_id[r["target"]].instruction,
             "lang": by_id[r["target"]].lang} for r in streams]
    events = decode_streams(ctx.bundle, jobs, ctx.workers, desc="retention streaming")
    systems["online"] = [answer_window_text(ev, r["question_start_s"]) for ev, r in zip(events, streams)]
    if ctx.offline_bundle is not None:
        text_of = (lambda t: t.question or t.instruction) if s["offline_user_text"] == "question" else (
            lambda t: t.instruction)
        off_jobs = [{**j, "instruction": text_of(by_id[r["target"]])} for j, r in zip(jobs, streams)]
        systems["offline"] = [a["text"] for a in answer_rows(ctx.offline_bundle, off_jobs, ctx.workers,
                                                              desc="retention offline")]

    items = []
    for k, r in enumerate(streams):
        target = by_id[r["target"]]
        item = {"id": r["id"], "target": target.id, "sub_task": target.sub_task, "n": r["n"],
                "answers": target.answers}
        for name, replies in systems.items():
            item[f"{name}_reply"] = replies[k]
            item[f"{name}_correct"] = is_correct(replies[k], target.answers)
        items.append(item)

    out: dict = {"targets": len(targets)}
    per_sub_task: dict = {}
    ci95: dict = {}
    for name in systems:
        for n in ns:
            flags = [i[f"{name}_correct"] for i in items if i["n"] == n]
            out[f"{name}_acc_n{n}"] = _acc(flags)
            ci95[f"{name}_acc_n{n}"] = bootstrap.share_interval(flags)
            out[f"{name}_correct_n{n}"] = sum(flags)
            for sub in sorted({i["sub_task"] for i in items}):
                sub_flags = [i[f"{name}_correct"] for i in items if i["n"] == n and i["sub_task"] == sub]
                cell = per_sub_task.setdefault(sub, {"targets": len(sub_flags)}).setdefault(name, {})
                cell[f"acc_n{n}"] = _acc(sub_flags)
        base = out[f"{name}_acc_n1"]
        out[f"{name}_retained"] = out[f"{name}_acc_n{top}"] / base if base else 0.0
        right = {(i["target"], i["n"]): i[f"{name}_correct"] for i in items}  # resampling targets, both Ns
        ci95[f"{name}_retained"] = bootstrap.interval([(right[t.id, top], right[t.id, 1]) for t in targets],
                                                      lambda sums: sums[0] / sums[1] if sums[1] else 0.0)
    out["ci95"] = ci95
    out["audio_s"] = round(sum(r["duration_s"] for r in streams), 2)
    out["wall_s"] = round(time.perf_counter() - started, 2)
    out["segments"] = ns
    out["per_sub_task"] = per_sub_task
    out["items"] = items
    return out
