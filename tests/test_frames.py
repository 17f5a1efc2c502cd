"""The frozen tower's frame cache (soundflow.train.frames): every train/dev item encoded whole, as the
streaming runtime encodes it, written atomically, with clear errors for bad audio and stale caches."""
from __future__ import annotations

import json
import re
import shutil
from types import SimpleNamespace

import polars as pl
import pytest
import torch

from soundflow import layout
from soundflow.audio import AudioError, read_audio
from soundflow.features import stream_logmel
from soundflow.models import WhisperTower
from soundflow.tokens import samples
from soundflow.train import frames as frame_cache
from tests.conftest import tiny_tower_config


@pytest.fixture(scope="module")
def tower():
    torch.manual_seed(0)
    return WhisperTower(tiny_tower_config(window_frames=200, carry_frames=60)).eval()  # 8 s windows: streams cross them


@pytest.fixture(scope="module")
def cache(smoke_corpus, tower, tmp_path_factory):
    corpus, _ = smoke_corpus
    out = tmp_path_factory.mktemp("frames") / "frames"
    stats = frame_cache.build(tower, corpus, out, "fp32")
    return out, stats


def test_every_item_is_cached_with_ten_frames_per_chunk(smoke_corpus, cache, tower):
    corpus, manifests = smoke_corpus
    out, stats = cache
    assert sorted(p.name for p in out.iterdir()) == ["dev.pt", "tower.json", "train.pt"]
    assert not [p for p in out.parent.iterdir() if ".tmp" in p.name]
    made_with = json.loads((out / "tower.json").read_text())
    assert made_with["tower_config"] == json.loads(json.dumps(tower.config.to_dict())) and made_with["precision"] == "fp32"
    for split in frame_cache.SPLITS:
        frames = frame_cache.load(out, split)
        manifest = manifests[split]
        assert set(frames) == set(manifest["id"]) and stats[split]["items"] == manifest.height
        chunks = 0
        for row in manifest.iter_rows(named=True):
            f = frames[row["id"]]
            assert f.dtype == torch.float16 and f.shape == (samples.n_chunks(row) * layout.FRAMES_PER_CHUNK, 32)
            chunks += samples.n_chunks(row)
        assert stats[split]["chunks"] == chunks and stats[split]["ms_per_chunk"] > 0


