"""Imported clip sources as the planner and the composer draw from them.

The profile names local corpus copies in `data.corpora.sources`; the rule import_corpora writes one
table per source into `data.corpora.dir`; `for_cfg` loads them once per process (None when no
source is set, so the synthetic-only profiles never touch this module's tables and consume no
random draws for it). A piece drawn from an imported clip keeps the clip's location in its `attrs`
(`audio`, `offset`, `duration`, `source`, `clip_id`); its voice id is `corpus:<source>:<lang>:<speaker>`.
"""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np
import polars as pl

from soundflow import SAMPLE_RATE
from soundflow.data.corpora.schema import CorpusError, load_segment, validate

DEFAULT_DIR = "data/corpora"
VOICE_PREFIX = "corpus:"
EVENT_MAX_S = 5.0  # an imported event is cut to its loudest 5 s (AudioSet segments are 10 s, FSD50K up to 30 s)


def selected(cfg: dict) -> list[str]:
    """Names of the sources the data config sets (non-null paths), sorted."""
    sources = (cfg.get("corpora") or {}).get("sources") or {}
    return sorted(name for name, path in sources.items() if path)


def table_path(cfg: dict, name: str) -> Path:
    return Path((cfg.get("corpora") or {}).get("dir") or DEFAULT_DIR) / f"{name}.parquet"


def for_cfg(cfg: dict) -> Imported | None:
    names = selected(cfg)
    if not names:
        return None
    c = cfg["corpora"]
    return _load(tuple(str(table_path(cfg, n)) for n in names), float(c.get("p_speech", 1.0)),
                 float(c.get("p_event", 0.5)), float(c.get("p_noise", 0.5)))


@lru_cache(maxsize=4)
def _load(paths: tuple[str, ...], p_speech: float, p_event: float, p_noise: float) -> Imported:
    frames = []
    for path in paths:
        if not Path(path).is_file():
            raise CorpusError(f"imported source table {path} is missing: run the rule import_corpora "
                              f"(snakemake {path}) or set the source to null in data.corpora.sources")
        frames.append(validate(pl.read_parquet(path), str(path)))
    return Imported(pl.concat(frames), p_speech, p_event, p_noise)


class Imported:
    """The imported clips of every selected source, with cached per-split views."""

    def __init__(self, table: pl.DataFrame, p_speech: float, p_event: float, p_noise: float):
        self.table = one_split_per_clip_and_speaker(table)
        self.p_speech, self.p_event, self.p_noise = p_speech, p_event, p_noise
        self._views: dict[tuple, pl.DataFrame] = {}

    def _view(self, key: tuple, cond) -> pl.DataFrame:
        if key not in self._views:
            self._views[key] = self.table.filter(cond).sort("source", "id")  # stable order: draws are reproducible
        return self._views[key]

    def speech(self, split: str, lang: str | None = None, target: str | None = None,
               speaker: str | None = None) -> pl.DataFrame:
        """Utterances of a split (in `lang`; with a translation into `target`; by `speaker`)."""
        cond = (pl.col("kind") == "speech") & (pl.col("split") == split)
        if lang:
            cond &= pl.col("lang") == lang
        if target:
            cond &= pl.col("translation_lang") == target
        if speaker:
            cond &= pl.col("speaker") == speaker
        return self._view(("speech", split, lang, target, speaker), cond)

    def events(self, split: str, event: str) -> pl.DataFrame:
        return self._view(("event", split, event),
                          (pl.col("kind") == "event") & (pl.col("split") == split) & (pl.col("event") == event))

    def noise(self, split: str) -> pl.DataFrame:
        return self._view(("noise", split), (pl.col("kind") == "noise") & (pl.col("split") == split))


# Sources that share Common Voice's clips and client ids, in priority order: CoVoST 2 re-splits Common
# Voice 4, and its test split is the translation benchmark's, so its split wins.
SHARED_CLIPS = ("covost2", "commonvoice")


def one_split_per_clip_and_speaker(table: pl.DataFrame) -> pl.DataFrame:
    """Drop the Common Voice rows that would put a CoVoST clip, or a CoVoST speaker, into another split:
    a clip imported by both keeps only its CoVoST rows, a speaker only its CoVoST split."""
    cv = pl.col("source") == SHARED_CLIPS[1]
    first = table.filter(pl.col("source") == SHARED_CLIPS[0])
    if first.height == 0 or table.filter(cv).height == 0:
        return table
    clip = pl.col("audio").str.split("/").list.last()
    taken = set(first.select(clip)["audio"])
    split_of = dict(first.select("speaker", "split").unique(subset="speaker", keep="first").iter_rows())
    speaker_split = pl.col("speaker").replace_strict(split_of, default=None, return_dtype=pl.Utf8)
    clash = cv & (clip.is_in(list(taken)) | (speaker_split.is_not_null() & (speaker_split != pl.col("split"))))
    return table.filter(~clash.fill_null(False))


def voice_id(row: dict) -> str:
    return f"{VOICE_PREFIX}{row['source']}:{row['lang']}:{row['speaker'] or 'unknown'}"


def is_voice(voice: str) -> bool:
    return voice.startswith(VOICE_PREFIX)


def voice_lang(voice: str) -> str:
    """Language of an imported speaker's voice id."""
    return voice.split(":")[2]


def clip_attrs(row: dict) -> dict:
    return {"audio": row["audio"], "offset": row["offset_s"], "duration": row["duration_s"],
            "source": row["source"], "clip_id": row["id"]}


def is_imported(piece) -> bool:
    return "audio" in piece.attrs


def piece_audio(piece) -> np.ndarray:
    """The imported clip of a piece at SAMPLE_RATE; events cut to the loudest EVENT_MAX_S around their core."""
    a = piece.attrs
    audio = load_segment(a["audio"], a["offset"], a["duration"])
    if piece.kind == "event":
        from soundflow.data.tfjp import core_locate

        start, end = core_locate(audio, SAMPLE_RATE)
        audio = audio[start:min(end, start + round(EVENT_MAX_S * SAMPLE_RATE))]
    return audio


def noise_track(imported: Imported | None, split: str, n: int, rng: np.random.Generator) -> np.ndarray | None:
    """An imported noise recording's span of n samples (tiled when shorter), with probability p_noise; else None."""
    if imported is None:
        return None
    rows = imported.noise(split)
    if rows.height == 0 or rng.random() >= imported.p_noise:
        return None
    row = rows.row(int(rng.integers(rows.height)), named=True)
    need_s = n / SAMPLE_RATE
    offset = row["offset_s"] + float(rng.uniform(0, max(row["duration_s"] - need_s, 0.0)))
    audio = load_segment(row["audio"], offset, min(row["duration_s"], need_s))
    from soundflow.data.mix import tile

    return tile(audio, n)
