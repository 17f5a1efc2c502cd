"""Item plans: what a stream holds (turns, clips, replies), decided before any audio exists.

A sub-task generator (soundflow.data.tasks) writes an ItemPlan through a PlanContext. Plans are
cheap and deterministic; TTS clips are synthesized from the plans' clip requests in one batch, and
composition (soundflow.data.compose) turns each plan into audio, a timeline and a manifest row.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from functools import lru_cache

import numpy as np

from soundflow.data import text, tts
from soundflow.data.corpora import sources as imported


@dataclass
class Piece:
    """One foreground clip of a turn: speech (TTS), a sound event, or music."""

    kind: str  # "speech" | "event" | "music"
    label: str  # spoken text, event name, or music description
    voice: str = ""  # voice id of speech
    lang: str = "en"
    style: dict | None = None  # TTS style fields of speech (tts.Style)
    attrs: dict = field(default_factory=dict)  # music attributes, event domain/action
    seed: int = 0  # seed of procedural events and music
    pause_before_s: float = 0.0  # pause before this piece inside its turn


@dataclass
class Reply:
    """What the model must write at the end of a turn ("end"), word by word ("words"), or soon after onset ("early")."""

    text: str
    emotion: str = "normal"
    lang: str = "en"
    timing: str = "end"
    kind: str = "answer"  # asr | translation | answer | ack | notify | count | proactive | recall | summary | describe


@dataclass
class Turn:
    pieces: list[Piece]
    reply: Reply | None  # None: the model must stay silent through this turn
    kind: str  # e.g. "sentence", "question", "event", "instruction", "irrelevant"
    mixin: str = ""  # "", "history_review", "silence", "proactive"
    meta: dict = field(default_factory=dict)  # facts a benchmark needs (event, domain, action, keyword, ...)


@dataclass
class ItemPlan:
    id: str
    ability: str
    sub_task: str
    split: str
    mode: str  # "online" (streaming) | "offline" ([audio][user text][reply])
    seed: int
    instruction: str  # text instruction of the sample (the prefix), may be spoken inside the stream as well
    lang: str  # language of the replies
    user_voice: str
    turns: list[Turn]
    noise: str = "none"  # "none" | "clean" | "noisy"
    ambient: str = ""  # ambient scene event under the whole stream
    background_events: list[str] = field(default_factory=list)
    reverb: bool = False
    references: dict = field(default_factory=dict)

    def voices(self) -> list[str]:
        """TTS voices of the item (imported speakers are named in the turns' pieces)."""
        return sorted({p.voice for t in self.turns for p in t.pieces if p.kind == "speech" and not imported.is_imported(p)})

    def digest(self) -> str:
        return hashlib.sha1(json.dumps(asdict(self), sort_keys=True).encode()).hexdigest()[:10]


def voice_lang(voice: str) -> str:
    """Language of a speech piece's voice: a TTS voice id or an imported speaker's."""
    return imported.voice_lang(voice) if imported.is_voice(voice) else tts.get_voice(voice).lang


def derive_seed(*parts) -> int:
    """A stable 63-bit seed from any printable parts (independent of PYTHONHASHSEED)."""
    return int.from_bytes(hashlib.sha1(repr(parts).encode()).digest()[:8], "little") >> 1


def split_bucket(sentence: str) -> str:
    """Sentences are owned by one split (by hash), so no dev/test sentence is ever trained on."""
    b = int(hashlib.md5(sentence.encode()).hexdigest(), 16) % 10
    return "test" if b == 0 else "dev" if b == 1 else "train"


@lru_cache(maxsize=16)
def sentence_pool(seed: int, split: str, size: int) -> tuple[str, ...]:
    rng = np.random.default_rng(derive_seed(seed, "asr-pool", split))
    return _pool(lambda: text.asr_sentence(rng), split, size)


@lru_cache(maxsize=16)
def pair_pool(seed: int, split: str, size: int) -> tuple[tuple[str, str], ...]:
    rng = np.random.default_rng(derive_seed(seed, "st-pool", split))
    return _pool(lambda: text.parallel_sentence(rng), split, size, key=lambda p: p[0])


def _pool(draw, split, size, key=lambda s: s):
    pool, seen = [], set()
    for _ in range(size * 200):
        item = draw()
        k = key(item)
        if k not in seen and split_bucket(k) == split:
            seen.add(k)
            pool.append(item)
            if len(pool) == size:
                break
    if not pool:
        raise RuntimeError(f"text pool for split '{split}' came out empty")
    return tuple(pool)


class PlanContext:
    """What a sub-task generator uses to write its plan: rng, voices, text pools, clip helpers."""

    def __init__(self, cfg: dict, split: str, item_seed: int, lang: str = "en"):
        self.cfg = cfg
        self.split = split
        self.rng = np.random.default_rng(item_seed)
        self.seed = item_seed
        self.voice = self.pick_voice(lang)
        self.imported = imported.for_cfg(cfg)  # None unless the profile names real corpora

    # --- voices -------------------------------------------------------------------------
    def pick_voice(self, lang: str = "en", exclude: tuple[str, ...] = ()) -> str:
        """Training speech is p_piper natural (piper) voice; held-out splits draw the unseen engine 30 % of the time."""
        voices = [v for v in tts.voices_for(self.split, lang) if v.id not in exclude]
        if self.split == "train":
            piper = [v for v in voices if v.engine == "piper"]
            if piper and self.rng.random() < self.cfg["p_piper"]:
                return piper[0].id
            voices = [v for v in voices if v.engine != "piper"] or voices
        else:
            unseen = [v for v in voices if v.role == "unseen_engine"]
            if unseen and self.rng.random() < 0.3:
                return unseen[int(self.rng.integers(len(unseen)))].id
            voices = [v for v in voices if v.role != "unseen_engine"] or voices
        return voices[int(self.rng.integers(len(voices)))].id

    # --- pieces -------------------------------------------------------------------------
    def say(self, words: str, voice: str | None = None, lang: str = "en", pause: float | None = None) -> Piece:
        voice = voice or self.voice
        # The style depends on (voice, text) only, so a sentence said twice by a voice is one cached clip.
        style_rng = np.random.default_rng(derive_seed("style", voice, words))
        style = tts.draw_style(tts.get_voice(voice), style_rng)
        return Piece("speech", words, voice=voice, lang=lang, style=asdict(style), pause_before_s=self._pause(pause))

    def event(self, name: str, pause: float | None = None) -> Piece:
        from soundflow.data import events

        etype = events.EVENT_TYPES.get(name)
        attrs = {"domain": etype.domain, "action": etype.action} if etype else {}
        piece = Piece("event", name, attrs=attrs, seed=int(self.rng.integers(2**62)), pause_before_s=self._pause(pause))
        if self.imported is not None:  # a real recording of this event type, with probability p_event
            rows = self.imported.events(self.split, name)
            if rows.height and self.rng.random() < self.imported.p_event:
                piece.attrs.update(imported.clip_attrs(rows.row(int(self.rng.integers(rows.height)), named=True)))
        return piece

    def music(self, tempo: str, direction: str, timbre: str, pause: float | None = None) -> Piece:
        label = text.music_description(tempo, direction, timbre)
        attrs = {"tempo": tempo, "direction": direction, "timbre": timbre}
        return Piece("music", label, attrs=attrs, seed=int(self.rng.integers(2**62)), pause_before_s=self._pause(pause))

    def real_speech(self, lang: str | None, target: str | None = None, speaker: str | None = None,
                    p: float | None = None) -> dict | None:
        """An imported utterance of this split (in `lang`, any when None; translated into `target`; by
        `speaker`), with probability p (default data.corpora.p_speech); None: the caller uses TTS."""
        if self.imported is None:
            return None
        rows = self.imported.speech(self.split, lang, target, speaker)
        if rows.height == 0 or self.rng.random() >= (self.imported.p_speech if p is None else p):
            return None
        return rows.row(int(self.rng.integers(rows.height)), named=True)

    def say_real(self, row: dict, label: str | None = None, pause: float | None = None) -> Piece:
        """A speech piece of an imported utterance; `label` is its text as the replies write it."""
        return Piece("speech", label or row["text"], voice=imported.voice_id(row), lang=row["lang"],
                     attrs=imported.clip_attrs(row), pause_before_s=self._pause(pause))

    def _pause(self, pause: float | None) -> float:
        return float(self.rng.uniform(0.3, 0.8)) if pause is None else pause

    # --- text pools ---------------------------------------------------------------------
    def sentence(self) -> str:
        pool = sentence_pool(self.cfg["seed"], self.split, self.cfg["text_pool"][self.split])
        return pool[int(self.rng.integers(len(pool)))]

    def pair(self) -> tuple[str, str]:
        pool = pair_pool(self.cfg["seed"], self.split, self.cfg["text_pool"][self.split])
        return pool[int(self.rng.integers(len(pool)))]

    def n_turns(self, low: int | None = None, high: int | None = None) -> int:
        lo, hi = low or self.cfg["turns"][0], high or self.cfg["turns"][1]
        return int(self.rng.integers(lo, max(lo, hi) + 1))

    def choice(self, seq):
        return seq[int(self.rng.integers(len(seq)))]


def clip_requests(plans: list[ItemPlan]) -> list[tts.ClipRequest]:
    """Every distinct TTS clip the plans need (deduplicated, in a stable order; imported speech needs none)."""
    seen, out = set(), []
    for plan in plans:
        for turn in plan.turns:
            for p in turn.pieces:
                if p.kind != "speech" or imported.is_imported(p):
                    continue
                req = tts.ClipRequest(voice_id=p.voice, text=p.label, style=tts.Style(**p.style))
                key = tts.clip_key(tts.get_voice(p.voice), p.label, req.style)
                if key not in seen:
                    seen.add(key)
                    out.append(req)
    return out
