"""Tests for soundflow.data.text: templated grammars and knowledge tables."""

import re

import numpy as np
import pytest

from soundflow.data import text as T

EN = re.compile(r"[a-z]+( [a-z]+)*")
ZH_BAD = re.compile(r"[A-Za-z0-9\s，。？！,.?!]")

# independent parser of number words, to check answers without reusing number_words
_UNITS = {w: i for i, w in enumerate(
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen "
    "fifteen sixteen seventeen eighteen nineteen".split())}
_TENS = {w: 10 * i for i, w in enumerate(
    "_ _ twenty thirty forty fifty sixty seventy eighty ninety".split()) if w != "_"}


def parse_number(words: str) -> int:
    total = current = 0
    for w in words.split():
        if w in _UNITS:
            current += _UNITS[w]
        elif w in _TENS:
            current += _TENS[w]
        elif w == "hundred":
            current *= 100
        elif w == "thousand":
            total, current = total + current * 1000, 0
        else:
            raise ValueError(w)
    return total + current


_W = "|".join(sorted([*_UNITS, *_TENS, "hundred", "thousand"], key=len, reverse=True))
NUM = rf"((?:{_W})(?: (?:{_W}))*)"  # a run of number words only, so matching stays fast


def rngs(n, seed=0):
    return [np.random.default_rng(seed + i) for i in range(n)]


def assert_en(s):
    assert EN.fullmatch(s), repr(s)


def assert_zh(s):
    assert s and not ZH_BAD.search(s), repr(s)


def test_number_words_known_values_and_roundtrip():
    assert T.number_words(0) == "zero"
    assert T.number_words(305) == "three hundred five"
    assert T.number_words(2024) == "two thousand twenty four"
    assert T.number_words(9999) == "nine thousand nine hundred ninety nine"
    for n in range(0, 10000, 7):
        assert parse_number(T.number_words(n)) == n
    for bad in (-1, 10000, 2.5, True):
        with pytest.raises(ValueError, match="n must be"):
            T.number_words(bad)


def test_zh_number_known_values():
    expected = {0: "零", 2: "二", 10: "十", 15: "十五", 20: "二十", 105: "一百零五",
                110: "一百一十", 1005: "一千零五", 1010: "一千零一十", 2000: "两千",
                3040: "三千零四十", 9999: "九千九百九十九"}
    for n, zh in expected.items():
        assert T.zh_number(n) == zh
    with pytest.raises(ValueError, match="n must be"):
        T.zh_number(10000)


def test_asr_sentences_length_vocabulary_and_conventions():
    vocab = T.asr_vocabulary()
    assert len(vocab) >= 1000
    assert len(T.ASR_TEMPLATES) >= 50
    rng = np.random.default_rng(1)
    seen_topics = set()
    for _ in range(3000):
        s = T.asr_sentence(rng)
        assert_en(s)
        assert 5 <= len(s.split()) <= 14, s
        assert set(s.split()) <= vocab, s
        seen_topics.add(T.sentence_topic(s))
    assert seen_topics == set(T.TOPICS)


def test_asr_topics_roundtrip_and_summary():
    rng = np.random.default_rng(2)
    for topic in T.TOPICS:
        for _ in range(30):
            assert T.sentence_topic(T.asr_sentence(rng, topic)) == topic
    sents = [T.asr_sentence(rng, "weather"), T.asr_sentence(rng, "cooking"),
             T.asr_sentence(rng, "weather")]
    assert T.summarize(sents) == "you talked about the weather and cooking"
    sents.append(T.asr_sentence(rng, "sports"))
    assert T.summarize(sents) == "you talked about the weather cooking and sports"
    with pytest.raises(ValueError, match="not made by asr_sentence"):
        T.summarize(["hello there"])
    with pytest.raises(ValueError, match="topic"):
        T.asr_sentence(rng, "politics")
    instruction, cue = T.summarize_instruction()
    assert cue in instruction.split()


