"""Benchmarks 2-4 (streaming translation, audio QA, spoken QA): scoring on hand-made events with known
answers, and run(ctx) smoke runs on the random tiny bundle over a hand-made mini corpus and small
external manifests (no trained model, no data/corpus needed)."""
import json
import math

import numpy as np
import pytest

from soundflow.audio import write_wav
from soundflow.bench import qa, st
from soundflow.bench.streams import BenchContext
from soundflow.data import text
from soundflow.data.manifest import to_frame

SR = 16000


def ev(t, text_="", action="respond"):
    return {"chunk": int(round(t / 0.4)) - 1, "time_s": t, "action": action if text_ else "silent", "text": text_,
            "emotion": "normal", "drained": False}


# --------------------------------------------------------------------------- translation scoring

def test_split_events_by_turn_start():
    events = [ev(0.4, "early"), ev(2.0, "a"), ev(3.0, "b"), ev(3.2), ev(5.0, "c"), ev(9.6, "late")]
    groups = st.split_events(events, [1.0, 3.0, 4.4])
    assert [[e["text"] for e in g] for g in groups] == [["early", "a"], ["b", ""], ["c", "late"]]
    assert st.split_events([], [0.0]) == [[]]
    with pytest.raises(ValueError):
        st.split_events(events, [])
    with pytest.raises(ValueError):
        st.split_events(events, [2.0, 1.0])


def test_join_and_language():
    assert st.join_replies(["今天", " 多云 ", ""], "zh") == "今天多云"
    assert st.join_replies(["it is", "cloudy "], "en") == "it is cloudy"
    assert st.spoken_texts([ev(0.4, "x"), ev(0.8), ev(1.2, " ")]) == ["x"]
    assert st.in_language("今天伦敦多云", "zh") and not st.in_language("today", "zh")
    assert st.in_language("it is cloudy", "en") and not st.in_language("今天", "en")
    assert not st.in_language("", "en") and not st.in_language("123", "zh")
    assert st.target_lang("en2zh") == "zh"
    with pytest.raises(ValueError):
        st.target_lang("english")


def test_bleu_chrf_identical_is_100_and_tokenizers():
    en = ["it is cloudy in london today", "my friend lives in sydney"]
    zh = ["今天伦敦多云", "我的朋友住在悉尼"]
    for hyps, lang, tok in ((en, "en", "tok:13a"), (zh, "zh", "tok:zh")):
        s = st.score_translation(hyps, hyps, lang)
        assert s["bleu"] == pytest.approx(100.0) and s["chrf"] == pytest.approx(100.0)
        assert s["segments"] == 2 and s["lang_acc"] == 1.0 and tok in s["bleu_signature"]
    # Chinese without the zh tokenizer would be one "word" per sentence: a one-character slip would give 0
    s = st.score_translation(["今天伦敦多雨", "我的朋友住在悉尼"], zh, "zh")
    assert 50 < s["bleu"] < 100
    wrong = st.score_translation(["", "bananas"], en, "en")
    assert wrong["bleu"] == 0.0 and wrong["chrf"] < 10 and wrong["lang_acc"] == 0.5
    assert st.score_translation([], [], "en")["bleu"] is None
    with pytest.raises(ValueError):
        st.score_translation(["a"], [], "en")


def _st_row(turns, lang="zh", sub_task="st_switch"):
    return {"id": "x", "sub_task": sub_task, "lang": lang, "turns": turns}


def _turn(i, start, end, reply, kind="sentence", meta=None, mixin="", pieces=None, emotion="normal"):
    return {"index": i, "start_s": start, "end_s": end, "kind": kind, "mixin": mixin, "reply": reply,
            "emotion": emotion, "meta": meta or {}, "pieces": pieces or [{"kind": "speech", "label": "s"}]}


