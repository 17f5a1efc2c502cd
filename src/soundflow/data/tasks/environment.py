"""Environment-aware agent: questions about the sound scene and the past; silence when not addressed."""
from __future__ import annotations

from soundflow.data import events, text
from soundflow.data.plan import PlanContext, Reply, Turn
from soundflow.data.tasks import Draft, register
from soundflow.data.tasks.chat import INSTRUCTION as CHAT_INSTRUCTION
from soundflow.data.tasks.chat import _qa_turn
from soundflow.data.tasks.proactive import IGNORE
from soundflow.data.tasks.understanding import PROCEDURAL

AGENT_INSTRUCTION = "you are an assistant that listens to the room answer only when spoken to"


@register("environment_agent", "env_qa")
def env_qa(ctx: PlanContext) -> Draft:
    """A sound plays, then the user asks about it (sometimes after another question)."""
    turns = []
    for _ in range(ctx.n_turns()):
        name = ctx.choice(PROCEDURAL)
        question = ctx.choice(("what is that noise", "what was that", "what do you hear"))
        turns.append(Turn([ctx.event(name), ctx.say(question)], Reply(f"that sounds like {text.EVENT_TEXT[name][0]}"),
                          "question", meta={"event": name, "recall": ["event", name]}))
    return Draft(AGENT_INSTRUCTION, turns, references={"events": [t.meta["event"] for t in turns]})


@register("environment_agent", "hist_review")
def hist_review(ctx: PlanContext) -> Draft:
    """Mixed turns, then a question about a turn at least 3 rounds back."""
    n = max(ctx.n_turns(high=min(ctx.cfg["turns"][1], 8)), 4)  # short enough to keep the final question
    turns = []
    for _ in range(n - 1):
        if ctx.rng.random() < 0.5:
            name = ctx.choice(PROCEDURAL)
            turns.append(Turn([ctx.event(name)], Reply(text.EVENT_TEXT[name][1], kind="describe"), "event",
                              meta={"event": name, "recall": ["event", name]}))
        else:
            turns.append(_qa_turn(ctx, text.fact_question(ctx.rng)))
    turns.append(history_turn(ctx, turns))
    return Draft(AGENT_INSTRUCTION, turns, references={"asked_turn": turns[-1].meta["asked_turn"]}, mixins=False)


def history_turn(ctx: PlanContext, turns: list[Turn]) -> Turn:
    """Ask about a recallable turn at least 3 rounds before the question (the paper's history review)."""
    candidates = [i for i, t in enumerate(turns) if "recall" in t.meta and len(turns) - i >= 3]
    i = ctx.choice(candidates)
    kind, value = turns[i].meta["recall"]
    qa = text.recall_question(kind, value)
    return Turn([ctx.say(qa.question)], Reply(qa.answer, kind="recall"), "question",
                meta={"asked_turn": i, "question": qa.question})


@register("environment_agent", "silence_irrelevant")
def silence_irrelevant(ctx: PlanContext) -> Draft:
    """Side talk, TV and harmless sounds: stay silent; answer only the one question addressed to you."""
    others = [ctx.pick_voice("en", exclude=(ctx.voice,)) for _ in range(2)]
    turns = []
    for _ in range(ctx.n_turns() - 1):
        r = ctx.rng.random()
        if r < 0.45:
            turns.append(Turn([ctx.say(text.irrelevant_speech(ctx.rng), voice=ctx.choice(others))], None, "irrelevant"))
        elif r < 0.65:
            line = " ".join(ctx.sentence().split()[:8])
            turns.append(Turn([ctx.say(line, voice=ctx.choice(others))], None, "tv_speech", meta={"event": "tv_speech"}))
        else:
            name = ctx.choice(IGNORE)
            turns.append(Turn([ctx.event(name) if name != "music" else ctx.music("medium", "steady", "sine")], None,
                              "event", meta={"event": name, "action": "ignore"}))
    qa = text.fact_question(ctx.rng)
    turns.insert(int(ctx.rng.integers(len(turns) + 1)), _qa_turn(ctx, qa))
    return Draft(AGENT_INSTRUCTION, turns, references={"silent_turns": sum(t.reply is None for t in turns)}, mixins=False)


@register("environment_agent", "env_adapt")
def env_adapt(ctx: PlanContext) -> Draft:
    """The same kind of question gets a different answer depending on the sound scene."""
    scene = ctx.choice(sorted(text.SCENES))
    turns = []
    for _ in range(ctx.n_turns(high=min(ctx.cfg["turns"][1], 6))):
        question, answer = text.env_adapt_exchange(ctx.rng, scene)
        turns.append(Turn([ctx.say(question)], Reply(answer), "question", meta={"scene": scene, "question": question}))
    beds = [e for e in text.SCENES[scene] if e in events.EVENT_TYPES]  # tv_speech is speech, not a bed
    ambient = ctx.choice(beds) if beds else "none"
    return Draft(CHAT_INSTRUCTION, turns, noise="noisy" if beds else "clean", ambient=ambient,
                 references={"scene": scene}, mixins=False)
