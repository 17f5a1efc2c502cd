"""Real-time ASR: the transcript is written chunk by chunk while the speaker talks."""
from __future__ import annotations

from soundflow.bench.asr_metrics import normalize
from soundflow.data.plan import PlanContext, Reply, Turn
from soundflow.data.tasks import Draft, register

INSTRUCTION = "transcribe what you hear"


def _sentence_turn(ctx: PlanContext, sentence: str, voice: str | None = None, pause: float | None = None) -> Turn:
    return Turn(
        [ctx.say(sentence, voice=voice, pause=pause)],
        Reply(sentence, timing="words", kind="asr"),
        "sentence",
        meta={"recall": ["said", sentence]},
    )


def _real_turn(ctx: PlanContext, row: dict, pause: float | None = None) -> Turn:
    """An imported speaker's utterance; its transcript in the corpus references' form (lower case, numbers spelled out)."""
    words = normalize(row["text"])
    return Turn([ctx.say_real(row, label=words, pause=pause)], Reply(words, timing="words", kind="asr"), "sentence",
                meta={"recall": ["said", words]})


def _turn(ctx: PlanContext, voices: list[str] | None = None) -> Turn:
    """An imported English utterance where the profile has real speech, else a TTS sentence."""
    row = ctx.real_speech("en")
    if row is not None:
        return _real_turn(ctx, row)
    sentence = ctx.sentence()  # drawn before the voice, as it always was
    return _sentence_turn(ctx, sentence, voice=ctx.choice(voices) if voices else None)


def _asr_draft(ctx: PlanContext, turns: list[Turn], noise: str) -> Draft:
    refs = {"transcripts": [t.reply.text for t in turns]}
    return Draft(INSTRUCTION, turns, noise=noise, references=refs, mixins=noise != "clean")


@register("realtime_asr", "asr_clean")
def asr_clean(ctx: PlanContext) -> Draft:
    return _asr_draft(ctx, [_turn(ctx) for _ in range(ctx.n_turns())], "clean")


@register("realtime_asr", "asr_noisy")
def asr_noisy(ctx: PlanContext) -> Draft:
    return _asr_draft(ctx, [_turn(ctx) for _ in range(ctx.n_turns())], "noisy")


@register("realtime_asr", "asr_multivoice")
def asr_multivoice(ctx: PlanContext) -> Draft:
    """Two or three speakers take turns; the transcript follows whoever talks."""
    speakers = [ctx.voice]
    for _ in range(int(ctx.rng.integers(1, 3))):
        speakers.append(ctx.pick_voice("en", exclude=tuple(speakers)))
    turns = [_turn(ctx, speakers) for _ in range(ctx.n_turns())]  # imported turns: each its own speaker
    return _asr_draft(ctx, turns, "auto")


@register("realtime_asr", "asr_longform")
def asr_longform(ctx: PlanContext) -> Draft:
    """One speaker reads a passage: sentences follow each other with short pauses."""
    n, sentences = ctx.n_turns(low=max(ctx.cfg["turns"][0], 5)), []
    first = ctx.real_speech("en")
    if first is not None:  # an imported speaker's utterances, one after the other
        rows = [first]
        for _ in range(4 * n):
            if len(rows) == n:
                break
            row = ctx.real_speech("en", speaker=first["speaker"], p=1.0)
            if row["id"] != rows[-1]["id"]:
                rows.append(row)
        turns = [_real_turn(ctx, r, pause=float(ctx.rng.uniform(0.1, 0.3))) for r in rows]
        return _asr_draft(ctx, turns, "auto")
    while len(sentences) < n:  # from the split's own pool, so no held-out sentence is ever trained on
        s = ctx.sentence()
        if not sentences or s != sentences[-1]:
            sentences.append(s)
    turns = [_sentence_turn(ctx, s, pause=float(ctx.rng.uniform(0.1, 0.3))) for s in sentences]
    return _asr_draft(ctx, turns, "auto")
