"""Streaming instruction following (DESIGN section 8, benchmark 6): does the model speak when a
spoken instruction's trigger comes, and how far off is its timing.

**Streams.** The online test items of ``sub_tasks`` (default every ``if_`` sub-task, see
``soundflow.data.tasks.instruct``): the user gives an instruction ("tell me when you hear rain",
"tell me when the speaker says friday", "count the barks out loud", "when i say summary ...") and
the reference timeline answers it later, when its trigger comes. **Triggers** are the reference
responses of the instruction kinds ``TRIGGER_KINDS`` (notify, count, summary); the other reference
responses (the "okay i will" acknowledgement, answers to mix-in turns) are **other** responses.
An external manifest (``ctx.manifest``, JSON lines): id, audio, instruction, lang, ``triggers`` (a
list of seconds or of {t_s, text}); optional ``responses`` (other expected responses, same form) and
``sub_task``.

**Timing.** Chunk i covers [0.4 i, 0.4 (i+1)); a response (reference or model) sits at the chunk it
is emitted at; a reference time t_s is the chunk floor(t_s / 0.4). Times compared are chunk ends.

**Matching.** The model's responses are its chunks with action "respond" (each one an utterance).
A trigger at chunk r accepts a model response at chunk m when r - B <= m <= r + A, with
B = round(``before_s`` / 0.4) and A = round(``after_s`` / 0.4) (defaults 1.2 s = 3 chunks before,
about where the reference's "early" notifications sit after a sound's onset, and 2.0 s = 5 chunks
after). Triggers are matched one to one in time order, each to the earliest unmatched model
response it accepts (with equal-width windows in time order this gives the most matches); then the
other reference responses take, the same way, what is left. A trigger with a match is **hit**; a
model response matched to nothing is a **false trigger**.

**Top-level numeric keys:** ``streams``, ``audio_min``, ``triggers``, ``hits``,
``trigger_accuracy`` = hits / triggers; ``false_triggers`` and ``false_triggers_per_min`` (per
minute of audio); ``trigger_precision`` = hits / (hits + false triggers) (0.0 with neither);
``timing_mae_s`` = mean |t_model - t_ref| over hits and ``timing_bias_s`` = mean (t_model - t_ref)
(model late > 0), both None without hits; ``text_accuracy`` = hits whose reply contains the
reference text (normalised word-sequence containment, as in benchmark 5) / triggers; ``wall_s``;
``ci95``: 95 % bootstrap intervals of trigger_accuracy, false_triggers_per_min and timing_mae_s over streams.
Also ``per_sub_task`` (the same numbers per sub-task) and ``streams_detail`` (every trigger's match).
"""
from __future__ import annotations

import math
import time
from pathlib import Path

from soundflow import CHUNK_SECONDS
from soundflow.bench import bootstrap
from soundflow.bench.asr_metrics import normalize
from soundflow.bench.streams import BenchContext, decode_streams, load_manifest, load_rows, with_defaults

TRIGGER_KINDS = ("notify", "count", "summary")
DEFAULTS = {
    "sub_tasks": ["if_"],  # online test items (sub-task prefixes)
    "before_s": 1.2,  # a response this long before the reference chunk still hits the trigger
    "after_s": 2.0,  # ... and this long after it
}


def chunk_of(t_s: float, chunk_s: float = CHUNK_SECONDS) -> int:
    """The chunk a time falls in."""
    return math.floor(round(t_s / chunk_s, 9))


def _contains(reply: str, ref: str) -> bool:
    ref = normalize(ref)
    return bool(ref) and f" {ref} " in f" {normalize(reply)} "


def _greedy(refs: list[int], free: list[int], before: int, after: int) -> dict[int, int]:
    """ref index -> model response index: in time order, each ref takes the earliest free response in
    [r - before, r + after]; `free` holds chunk numbers of unmatched responses (sorted)."""
    matched, used = {}, set()
    for k in sorted(range(len(refs)), key=lambda k: refs[k]):
        for j, m in enumerate(free):
            if j not in used and refs[k] - before <= m <= refs[k] + after:
                matched[k] = j
                used.add(j)
                break
    return matched


def match_stream(triggers: list[dict], others: list[int], responses: list[dict], before: int, after: int,
                 chunk_s: float = CHUNK_SECONDS) -> dict:
    """Match one stream (module docstring). triggers: [{chunk, text}], others: reference chunks,
    responses: the model's [{chunk, text}]. Returns hits [{ref_chunk, chunk, error_s, text_ok}],
    misses [ref chunk], false [model chunk]."""
    responses = sorted(responses, key=lambda r: r["chunk"])
    chunks = [r["chunk"] for r in responses]
    by_trigger = _greedy([t["chunk"] for t in triggers], chunks, before, after)
    left = [j for j in range(len(responses)) if j not in by_trigger.values()]
    by_other = _greedy(list(others), [chunks[j] for j in left], before, after)
    taken = set(by_trigger.values()) | {left[j] for j in by_other.values()}
    hits, misses = [], []
    for k, trig in enumerate(triggers):
        if k in by_trigger:
            resp = responses[by_trigger[k]]
            hits.append({"ref_chunk": trig["chunk"], "chunk": resp["chunk"],
                         "error_s": round((resp["chunk"] - trig["chunk"]) * chunk_s, 6),
                         "text_ok": _contains(resp.get("text", ""), trig.get("text", "")),
                         "text": resp.get("text", "")})
        else:
            misses.append(trig["chunk"])
    false = [chunks[j] for j in range(len(responses)) if j not in taken]
    return {"hits": hits, "misses": misses, "false": false}


