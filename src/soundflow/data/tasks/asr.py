"""Real-time ASR: the transcript is written chunk by chunk while the speaker talks."""
from __future__ import annotations

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


def _asr_draft(ctx: PlanContext, turns: list[Turn], noise: str) -> Draft:
    refs = {"transcripts": [t.reply.text for t in turns]}
    return Draft(INSTRUCTION, turns, noise=noise, references=refs, mixins=noise != "clean")


@register("realtime_asr", "asr_clean")
def asr_clean(ctx: PlanContext) -> Draft:
    return _asr_draft(ctx, [_sentence_turn(ctx, ctx.sentence()) for _ in range(ctx.n_turns())], "clean")


@register("realtime_asr", "asr_noisy")
def asr_noisy(ctx: PlanContext) -> Draft:
    return _asr_draft(ctx, [_sentence_turn(ctx, ctx.sentence()) for _ in range(ctx.n_turns())], "noisy")


@register("realtime_asr", "asr_multivoice")
def asr_multivoice(ctx: PlanContext) -> Draft:
    """Two or three speakers take turns; the transcript follows whoever talks."""
    speakers = [ctx.voice]
    for _ in range(int(ctx.rng.integers(1, 3))):
        speakers.append(ctx.pick_voice("en", exclude=tuple(speakers)))
    turns = [_sentence_turn(ctx, ctx.sentence(), voice=ctx.choice(speakers)) for _ in range(ctx.n_turns())]
    return _asr_draft(ctx, turns, "auto")


@register("realtime_asr", "asr_longform")
def asr_longform(ctx: PlanContext) -> Draft:
    """One speaker reads a passage: sentences follow each other with short pauses."""
    n, sentences = ctx.n_turns(low=max(ctx.cfg["turns"][0], 5)), []
    while len(sentences) < n:  # from the split's own pool, so no held-out sentence is ever trained on
        s = ctx.sentence()
        if not sentences or s != sentences[-1]:
            sentences.append(s)
    turns = [_sentence_turn(ctx, s, pause=float(ctx.rng.uniform(0.1, 0.3))) for s in sentences]
    return _asr_draft(ctx, turns, "auto")