def test_corpus_segments_per_turn_alignment():
    turns = [_turn(0, 0.8, 2.8, "今天伦敦多云", meta={"src_lang": "en", "tgt_lang": "zh"}),
             _turn(1, 4.0, 6.0, "okay from now on i will write english", kind="instruction"),
             _turn(2, 7.0, 9.0, "my friend lives in sydney", meta={"src_lang": "en", "tgt_lang": "en"})]
    events = [ev(2.0, "今天"), ev(3.2, "伦敦多云"), ev(6.4, "okay"), ev(9.2, "my friend lives in sydney")]
    segs = st.corpus_segments([_st_row(turns)], [events])
    assert [(s["direction"], s["hyp"], s["turn"]) for s in segs] == [
        ("en2zh", "今天伦敦多云", 0), ("en2en", "my friend lives in sydney", 2)]  # the ack is not scored
    scores = st.score_segments(segs)
    assert scores["en2zh"]["bleu"] == pytest.approx(100) and scores["en2en"]["chrf"] == pytest.approx(100)


def test_manifest_segments_turns_or_whole_stream():
    events = [ev(1.2, "it is cloudy"), ev(4.0, "in london today")]
    row = {"id": "m", "direction": "zh2en", "references": ["it is cloudy", "in london today"]}
    per_turn = st.manifest_segments([{**row, "turn_starts": [0.0, 2.0]}], [events])
    assert [s["hyp"] for s in per_turn] == ["it is cloudy", "in london today"]
    whole = st.manifest_segments([row], [events])
    assert len(whole) == 1 and whole[0]["hyp"] == whole[0]["ref"] == "it is cloudy in london today"
    assert whole[0]["turn"] is None


# --------------------------------------------------------------------------- multiple choice

def test_option_pools_hold_the_generator_references():
    count_turn = {"meta": {"event": "dog_bark", "count": 3}}
    assert text.count_reply("dog_bark", 3) in qa.option_pool("au_count", count_turn)
    assert "that was a dog barking" in qa.option_pool("au_event_id", {})
    assert text.identify_event("rain") in qa.option_pool("env_qa", {})
    assert text.music_description("fast", "rising", "organ") in qa.option_pool("au_music", {})
    assert len(qa.option_pool("au_music", {})) == 45
    happy = qa.option_pool("chat_emotion", {"emotion": "happy"})
    assert happy and not set(happy) & {r for _, r in text.EMOTION_SITUATIONS["happy"]}
    assert qa.option_pool("unknown", {}) is None


def test_make_options_deterministic():
    pool = [f"that was {w}" for w in ("rain", "wind", "typing", "a bell", "footsteps")]
    opts, ans = qa.make_options("that was rain", pool, ("item", 3))
    assert len(opts) == 4 == len(set(opts)) and opts[ans] == "that was rain"
    assert qa.make_options("that was rain", pool, ("item", 3)) == (opts, ans)
    assert {tuple(qa.make_options("that was rain", pool, ("item", k))[0]) for k in range(8)} != {tuple(opts)}
    few, a = qa.make_options("x y", ["x y", "z w"], ("i", 0))
    assert sorted(few) == ["x y", "z w"] and few[a] == "x y"


def test_choose_option_and_credit():
    options = ["i heard one bark", "i heard two barks", "i heard three barks", "i heard four barks"]
    assert qa.choose_option("I heard 3 barks.", options) == [2]
    assert qa.mc_credit("i heard three barks", options, 2) == 1.0
    assert qa.mc_credit("i heard three barks", options, 1) == 0.0
    assert qa.mc_credit("", options, 2) == 0.0 and qa.choose_option("  ", options) == []
    tied = ["a b", "a b"]
    assert qa.mc_credit("a b", tied, 0) == 0.5


