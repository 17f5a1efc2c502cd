"""Sub-task generators and planning: every sub-task in every split, voice split, mix-ins, offline items."""
import json

import pytest

from soundflow import config
from soundflow.data import text, tts
from soundflow.data.plan import clip_requests, split_bucket
from soundflow.data.planner import SPLITS, plan_item, plan_split
from soundflow.data.tasks import ABILITIES, SUB_TASKS

CFG = config.load(profile="smoke")["data"]
TINY = config.load()["data"]


def test_seven_abilities_and_28_subtasks():
    assert len(SUB_TASKS) == 28
    by_ability = {}
    for task in SUB_TASKS.values():
        by_ability.setdefault(task.ability, []).append(task.name)
    assert sorted(by_ability) == sorted(ABILITIES)
    assert all(len(names) == 4 for names in by_ability.values())


@pytest.mark.parametrize("sub_task", sorted(SUB_TASKS))
@pytest.mark.parametrize("split", SPLITS)
def test_generator_plans_are_valid(sub_task, split):
    for index in range(3):
        plan = plan_item(TINY, split, sub_task, index, "online")
        assert plan.turns, plan.id
        assert any(t.reply for t in plan.turns), f"{plan.id} never asks for a reply"
        json.dumps(plan.references)  # references must be serialisable
        allowed = {v.id for lang in ("en", "zh") for v in tts.voices_for(split, lang)}
        assert set(plan.voices()) <= allowed, f"{plan.id} uses a voice outside split {split}"
        for turn in plan.turns:
            if turn.reply:
                assert turn.reply.emotion in text.EMOTIONS
                assert turn.reply.timing in ("end", "words", "early")
                assert turn.reply.text.strip()


def test_plans_are_deterministic_and_seed_dependent():
    a = plan_item(TINY, "train", "chat_factqa", 0, "online")
    b = plan_item(TINY, "train", "chat_factqa", 0, "online")
    c = plan_item(TINY, "train", "chat_factqa", 1, "online")
    assert a.digest() == b.digest()
    assert a.digest() != c.digest()


def test_no_dev_or_test_voice_in_train():
    train = {v for p in plan_split(CFG, "train") for v in p.voices()}
    held = {v for s in ("dev", "test") for p in plan_split(CFG, s) for v in p.voices()}
    assert not train & held
    assert "festival:cmu_us_slt_arctic_hts" not in train


def test_heldout_sentences_never_in_train_pool():
    for split in ("dev", "test"):
        for p in plan_split(CFG, split):
            if p.sub_task.startswith("asr_"):
                assert all(split_bucket(s) == split for s in p.references["transcripts"])


def test_turn_counts_and_mixins():
    plans = [plan_item(TINY, "train", name, i, "online") for name in SUB_TASKS for i in range(6)]
    lo, hi = TINY["turns"]
    assert all(len(p.turns) >= lo for p in plans)
    assert max(len(p.turns) for p in plans) <= hi + 3  # at most three mix-ins on top
    kinds = {t.mixin for p in plans for t in p.turns if t.mixin}
    assert kinds == {"history_review", "silence", "proactive"}
    for p in plans:
        for i, t in enumerate(p.turns):
            if t.mixin == "history_review":
                assert i - t.meta["asked_turn"] >= 3, "history review must ask about a turn >= 3 rounds back"


def test_offline_items_have_one_answered_turn():
    for name in SUB_TASKS:
        for i in range(8):
            p = plan_item(TINY, "train", name, i, "offline")
            assert p.mode == "offline" and len(p.turns) == 1 and p.turns[0].reply is not None


def test_clip_requests_are_deduplicated():
    plans = plan_split(CFG, "train")
    reqs = clip_requests(plans)
    keys = [tts.clip_key(tts.get_voice(r.voice_id), r.text, r.style) for r in reqs]
    assert len(keys) == len(set(keys))
    n_speech = sum(p.kind == "speech" for plan in plans for t in plan.turns for p in t.pieces)
    assert 0 < len(reqs) <= n_speech
