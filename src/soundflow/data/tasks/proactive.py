"""Proactive response: warn about important sounds unprompted; ignore harmless ones and side talk."""
from __future__ import annotations

from soundflow.data import events, text
from soundflow.data.plan import PlanContext, Reply, Turn
from soundflow.data.tasks import Draft, register

INSTRUCTION = "you are a helpful assistant speak up when a sound needs attention"
DOMAIN_TARGETS = {
    "pro_alarm": ("smoke_alarm", "co_alarm", "siren"),
    "pro_breakage": ("glass_break", "crash"),
    "pro_distress": ("coughing_fit", "baby_cry", "cry_for_help"),
    "pro_appliance": ("kettle_whistle", "oven_beep", "phone_ring"),
}
IGNORE = tuple(n for n, e in events.EVENT_TYPES.items() if e.action == "ignore")
HELP_CALLS = ("help somebody help me", "help please help", "can anyone hear me help")


def respond_turn(ctx: PlanContext, name: str) -> Turn:
    """A must-respond event; cry_for_help is a (different) voice shouting, not a synthesizer."""
    if name == "cry_for_help":
        piece = ctx.say(ctx.choice(HELP_CALLS), voice=ctx.pick_voice("en", exclude=(ctx.voice,)))
    else:
        piece = ctx.event(name)
    reply_text, emotion = text.proactive_reply(name)
    domain = events.SPEECH_EVENTS.get(name) or events.EVENT_TYPES[name].domain
    return Turn([piece], Reply(reply_text, emotion=emotion, kind="proactive", timing="early"), "event",
                meta={"event": name, "domain": domain, "action": "respond", "recall": ["event", name]})


def ignore_turn(ctx: PlanContext, name: str) -> Turn:
    if name == "music":
        piece = ctx.music(ctx.choice(events.MUSIC_TEMPOS), ctx.choice(events.MUSIC_DIRECTIONS), ctx.choice(events.MUSIC_TIMBRES))
    else:
        piece = ctx.event(name)
    return Turn([piece], None, "event", meta={"event": name, "domain": events.EVENT_TYPES[name].domain, "action": "ignore"})


def _proactive(ctx: PlanContext, targets: tuple[str, ...]) -> Draft:
    turns = []
    for _ in range(ctx.n_turns()):
        r = ctx.rng.random()
        if r < 0.4:
            turns.append(respond_turn(ctx, ctx.choice(targets)))
        elif r < 0.8:
            turns.append(ignore_turn(ctx, ctx.choice(IGNORE)))
        else:
            qa = text.fact_question(ctx.rng)
            turns.append(Turn([ctx.say(qa.question)], Reply(qa.answer), "question", meta={"question": qa.question}))
    if not any(t.meta.get("action") == "respond" for t in turns):
        turns[int(ctx.rng.integers(len(turns)))] = respond_turn(ctx, ctx.choice(targets))
    refs = {"events": [[t.meta.get("event"), t.meta.get("action")] for t in turns if "action" in t.meta]}
    return Draft(INSTRUCTION, turns, references=refs, mixins=False)


for _name, _targets in DOMAIN_TARGETS.items():
    register("proactive_response", _name)(lambda ctx, _t=_targets: _proactive(ctx, _t))
