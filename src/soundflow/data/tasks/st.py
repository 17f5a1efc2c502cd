"""Streaming translation en<->zh: each sentence is translated as soon as it ends."""
from __future__ import annotations

from soundflow.data import text
from soundflow.data.plan import PlanContext, Reply, Turn
from soundflow.data.tasks import Draft, register


def _turn(ctx: PlanContext, source: str, target: str, src_lang: str, tgt_lang: str, kind="translation") -> Turn:
    return Turn(
        [ctx.say(source, lang=src_lang)],
        Reply(target, lang=tgt_lang, kind=kind),
        "sentence",
        meta={"source": source, "src_lang": src_lang, "tgt_lang": tgt_lang},
    )


def _real_turn(ctx: PlanContext, row: dict, target: str, tgt_lang: str, kind="translation") -> Turn:
    """An imported utterance (CoVoST 2) and its reference translation (or its transcript, when tgt_lang is its own)."""
    return Turn([ctx.say_real(row)], Reply(target, lang=tgt_lang, kind=kind), "sentence",
                meta={"source": row["text"], "src_lang": row["lang"], "tgt_lang": tgt_lang})


def _pair_turn(ctx: PlanContext, src_lang: str, tgt_lang: str) -> Turn:
    """An imported utterance with a translation where the profile has one, else a TTS sentence of the pair pool."""
    row = ctx.real_speech(src_lang, target=tgt_lang)
    if row is not None:
        return _real_turn(ctx, row, row["translation"], tgt_lang)
    en, zh = ctx.pair()
    return _turn(ctx, en, zh, "en", "zh") if src_lang == "en" else _turn(ctx, zh, en, "zh", "en")


def _en2zh(ctx: PlanContext, noise: str) -> Draft:
    turns = [_pair_turn(ctx, "en", "zh") for _ in range(ctx.n_turns())]
    refs = {"sources": [t.meta["source"] for t in turns], "targets": [t.reply.text for t in turns]}
    return Draft(text.translate_instruction("zh"), turns, lang="zh", noise=noise, references=refs, mixins=False)


@register("streaming_translation", "st_en2zh")
def st_en2zh(ctx: PlanContext) -> Draft:
    return _en2zh(ctx, "clean")


@register("streaming_translation", "st_zh2en", voice_lang="zh")
def st_zh2en(ctx: PlanContext) -> Draft:
    turns = [_pair_turn(ctx, "zh", "en") for _ in range(ctx.n_turns())]
    refs = {"sources": [t.meta["source"] for t in turns], "targets": [t.reply.text for t in turns]}
    return Draft(text.translate_instruction("en"), turns, lang="en", noise="clean", references=refs, mixins=False)


@register("streaming_translation", "st_noisy")
def st_noisy(ctx: PlanContext) -> Draft:
    return _en2zh(ctx, "noisy")


@register("streaming_translation", "st_switch")
def st_switch(ctx: PlanContext) -> Draft:
    """English speech; mid-stream the user asks for English output instead of Chinese (or back)."""
    n = max(ctx.n_turns(high=min(ctx.cfg["turns"][1], 10)), 4)  # short enough to keep the switch
    switch_at = int(ctx.rng.integers(2, n - 1))
    target = "zh"
    turns = []
    for i in range(n):
        if i == switch_at:
            target = "en" if target == "zh" else "zh"
            ack = "okay from now on i will write english" if target == "en" else "好的 接下来我翻译成中文"
            turns.append(Turn([ctx.say(text.translate_instruction(target))], Reply(ack, lang=target, kind="ack"), "instruction"))
        row = ctx.real_speech("en", target="zh")
        if row is not None:
            turns.append(_real_turn(ctx, row, row["translation"] if target == "zh" else row["text"], target))
            continue
        en, zh = ctx.pair()
        turns.append(_turn(ctx, en, zh if target == "zh" else en, "en", target))
    refs = {"switch_turn": switch_at, "targets": [t.reply.text for t in turns if t.kind == "sentence"]}
    return Draft(text.translate_instruction("zh"), turns, lang="zh", noise="auto", references=refs, mixins=False)