def test_long_passage():
    passage = T.asr_long_passage(np.random.default_rng(3), 12)
    assert len(passage) == 12
    assert all(a != b for a, b in zip(passage, passage[1:]))
    with pytest.raises(ValueError, match="n_sentences"):
        T.asr_long_passage(np.random.default_rng(3), 0)


def test_determinism_same_seed_same_outputs():
    def draw(seed):
        rng = np.random.default_rng(seed)
        return (T.asr_sentence(rng), T.parallel_sentence(rng), T.fact_question(rng),
                T.compute_question(rng), T.multiturn_dialog(rng, 5), T.emotion_exchange(rng),
                T.env_adapt_exchange(rng, "rain"), T.irrelevant_speech(rng),
                T.asr_long_passage(rng, 3))
    assert draw(7) == draw(7)
    assert len({repr(draw(s)) for s in range(10)}) == 10


def test_parallel_pairs():
    assert len(T.PARALLEL_TEMPLATES) >= 30
    rng = np.random.default_rng(4)
    for _ in range(2000):
        en, zh = T.parallel_sentence(rng)
        assert_en(en)
        assert 4 <= len(en.split()) <= 10, en
        assert_zh(zh)


def test_parallel_numbers_agree():
    # a count in English must appear as the Chinese numeral (两 before a measure word)
    rng = np.random.default_rng(5)
    checked = 0
    for _ in range(3000):
        en, zh = T.parallel_sentence(rng)
        m = (re.fullmatch(rf"i have {NUM} \w+", en)
             or re.fullmatch(rf"there are {NUM} \w+ on the table", en))
        if m:
            n = parse_number(m.group(1))
            assert zh.count("两" if n == 2 else T.zh_number(n)) >= 1, (en, zh)
            checked += 1
        m = re.fullmatch(rf"i am {NUM} years old", en)
        if m:
            assert zh == f"我{T.zh_number(parse_number(m.group(1)))}岁"
            checked += 1
    assert checked > 50


def test_facts_table():
    assert len(T.FACTS) >= 150
    assert len({f.question for f in T.FACTS}) == len(T.FACTS)
    for f in T.FACTS:
        assert_en(f.question)
        assert_en(f.answer)
    by_q = {f.question: f.answer for f in T.FACTS}
    assert by_q["what is the capital of france"] == "the capital of france is paris"
    assert by_q["what day comes after sunday"] == "the day after sunday is monday"
    assert by_q["what month comes after december"] == "the month after december is january"
    assert by_q["what are scissors used for"] == "scissors are used for cutting paper"
    assert T.fact_question(np.random.default_rng(0)) in T.FACTS


def check_compute(qa):
    q, a = qa.question, qa.answer
    m = re.fullmatch(rf"what is {NUM} (plus|minus|times) {NUM}", q)
    if m:
        x, op, y = parse_number(m.group(1)), m.group(2), parse_number(m.group(3))
        want = {"plus": x + y, "minus": x - y, "times": x * y}[op]
        assert want >= 0
        assert a == f"{m.group(1)} {op} {m.group(3)} is {T.number_words(want)}"
        return "arith"
    m = re.fullmatch(rf"what time is it {NUM} hours? (after|before) {NUM} (am|pm)", q)
    if m:
        k, h = parse_number(m.group(1)), parse_number(m.group(3))
        start = h % 12 + (12 if m.group(4) == "pm" else 0)
        end = (start + (k if m.group(2) == "after" else -k)) % 24
        m2 = re.fullmatch(rf"it is {NUM} (am|pm)", a)
        assert m2, a
        assert parse_number(m2.group(1)) % 12 + (12 if m2.group(2) == "pm" else 0) == end
        return "time"
    m = re.fullmatch(rf"how many (\w+) are in {NUM} (\w+)", q)
    assert m, q
    factor = {"minutes": 60, "centimetres": 100, "days": 7, "seconds": 60, "grams": 1000,
              "months": 12, "hours": 24, "millimetres": 10}[m.group(1)]
    n = parse_number(m.group(2))
    m2 = re.fullmatch(rf"there are {NUM} {m.group(1)} in {m.group(2)} {m.group(3)}", a)
    assert m2, a
    assert parse_number(m2.group(1)) == n * factor
    assert m.group(3).endswith("s") == (n != 1)
    return "unit"


