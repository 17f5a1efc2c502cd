"""Streaming instruction following: a spoken instruction that fires later, when its trigger comes."""
from __future__ import annotations

from soundflow.data import events, text
from soundflow.data.plan import PlanContext, Reply, Turn
from soundflow.data.tasks import Draft, register
from soundflow.data.tasks.understanding import COUNTABLE, PROCEDURAL

INSTRUCTION = "follow the user's instructions while you listen"
ACK = "okay i will"
QUIET = tuple(n for n, e in events.EVENT_TYPES.items() if e.action == "ignore" and n != "music")


def _ack(ctx: PlanContext, instruction: str) -> Turn:
    return Turn([ctx.say(instruction)], Reply(ACK, kind="ack"), "instruction", meta={"instruction": instruction})


@register("instruction_following", "if_notify")
def if_notify(ctx: PlanContext) -> Draft:
    target = ctx.choice(PROCEDURAL)
    instruction, notice = text.notify_instruction(target)
    turns = [_ack(ctx, instruction)]
    n = ctx.n_turns() - 1
    forced = int(ctx.rng.integers(n))  # at least one trigger per stream
    for k in range(n):
        hit = k == forced or ctx.rng.random() < 0.5
        name = target if hit else ctx.choice([e for e in PROCEDURAL if e != target])
        reply = Reply(notice, kind="notify", timing="early") if hit else None
        turns.append(Turn([ctx.event(name)], reply, "event", meta={"event": name, "trigger": hit}))
    return Draft(INSTRUCTION, turns, references={"target": target, "triggers": [t.meta.get("trigger") for t in turns]})


@register("instruction_following", "if_keyword")
def if_keyword(ctx: PlanContext) -> Draft:
    """The keyword is a word of one of the stream's sentences; every sentence holding it triggers."""
    sentences = [ctx.sentence() for _ in range(ctx.n_turns() - 1)]
    words = sorted({w for s in sentences for w in s.split() if len(w) > 4})
    keyword = ctx.choice(words) if words else sentences[0].split()[-1]
    instruction, notice = text.keyword_instruction(keyword)
    turns = [_ack(ctx, instruction)]
    for s in sentences:
        hit = keyword in s.split()
        reply = Reply(notice, kind="notify") if hit else None
        turns.append(Turn([ctx.say(s)], reply, "sentence", meta={"trigger": hit, "recall": ["said", s]}))
    return Draft(INSTRUCTION, turns, references={"keyword": keyword, "triggers": [t.meta.get("trigger") for t in turns]})


@register("instruction_following", "if_count_live")
def if_count_live(ctx: PlanContext) -> Draft:
    target = ctx.choice(COUNTABLE)
    turns = [_ack(ctx, text.count_instruction(target))]
    count = 0
    for k in range(ctx.n_turns() - 1):
        if (k == 0 or ctx.rng.random() < 0.65) and count < 10:  # the first sound after the instruction counts
            count += 1
            turns.append(Turn([ctx.event(target)], Reply(text.count_word(count), kind="count", timing="early"), "event",
                              meta={"event": target, "count": count}))
        else:
            other = ctx.choice([e for e in QUIET if e != target])
            turns.append(Turn([ctx.event(other)], None, "event", meta={"event": other}))
    return Draft(INSTRUCTION, turns, references={"target": target, "total": count}, mixins=False)


@register("instruction_following", "if_summarize_on_cue")
def if_summarize_on_cue(ctx: PlanContext) -> Draft:
    instruction, cue = text.summarize_instruction()
    turns = [_ack(ctx, instruction)]
    said = []
    for _ in range(max(ctx.n_turns(high=min(ctx.cfg["turns"][1], 9)) - 2, 1)):  # short enough to keep the cue
        s = ctx.sentence()
        said.append(s)
        turns.append(Turn([ctx.say(s)], None, "sentence", meta={"recall": ["said", s]}))
    summary = text.summarize(said)
    turns.append(Turn([ctx.say(cue)], Reply(summary, kind="summary"), "cue", meta={"cue": cue}))
    return Draft(INSTRUCTION, turns, references={"sentences": said, "summary": summary}, mixins=False)
