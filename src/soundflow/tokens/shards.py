"""The tokens stage: corpus manifests + audio -> tokenizer, CMVN and per-split sample shards.

Output folder:
    tokenizer/               transformers PreTrainedTokenizerFast (save_pretrained)
    cmvn.json                global log-mel mean/std of the train split
    stats.json               items, samples, tokens, hours and shards per split
    {split}/shard-00000.pt   torch.save'd list of sample records (see `record`)
    {split}/index.parquet    one row per sample: shard, position, item_id, sub_task, mode, ...
    {split}/ctc.pt           English speech segments + character targets (encoder CTC warm-up)
Everything is written to a temp folder next to `out` and renamed at the end.
"""
from __future__ import annotations

import json
import multiprocessing
import os
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import polars as pl
import torch
from tqdm import tqdm

from soundflow import layout
from soundflow.data import manifest
from soundflow.tokens import ctc, features, samples, tokenizer

SPLITS = ("train", "dev", "test")
CFG_KEYS = ("vocab_size", "max_chunks", "shard_size")
INDEX_SCHEMA = pl.Schema({
    "shard": pl.Utf8, "position": pl.Int32, "item_id": pl.Utf8, "sub_task": pl.Utf8, "mode": pl.Utf8,
    "condition": pl.Utf8, "chunk_start": pl.Int32, "n_chunks": pl.Int32, "n_tokens": pl.Int32,
})


class TokensError(ValueError):
    """Bad input to the tokens stage; the message names the file or key."""


def check_cfg(cfg: dict) -> dict:
    unknown = sorted(set(cfg) - set(CFG_KEYS))
    if unknown:
        raise TokensError(f"tokens cfg: unknown key '{unknown[0]}' (known: {', '.join(CFG_KEYS)})")
    for key in CFG_KEYS:
        if key not in cfg:
            raise TokensError(f"tokens cfg: missing key '{key}'")
        if isinstance(cfg[key], bool) or not isinstance(cfg[key], int) or cfg[key] < 1:
            raise TokensError(f"tokens cfg: '{key}' must be a positive integer, got {cfg[key]!r}")
    return cfg


def read_manifests(corpus: Path) -> dict[str, pl.DataFrame]:
    paths = {split: Path(corpus) / f"{split}.parquet" for split in SPLITS}
    for path in paths.values():  # fail before any work on a missing file
        if not path.is_file():
            raise TokensError(f"corpus manifest not found: {path}")
    return {split: manifest.read(path) for split, path in paths.items()}


@contextmanager
def feature_map(workers: int) -> Iterator[Callable[[list[Path]], Iterator[torch.Tensor]]]:
    """A function paths -> raw fp16 features in order, from a pool of `workers` processes if workers > 1.

    Torch runs one thread per process here: its intra-op threads only fight over the few cores
    for these small per-chunk transforms (measured 16x slower on a busy 2-core machine).
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        if workers <= 1:
            yield lambda paths: map(features.file_features, paths)
            return
        # spawn: a forked child of a process whose torch/tokenizers threads are running can deadlock.
        with multiprocessing.get_context("spawn").Pool(workers, initializer=torch.set_num_threads,
                                                       initargs=(1,)) as pool:
            yield lambda paths: pool.imap(features.file_features, paths, chunksize=2)
    finally:
        torch.set_num_threads(threads)


def record(sample: samples.Sample, row: dict, feats: torch.Tensor) -> dict:
    """What a shard stores per sample: compact tensors plus the item's identity."""
    frames = slice(sample.chunk_start * features.FEATURE_FRAMES_PER_CHUNK,
                   (sample.chunk_start + sample.n_chunks) * features.FEATURE_FRAMES_PER_CHUNK)
    return {
        "input_ids": torch.tensor(sample.input_ids, dtype=torch.int32),
        "labels": torch.tensor(sample.labels, dtype=torch.int32),
        "label_kind": torch.tensor(sample.label_kind, dtype=torch.int8),
        "features": feats[frames].half().contiguous(),
        "item_id": row["id"], "sub_task": row["sub_task"], "condition": row["condition"], "mode": row["mode"],
        "chunk_start": sample.chunk_start, "n_chunks": sample.n_chunks,
    }