def test_corpus_questions_and_scoring():
    q_piece = [{"kind": "event", "label": "rain"}, {"kind": "speech", "label": "what was that sound", "voice": "v"}]
    turns = [_turn(0, 0.5, 3.0, "that was rain", kind="question", meta={"event": "rain"}, pieces=q_piece),
             _turn(1, 4.0, 5.0, "", kind="event", mixin="silence"),
             _turn(2, 6.0, 8.0, "i heard rain earlier", kind="question", mixin="history_review"),
             _turn(3, 9.0, 11.0, "that was wind", kind="question", meta={"event": "wind"}, pieces=q_piece)]
    rows = [{"id": "a", "sub_task": "au_event_id", "turns": turns}]
    qs = qa.corpus_questions(rows, qa.CATEGORIES)
    assert [(q["turn"], q["category"], q["question"]) for q in qs] == [(0, "sound", "what was that sound"),
                                                                      (3, "sound", "what was that sound")]
    assert len(qa.corpus_questions(rows, qa.CATEGORIES, max_per_item=1)) == 1
    replies = [qs[0]["reference"], "a dog is barking loudly"]
    second = qa.mc_credit(replies[1], qs[1]["options"], qs[1]["answer"])
    s = qa._score_condition(qs, replies)
    assert s["n"] == 2 and s["sound"] == s["accuracy"] == pytest.approx((1 + second) / 2)
    assert s["macro"] == s["accuracy"] and s["per_sub_task"] == {"au_event_id": s["accuracy"]}
    assert s["music"] is None and s["no_answer"] == 0.0
    assert qa._score_condition(qs, [None, ""])["n"] == 1


def test_question_onset_from_the_corpus_clip(tmp_path):
    from soundflow.data import tfjp, tts
    from soundflow.data.plan import derive_seed

    voice_id, words = "espeak:en-us+m1", "what was that sound"
    turn = {"start_s": 1.0, "end_s": 6.0,
            "pieces": [{"kind": "event", "label": "rain"}, {"kind": "speech", "label": words, "voice": voice_id}]}
    assert qa.question_onset(tmp_path, turn) is None  # no clip
    voice = tts.get_voice(voice_id)
    style = tts.draw_style(voice, np.random.default_rng(derive_seed("style", voice_id, words)))
    t = np.arange(int(1.3 * SR)) / SR
    clip = (0.3 * np.sin(2 * np.pi * 220 * t) * (t > 0.1) * (t < 1.2)).astype(np.float32)
    write_wav(tts.cache_path(tmp_path / "clips", tts.clip_key(voice, words, style)), clip)
    expected = 6.0 - len(tfjp.tfjp(clip, SR)) / SR
    assert qa.question_onset(tmp_path, turn) == pytest.approx(expected, abs=1e-3)
    assert qa.question_onset(tmp_path, {**turn, "pieces": turn["pieces"][:1]}) is None


# --------------------------------------------------------------------------- spoken QA matching

@pytest.mark.parametrize("answer, question, key", [
    ("the capital of ghana is accra", "what is the capital of ghana", ["accra"]),
    ("there are one thousand grams in one kilogram", "how many grams are in one kilogram", ["one thousand"]),
    ("it is twelve pm", "what time is it two hours before two pm", ["twelve pm"]),
    ("it is one am", "what time is it one hour before two am", ["one am"]),
    ("thirty one minus twenty six is five", "what is thirty one minus twenty six", ["five"]),
    ("scissors are used for cutting paper", "what are scissors used for", ["cutting paper"]),
    ("Paris", None, ["paris"]),
])
def test_key_phrases(answer, question, key):
    assert qa.key_phrases(answer, question) == key


def test_containment_rules():
    assert qa.contains("well, The capital of Ghana is Accra!", "the capital of ghana is accra")
    assert not qa.contains("the capital of ghana is", "the capital of ghana is accra")
    assert not qa.contains("anything", "")
    assert qa.phrase_in("it is five", "five") and not qa.phrase_in("it is twenty five", "five")
    assert not qa.phrase_in("five hundred", "five") and qa.phrase_in("5 apples", "five")
    assert qa.judge("thirty one minus twenty six is five", "thirty one minus twenty six is five",
                    "what is thirty one minus twenty six") == (True, True)
    assert qa.judge("it is five", "thirty one minus twenty six is five",
                    "what is thirty one minus twenty six") == (False, True)
    assert qa.judge("i think it is rome", ["Paris", "the city of paris"]) == (False, False)
    assert qa.judge("paris of course", ["Paris", "the city of paris"]) == (True, True)


