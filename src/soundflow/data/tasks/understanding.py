"""Streaming audio understanding: identify, count and narrate sound events; describe music."""
from __future__ import annotations

from soundflow.data import events, text
from soundflow.data.plan import PlanContext, Reply, Turn
from soundflow.data.tasks import Draft, register

PROCEDURAL = tuple(n for n in events.EVENT_TYPES if n != "music")
COUNTABLE = ("door_knock", "dog_bark", "bell", "car_horn", "oven_beep", "single_cough", "doorbell", "dish_clink")


def _event_turn(ctx: PlanContext, name: str, question: str, answer: str, kind="answer") -> Turn:
    return Turn(
        [ctx.event(name), ctx.say(question)],
        Reply(answer, kind=kind),
        "question",
        meta={"event": name, "recall": ["event", name]},
    )


@register("audio_understanding", "au_event_id")
def au_event_id(ctx: PlanContext) -> Draft:
    turns = []
    for _ in range(ctx.n_turns()):
        name = ctx.choice(PROCEDURAL)
        turns.append(_event_turn(ctx, name, "what was that sound", f"that was {text.EVENT_TEXT[name][0]}"))
    return Draft("listen to the sounds and answer", turns, references={"events": [t.meta["event"] for t in turns]})


@register("audio_understanding", "au_count")
def au_count(ctx: PlanContext) -> Draft:
    turns = []
    for _ in range(ctx.n_turns(high=min(ctx.cfg["turns"][1], 6))):
        name = ctx.choice(COUNTABLE)
        k = int(ctx.rng.integers(1, 6))
        pieces = [ctx.event(name, pause=float(ctx.rng.uniform(0.3, 1.0))) for _ in range(k)]
        pieces.append(ctx.say(f"how many times did you hear {text.EVENT_TEXT[name][0]}"))
        turns.append(Turn(pieces, Reply(text.count_reply(name, k)), "question", meta={"event": name, "count": k}))
    refs = {"events": [t.meta["event"] for t in turns], "counts": [t.meta["count"] for t in turns]}
    return Draft("listen to the sounds and answer", turns, references=refs)


@register("audio_understanding", "au_narrate")
def au_narrate(ctx: PlanContext) -> Draft:
    """Each event is described as it happens, with no question asked."""
    turns = []
    for _ in range(ctx.n_turns()):
        name = ctx.choice(PROCEDURAL)
        turns.append(Turn([ctx.event(name)], Reply(text.EVENT_TEXT[name][1], kind="describe"), "event",
                          meta={"event": name, "recall": ["event", name]}))
    return Draft("describe the sounds as they happen", turns, references={"events": [t.meta["event"] for t in turns]})


@register("audio_understanding", "au_music")
def au_music(ctx: PlanContext) -> Draft:
    turns = []
    for _ in range(ctx.n_turns(high=min(ctx.cfg["turns"][1], 8))):
        attrs = (ctx.choice(events.MUSIC_TEMPOS), ctx.choice(events.MUSIC_DIRECTIONS), ctx.choice(events.MUSIC_TIMBRES))
        piece = ctx.music(*attrs)
        turns.append(Turn([piece, ctx.say("describe the music")], Reply(piece.label, kind="describe"), "question",
                          meta=dict(zip(("tempo", "direction", "timbre"), attrs))))
    refs = {"music": [{k: t.meta[k] for k in ("tempo", "direction", "timbre")} for t in turns]}
    return Draft("listen to the music and answer", turns, references=refs)
