"""FSD50K (Freesound clips with AudioSet-ontology labels): hand-written, lhotse has no FSD50K recipe.

Layout (zenodo.org/record/4060432, extracted): `<root>/FSD50K.ground_truth/dev.csv` (fname, labels,
mids, split with train/val) and `eval.csv` (fname, labels, mids); audio in `<root>/FSD50K.dev_audio/`
and `<root>/FSD50K.eval_audio/` as `<fname>.wav`. Labels and mids are comma-separated lists (with the
ontology ancestors). Splits: dev's train -> train, val -> dev, eval -> test.
"""
from __future__ import annotations

from pathlib import Path

import polars as pl

from soundflow.data.corpora.labels import event_for_mids
from soundflow.data.corpora.schema import Clip, CorpusError, need_columns, need_dir, need_file, recording

SOURCE, KIND = "fsd50k", "event"
_PARTS = (("dev", "FSD50K.dev_audio"), ("eval", "FSD50K.eval_audio"))
_SPLIT = {"train": "train", "val": "dev"}


def clips(root: Path, work_dir: Path) -> list[Clip]:
    root = need_dir(Path(root), SOURCE, "corpus folder")
    out = []
    for part, audio_dir in _PARTS:
        table = need_file(root / "FSD50K.ground_truth" / f"{part}.csv", SOURCE, "ground-truth table")
        audio_dir = need_dir(root / audio_dir, SOURCE, "audio folder")
        try:
            df = pl.read_csv(table, infer_schema=False)
        except Exception as exc:  # polars raises several error types for malformed files
            raise CorpusError(f"{SOURCE}: cannot read {table} as CSV: {exc}") from None
        need_columns(df, ("fname", "labels", "mids") + (("split",) if part == "dev" else ()), table, SOURCE)
        for n, row in enumerate(df.iter_rows(named=True), 2):
            split = "test" if part == "eval" else _SPLIT.get(row["split"])
            if split is None:
                raise CorpusError(f"{SOURCE}: {table}:{n}: split {row['split']!r} is not train or val")
            audio = audio_dir / f"{row['fname']}.wav"
            if not audio.is_file():
                raise CorpusError(f"{SOURCE}: {table}:{n}: no audio file {audio}")
            mids = [m for m in row["mids"].split(",") if m]
            out.append(Clip(recording(audio, SOURCE, recording_id=f"{part}-{row['fname']}"), split,
                            id=f"{part}-{row['fname']}", labels=[s for s in row["labels"].split(",") if s],
                            event=event_for_mids(mids)))
    return out