def test_compute_answers_are_correct():
    rng = np.random.default_rng(6)
    kinds = set()
    for _ in range(1500):
        qa = T.compute_question(rng)
        assert_en(qa.question)
        assert_en(qa.answer)
        kinds.add(check_compute(qa))
    assert kinds == {"arith", "time", "unit"}


def test_multiturn_dependencies():
    for rng in rngs(200):
        n = int(rng.integers(2, 9))
        gap = int(rng.integers(1, n))
        dialog = T.multiturn_dialog(rng, n, min_gap=gap)
        assert len(dialog) == n
        assert len({t.question for t in dialog}) == n  # no question asked twice
        deps = [(i, t.depends_on) for i, t in enumerate(dialog) if t.depends_on is not None]
        assert deps, dialog
        for i, d in deps:
            assert i - d >= gap
            assert dialog[d].depends_on is None
            setup, follow = dialog[d].question, dialog[i]
            assert_en(follow.question)
            assert_en(follow.answer)
            m = re.fullmatch(r"my name is (\w+)", setup)
            if m:
                assert follow.answer == f"your name is {m.group(1)}"
            m = re.fullmatch(rf"i have {NUM} (\w+)", setup)
            if m:
                n0 = parse_number(m.group(1))
                k = parse_number(re.search(r"(?:buy|away) (.+?) (?:more )?how", follow.question)
                                 .group(1))
                total = n0 + k if "buy" in follow.question else n0 - k
                assert parse_number(follow.answer.split(" ", 2)[2].rsplit(" ", 1)[0]) == total
    assert T.multiturn_dialog(np.random.default_rng(0), 1)[0].depends_on is None
    with pytest.raises(ValueError, match="min_gap"):
        T.multiturn_dialog(np.random.default_rng(0), 3, min_gap=3)
    with pytest.raises(ValueError, match="n_turns"):
        T.multiturn_dialog(np.random.default_rng(0), 0)


def test_emotions():
    assert set(T.EMOTION_SITUATIONS) == set(T.EMOTIONS)
    for emotion, situations in T.EMOTION_SITUATIONS.items():
        assert len(situations) >= 8, emotion
        for user, reply in situations:
            assert_en(user)
            assert_en(reply)
    rng = np.random.default_rng(8)
    draws = [T.emotion_exchange(rng) for _ in range(300)]
    assert {e for _, e, _ in draws} == set(T.EMOTIONS)
    for user, emotion, reply in draws:
        assert (user, reply) in T.EMOTION_SITUATIONS[emotion]


