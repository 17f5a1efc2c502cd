"""Benchmark 1 run: scoring on hand-made events with known answers, and run(ctx) end to end on the tiny
random bundle with a 2-item external manifest of espeak-ng speech (no corpus, no trained model)."""
from __future__ import annotations

import json
import math
import shutil
import subprocess

import numpy as np
import pytest
import soundfile as sf

from soundflow.audio import read_audio
from soundflow.bench import asr as A
from soundflow.bench.streams import BenchContext

SR = 16000


def _ev(chunk: int, text: str = "") -> dict:
    return {"chunk": chunk, "time_s": round((chunk + 1) * 0.4, 3), "action": "respond" if text else "silent",
            "text": text, "emotion": "", "drained": False}


TURNS = [
    {"start_s": 1.0, "end_s": 2.0, "text": "the cat sat", "scored": True},
    {"start_s": 3.0, "end_s": 4.0, "text": "", "scored": False},  # a mix-in (e.g. a sound event)
    {"start_s": 5.0, "end_s": 6.0, "text": "on the mat", "scored": True},
]
EVENTS = [_ev(0), _ev(1, "uh"),                 # t 0.8: before the first turn -> an insertion
          _ev(2, "the"), _ev(3), _ev(4, "cat sat"),  # t 1.2 .. 2.0: turn 0
          _ev(7, "a dog barked"),               # t 3.2: in the mix-in's window -> left out
          _ev(12), _ev(13, "on a"), _ev(15, "mat")]  # t 5.6, 6.4: turn 2


def test_scoring_on_hand_made_events():
    items = [{"id": "a", "condition": "heldout_voice", "reference": "the cat sat on the mat", "turns": TURNS},
             {"id": "b", "condition": "unseen_engine", "reference": "good morning",
              "turns": [{"start_s": 0.5, "end_s": 1.5, "text": "good morning", "scored": True}]}]
    split = A.ours_stream(EVENTS, TURNS)
    assert split["hypothesis"] == "uh the cat sat on a mat"
    assert split["raw"] == "uh the cat sat a dog barked on a mat"
    assert split["partials"] == [[(1.2, "the"), (1.6, "the"), (2.0, "the cat sat")],
                                 [(5.2, ""), (5.6, "on a"), (6.4, "on a mat")]]
    out = A.score_ours(items, [EVENTS, [_ev(0), _ev(1)]])
    # item a: 1 insertion (uh) + 1 substitution (a/the) of 6 words; item b says nothing: 2 deletions of 2
    assert out["wer_stream_heldout_voice"] == pytest.approx(2 / 6, abs=1e-4)
    assert out["wer_stream_unseen_engine"] == 1.0
    assert out["wer_stream_all"] == pytest.approx(4 / 8)
    assert out["wer_stream_all_raw"] > out["wer_stream_all"]  # "a dog barked" would be 3 insertions
    lat = out["latency"]
    assert lat["utterances"] == 3 and lat["no_partial"] == 1 and lat["flicker"] == 0.0
    assert lat["first_partial_s"] == pytest.approx((0.2 + 0.6) / 2)  # 1.2 - 1.0 and 5.6 - 5.0
    assert lat["finalization_s"] == pytest.approx((0.0 + 0.4) / 2)  # 2.0 - 2.0 and 6.4 - 6.0


def test_peer_segments_and_timed_words():
    assert A.peer_cuts(TURNS, 7.0) == [0.0, 2.5, 4.5, 7.0]  # middles of the gaps
    assert A.peer_cuts([], 3.0) == [0.0, 3.0]
    overlap = [{"start_s": 0.0, "end_s": 2.0}, {"start_s": 1.5, "end_s": 3.0}]
    assert A.peer_cuts(overlap, 4.0) == [0.0, 1.5, 4.0]
    words = [(0.2, 0.4, "uh"), (1.1, 1.3, "the"), (3.2, 3.5, "dog"), (5.1, 5.3, "on"), (6.8, 7.2, "mat")]
    out = A.words_by_segment(words, TURNS, 7.0)
    assert out == {"hypothesis": "uh the on mat", "raw": "uh the dog on mat"}
    assert A.words_by_segment(words, [], 7.0)["hypothesis"] == "uh the dog on mat"


def test_reference_timeline_events():
    timeline = [{"chunk": 4, "t_s": 1.9, "action": "respond", "text": "cat sat"},
                {"chunk": 2, "t_s": 1.2, "action": "respond", "text": "the"},
                {"chunk": 8, "t_s": 3.0, "action": "silent", "text": ""}]
    events = A.timeline_events(timeline)
    got = [(e["chunk"], e["time_s"], e["text"]) for e in events]
    assert got == [(2, 1.2, "the"), (4, 2.0, "cat sat"), (8, 3.6, "")]


def test_settings_refuse_unknown_keys_and_peers():
    assert A.settings(None) == A.DEFAULTS
    assert A.settings({"whisper_beam": 1})["whisper_beam"] == 1
    with pytest.raises(ValueError, match="unknown key"):
        A.settings({"whisper_beems": 1})
    with pytest.raises(ValueError, match="unknown peer"):
        A.settings({"peers": ["whisper"]})


# --------------------------------------------------------------------------- end to end

SENTENCES = [("the weather is nice today", "please open the window"),
             ("my brother plays the piano", "we are going to the market")]