class ShardWriter:
    """Collects records and writes `shard-NNNNN.pt` files of `shard_size` records; keeps the index."""

    def __init__(self, folder: Path, shard_size: int):
        self.folder, self.shard_size = folder, shard_size
        self.folder.mkdir(parents=True, exist_ok=True)
        self.pending: list[dict] = []
        self.index: list[dict] = []
        self.shards = 0

    def add(self, rec: dict) -> None:
        name = f"shard-{self.shards:05d}.pt"
        self.index.append({
            "shard": name, "position": len(self.pending), "item_id": rec["item_id"], "sub_task": rec["sub_task"],
            "mode": rec["mode"], "condition": rec["condition"], "chunk_start": rec["chunk_start"],
            "n_chunks": rec["n_chunks"], "n_tokens": len(rec["input_ids"]),
        })
        self.pending.append(rec)
        if len(self.pending) == self.shard_size:
            self.flush()

    def flush(self) -> None:
        if self.pending:
            torch.save(self.pending, self.folder / f"shard-{self.shards:05d}.pt")
            self.pending, self.shards = [], self.shards + 1

    def close(self) -> pl.DataFrame:
        self.flush()
        frame = pl.DataFrame(self.index, schema=INDEX_SCHEMA)
        frame.write_parquet(self.folder / "index.parquet")
        return frame


def _write_split(frame: pl.DataFrame, feats: list[torch.Tensor], tok, cmvn: features.Cmvn,
                 cfg: dict, folder: Path) -> dict:
    writer = ShardWriter(folder, cfg["shard_size"])
    speech = []
    for row, raw in zip(frame.iter_rows(named=True), feats):
        if raw.shape[0] != samples.n_chunks(row) * features.FEATURE_FRAMES_PER_CHUNK:
            raise TokensError(f"{row['audio']}: audio length does not match duration_s {row['duration_s']}")
        normed = cmvn.apply(raw)
        for sample in samples.build_samples(row, tok, cfg["max_chunks"]):
            writer.add(record(sample, row, normed))
        if row["mode"] == "online":
            speech += ctc.segments(row, normed)
    index = writer.close()
    torch.save(speech, folder / "ctc.pt")  # English speech segments for the encoder's CTC warm-up
    return {
        "ctc_segments": len(speech),
        "ctc_hours": sum(s["features"].shape[0] for s in speech) / 100 / 3600,
        "items": frame.height,
        "samples": index.height,
        "tokens": int(index["n_tokens"].sum() or 0),
        "hours": float(frame["duration_s"].sum() or 0.0) / 3600,
        "shards": writer.shards,
    }


def build(cfg: dict, corpus: Path, out: Path, workers: int = 2, progress: bool = True) -> dict:
    """Run the whole stage; returns the stats also written to out/stats.json."""
    check_cfg(cfg)
    corpus, out = Path(corpus), Path(out)
    frames = read_manifests(corpus)
    tmp = out.with_name(f".{out.name}.tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        stats: dict = {}
        cmvn = None
        tok = None
        with feature_map(workers) as fmap:
            for split in SPLITS:  # train first: its features give the CMVN applied to every split
                paths = [corpus / a for a in frames[split]["audio"]]
                feats = list(tqdm(fmap(paths), total=len(paths), desc=f"fbank {split}", unit="item",
                                  disable=not progress))
                if split == "train":
                    cmvn = _train_cmvn(feats)
                    cmvn.save(tmp / "cmvn.json")
                    tok = tokenizer.train_tokenizer(tokenizer.corpus_texts(frames["train"]), cfg["vocab_size"])
                    tok.save_pretrained(str(tmp / "tokenizer"))
                stats[split] = _write_split(frames[split], feats, tok, cmvn, cfg, tmp / split)
                del feats
        stats["vocab_size"] = len(tok)
        (tmp / "stats.json").write_text(json.dumps(stats, indent=2) + "\n")
        if out.exists():
            shutil.rmtree(out)
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return stats


def _train_cmvn(feats: list[torch.Tensor]) -> features.Cmvn:
    total = np.zeros(layout.N_MELS)
    total_sq = np.zeros(layout.N_MELS)
    frames = 0
    for f in feats:
        s, sq, n = features.sums(f)
        total, total_sq, frames = total + s, total_sq + sq, frames + n
    return features.Cmvn.from_sums(total, total_sq, frames)