def test_is_question():
    assert qa.is_question({"meta": {"question": "what is the capital of peru"}})
    assert qa.is_question({"meta": {"question": "i give away seven how many do i have now", "depends_on": 3}})
    assert not qa.is_question({"meta": {"question": "my name is diana", "depends_on": None}})
    assert not qa.is_question({"meta": {"question": "how are you today"}})  # small talk
    assert not qa.is_question({"meta": {}})


# --------------------------------------------------------------------------- run(ctx) smoke

def _noise_stream(path, seconds, bursts, seed=0):
    """Quiet noise with loud noise bursts at [(start, end), ...] seconds."""
    rng = np.random.default_rng(seed)
    audio = rng.normal(0, 0.003, int(seconds * SR)).astype(np.float32)
    for a, b in bursts:
        audio[int(a * SR): int(b * SR)] = rng.normal(0, 0.3, int(b * SR) - int(a * SR))
    write_wav(path, audio)
    return path


def _item(corpus, item_id, sub_task, mode, instruction, lang, turns, references, seconds=4.4):
    bursts = [(t["start_s"], t["end_s"]) for t in turns]
    rel = f"audio/test/{item_id}.wav"
    _noise_stream(corpus / rel, seconds, bursts, seed=len(item_id))
    timeline = [{"chunk": int(t["end_s"] / 0.4), "t_s": t["end_s"], "end_s": t["end_s"], "action": "respond",
                 "text": t["reply"], "emotion": t["emotion"], "lang": lang, "turn": t["index"], "kind": "answer"}
                for t in turns if t["reply"]]
    return {"id": item_id, "ability": "x", "sub_task": sub_task, "split": "test", "mode": mode, "voices": [],
            "condition": "heldout_voice", "seed": 1, "audio": rel, "duration_s": seconds,
            "instruction": instruction, "lang": lang, "noise": "clean", "snr_db": None, "reverb": False,
            "mixins": [], "timeline": timeline, "references": json.dumps(references),
            "turns": [{**t, "pieces": json.dumps(t["pieces"]), "meta": json.dumps(t["meta"])} for t in turns]}


@pytest.fixture(scope="module")
def mini_corpus(tmp_path_factory):
    """A test split in the corpus format with a few short items of every sub-task these benchmarks read."""
    corpus = tmp_path_factory.mktemp("mini") / "corpus"
    speech = {"kind": "speech", "label": "what was that sound", "voice": "espeak:en-us+m1"}
    music = text.music_description("fast", "rising", "organ")
    happy = text.EMOTION_SITUATIONS["happy"][0]
    en2zh = [{"src_lang": "en", "tgt_lang": "zh", "source": "it is cloudy in london today"}]
    rows = [
        _item(corpus, "test-st_en2zh-onl00000", "st_en2zh", "online", "translate what i say into chinese", "zh",
              [_turn(0, 0.4, 1.6, "今天伦敦多云", meta=en2zh[0]), _turn(1, 2.4, 3.6, "我的朋友住在悉尼", meta=en2zh[0])],
              {"targets": ["今天伦敦多云", "我的朋友住在悉尼"]}),
        _item(corpus, "test-st_zh2en-off00000", "st_zh2en", "offline", "translate what i say into english", "en",
              [_turn(0, 0.2, 1.8, "my friend lives in sydney", meta={"src_lang": "zh", "tgt_lang": "en"})],
              {"reply": "my friend lives in sydney"}, seconds=2.4),
        _item(corpus, "test-au_event_id-onl00000", "au_event_id", "online", "listen to the sounds and answer", "en",
              [_turn(0, 0.4, 2.0, "that was rain", kind="question", meta={"event": "rain"},
                     pieces=[{"kind": "event", "label": "rain"}, speech])], {"events": ["rain"]}),
        _item(corpus, "test-au_music-onl00000", "au_music", "online", "listen to the music and answer", "en",
              [_turn(0, 0.4, 2.8, music, kind="question", pieces=[{"kind": "music", "label": music},
                                                                  {**speech, "label": "describe the music"}])],
              {"music": []}),
        _item(corpus, "test-chat_emotion-onl00000", "chat_emotion", "online", qa.STREAM_INSTRUCTION["speech"], "en",
              [_turn(0, 0.4, 2.0, happy[1], kind="question", emotion="happy", meta={"question": happy[0]})],
              {"answers": [happy[1]]}),
        _item(corpus, "test-chat_factqa-onl00000", "chat_factqa", "online", qa.STREAM_INSTRUCTION["speech"], "en",
              [_turn(0, 0.4, 1.6, "the capital of peru is lima", kind="question",
                     meta={"question": "what is the capital of peru"}),
               _turn(1, 2.4, 3.6, "a ball is round", kind="question", meta={"question": "what shape is a ball"})],
              {"answers": ["the capital of peru is lima", "a ball is round"]}),
        _item(corpus, "test-chat_factqa-off00000", "chat_factqa", "offline", qa.STREAM_INSTRUCTION["speech"], "en",
              [_turn(0, 0.2, 1.6, "grass is green", kind="question", meta={"question": "what colour is grass"})],
              {"reply": "grass is green"}, seconds=2.0),
    ]
    to_frame(rows).write_parquet(corpus / "test.parquet")
    return corpus