def test_event_texts_and_replies():
    names = ("smoke_alarm co_alarm siren glass_break crash coughing_fit baby_cry kettle_whistle "
             "oven_beep phone_ring car_horn doorbell rain wind birdsong clock_tick typing "
             "footsteps water_drip fan_hum door_knock dog_bark single_cough dish_clink music "
             "tv_speech cry_for_help bell notification_chime").split()
    assert set(T.EVENT_TEXT) == set(names)
    for event, (noun, sentence) in T.EVENT_TEXT.items():
        assert_en(noun)
        assert re.search(r" (is|are) ", sentence), sentence
        ask, reply = T.notify_instruction(event)
        assert_en(ask)
        assert_en(reply)
        assert " is " not in ask and " are " not in ask
        assert T.identify_event(event) == f"that sounds like {noun}"
    assert T.notify_instruction("dog_bark") == ("tell me when you hear a dog barking",
                                                "i hear a dog barking now")
    must = set(T.MUST_RESPOND_EVENTS)
    assert must == set("smoke_alarm co_alarm siren glass_break crash coughing_fit baby_cry "
                       "cry_for_help kettle_whistle oven_beep phone_ring car_horn doorbell"
                       .split())
    assert must.isdisjoint(T.HARMLESS_EVENTS) and must | set(T.HARMLESS_EVENTS) == set(names)
    for event in must:
        reply, emotion = T.proactive_reply(event)
        assert_en(reply)
        assert emotion in T.EMOTIONS
    assert T.proactive_reply("smoke_alarm")[1] == "urgent"
    with pytest.raises(ValueError, match="'rain'"):
        T.proactive_reply("rain")
    with pytest.raises(ValueError, match="'meow'"):
        T.notify_instruction("meow")
    assert (T.describe_events(["dog_bark", "car_horn"])
            == "i heard a dog barking then a car horn")


def test_counting():
    assert [T.count_word(k) for k in (1, 2, 3, 10)] == ["once", "twice", "three times",
                                                         "ten times"]
    with pytest.raises(ValueError, match="k must be"):
        T.count_word(11)
    assert T.count_instruction("door_knock") == "count the knocks out loud"
    assert T.count_reply("door_knock", 1) == "i heard one knock"
    assert T.count_reply("door_knock", 3) == "i heard three knocks"
    assert T.count_reply("dog_bark", 0) == "i heard no barks"
    assert set(T.COUNT_NOUNS) <= set(T.EVENT_TEXT)
    with pytest.raises(ValueError, match="'rain'"):
        T.count_instruction("rain")


def test_music_and_instructions():
    assert (T.music_description("fast", "rising", "plucked")
            == "a fast melody rising in pitch played on a plucked string")
    descriptions = {T.music_description(t, d, s) for t in ("slow", "medium", "fast")
                    for d in ("rising", "falling", "steady")
                    for s in ("sine", "square", "sawtooth", "plucked", "organ")}
    assert len(descriptions) == 45
    with pytest.raises(ValueError, match="timbre"):
        T.music_description("fast", "rising", "banjo")
    assert T.keyword_instruction("banana") == ("tell me when the speaker says banana",
                                               "the speaker just said banana")
    with pytest.raises(ValueError, match="word"):
        T.keyword_instruction("Banana!")
    assert T.translate_instruction("zh") == "translate what i say into chinese"
    assert T.translate_instruction("en", switch=True) == "now translate into english"
    with pytest.raises(ValueError, match="target"):
        T.translate_instruction("fr")


def test_recall_questions():
    assert T.recall_question("event", "glass_break").answer == "i heard breaking glass earlier"
    assert T.recall_question("said", "i like tea").answer == "you said i like tea"
    assert T.recall_question("number", "forty two").answer == "you told me the number forty two"
    assert T.recall_question("name", "anna").answer == "you told me the name anna"
    with pytest.raises(ValueError, match="kind 'colour'"):
        T.recall_question("colour", "red")
    with pytest.raises(ValueError, match="'boom'"):
        T.recall_question("event", "boom")


def test_environment_and_irrelevant_speech():
    rng = np.random.default_rng(9)
    for scene, events in T.SCENES.items():
        assert set(events) <= set(T.HARMLESS_EVENTS)
        questions = {T.env_adapt_exchange(rng, scene)[0] for _ in range(100)}
        assert len(questions) >= 3, scene
    # the same question gets a different reply in different scenes
    replies = {T.env_adapt_exchange(np.random.default_rng(0), s) for s in ("rain", "quiet")}
    assert len(replies) == 2
    with pytest.raises(ValueError, match="scene"):
        T.env_adapt_exchange(rng, "moon")
    for _ in range(200):
        assert_en(T.irrelevant_speech(rng))
