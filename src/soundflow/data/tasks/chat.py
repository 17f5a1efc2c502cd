"""Voice chat: spoken questions answered when the user stops talking."""
from __future__ import annotations

from soundflow.data import text
from soundflow.data.plan import PlanContext, Reply, Turn
from soundflow.data.tasks import Draft, register

INSTRUCTION = "you are a voice assistant answer the user"


def _qa_turn(ctx: PlanContext, qa: text.QA, emotion: str = "normal") -> Turn:
    return Turn(
        [ctx.say(qa.question)],
        Reply(qa.answer, emotion=emotion),
        "question",
        meta={"question": qa.question, "recall": ["said", qa.question]},
    )


def _qa_draft(ctx: PlanContext, turns: list[Turn]) -> Draft:
    refs = {"questions": [t.meta["question"] for t in turns], "answers": [t.reply.text for t in turns]}
    return Draft(INSTRUCTION, turns, references=refs)


@register("voice_chat", "chat_factqa")
def chat_factqa(ctx: PlanContext) -> Draft:
    return _qa_draft(ctx, [_qa_turn(ctx, text.fact_question(ctx.rng)) for _ in range(ctx.n_turns())])


@register("voice_chat", "chat_compute")
def chat_compute(ctx: PlanContext) -> Draft:
    return _qa_draft(ctx, [_qa_turn(ctx, text.compute_question(ctx.rng)) for _ in range(ctx.n_turns())])


@register("voice_chat", "chat_multiturn")
def chat_multiturn(ctx: PlanContext) -> Draft:
    """Follow-up questions whose answer needs an earlier turn of the same stream."""
    dialog = text.multiturn_dialog(ctx.rng, ctx.n_turns())
    turns = []
    for qa in dialog:
        turn = _qa_turn(ctx, qa)
        turn.meta["depends_on"] = qa.depends_on
        turns.append(turn)
    draft = _qa_draft(ctx, turns)
    draft.mixins = False  # an inserted turn would shift the depends_on indices
    return draft


@register("voice_chat", "chat_emotion")
def chat_emotion(ctx: PlanContext) -> Draft:
    turns = []
    for _ in range(ctx.n_turns()):
        utterance, emotion, reply = text.emotion_exchange(ctx.rng)
        turns.append(Turn([ctx.say(utterance)], Reply(reply, emotion=emotion), "question", meta={"question": utterance}))
    refs = {"emotions": [t.reply.emotion for t in turns], "answers": [t.reply.text for t in turns]}
    return Draft(INSTRUCTION, turns, references=refs)
