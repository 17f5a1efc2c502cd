"""The common clip-source schema every importer writes, as a polars table and a lhotse CutSet.

One row per clip: where its audio is (`audio`, `offset_s`, `duration_s`), which split it belongs to,
and what it is: speech with its transcript (`text`, `lang`), a translation where the corpus has one
(`translation`, `translation_lang`) and its `speaker`; an event with its original `labels` and the
project event type they map to (`event`, soundflow.data.corpora.labels); or noise (`labels` = the
corpus part). Importers build lhotse Recordings (the library reads every header: duration, sample
rate, channels) and hand them here as `Clip`s; `build` turns them into the table and the CutSet.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import polars as pl
import soundfile as sf

from soundflow import SAMPLE_RATE
from soundflow.audio import resample

KINDS = ("speech", "event", "noise")
SPLITS = ("train", "dev", "test")
COLUMNS: dict[str, pl.DataType] = {
    "source": pl.Utf8,
    "id": pl.Utf8,
    "kind": pl.Utf8,
    "split": pl.Utf8,
    "audio": pl.Utf8,  # absolute path of the recording
    "offset_s": pl.Float64,
    "duration_s": pl.Float64,
    "sample_rate": pl.Int64,
    "text": pl.Utf8,  # transcript ("" for events and noise)
    "lang": pl.Utf8,  # ISO code of the speech ("en", "zh"); "" for events and noise
    "translation": pl.Utf8,  # null where the corpus has none
    "translation_lang": pl.Utf8,
    "speaker": pl.Utf8,
    "labels": pl.List(pl.Utf8),  # original labels of events, corpus part of noise
    "event": pl.Utf8,  # project event type (soundflow.data.events.EVENT_TYPES) or null
}


class CorpusError(ValueError):
    """A local corpus copy is not in its original layout, or a source table is malformed; the message names the file or key."""


@dataclass
class Clip:
    recording: object  # lhotse.Recording
    split: str
    id: str = ""
    text: str = ""
    lang: str = ""
    translation: str | None = None
    translation_lang: str | None = None
    speaker: str | None = None
    labels: list[str] = field(default_factory=list)
    event: str | None = None
    offset_s: float = 0.0
    duration_s: float | None = None  # None: the whole recording


def lang_code(name: str) -> str:
    """lhotse / Common Voice language names -> the project's codes ("English" -> "en", "zh-CN" -> "zh")."""
    aliases = {"english": "en", "chinese": "zh", "mandarin": "zh"}
    low = name.strip().lower()
    return aliases.get(low, low.split("-")[0])


def hash_split(key: str, dev_share: float = 0.1, test_share: float = 0.1) -> str:
    """A stable split for corpora without one (MUSAN, AudioSet eval): by md5 of the clip id."""
    b = int(hashlib.md5(key.encode()).hexdigest(), 16) % 1000 / 1000
    return "test" if b < test_share else "dev" if b < test_share + dev_share else "train"


def need_file(path: Path, source: str, what: str) -> Path:
    if not path.is_file():
        raise CorpusError(f"{source}: missing {what}: {path}")
    return path


def need_dir(path: Path, source: str, what: str) -> Path:
    if not path.is_dir():
        raise CorpusError(f"{source}: missing {what}: {path}")
    return path


def need_columns(df: pl.DataFrame, columns, path: Path, source: str) -> None:
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise CorpusError(f"{source}: {path} has no column '{missing[0]}' (columns: {', '.join(df.columns)})")


def read_tsv(path: Path, source: str) -> pl.DataFrame:
    """A Common Voice / CoVoST TSV: tab-separated, no quoting (as lhotse and fairseq read them), all text."""
    try:
        df = pl.read_csv(path, separator="\t", quote_char=None, infer_schema=False, empty_string_is_null=False)
    except Exception as exc:  # polars raises several error types for malformed files
        raise CorpusError(f"{source}: cannot read {path} as a TSV: {exc}") from None
    return df.with_columns(pl.all().fill_null(""))


def recording(path: Path, source: str, recording_id: str | None = None):
    """lhotse Recording of one audio file (header only); a file lhotse cannot read is named."""
    from lhotse import Recording

    try:
        return Recording.from_file(path, recording_id=recording_id)
    except Exception as exc:  # lhotse tries several backends and raises what the last one raised
        raise CorpusError(f"{source}: cannot read audio file {path}: {exc}") from None


