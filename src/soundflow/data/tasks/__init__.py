"""The 28 sub-task generators of StreamAudio-mini (DESIGN section 4), one module per ability.

A generator takes a PlanContext and returns a Draft: the turns of one stream plus its
instruction, reply language, noise condition and references. soundflow.data.build wraps drafts
into ItemPlans and adds the mix-ins.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from soundflow.data.plan import PlanContext, Turn


@dataclass
class Draft:
    instruction: str
    turns: list[Turn]
    lang: str = "en"  # reply language
    noise: str = "auto"  # "clean" | "noisy" | "auto" (noisy with probability p_noise)
    ambient: str = ""  # "" = drawn for noisy streams; a scene event name to force one
    references: dict = field(default_factory=dict)
    mixins: bool = True  # False where an inserted turn would break the task's references


@dataclass(frozen=True)
class SubTask:
    name: str
    ability: str
    voice_lang: str  # language of the item's main speaker
    generate: Callable[[PlanContext], Draft]


ABILITIES = (
    "realtime_asr",
    "streaming_translation",
    "voice_chat",
    "audio_understanding",
    "instruction_following",
    "proactive_response",
    "environment_agent",
)

SUB_TASKS: dict[str, SubTask] = {}


def register(ability: str, name: str, voice_lang: str = "en"):
    if ability not in ABILITIES:
        raise KeyError(f"unknown ability '{ability}'")

    def wrap(fn):
        SUB_TASKS[name] = SubTask(name, ability, voice_lang, fn)
        return fn

    return wrap


# Importing the modules fills SUB_TASKS.
from soundflow.data.tasks import asr, st, chat, understanding, instruct, proactive, environment  # noqa: E402,F401
