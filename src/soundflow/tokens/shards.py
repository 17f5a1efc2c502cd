"""The tokens stage: corpus manifests -> tokenizer and per-split sample shards (text only: the audio's
frames come from the tower's frame cache, soundflow.train.frames, by item id and chunk).

Output folder:
    tokenizer/               transformers PreTrainedTokenizerFast (save_pretrained)
    stats.json               items, samples, tokens, hours and shards per split
    {split}/shard-00000.pt   torch.save'd list of sample records (see `record`)
    {split}/index.parquet    one row per sample: shard, position, item_id, sub_task, mode, ...
    {split}/ctc.pt           English speech segments: item, tower-frame span, character target (CTC head)
Everything is written to a temp folder next to `out` and renamed at the end.
"""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import polars as pl
import torch
from tqdm import tqdm

from soundflow import layout
from soundflow.data import manifest
from soundflow.tokens import ctc, samples, tokenizer

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


def record(sample: samples.Sample, row: dict) -> dict:
    """What a shard stores per sample: compact tensors plus the item's identity and its chunk span."""
    return {
        "input_ids": torch.tensor(sample.input_ids, dtype=torch.int32),
        "labels": torch.tensor(sample.labels, dtype=torch.int32),
        "label_kind": torch.tensor(sample.label_kind, dtype=torch.int8),
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


def _write_split(frame: pl.DataFrame, tok, cfg: dict, folder: Path) -> dict:
    writer = ShardWriter(folder, cfg["shard_size"])
    speech = []
    for row in tqdm(frame.iter_rows(named=True), total=frame.height, desc=f"tokens {folder.name}", unit="item"):
        for sample in samples.build_samples(row, tok, cfg["max_chunks"]):
            writer.add(record(sample, row))
        if row["mode"] == "online":
            speech += ctc.segments(row, samples.n_chunks(row) * layout.FRAMES_PER_CHUNK)
    index = writer.close()
    torch.save(speech, folder / "ctc.pt")  # English speech segments for the CTC head
    return {
        "ctc_segments": len(speech),
        "ctc_hours": sum(s["end"] - s["start"] for s in speech) * ctc.FRAME_S / 3600,
        "items": frame.height,
        "samples": index.height,
        "tokens": int(index["n_tokens"].sum() or 0),
        "hours": float(frame["duration_s"].sum() or 0.0) / 3600,
        "shards": writer.shards,
    }


def build(cfg: dict, corpus: Path, out: Path, pretrained_tokenizer: Path | None = None) -> dict:
    """Run the whole stage; returns the stats also written to out/stats.json. With `pretrained_tokenizer` (a
    pretrained thinker's folder, rule thinker) its tokenizer is used as it is and no BPE is trained."""
    check_cfg(cfg)
    corpus, out = Path(corpus), Path(out)
    frames = read_manifests(corpus)
    tmp = out.with_name(f".{out.name}.tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        if pretrained_tokenizer is None:
            tok = tokenizer.train_tokenizer(tokenizer.corpus_texts(frames["train"]), cfg["vocab_size"])
        else:
            tok = tokenizer.load(pretrained_tokenizer)
        tok.save_pretrained(str(tmp / "tokenizer"))
        stats: dict = {split: _write_split(frames[split], tok, cfg, tmp / split) for split in SPLITS}
        stats["vocab_size"] = len(tok)
        (tmp / "stats.json").write_text(json.dumps(stats, indent=2) + "\n")
        if out.exists():
            shutil.rmtree(out)
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return stats
