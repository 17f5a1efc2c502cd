"""Composition: layout, response timeline, scene constraint and word-level ASR timing."""
import json

import numpy as np
import polars as pl
import pytest

from soundflow import CHUNK_SECONDS
from soundflow.data import compose, report, tts
from soundflow.data.align import speech_span, word_times
from soundflow.data.compose import chunk_of
from soundflow.data.plan import ItemPlan, PlanContext, Reply, Turn

CFG = {
    "seed": 1, "turns": [3, 4], "text_pool": {"train": 20, "dev": 20, "test": 20}, "gap_s": [0.8, 1.0],
    "snr_db": [10.0, 10.0], "clean_snr_db": 35.0, "role_gain_db": {"foreground": 0.0, "background": -6.0, "ambient": -12.0},
    "p_real_event": 0.0, "p_piper": 0.0,
}


def test_chunk_of_uses_the_chunk_that_holds_the_time():
    assert chunk_of(0.0) == 0
    assert chunk_of(0.4) == 0
    assert chunk_of(0.41) == 1
    assert chunk_of(1.2) == 2


def test_word_times_share_the_span_by_characters():
    times = word_times(["a", "abc"], 1.0, 2.0)
    assert times[-1] == pytest.approx(2.0)
    assert times[0] == pytest.approx(1.0 + 2 / 6)