def build(source: str, kind: str, clips: list[Clip]):
    """(polars table, lhotse CutSet) of the clips, validated."""
    from lhotse import CutSet, MonoCut, SupervisionSegment

    if not clips:
        raise CorpusError(f"{source}: the folder holds no clips in the expected layout")
    rows, cuts = [], []
    for c in clips:
        rec = c.recording
        cid = c.id or rec.id
        duration = float(rec.duration - c.offset_s if c.duration_s is None else c.duration_s)
        rows.append({
            "source": source, "id": cid, "kind": kind, "split": c.split,
            "audio": str(Path(rec.sources[0].source).resolve()), "offset_s": float(c.offset_s),
            "duration_s": round(duration, 6), "sample_rate": int(rec.sampling_rate), "text": c.text,
            "lang": c.lang, "translation": c.translation, "translation_lang": c.translation_lang,
            "speaker": c.speaker, "labels": list(c.labels), "event": c.event,
        })
        custom = {"source": source, "kind": kind, "split": c.split, "labels": list(c.labels), "event": c.event}
        sups = []
        if kind == "speech":
            sups = [SupervisionSegment(id=cid, recording_id=rec.id, start=0.0, duration=duration, channel=0,
                                       text=c.text, language=c.lang, speaker=c.speaker,
                                       custom={"translation": c.translation, "translation_lang": c.translation_lang})]
        cuts.append(MonoCut(id=cid, start=float(c.offset_s), duration=duration, channel=0, recording=rec,
                            supervisions=sups, custom=custom))
    table = pl.DataFrame(rows, schema=COLUMNS)
    validate(table, f"{source} import")
    return table, CutSet.from_cuts(cuts)


def validate(table: pl.DataFrame, where: str) -> pl.DataFrame:
    """Raise CorpusError naming the first missing column or bad row of a source table."""
    for col, dtype in COLUMNS.items():
        if col not in table.columns:
            raise CorpusError(f"{where}: no column '{col}'")
        if table.schema[col] != dtype:
            raise CorpusError(f"{where}: column '{col}' is {table.schema[col]}, expected {dtype}")
    checks = [
        (~pl.col("kind").is_in(KINDS), f"kind not in {KINDS}"),
        (~pl.col("split").is_in(SPLITS), f"split not in {SPLITS}"),
        (pl.col("id").is_null() | (pl.col("id") == ""), "empty id"),
        (pl.col("audio").is_null() | (pl.col("audio") == ""), "empty audio path"),
        (pl.col("duration_s").is_null() | (pl.col("duration_s") <= 0), "duration_s <= 0"),
        ((pl.col("kind") == "speech") & ((pl.col("text") == "") | (pl.col("lang") == "")), "speech without text or lang"),
        ((pl.col("kind") == "event") & (pl.col("labels").list.len() == 0), "event without labels"),
        (pl.col("translation").is_not_null() & pl.col("translation_lang").is_null(), "translation without translation_lang"),
    ]
    for cond, what in checks:
        bad = table.filter(cond)
        if bad.height:
            raise CorpusError(f"{where}: row id={bad['id'][0]!r}: {what}")
    dup = table.filter(pl.col("id").is_duplicated())
    if dup.height:
        raise CorpusError(f"{where}: duplicate id {dup['id'][0]!r}")
    return table


def load_segment(audio: str, offset_s: float, duration_s: float, sr: int = SAMPLE_RATE) -> np.ndarray:
    """A clip's span of its recording, float32 mono at `sr` (reads only that span)."""
    path = Path(audio)
    try:
        info = sf.info(str(path))
        start = round(offset_s * info.samplerate)
        frames = max(1, round(duration_s * info.samplerate))
        x, file_sr = sf.read(str(path), start=start, frames=frames, dtype="float32", always_2d=True)
    except Exception as exc:  # soundfile raises several types for missing or corrupt files
        raise CorpusError(f"cannot read imported clip {path} [{offset_s}s +{duration_s}s]: {exc}") from None
    if x.shape[0] == 0:
        raise CorpusError(f"imported clip {path} [{offset_s}s +{duration_s}s] is empty")
    return resample(x.mean(axis=1), file_sr, sr)