def test_cached_frames_equal_the_tower_on_each_whole_stream(smoke_corpus, cache, tower):
    """Batched, end-padded encoding changes nothing: each item's frames are the tower's forward on the
    chunk-by-chunk log-mel of its audio alone (the longest items span several windows)."""
    corpus, manifests = smoke_corpus
    frames = frame_cache.load(cache[0], "dev")
    rows = manifests["dev"].sort("duration_s")
    cfg = tower.config
    for row in [rows.row(0, named=True), rows.row(rows.height // 2, named=True), rows.row(-1, named=True)]:
        feats = stream_logmel(read_audio(corpus / row["audio"]), cfg.n_mels, cfg.mel_ceiling)
        with torch.no_grad():
            want, _ = tower(feats.unsqueeze(0))
        torch.testing.assert_close(frames[row["id"]].float(), want[0], atol=2e-3, rtol=2e-3)
    assert samples.n_chunks(rows.row(-1, named=True)) > tower.config.window_chunks


def test_sample_frames_are_the_windows_of_their_items(cache):
    frames = frame_cache.load(cache[0], "train")
    item = next(iter(frames))
    dataset = SimpleNamespace(index=pl.DataFrame({"item_id": [item, item], "chunk_start": [0, 2], "n_chunks": [2, 3]}))
    first, second = frame_cache.sample_frames(dataset, frames)
    assert torch.equal(first, frames[item][:20]) and torch.equal(second, frames[item][20:50])
    missing = SimpleNamespace(index=pl.DataFrame({"item_id": ["nope"], "chunk_start": [0], "n_chunks": [1]}))
    with pytest.raises(KeyError, match="no frames for item 'nope'"):
        frame_cache.sample_frames(missing, frames)


def test_stale_or_missing_caches_are_named(cache, tower, tmp_path):
    out, _ = cache
    frame_cache.check_tower(out, tower)
    other_settings = WhisperTower(tiny_tower_config(window_frames=200, carry_frames=0, mel_ceiling=2.0))
    other_settings.load_state_dict(tower.state_dict())
    with pytest.raises(ValueError, match=r"another tower \(carry_frames, mel_ceiling\); rebuild"):
        frame_cache.check_tower(out, other_settings)
    torch.manual_seed(1)  # same settings, other weights
    with pytest.raises(ValueError, match=r"another tower \(weights\); rebuild"):
        frame_cache.check_tower(out, WhisperTower(tiny_tower_config(window_frames=200, carry_frames=60)))
    same = WhisperTower(tower.config)
    same.load_state_dict(tower.state_dict())
    frame_cache.check_tower(out, same.to(torch.bfloat16))  # the same weights held in bf16 (a GPU stage)
    with pytest.raises(FileNotFoundError, match=re.escape(str(tmp_path / "train.pt"))):
        frame_cache.load(tmp_path, "train")


def corpus_copy(corpus, folder):
    """Manifests copied (to be changed), the audio folder linked."""
    folder.mkdir()
    for split in ("train", "dev", "test"):
        shutil.copy(corpus / f"{split}.parquet", folder / f"{split}.parquet")
    (folder / "audio").symlink_to(corpus / "audio")
    return folder


def test_audio_that_disagrees_with_its_duration_names_the_file_and_leaves_the_cache(smoke_corpus, tower, tmp_path):
    corpus, _ = smoke_corpus
    bad = corpus_copy(corpus, tmp_path / "corpus")
    dev = pl.read_parquet(bad / "dev.parquet")
    row = dev.row(0, named=True)
    dev.with_columns(pl.when(pl.col("id") == row["id"]).then(pl.col("duration_s") + 0.4)
                     .otherwise(pl.col("duration_s")).alias("duration_s")).write_parquet(bad / "dev.parquet")
    out = tmp_path / "frames"
    out.mkdir()
    (out / "train.pt").write_text("an earlier cache")
    with pytest.raises(AudioError, match=re.escape(str(bad / row["audio"])) + r": \d+ samples, the manifest's "
                       rf"duration_s {row['duration_s'] + 0.4}"):
        frame_cache.build(tower, bad, out, "fp32")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["corpus", "frames"]  # no temp folder left
    assert (out / "train.pt").read_text() == "an earlier cache"  # the earlier output untouched
    (bad / "dev.parquet").unlink()
    with pytest.raises(FileNotFoundError, match=re.escape(str(bad / "dev.parquet"))):
        frame_cache.build(tower, bad, out, "fp32")
    assert (out / "train.pt").read_text() == "an earlier cache"


def test_encode_cli_caches_the_imported_tower_as_init_builds_it(smoke_corpus, tmp_path, monkeypatch):
    """`python -m soundflow.train encode --tower DIR --tower-cfg JSON` encodes the imported tower alone, the same
    frames as `--model` (the init model built around that tower), and logs an MLflow run; a stage's model with
    this tower passes the cache's check."""
    from soundflow.train import stages
    from soundflow.train.__main__ import main
    from tests.conftest import save_tiny_whisper
    from tests.test_train import MODEL_CFG, TOWER, tokens_folder

    corpus, _ = smoke_corpus
    small = corpus_copy(corpus, tmp_path / "corpus")
    for split in ("train", "dev"):  # two items per split keep it quick
        pl.read_parquet(small / f"{split}.parquet").head(2).write_parquet(small / f"{split}.parquet")
    torch.manual_seed(1)
    save_tiny_whisper(tmp_path / "whisper")
    tower_cfg = {**TOWER, "pretrained": "x", "sizes": None}
    model = stages.build_model({**MODEL_CFG, "tower": tower_cfg}, tokens_folder(tmp_path), tmp_path / "whisper")
    model.save_pretrained(tmp_path / "model")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    monkeypatch.delenv("SOUNDFLOW_PARENT_RUN_ID", raising=False)
    common = ["--corpus", str(small), "--precision", "fp32"]
    assert main(["encode", "--tower", str(tmp_path / "whisper"), "--tower-cfg", json.dumps(tower_cfg), *common,
                 "--out", str(tmp_path / "frames")]) == 0
    assert main(["encode", "--model", str(tmp_path / "model"), *common, "--out", str(tmp_path / "via-model")]) == 0
    for split in frame_cache.SPLITS:
        alone, via_model = frame_cache.load(tmp_path / "frames", split), frame_cache.load(tmp_path / "via-model", split)
        assert alone.keys() == via_model.keys() and all(torch.equal(alone[k], via_model[k]) for k in alone)
    frame_cache.check_tower(tmp_path / "frames", model.encoder)
    with pytest.raises(SystemExit, match="--tower needs --tower-cfg"):
        main(["encode", "--tower", str(tmp_path / "whisper"), *common, "--out", str(tmp_path / "x")])
