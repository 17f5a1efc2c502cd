"""The corpus stage end to end at smoke size: manifests, audio, splits, determinism, resume, bad sources."""
import json
import os
import shutil

import numpy as np
import polars as pl
import pytest
import soundfile as sf

from soundflow.data import manifest, tts
from soundflow.data.build import build
from soundflow.data.tasks import SUB_TASKS
from tests.conftest import smoke_data_cfg, tree_digest


def test_manifests_have_every_subtask_and_the_schema(smoke_corpus):
    out, frames = smoke_corpus
    for split, frame in frames.items():
        on_disk = manifest.read(out / f"{split}.parquet")
        assert on_disk.schema == manifest.SCHEMA
        assert on_disk.equals(frame)
        online = frame.filter(pl.col("mode") == "online")
        assert set(online["sub_task"]) == set(SUB_TASKS), split
        assert frame["id"].is_unique().all()
        assert (frame["split"] == split).all()
    assert set(frames["train"].filter(pl.col("mode") == "offline")["sub_task"]) == set(SUB_TASKS)


def test_audio_matches_manifest(smoke_corpus):
    out, frames = smoke_corpus
    for row in frames["dev"].iter_rows(named=True):
        info = sf.info(out / row["audio"])
        assert info.samplerate == 16000 and info.channels == 1
        assert info.frames / 16000 == pytest.approx(row["duration_s"], abs=1e-3)
        assert info.frames % 6400 == 0  # whole 400 ms chunks
        last = max(e["chunk"] for e in row["timeline"])
        assert (last + 1) * 0.4 <= row["duration_s"] + 1e-6


def test_conditions_and_voice_split(smoke_corpus):
    _, frames = smoke_corpus
    assert set(frames["train"]["condition"]) == {"seen_voice"}
    held = pl.concat([frames["dev"], frames["test"]])
    assert set(held["condition"]) == {"heldout_voice", "unseen_engine"}
    train_voices = set(frames["train"]["voices"].explode().drop_nulls())
    held_voices = set(held["voices"].explode().drop_nulls())
    assert not train_voices & held_voices
    engines = {v.split(":")[0] for v in train_voices}
    assert {"espeak", "flite", "festival", "piper"} <= engines


def test_timelines_and_references(smoke_corpus):
    _, frames = smoke_corpus
    for row in frames["test"].iter_rows(named=True):
        chunks = [e["chunk"] for e in row["timeline"] if e["action"] == "respond"]
        assert chunks and len(chunks) == len(set(chunks)), row["id"]
        assert all(e["turn"] < len(row["turns"]) for e in row["timeline"])
        json.loads(row["references"])
    asr = frames["test"].filter(pl.col("sub_task") == "asr_clean").row(0, named=True)
    words = " ".join(e["text"] for e in asr["timeline"] if e["kind"] == "asr")
    assert words == " ".join(json.loads(asr["references"])["transcripts"])


def test_interrupted_build_continues_and_gives_the_same_bytes(smoke_corpus, tmp_path):
    """Copy a finished build, delete some clips and streams, leave a stray temp file: rebuild equals it."""
    out, _ = smoke_corpus
    again = tmp_path / "corpus"
    shutil.copytree(out, again)
    clips = sorted((again / "clips").rglob("*.wav"))
    streams = sorted((again / "audio").rglob("*.wav"))
    for path in clips[::7] + streams[::5]:
        path.unlink()
    for name in ("train.parquet", "dev.parquet"):
        (again / name).unlink()
    stray = streams[1].with_name(".half-written.tmp.wav")
    stray.write_bytes(b"RIFF")
    build(smoke_data_cfg(), again, workers=1, progress=False)
    assert tree_digest(again) == tree_digest(out)
    assert not stray.exists()


def test_missing_tts_engine_fails_with_one_message(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(tts.EngineMissing, match="apt-get install"):
        build(smoke_data_cfg(), tmp_path / "corpus", workers=1, progress=False)
    assert not (tmp_path / "corpus" / "train.parquet").exists()


def test_noisy_streams_carry_a_noise_track(smoke_corpus):
    """Noisy streams carry a noise track: the quietest stretches are well above digital silence."""
    out, frames = smoke_corpus
    noisy = frames["dev"].filter(pl.col("noise") == "noisy")
    assert noisy.height > 0
    snr = noisy["snr_db"].to_numpy()
    assert ((snr >= 5.0) & (snr <= 20.0)).all()
    audio, _ = sf.read(out / noisy["audio"][0])
    frames_rms = np.sqrt(np.mean(audio[: len(audio) // 160 * 160].reshape(-1, 160) ** 2, axis=1))
    assert np.percentile(frames_rms, 5) > 1e-4


def test_sharded_build_gives_exactly_the_items_of_the_unsharded_one(smoke_corpus, tmp_path, monkeypatch):
    """Three shard jobs (the CLI the rule corpus_shard runs), merged: the same manifests and streams, byte
    for byte, as the one-job build; a missing or foreign shard stops the merge with one message."""
    from soundflow.data.__main__ import main as data_cli

    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path}/mlflow.db")  # not the project's store
    out, _ = smoke_corpus
    sharded = tmp_path / "corpus"
    shutil.copytree(out / "clips", sharded / "clips")  # the TTS cache (deterministic): only the items are at stake
    cfg = dict(smoke_data_cfg(), shards=3)
    args = ["--cfg", json.dumps(cfg), "--out", str(sharded)]
    shards = [tmp_path / f"shards/{i}-of-3.parquet" for i in range(3)]
    for i, path in enumerate(shards):
        assert data_cli(["shard", *args, "--index", str(i), "--count", "3", "--manifest", str(path),
                         "--workers", "1"]) == 0
    sizes = [manifest.read(p).height for p in shards]
    assert max(sizes) - min(sizes) <= 1  # every third item: balanced
    assert data_cli(["merge", *args, "--report-dir", str(tmp_path / "report"), *map(str, shards)]) == 0
    assert tree_digest(sharded) == tree_digest(out)

    assert data_cli(["merge", *args, "--report-dir", str(tmp_path / "report"), *map(str, shards[:2])]) == 2
    other = json.dumps(dict(cfg, seed=cfg["seed"] + 1))
    assert data_cli(["merge", "--cfg", other, "--out", str(sharded), "--report-dir", str(tmp_path / "report"),
                     *map(str, shards)]) == 2
