"""Word end times of an English speech clip: forced alignment (pocketsphinx 5, bundled en-us model),
or an estimate from the voiced span where the aligner does not know a word.

The ASR sub-tasks write each word after the chunk in which it ends, so the labels are only as good as
these times. Sharing a clip's voiced span out by character count was off by one chunk for many words
(TTS word durations do not follow spelling); forced alignment of the known text to the clean clip
places each word end to within a few 10 ms frames.
"""
from __future__ import annotations

import os
from functools import lru_cache

import numpy as np

from soundflow.audio import pcm16

FRAME_S = 0.01  # pocketsphinx frame shift
FILLERS = ("<s>", "</s>", "<sil>")
DITHER = 1e-3  # standard deviation of the noise added before alignment (-60 dBFS)


@lru_cache(maxsize=1)
def _decoder():
    """One aligner per process (loading the en-us model takes ~0.1 s); its log goes to /dev/null."""
    from pocketsphinx import Decoder

    return Decoder(lm=None, logfn=os.devnull)


def speech_span(audio: np.ndarray) -> tuple[float, float]:
    """Start and end (s) of the voiced part of a clip: 10 ms frames within 35 dB of the loudest."""
    frames = audio[: len(audio) // 160 * 160].reshape(-1, 160)
    energy = np.sqrt(np.mean(frames**2, axis=1) + 1e-12)
    active = np.flatnonzero(energy > energy.max() * 10 ** (-35 / 20))
    return active[0] * 0.01, (active[-1] + 1) * 0.01


def word_times(words: list[str], start: float, end: float) -> list[float]:
    """Estimated end time of each word: the voiced span shared out by character count."""
    weights = np.cumsum([len(w) + 1 for w in words], dtype=float)
    return list(start + (end - start) * weights / weights[-1])


def oov_words(words: list[str]) -> list[str]:
    """Words the aligner's pronunciation dictionary does not know."""
    decoder = _decoder()
    return [w for w in words if decoder.lookup_word(w) is None]


def word_ends(audio: np.ndarray, words: list[str]) -> list[float] | None:
    """End time (s, from the clip start) of each word, or None when the text cannot be aligned to the
    audio (a word outside the dictionary, or no path through the audio)."""
    if not words or oov_words(words):
        return None
    decoder = _decoder()
    # TTS clips hold runs of digital zeros, on which pocketsphinx's features break down and the alignment
    # of most espeak clips fails; a fixed -60 dBFS dither (seeded: the same times every run) fixes that.
    dither = np.random.default_rng(0).normal(0.0, DITHER, len(audio))
    pcm = pcm16(audio + dither).tobytes()
    decoder.set_align_text(" ".join(words))
    decoder.start_utt()
    decoder.process_raw(pcm, False, True)  # full_utt: cepstral mean over the whole clip
    decoder.end_utt()
    segments = decoder.seg()
    if segments is None:
        return None
    # alternative pronunciations come back as "word(2)"
    ends = [(s.word.split("(")[0], (s.end_frame + 1) * FRAME_S) for s in segments if s.word not in FILLERS]
    if [w for w, _ in ends] != words:
        return None
    voiced_end = speech_span(audio)[1]  # the last word also takes the clip's trailing silence
    return [min(t, voiced_end) for _, t in ends]