def test_speech_span_finds_the_voiced_part():
    sr = 16000
    audio = np.zeros(sr * 2, np.float32)
    audio[sr // 2: sr] = np.sin(np.arange(sr // 2) * 0.3)
    start, end = speech_span(audio)
    assert start == pytest.approx(0.5, abs=0.011) and end == pytest.approx(1.0, abs=0.011)


@pytest.fixture(scope="module")
def plan_and_clips(tmp_path_factory):
    clip_dir = tmp_path_factory.mktemp("clips")
    ctx = PlanContext(CFG, "train", 7)
    voice = "espeak:en-us+m1"
    sentence = "the kettle in the kitchen is boiling now"
    turns = [
        Turn([ctx.say(sentence, voice=voice)], Reply(sentence, timing="words", kind="asr"), "sentence"),
        Turn([ctx.event("rain")], None, "event"),
        Turn([ctx.event("smoke_alarm")], Reply("i hear a smoke alarm", emotion="urgent", timing="early"), "event"),
        Turn([ctx.say("what time is it", voice=voice)], Reply("it is noon"), "question"),
    ]
    plan = ItemPlan(id="t-1", ability="x", sub_task="y", split="train", mode="online", seed=3, instruction="",
                    lang="en", user_voice=voice, turns=turns, noise="noisy", background_events=["door_knock"] * 3)
    for p in (p for t in turns for p in t.pieces if p.kind == "speech"):
        tts.synthesize_to_cache(tts.ClipRequest(p.voice, p.label, tts.Style(**p.style)), clip_dir)
    return plan, clip_dir


def test_timeline_follows_the_turns(plan_and_clips):
    plan, clip_dir = plan_and_clips
    out = compose.compose(plan, clip_dir, CFG)
    assert len(out.audio) % round(CHUNK_SECONDS * 16000) == 0
    assert np.abs(out.audio).max() <= 1.0
    respond = [e for e in out.timeline if e["action"] == "respond"]
    silent = [e for e in out.timeline if e["action"] == "silent"]
    # ASR words arrive chunk by chunk, in order, and together give the sentence.
    asr = [e for e in respond if e["turn"] == 0]
    assert " ".join(e["text"] for e in asr) == plan.turns[0].reply.text
    assert len(asr) >= 3 and [e["chunk"] for e in asr] == sorted({e["chunk"] for e in asr})
    turn0 = out.turns[0]
    assert asr[-1]["chunk"] <= chunk_of(turn0["end_s"]) + 1
    assert json.loads(turn0["meta"])["word_timing"] == "aligned"
    # The rain turn must be ignored over its whole span.
    assert [(e["turn"], e["kind"]) for e in silent] == [(1, "event")]
    assert silent[0]["t_s"] == pytest.approx(out.turns[1]["start_s"], abs=1e-3)
    # The alarm is answered early: 1.2 s after it starts, or END_LAG_S after it falls silent.
    alarm = next(e for e in respond if e["turn"] == 2)
    start = out.turns[2]["start_s"]
    heard_end = start + speech_span(compose.render_piece(plan.turns[2].pieces[0], clip_dir, 0.0)[0])[1]
    assert alarm["t_s"] == pytest.approx(min(start + compose.EARLY_S, heard_end + compose.END_LAG_S), abs=1e-3)
    assert alarm["chunk"] == chunk_of(alarm["t_s"]) and alarm["emotion"] == "urgent"
    # The question is answered END_LAG_S after its last voiced frame (not at the clip's padded end);
    # one decision per chunk.
    answer = next(e for e in respond if e["turn"] == 3)
    clip = compose.render_piece(plan.turns[3].pieces[0], clip_dir, 0.0)[0]
    heard_end = out.turns[3]["start_s"] + speech_span(clip)[1]
    assert heard_end < out.turns[3]["end_s"], "the clip ends in padding after its voice"
    assert answer["t_s"] == pytest.approx(heard_end + compose.END_LAG_S, abs=1e-3)
    assert answer["chunk"] == chunk_of(answer["t_s"])
    assert len({e["chunk"] for e in respond}) == len(respond)


def test_background_events_stay_out_of_foreground(plan_and_clips, monkeypatch):
    plan, clip_dir = plan_and_clips
    captured = {}
    real = compose._background

    def spy(plan_, rng, n, spans, cfg):
        captured["bg"], captured["spans"] = real(plan_, rng, n, spans, cfg), spans
        return captured["bg"]

    monkeypatch.setattr(compose, "_background", spy)
    compose.compose(plan, clip_dir, CFG)
    bg, spans = captured["bg"], captured["spans"]
    assert np.abs(bg).max() > 0.01, "background events were placed"
    for start, end, _ in spans:
        assert np.abs(bg[int(start * 16000): int(end * 16000)]).max() < 1e-6


def test_compose_is_deterministic(plan_and_clips):
    plan, clip_dir = plan_and_clips
    a, b = compose.compose(plan, clip_dir, CFG), compose.compose(plan, clip_dir, CFG)
    assert np.array_equal(a.audio, b.audio) and a.timeline == b.timeline


def test_words_the_aligner_does_not_know_get_estimated_times(plan_and_clips):
    _, clip_dir = plan_and_clips
    ctx, voice = PlanContext(CFG, "train", 8), "espeak:en-us+m1"
    sentences = ["the kettle in the kitchen is boiling now", "zorblax fixed the kettle"]  # "zorblax": no pronunciation
    turns = [Turn([ctx.say(s, voice=voice)], Reply(s, timing="words", kind="asr"), "sentence") for s in sentences]
    plan = ItemPlan(id="t-2", ability="x", sub_task="y", split="train", mode="online", seed=4, instruction="",
                    lang="en", user_voice=voice, turns=turns, noise="none", background_events=[])
    for p in (p for t in turns for p in t.pieces):
        tts.synthesize_to_cache(tts.ClipRequest(p.voice, p.label, tts.Style(**p.style)), clip_dir)
    out = compose.compose(plan, clip_dir, CFG)
    assert [json.loads(t["meta"])["word_timing"] for t in out.turns] == ["aligned", "estimated"]
    for i, sentence in enumerate(sentences):
        assert " ".join(e["text"] for e in out.timeline if e["turn"] == i) == sentence
    frame = pl.DataFrame({"turns": [out.turns, out.turns[:1]]})
    assert report.word_timing_counts(frame) == {"aligned": 2, "estimated": 1}
