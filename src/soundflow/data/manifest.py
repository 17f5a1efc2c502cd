"""Corpus manifests: one Parquet file per split, one row per item (polars)."""
from __future__ import annotations

import os
from pathlib import Path

import polars as pl

from soundflow.audio import atomic_path

TURN = pl.Struct({
    "index": pl.Int32, "start_s": pl.Float64, "end_s": pl.Float64, "kind": pl.Utf8, "mixin": pl.Utf8,
    "pieces": pl.Utf8, "reply": pl.Utf8, "emotion": pl.Utf8, "meta": pl.Utf8,
})
TIMELINE_ENTRY = pl.Struct({
    "chunk": pl.Int32, "t_s": pl.Float64, "end_s": pl.Float64, "action": pl.Utf8, "text": pl.Utf8,
    "emotion": pl.Utf8, "lang": pl.Utf8, "turn": pl.Int32, "kind": pl.Utf8,
})
SCHEMA = pl.Schema({
    "id": pl.Utf8,
    "ability": pl.Utf8,
    "sub_task": pl.Utf8,
    "split": pl.Utf8,
    "mode": pl.Utf8,  # online (streaming) | offline
    "voices": pl.List(pl.Utf8),
    "condition": pl.Utf8,  # seen_voice | heldout_voice | unseen_engine (of the item's main voice)
    "seed": pl.UInt64,
    "audio": pl.Utf8,  # path relative to the corpus folder
    "duration_s": pl.Float64,
    "instruction": pl.Utf8,
    "lang": pl.Utf8,
    "noise": pl.Utf8,  # clean | noisy
    "snr_db": pl.Float64,
    "reverb": pl.Boolean,
    "mixins": pl.List(pl.Utf8),
    "turns": pl.List(TURN),
    "timeline": pl.List(TIMELINE_ENTRY),
    "references": pl.Utf8,  # JSON: the sub-task's references (transcripts, targets, answers, events...)
})


class ManifestError(ValueError):
    pass


def to_frame(rows: list[dict]) -> pl.DataFrame:
    return pl.DataFrame(rows, schema=SCHEMA, orient="row" if rows and not isinstance(rows[0], dict) else None)


def write(frame: pl.DataFrame, path: Path, metadata: dict[str, str] | None = None) -> None:
    """Write atomically: a temp sibling, then rename, so no half-written manifest is ever seen.

    `metadata` goes into the Parquet footer's key-value store (shard manifests say where they came from).
    """
    tmp = atomic_path(path)
    try:
        frame.write_parquet(tmp, statistics=False, metadata=metadata)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def read(path: Path) -> pl.DataFrame:
    path = Path(path)
    if not path.is_file():
        raise ManifestError(f"manifest not found: {path}")
    frame = pl.read_parquet(path)
    missing = [c for c in SCHEMA.names() if c not in frame.columns]
    if missing:
        raise ManifestError(f"manifest {path} lacks columns: {', '.join(missing)}")
    return frame


def read_metadata(path: Path) -> dict[str, str]:
    """The key-value metadata of a manifest's Parquet footer (empty for split manifests)."""
    path = Path(path)
    if not path.is_file():
        raise ManifestError(f"manifest not found: {path}")
    try:
        return pl.read_parquet_metadata(path)
    except (pl.exceptions.ComputeError, OSError) as err:
        raise ManifestError(f"{path} is not a Parquet manifest: {err}") from err
