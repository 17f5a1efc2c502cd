"""AudioSet (10-s YouTube segments, 527 labels): hand-written, lhotse has no AudioSet recipe.

AudioSet ships label tables, not audio; a local copy is those tables plus the segments someone
downloaded. Layout: `<root>/class_labels_indices.csv` (index, mid, display_name), any of
`<root>/{balanced_train,unbalanced_train,eval}_segments.csv` (three '#' header lines, then
`YTID, start_seconds, end_seconds, "mid,mid,..."`), and the downloaded segments anywhere under
`<root>/audio/`, named by YouTube id as the common downloaders do: `Y<YTID>.wav`, `<YTID>.wav`, or
`[Y]<YTID>_<start>[_<end>].<ext>`. Segments with no local file are skipped and counted (videos
vanish from YouTube; every copy misses some); none at all is an error. Splits: both train tables ->
train; eval -> dev or test by a hash of the YouTube id (AudioSet has no dev split).
"""
from __future__ import annotations

import re
import sys
from pathlib import Path

import polars as pl

from soundflow.data.corpora.labels import event_for_mids
from soundflow.data.corpora.schema import Clip, CorpusError, hash_split, need_columns, need_dir, need_file, recording

SOURCE, KIND = "audioset", "event"
TABLES = {"balanced_train": "train", "unbalanced_train": "train", "eval": None}
AUDIO_EXT = (".wav", ".flac", ".mp3", ".ogg", ".opus", ".m4a")


def _audio_index(audio_dir: Path) -> dict[str, Path]:
    """YouTube id -> file, from the file names the downloaders write."""
    index = {}
    for path in sorted(audio_dir.rglob("*")):
        if path.suffix.lower() not in AUDIO_EXT:
            continue
        bare = re.sub(r"_\d+(\.\d+)?(_\d+(\.\d+)?)?$", "", path.stem)  # <YTID>_<start>[_<end>]
        for stem in dict.fromkeys((path.stem, bare)):  # ids may themselves end in _<digits>
            index.setdefault(stem, path)
            if stem.startswith("Y"):
                index.setdefault(stem[1:], path)
    return index


def _segments(path: Path) -> list[tuple[int, str, list[str]]]:
    """(line number, YTID, label ids) of a segments table. Its quoted label field follows ", ", which
    CSV readers do not take as quoted, so the lines are split by hand: three commas, then the labels."""
    out = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip() or line.startswith("#"):
            continue
        fields = line.split(",", 3)
        if len(fields) != 4:
            raise CorpusError(f"{SOURCE}: {path}: line {n}: expected 'YTID, start_seconds, end_seconds, \"labels\"'")
        labels = fields[3].strip().strip('"')
        out.append((n, fields[0].strip(), [m.strip() for m in labels.split(",") if m.strip()]))
    return out


def clips(root: Path, work_dir: Path) -> list[Clip]:
    root = need_dir(Path(root), SOURCE, "corpus folder")
    names_csv = need_file(root / "class_labels_indices.csv", SOURCE, "label table")
    names = pl.read_csv(names_csv, infer_schema=False)
    need_columns(names, ("mid", "display_name"), names_csv, SOURCE)
    display = dict(zip(names["mid"], names["display_name"]))
    tables = [(root / f"{t}_segments.csv", split) for t, split in TABLES.items() if (root / f"{t}_segments.csv").is_file()]
    if not tables:
        raise CorpusError(f"{SOURCE}: {root} has none of {', '.join(t + '_segments.csv' for t in TABLES)}")
    index = _audio_index(need_dir(root / "audio", SOURCE, "audio folder"))
    out, missing, seen = [], 0, set()
    for table, split in tables:
        for n, ytid, mids in _segments(table):
            unknown = [m for m in mids if m not in display]
            if unknown:
                raise CorpusError(f"{SOURCE}: {table}: line {n}: label {unknown[0]!r} is not in {names_csv.name}")
            if ytid not in index:
                missing += 1
                continue
            if ytid in seen:  # a segment listed in two tables is one clip
                continue
            seen.add(ytid)
            audio = index[ytid]
            out.append(Clip(recording(audio, SOURCE, recording_id=ytid), split or hash_split(ytid, 0.5, 0.5),
                            id=ytid, labels=[display[m] for m in mids], event=event_for_mids(mids)))
    if not out:
        raise CorpusError(f"{SOURCE}: no segment of the tables has an audio file under {root / 'audio'} "
                          "(expected Y<YTID>.wav, <YTID>.wav or <YTID>_<start>.wav)")
    if missing:
        print(f"{SOURCE}: {missing} listed segments have no local audio file (skipped)", file=sys.stderr)
    return out
