"""ESC-50 (5-s environmental sound clips, 50 classes): hand-written, lhotse has no ESC-50 recipe.

Layout (github.com/karolpiczak/ESC-50): `<root>/meta/esc50.csv` with columns filename, fold, target,
category, esc10, src_file, take, and `<root>/audio/<filename>` (44.1 kHz WAV). Split by the five
official folds: 1-3 train, 4 dev, 5 test (folds keep clips cut from one source recording together).
"""
from __future__ import annotations

from pathlib import Path

import polars as pl

from soundflow.data.corpora.labels import ESC50_EVENTS
from soundflow.data.corpora.schema import Clip, CorpusError, need_columns, need_dir, need_file, recording

SOURCE, KIND = "esc50", "event"
FOLD_SPLIT = {1: "train", 2: "train", 3: "train", 4: "dev", 5: "test"}


def clips(root: Path, work_dir: Path) -> list[Clip]:
    root = need_dir(Path(root), SOURCE, "corpus folder")
    meta = need_file(root / "meta" / "esc50.csv", SOURCE, "metadata table")
    try:
        df = pl.read_csv(meta, infer_schema=False)
    except Exception as exc:  # polars raises several error types for malformed files
        raise CorpusError(f"{SOURCE}: cannot read {meta} as CSV: {exc}") from None
    need_columns(df, ("filename", "fold", "category"), meta, SOURCE)
    out = []
    for n, row in enumerate(df.iter_rows(named=True), 2):
        fold = int(row["fold"]) if str(row["fold"]).isdigit() else None
        if fold not in FOLD_SPLIT:
            raise CorpusError(f"{SOURCE}: {meta}:{n}: fold {row['fold']!r} is not 1-5")
        audio = root / "audio" / row["filename"]
        if not audio.is_file():
            raise CorpusError(f"{SOURCE}: {meta}:{n}: no audio file {audio}")
        out.append(Clip(recording(audio, SOURCE, recording_id=audio.stem), FOLD_SPLIT[fold], id=audio.stem,
                        labels=[row["category"]], event=ESC50_EVENTS.get(row["category"])))
    return out
