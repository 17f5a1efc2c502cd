"""Plan every item of every split: sub-task drafts, mix-ins, noise conditions, offline items."""
from __future__ import annotations

import copy

from soundflow.data import text
from soundflow.data.plan import ItemPlan, PlanContext, Reply, Turn, derive_seed
from soundflow.data.tasks import SUB_TASKS, Draft
from soundflow.data.tasks.environment import history_turn
from soundflow.data.tasks.proactive import DOMAIN_TARGETS, IGNORE, ignore_turn, respond_turn

SPLITS = ("train", "dev", "test")
AMBIENT_BEDS = ("rain", "wind", "fan_hum", "birdsong", "")
BACKGROUND_EVENTS = ("clock_tick", "typing", "footsteps", "water_drip", "dog_bark", "door_knock", "dish_clink", "bell")
PROACTIVE_TARGETS = tuple(sorted({e for targets in DOMAIN_TARGETS.values() for e in targets}))


def plan_split(cfg: dict, split: str) -> list[ItemPlan]:
    return [plan_item(cfg, *key) for key in item_keys(cfg, split)]


def item_keys(cfg: dict, split: str) -> list[tuple[str, str, int, str]]:
    """(split, sub_task, index, mode) of every item of a split, in manifest order; no planning needed."""
    keys = []
    for name in SUB_TASKS:
        keys += [(split, name, i, "online") for i in range(cfg["items_per_subtask"][split])]
        keys += [(split, name, i, "offline") for i in range(cfg["offline_per_subtask"][split])]
    return keys


def item_id(split: str, sub_task: str, index: int, mode: str) -> str:
    return f"{split}-{sub_task}-{mode[:3]}{index:05d}"


def plan_item(cfg: dict, split: str, sub_task: str, index: int, mode: str) -> ItemPlan:
    task = SUB_TASKS[sub_task]
    seed = derive_seed(cfg["seed"], split, sub_task, mode, index)
    ctx = PlanContext(cfg, split, seed, lang=task.voice_lang)
    draft = task.generate(ctx)
    _trim_to_length(draft, cfg)
    if mode == "online" and draft.mixins:
        _add_mixins(ctx, draft)
    if mode == "offline":
        draft = _offline(draft)
    noise = draft.noise if draft.noise != "auto" else ("noisy" if ctx.rng.random() < cfg["p_noise"] else "clean")
    ambient, background = "", []
    if noise == "noisy":
        ambient = draft.ambient or ctx.choice(AMBIENT_BEDS)
        background = [ctx.choice(BACKGROUND_EVENTS) for _ in range(int(ctx.rng.integers(0, 3)))]
    return ItemPlan(
        id=item_id(split, sub_task, index, mode),
        ability=task.ability,
        sub_task=sub_task,
        split=split,
        mode=mode,
        seed=seed,
        instruction=draft.instruction,
        lang=draft.lang,
        user_voice=ctx.voice,
        turns=draft.turns,
        noise=noise,
        ambient="" if ambient == "none" else ambient,
        background_events=background,
        reverb=bool(ctx.rng.random() < cfg["p_reverb"]),
        references=draft.references,
    )


def _estimated_s(turn: Turn) -> float:
    """Rough turn length before synthesis (speech ~2.6 words/s, events ~2.5 s) to respect max_stream_s."""
    total = 1.6
    for p in turn.pieces:
        total += p.pause_before_s + (len(p.label.split()) / 2.6 + 0.4 if p.kind == "speech" else 2.5)
    return total


def _trim_to_length(draft: Draft, cfg: dict) -> None:
    keep, total = [], 0.0
    for turn in draft.turns:
        total += _estimated_s(turn)
        if keep and total > cfg["max_stream_s"] and len(keep) >= cfg["turns"][0]:
            break
        keep.append(turn)
    draft.turns = keep


def _add_mixins(ctx: PlanContext, draft: Draft) -> None:
    """The paper's comprehension-aware mix-ins: ignore a turn, react to an alarm, recall the past."""
    cfg = ctx.cfg
    if ctx.rng.random() < cfg["p_silence"]:
        if ctx.rng.random() < 0.5:
            turn = ignore_turn(ctx, ctx.choice(IGNORE))
        elif (row := ctx.real_speech(None)) is not None:  # an imported speaker, any language, talking to someone else
            turn = Turn([ctx.say_real(row)], None, "irrelevant")
        else:
            other = ctx.pick_voice("en", exclude=(ctx.voice,))
            turn = Turn([ctx.say(text.irrelevant_speech(ctx.rng), voice=other)], None, "irrelevant")
        turn.mixin = "silence"
        draft.turns.insert(int(ctx.rng.integers(1, len(draft.turns) + 1)), turn)
    if ctx.rng.random() < cfg["p_proactive"]:
        turn = respond_turn(ctx, ctx.choice(PROACTIVE_TARGETS))
        turn.mixin = "proactive"
        draft.turns.insert(int(ctx.rng.integers(1, len(draft.turns) + 1)), turn)
    if len(draft.turns) >= 4 and ctx.rng.random() < cfg["p_history_review"]:
        if any("recall" in t.meta for t in draft.turns[:-2]):
            turn = history_turn(ctx, draft.turns)
            turn.mixin = "history_review"
            draft.turns.append(turn)


def _offline(draft: Draft) -> Draft:
    """Offline sample: the audio of the first answered turn, the instruction as user text, the full reply."""
    answered = next((t for t in draft.turns if t.reply and t.kind != "instruction"), None)
    if answered is None:
        raise RuntimeError(f"draft '{draft.instruction}' has no answered turn for an offline item")
    turn = copy.deepcopy(answered)
    if draft.turns[0].kind == "instruction":
        turn.pieces = copy.deepcopy(draft.turns[0].pieces) + turn.pieces  # the spoken instruction gives context
    turn.reply = Reply(turn.reply.text, emotion=turn.reply.emotion, lang=turn.reply.lang, timing="end", kind=turn.reply.kind)
    return Draft(draft.instruction, [turn], lang=draft.lang, noise=draft.noise, ambient=draft.ambient,
                 references={"reply": turn.reply.text}, mixins=False)
