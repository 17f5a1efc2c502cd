"""Dual-track composition of one item: clips -> stream audio, turn spans and response timeline.

Foreground clips (speech through TFJP, events, music) are laid out turn by turn with pauses; the
background track holds an ambient bed (role gain -12 dB) and background events placed only in the
pauses, never over foreground speech (the scene constraint); a noise track is scaled to the stream's
SNR against the foreground. The timeline says, per 400 ms chunk, when the model must answer.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from soundflow import CHUNK_SECONDS, SAMPLE_RATE
from soundflow.audio import read_audio
from soundflow.data import events, mix, tfjp, tts
from soundflow.data.align import speech_span, word_ends, word_times
from soundflow.data.corpora import sources as imported
from soundflow.data.plan import ItemPlan, Piece, Turn, derive_seed

SR = SAMPLE_RATE
ALIGNED_LAG_S = 0.1  # a word is written 100 ms after its aligned end: one ending late in a chunk goes to the next
WORD_LAG_S = 0.2  # ... 200 ms after its estimated end, where the clip cannot be aligned (a coarser time)
END_LAG_S = 0.2  # a reply at the end of a turn is due 200 ms after its last voiced frame, not at the clip's end:
# clips end in 0-200 ms of padding (tfjp boundary_norm) that the listener cannot see, which made the due chunk a coin flip
EARLY_S = 1.2  # proactive / notify replies are due 1.2 s after the sound starts (or when it ends)
TAIL_S = 1.2  # listening time after the last turn
NOISE_KINDS = ("white", "pink", "brown", "babble")


@dataclass
class Composed:
    audio: np.ndarray
    turns: list[dict]
    timeline: list[dict]
    snr_db: float | None


def chunk_of(t: float) -> int:
    """Index of the chunk after which a reply due at time t is written (the chunk that holds t)."""
    return max(math.ceil(round(t / CHUNK_SECONDS, 6)) - 1, 0)


def clip_path(clip_dir: Path, piece: Piece) -> Path:
    return tts.cache_path(clip_dir, tts.clip_key(tts.get_voice(piece.voice), piece.label, tts.Style(**piece.style)))


def render_piece(piece: Piece, clip_dir: Path, p_real: float) -> tuple[np.ndarray, str]:
    rng = np.random.default_rng(piece.seed)
    if imported.is_imported(piece):  # a real recording (soundflow.data.corpora), planned with its span
        audio = imported.piece_audio(piece)
        if piece.kind == "speech":
            return tfjp.tfjp(audio, SR), piece.voice
        return _shape(audio), f"{piece.attrs['source']}:{piece.attrs['clip_id']}"
    if piece.kind == "speech":
        return tfjp.tfjp(read_audio(clip_path(clip_dir, piece)), SR), piece.voice
    if piece.kind == "music":
        a = piece.attrs
        audio = events.synth_music(rng, a["tempo"], a["direction"], a["timbre"], duration_s=float(rng.uniform(3.0, 5.0)))
        return _shape(audio), "procedural:music"
    audio, source = events.event_clip(piece.label, rng, p_real=p_real)
    return _shape(audio), source


def _shape(audio: np.ndarray) -> np.ndarray:
    """Events keep their rhythm (no silence cut); only the 200 ms boundary snap and the 20 ms taper apply."""
    return tfjp.spec_smooth(tfjp.boundary_norm(audio, SR), SR)


def compose(plan: ItemPlan, clip_dir: Path, cfg: dict) -> Composed:
    rng = np.random.default_rng(derive_seed(plan.seed, "compose"))
    rendered = [[render_piece(p, clip_dir, cfg["p_real_event"]) for p in turn.pieces] for turn in plan.turns]

    # Layout: a pause before each turn, pieces inside a turn separated by their own pauses.
    t, spans, placements = 0.0, [], []
    for turn, clips in zip(plan.turns, rendered):
        t += float(rng.uniform(*cfg["gap_s"])) if spans or plan.mode == "online" else 0.2
        start = t
        piece_spans = []
        for i, (piece, (audio, _)) in enumerate(zip(turn.pieces, clips)):
            if i:
                t += piece.pause_before_s
            placements.append((round(t * SR), audio, piece))
            piece_spans.append((t, t + len(audio) / SR))
            t += len(audio) / SR
        spans.append((start, t, piece_spans))

    timeline = _timeline(plan.turns, rendered, spans)
    last_chunk = max((e["chunk"] for e in timeline), default=0)
    duration = max(t + TAIL_S, (last_chunk + 2) * CHUNK_SECONDS)
    n = math.ceil(round(duration / CHUNK_SECONDS, 6)) * round(CHUNK_SECONDS * SR)

    fg = np.zeros(n, np.float32)
    for offset, audio, _ in placements:
        mix.place(fg, audio, offset, cfg["role_gain_db"]["foreground"])
    if plan.reverb:
        fg = mix.reverb(fg, mix.synthetic_rir(rng, SR, float(rng.uniform(0.2, 0.6))))
    speech_clips = [a for _, a, p in placements if p.kind == "speech"]
    bg = _background(plan, rng, n, spans, cfg)
    snr = None
    out = fg + bg
    if plan.noise != "none":
        snr = float(rng.uniform(*cfg["snr_db"])) if plan.noise == "noisy" else float(cfg["clean_snr_db"])
        # an imported noise recording (own rng: the draws of synthetic-only profiles stay as they were)
        real = imported.noise_track(imported.for_cfg(cfg), plan.split, n,
                                    np.random.default_rng(derive_seed(plan.seed, "noise")))
        out = out + mix.scale_to_snr(fg, _noise(rng, n, speech_clips) if real is None else real, snr)
    turns = _turn_rows(plan.turns, rendered, spans)
    return Composed(mix.normalize_peak(out).astype(np.float32), turns, timeline, snr)


def _noise(rng, n, speech_clips) -> np.ndarray:
    kinds = NOISE_KINDS if len(speech_clips) >= 2 else NOISE_KINDS[:-1]  # babble needs two talkers or more
    kind = kinds[int(rng.integers(len(kinds)))]
    if kind == "babble":
        return mix.babble(speech_clips, n, rng)
    return events.colored_noise(kind, n, rng)


def _background(plan: ItemPlan, rng, n: int, spans, cfg) -> np.ndarray:
    bg = np.zeros(n, np.float32)
    gains = cfg["role_gain_db"]
    if plan.ambient:
        bed = events.synth_event(plan.ambient, rng, duration_s=min(n / SR, 8.0))
        mix.place(bg, mix.tile(bed, n, 0.2, SR), 0, gains["ambient"])
    # Background events only go into pauses between turns, so none lands on foreground speech.
    gaps = [(0.0, spans[0][0])] + [(spans[i][1], spans[i + 1][0]) for i in range(len(spans) - 1)] if spans else []
    fits = [g for g in gaps if g[1] - g[0] >= 0.6]
    for name in plan.background_events:
        if not fits:
            break
        g0, g1 = fits[int(rng.integers(len(fits)))]
        dur = min(float(rng.uniform(0.5, 2.0)), g1 - g0 - 0.1)
        clip = events.synth_event(name, rng, duration_s=dur)
        start = g0 + 0.05 + float(rng.random()) * max(g1 - g0 - 0.1 - dur, 0.0)
        mix.place(bg, clip, round(start * SR), gains["background"])
    return bg


def _timeline(turns: list[Turn], rendered, spans) -> list[dict]:
    entries = []
    for i, (turn, clips, (start, end, piece_spans)) in enumerate(zip(turns, rendered, spans)):
        reply = turn.reply
        if reply is None:
            entries.append(_entry(chunk_of(start + 1e-3), start, end, "silent", "", "normal", "", i, turn.kind))
            continue
        if reply.timing == "words":
            entries += _word_entries(turn, clips, piece_spans, i)
            continue
        s0 = piece_spans[-1][0]
        heard_end = s0 + speech_span(clips[-1][0])[1] + END_LAG_S
        due = min(s0 + EARLY_S, heard_end) if reply.timing == "early" else heard_end
        entries.append(_entry(chunk_of(due), due, due, "respond", reply.text, reply.emotion, reply.lang, i, reply.kind))
    return _one_reply_per_chunk(entries)


def _word_entries(turn: Turn, clips, piece_spans, index: int) -> list[dict]:
    """Incremental transcript: each chunk carries the words that ended (plus a lag) inside it.

    Word ends come from forced alignment of the clean clip; a clip the aligner cannot align (a word
    outside its dictionary, or no path through the audio) falls back to the voiced span shared out by
    characters. The turn's meta says which (`word_timing`: aligned | estimated); the corpus summary
    counts both.
    """
    (audio, _), (s0, s1) = clips[-1], piece_spans[-1]
    words = turn.reply.text.split()
    ends, lag, turn.meta["word_timing"] = word_ends(audio, words), ALIGNED_LAG_S, "aligned"
    if ends is None:
        ends, lag, turn.meta["word_timing"] = word_times(words, *speech_span(audio)), WORD_LAG_S, "estimated"
    by_chunk: dict[int, list[str]] = {}
    for word, t_end in zip(words, ends):
        by_chunk.setdefault(chunk_of(s0 + t_end + lag), []).append(word)
    return [
        _entry(c, c * CHUNK_SECONDS + CHUNK_SECONDS, s1, "respond", " ".join(ws), "normal", turn.reply.lang, index, "asr")
        for c, ws in sorted(by_chunk.items())
    ]


def _entry(chunk, t_s, end_s, action, text, emotion, lang, turn, kind) -> dict:
    return {"chunk": int(chunk), "t_s": round(float(t_s), 3), "end_s": round(float(end_s), 3), "action": action,
            "text": text, "emotion": emotion, "lang": lang, "turn": int(turn), "kind": kind}


def _one_reply_per_chunk(entries: list[dict]) -> list[dict]:
    """A chunk ends in one decision: a reply landing on a taken chunk moves to the next free one."""
    taken, out = set(), []
    for e in entries:
        if e["action"] == "respond":
            while e["chunk"] in taken:
                e["chunk"] += 1
            taken.add(e["chunk"])
        out.append(e)
    return sorted(out, key=lambda e: (e["chunk"], e["action"] != "silent"))


def _turn_rows(turns: list[Turn], rendered, spans) -> list[dict]:
    rows = []
    for i, (turn, clips, (start, end, _)) in enumerate(zip(turns, rendered, spans)):
        rows.append({
            "index": i,
            "start_s": round(start, 3),
            "end_s": round(end, 3),
            "kind": turn.kind,
            "mixin": turn.mixin,
            "pieces": json.dumps([{"kind": p.kind, "label": p.label, "voice": p.voice, "source": src}
                                  for p, (_, src) in zip(turn.pieces, clips)]),
            "reply": turn.reply.text if turn.reply else "",
            "emotion": turn.reply.emotion if turn.reply else "",
            "meta": json.dumps(turn.meta, sort_keys=True),
        })
    return rows