def _numbers_ok(result, keys):
    json.dumps(result)
    for k in keys:
        assert k in result, k
        v = result[k]
        assert v is None or (isinstance(v, (int, float)) and math.isfinite(v)), (k, v)


def _ctx(tiny_bundle, corpus, work, manifest=None, cfg=None):
    return BenchContext(bundle=tiny_bundle, offline_bundle=tiny_bundle, corpus=corpus, work=work, cfg=cfg or {},
                        manifest=manifest, workers=1)


def test_st_run_on_corpus_and_manifest(tiny_bundle, mini_corpus, tmp_path):
    res = st.run(_ctx(tiny_bundle, mini_corpus, tmp_path / "c"))
    _numbers_ok(res, ["bleu_en2zh", "chrf_en2zh", "bleu_zh2en", "offline_bleu_zh2en", "baseline_chrf_zh2en",
                      "n_items", "n_segments"])
    assert res["segments_en2zh"] == 2 and res["segments_zh2en"] == 0 and res["bleu_zh2en"] is None
    assert res["offline_segments_zh2en"] == 1 and 0 <= res["bleu_en2zh"] <= 100 and 0 <= res["chrf_en2zh"] <= 100
    assert "tok:zh" in res["signatures"]["en2zh"]["bleu"]
    _noise_stream(tmp_path / "a.wav", 3.2, [(0.4, 1.2), (1.6, 2.4)])
    lines = [{"id": "m1", "audio": "a.wav", "instruction": "translate what i say into chinese", "lang": "zh",
              "direction": "en2zh", "references": ["今天伦敦多云", "我的朋友住在悉尼"], "turn_starts": [0.4, 1.6]},
             {"id": "m2", "audio": "a.wav", "instruction": "translate what i say into english", "lang": "en",
              "direction": "zh2en", "references": ["it is cloudy", "in london today"]}]
    manifest = tmp_path / "st.jsonl"
    manifest.write_text("\n".join(json.dumps(x, ensure_ascii=False) for x in lines))
    res = st.run(_ctx(tiny_bundle, tmp_path / "no-corpus", tmp_path / "m", manifest))
    _numbers_ok(res, ["bleu_en2zh", "chrf_zh2en", "segments_whole_stream"])
    assert (res["segments_en2zh"], res["segments_zh2en"], res["segments_whole_stream"]) == (2, 1, 1)
    assert "offline_bleu_en2zh" not in res
    manifest.write_text(json.dumps({**lines[0], "direction": "english"}, ensure_ascii=False))
    with pytest.raises(ValueError):
        st.run(_ctx(tiny_bundle, tmp_path, tmp_path / "m", manifest))


