"""Forced alignment of ASR clips: word ends land where the words really end."""
import numpy as np
import pytest

from soundflow import SAMPLE_RATE
from soundflow.data import align
from soundflow.data.align import speech_span
from soundflow.data.tts import Style, get_voice, synthesize


@pytest.fixture(scope="module")
def two_phrases():
    """'please turn on the kitchen light' + 1.5 s of silence + 'before dinner': the pause pins the ends."""
    voice = get_voice("flite:slt")
    first = synthesize(voice, "please turn on the kitchen light", Style())
    second = synthesize(voice, "before dinner", Style())
    gap = np.zeros(int(1.5 * SAMPLE_RATE), np.float32)
    return first, np.concatenate([first, gap, second])


def test_word_ends_follow_the_audio(two_phrases):
    first, audio = two_phrases
    words = "please turn on the kitchen light before dinner".split()
    ends = align.word_ends(audio, words)
    assert ends is not None and len(ends) == len(words)
    assert all(b > a for a, b in zip(ends, ends[1:]))
    light_end = speech_span(first)[1]
    dinner_end = len(first) / SAMPLE_RATE + 1.5 + speech_span(audio[len(first) + int(1.5 * SAMPLE_RATE):])[1]
    assert ends[5] == pytest.approx(light_end, abs=0.1)  # "light", just before the pause
    assert ends[7] == pytest.approx(dinner_end, abs=0.1)
    # "before" ends after the pause: an estimate by characters would put it inside the pause
    assert ends[6] > len(first) / SAMPLE_RATE + 1.5


def test_unknown_word_gives_none(two_phrases):
    _, audio = two_phrases
    assert align.oov_words(["please", "zorblax"]) == ["zorblax"]
    assert align.word_ends(audio, "please zorblax".split()) is None