def summarize(results: list[dict], audio_s: float) -> dict:
    """Totals over matched streams (match_stream outputs)."""
    hits = [h for r in results for h in r["hits"]]
    n_trig = len(hits) + sum(len(r["misses"]) for r in results)
    n_false = sum(len(r["false"]) for r in results)
    errors = [h["error_s"] for h in hits]
    return {
        "streams": len(results),
        "audio_min": round(audio_s / 60, 4),
        "triggers": n_trig,
        "hits": len(hits),
        "trigger_accuracy": len(hits) / n_trig if n_trig else 0.0,
        "false_triggers": n_false,
        "false_triggers_per_min": n_false / (audio_s / 60) if audio_s else 0.0,
        "trigger_precision": len(hits) / (len(hits) + n_false) if hits or n_false else 0.0,
        "timing_mae_s": sum(abs(e) for e in errors) / len(errors) if errors else None,
        "timing_bias_s": sum(errors) / len(errors) if errors else None,
        "text_accuracy": sum(h["text_ok"] for h in hits) / n_trig if n_trig else 0.0,
    }


def intervals(results: list[dict], audio_s: list[float]) -> dict:
    """95 % bootstrap intervals of the headline numbers of summarize, resampling streams."""
    rows = [(len(r["hits"]), len(r["hits"]) + len(r["misses"]), len(r["false"]), a / 60,
             sum(abs(h["error_s"]) for h in r["hits"])) for r, a in zip(results, audio_s)]
    return {"trigger_accuracy": bootstrap.interval(rows, bootstrap.column_ratio(0, 1)),
            "false_triggers_per_min": bootstrap.interval(rows, bootstrap.column_ratio(2, 3)),
            "timing_mae_s": bootstrap.interval(rows, bootstrap.column_ratio(4, 0))}


# ---------------------------------------------------------------------------------------------
# references


def corpus_references(row: dict) -> tuple[list[dict], list[int]]:
    """(triggers [{chunk, text, kind}], other reference chunks) of a corpus item's timeline."""
    triggers, others = [], []
    for e in row["timeline"] or []:
        if e["action"] != "respond":
            continue
        if e["kind"] in TRIGGER_KINDS:
            triggers.append({"chunk": int(e["chunk"]), "text": e["text"], "kind": e["kind"]})
        else:
            others.append(int(e["chunk"]))
    return triggers, others


def _times(value, where: str, key: str) -> list[dict]:
    if not isinstance(value, list):
        raise ValueError(f"{where}: key '{key}' must be a list of seconds or of {{t_s, text}}")
    out = []
    for v in value:
        t = v.get("t_s") if isinstance(v, dict) else v
        if isinstance(t, bool) or not isinstance(t, (int, float)) or not math.isfinite(t) or t < 0:
            raise ValueError(f"{where}: key '{key}': {v!r} is not a time in seconds")
        out.append({"chunk": chunk_of(t), "text": v.get("text", "") if isinstance(v, dict) else "", "kind": "manifest"})
    return out


def manifest_references(path: Path) -> list[tuple[dict, list[dict], list[int]]]:
    out = []
    for row in load_manifest(path, ("triggers",)):
        where = f"{path}: item {row['id']}"
        triggers = _times(row["triggers"], where, "triggers")
        others = [o["chunk"] for o in _times(row.get("responses", []), where, "responses")]
        out.append(({**row, "sub_task": row.get("sub_task", "manifest")}, triggers, others))
    return out


# ---------------------------------------------------------------------------------------------
# run


def settings(cfg: dict | None) -> dict:
    s = with_defaults("instruct", cfg, DEFAULTS)
    for key in ("before_s", "after_s"):
        if not (isinstance(s[key], (int, float)) and math.isfinite(s[key]) and s[key] >= 0):
            raise ValueError(f"bench.instruct.{key} must be a non-negative number of seconds, got {s[key]!r}")
    return s


def run(ctx: BenchContext) -> dict:
    started = time.perf_counter()
    s = settings(ctx.cfg)
    if ctx.manifest is not None:
        items = manifest_references(ctx.manifest)
    else:
        items = [(row, *corpus_references(row)) for row in load_rows(ctx.corpus, tuple(s["sub_tasks"]), "online")]
    if not items:
        raise ValueError(f"bench.instruct: no items in {ctx.manifest or ctx.corpus} (sub_tasks {s['sub_tasks']})")
    rows = [row for row, _, _ in items]
    events = decode_streams(ctx.bundle, rows, ctx.workers, desc="instruct streaming")
    before, after = round(s["before_s"] / CHUNK_SECONDS), round(s["after_s"] / CHUNK_SECONDS)
    results, audio_s, detail = [], [], []
    for (row, triggers, others), ev in zip(items, events):
        responses = [{"chunk": e["chunk"], "text": e["text"]} for e in ev if e["action"] == "respond"]
        res = match_stream(triggers, others, responses, before, after)
        results.append(res)
        audio_s.append(len(ev) * CHUNK_SECONDS)
        detail.append({"id": row["id"], "sub_task": row["sub_task"], **res})
    out = summarize(results, sum(audio_s))
    out["ci95"] = intervals(results, audio_s)
    per_sub = {}
    for sub in sorted({row["sub_task"] for row in rows}):
        idx = [k for k, row in enumerate(rows) if row["sub_task"] == sub]
        per_sub[sub] = summarize([results[k] for k in idx], sum(audio_s[k] for k in idx))
    out["wall_s"] = round(time.perf_counter() - started, 2)
    out["window_chunks"] = [-before, after]
    out["per_sub_task"] = per_sub
    out["streams_detail"] = detail
    return out