def test_audio_qa_run_on_corpus_and_manifest(tiny_bundle, mini_corpus, tmp_path):
    res = qa.run_audio_qa(_ctx(tiny_bundle, mini_corpus, tmp_path / "c"))
    conds = ("spoken", "text", "spoken_offline", "baseline_text", "baseline_spoken_offline")
    _numbers_ok(res, [f"{c}_{k}" for c in conds for k in ("accuracy", "macro", "sound", "music", "speech", "n")]
                + ["chance", "n_questions", "text_skipped"])
    assert res["n_questions"] == 3 and res["chance"] == pytest.approx(0.25)
    assert res["spoken_n"] == res["spoken_offline_n"] == 3
    # no TTS clips in the mini corpus: the sound and music questions cannot be cut, the speech one needs no cut
    assert res["text_skipped"] == 2 and res["text_n"] == 1
    for c in conds:
        assert 0 <= res[f"{c}_accuracy"] <= 1
    _noise_stream(tmp_path / "clip.wav", 1.6, [(0.2, 1.2)])
    _noise_stream(tmp_path / "q.wav", 1.2, [(0.1, 1.0)], seed=3)
    lines = [{"id": "q1", "audio": "clip.wav", "instruction": "what was that sound", "lang": "en",
              "category": "sound", "choices": ["rain", "a dog", "a bell", "wind"], "answer": "rain",
              "question_audio": "q.wav"},
             {"id": "q2", "audio": "clip.wav", "instruction": "which instrument plays", "lang": "en",
              "category": "music", "choices": ["piano", "organ"], "answer": 1}]
    manifest = tmp_path / "aqa.jsonl"
    manifest.write_text("\n".join(json.dumps(x) for x in lines))
    res = qa.run_audio_qa(_ctx(tiny_bundle, tmp_path / "no-corpus", tmp_path / "m", manifest))
    _numbers_ok(res, ["text_accuracy", "spoken_accuracy", "spoken_offline_accuracy", "chance"])
    assert res["text_n"] == 2 and res["spoken_n"] == 1 and res["chance"] == pytest.approx((1 / 4 + 1 / 2) / 2)
    manifest.write_text(json.dumps({**lines[0], "answer": "snow"}))
    with pytest.raises(ValueError, match="answer"):
        qa.run_audio_qa(_ctx(tiny_bundle, tmp_path, tmp_path / "m", manifest))


def test_spoken_qa_run_on_corpus_and_manifest(tiny_bundle, mini_corpus, tmp_path):
    res = qa.run_spoken_qa(_ctx(tiny_bundle, mini_corpus, tmp_path / "c", cfg={"sub_tasks": ["chat_factqa"]}))
    _numbers_ok(res, ["accuracy", "key_accuracy", "n_questions", "no_answer", "accuracy_chat_factqa",
                      "offline_accuracy", "baseline_accuracy", "offline_n"])
    assert res["n_questions"] == 2 and res["n_chat_factqa"] == 2 and res["offline_n"] == 1
    assert 0 <= res["accuracy"] <= res["key_accuracy"] <= 1
    _noise_stream(tmp_path / "s.wav", 3.2, [(0.4, 1.2), (1.6, 2.4)])
    lines = [{"id": "s1", "audio": "s.wav", "instruction": qa.STREAM_INSTRUCTION["speech"], "lang": "en",
              "answers": ["lima", ["round", "a sphere"]], "turn_starts": [0.4, 1.6],
              "questions": ["what is the capital of peru", "what shape is a ball"]},
             {"id": "s2", "audio": "s.wav", "instruction": qa.STREAM_INSTRUCTION["speech"], "lang": "en",
              "answers": ["paris"]}]
    manifest = tmp_path / "sqa.jsonl"
    manifest.write_text("\n".join(json.dumps(x) for x in lines))
    res = qa.run_spoken_qa(_ctx(tiny_bundle, tmp_path / "no-corpus", tmp_path / "m", manifest))
    _numbers_ok(res, ["accuracy", "key_accuracy", "n_questions"])
    assert res["n_questions"] == 3 and "offline_accuracy" not in res