@pytest.fixture(scope="module")
def manifest(tmp_path_factory):
    exe = shutil.which("espeak-ng")
    if exe is None:
        pytest.skip("espeak-ng not installed")
    root = tmp_path_factory.mktemp("asr_manifest")
    lines = []
    for n, pair in enumerate(SENTENCES):
        pieces, turns, t = [np.zeros(int(0.6 * SR), np.float32)], [], 0.6
        for sentence in pair:
            wav = root / f"s{n}_{len(turns)}.wav"
            subprocess.run([exe, sentence, "-w", str(wav)], check=True, capture_output=True, timeout=60)
            audio = read_audio(wav)
            turns.append({"start_s": round(t, 3), "end_s": round(t + audio.size / SR, 3), "text": sentence})
            pieces += [audio, np.zeros(int(1.2 * SR), np.float32)]
            t += audio.size / SR + 1.2
        sf.write(root / f"stream{n}.wav", np.concatenate(pieces), SR)
        row = {"id": f"s{n}", "audio": f"stream{n}.wav", "instruction": "transcribe what you hear", "lang": "en",
               "transcript": " ".join(pair), "turns": turns}
        if n == 0:
            row["condition"] = "heldout_voice"  # the other has none -> "unspecified"
        lines.append(json.dumps(row))
    path = root / "manifest.jsonl"
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture
def keep_torch_threads():
    import torch

    n = torch.get_num_threads()
    yield
    torch.set_num_threads(n)  # decoding in this process (workers=1) sets one thread


def test_run_on_external_manifest(tiny_bundle, manifest, tmp_path, keep_torch_threads):
    ctx = BenchContext(bundle=tiny_bundle, offline_bundle=tiny_bundle, corpus=tmp_path / "no-corpus",
                       work=tmp_path / "work", cfg={"whisper_beam": 1}, manifest=manifest, workers=1)
    out = A.run(ctx)
    json.dumps(out)  # JSON-serialisable
    assert out["items"] == 2 and out["offline_items"] == 2 and out["turns_scored"] == 4
    for key in ("wer_stream_all", "wer_stream_heldout_voice", "wer_stream_unspecified", "wer_offline",
                "wer_offline_baseline", "whisper_wer_all", "pocketsphinx_wer_all"):
        assert isinstance(out[key], float) and out[key] >= 0, key
    assert out["wer_stream_unseen_engine"] is None and out["whisper_wer_unseen_engine"] is None  # no such items
    assert out["flicker"] in (0.0, None)  # append-only by construction
    assert out["whisper_wer_all"] < 0.5  # clear synthetic speech
    assert 0 < out["whisper_rtf"] < 1 and 0 < out["pocketsphinx_rtf"] < 1
    assert out["pocketsphinx"]["latency"]["utterances"] == 4 and out["pocketsphinx_flicker"] >= 0
    if out["pocketsphinx_first_partial_s"] is not None:
        assert -1.0 < out["pocketsphinx_first_partial_s"] < 5.0
    for key in ("first_partial_s", "finalization_s"):
        assert out[key] is None or math.isfinite(out[key])
    assert out["reference_timeline"] is None and out["config"]["whisper_beam"] == 1
    assert [p["id"] for p in out["per_item"]] == ["s0", "s1"] and [p["ref_words"] for p in out["per_item"]] == [9, 11]
    hyps = [json.loads(line) for line in (tmp_path / "work" / "hypotheses.jsonl").read_text().splitlines()]
    assert [h["id"] for h in hyps] == ["s0", "s1"] and all(h["whisper"] for h in hyps)


def test_run_with_peers_off_and_bad_manifest(tiny_bundle, manifest, tmp_path, keep_torch_threads):
    ctx = BenchContext(bundle=tiny_bundle, offline_bundle=None, corpus=tmp_path, work=tmp_path / "w",
                       cfg={"peers": [], "offline": False}, manifest=manifest, workers=1)
    out = A.run(ctx)
    assert out["whisper_wer_all"] is None and out["pocketsphinx"] == {"skipped": "off in bench.asr.peers"}
    assert out["wer_offline"] is None and out["wer_offline_baseline"] is None and out["offline_items"] == 0
    bad = tmp_path / "bad.jsonl"
    row = json.loads(manifest.read_text().splitlines()[0])
    row["audio"] = str(manifest.parent / row["audio"])
    bad.write_text(json.dumps({k: v for k, v in row.items() if k != "transcript"}) + "\n")
    with pytest.raises(ValueError, match="missing key 'transcript'"):
        A.manifest_items(bad)
    bad.write_text(json.dumps({**row, "turns": [{"start_s": 2.0, "end_s": 1.0}]}) + "\n")
    with pytest.raises(ValueError, match="start_s <= end_s"):
        A.manifest_items(bad)


def test_pocketsphinx_options_are_checked():
    from soundflow.bench.peers import PocketsphinxPeer

    with pytest.raises(ValueError, match="must be a mapping"):
        A.settings({"pocketsphinx_options": ["maxhmmpf"]})
    with pytest.raises(ValueError, match="unknown decoder setting"):
        PocketsphinxPeer(maxhmmpff=3000)
    assert int(PocketsphinxPeer(**A.DEFAULTS["pocketsphinx_options"]).decoder.config["maxhmmpf"]) == 3000
