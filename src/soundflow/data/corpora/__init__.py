"""Importers of real corpora into clip sources the corpus composer draws from (DESIGN section 4).

One module per source family turns a local copy, in the corpus's original layout, into a table of
clips with one schema (soundflow.data.corpora.schema): speech with transcripts (and translations),
events with labels, noise. Through lhotse's recipes where lhotse has one (LibriSpeech, Common Voice,
AISHELL, MUSAN); hand-written where it has none (CoVoST 2, ESC-50, FSD50K, AudioSet), still reading
audio headers through lhotse. The rule `import_corpora` writes `<dir>/<source>.parquet` (what the
planner reads, soundflow.data.corpora.sources) and `<dir>/<source>.cuts.jsonl.gz` (a lhotse CutSet).
"""
from __future__ import annotations

import importlib
import os
import tempfile
from pathlib import Path

from soundflow.data.corpora.schema import CorpusError

SOURCES = ("librispeech", "commonvoice", "covost2", "aishell", "esc50", "fsd50k", "audioset", "musan")


def importer(name: str):
    if name not in SOURCES:
        raise CorpusError(f"unknown corpus source {name!r}; known: {', '.join(SOURCES)}")
    return importlib.import_module(f"soundflow.data.corpora.{name}")


def import_source(name: str, path: str | Path):
    """(polars table, lhotse CutSet) of one local corpus copy; CorpusError names what is off in its layout."""
    from soundflow.data.corpora.schema import build

    module = importer(name)
    with tempfile.TemporaryDirectory(prefix=f"lhotse-{name}-") as work:  # recipes that insist on writing manifests
        return build(name, module.KIND, module.clips(Path(path), Path(work)))


def write_source(name: str, path: str | Path, out_dir: str | Path) -> dict:
    """Import one source into `<out_dir>/<name>.parquet` and `.cuts.jsonl.gz`; return its counts."""
    table, cuts = import_source(name, path)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    # temp names keep the suffix lhotse picks its writer by; renamed when complete
    tmp_cuts, tmp_table = out_dir / f".{name}.tmp{os.getpid()}.cuts.jsonl.gz", out_dir / f".{name}.tmp{os.getpid()}.parquet"
    cuts.to_file(tmp_cuts)
    table.write_parquet(tmp_table)
    os.replace(tmp_cuts, out_dir / f"{name}.cuts.jsonl.gz")
    os.replace(tmp_table, out_dir / f"{name}.parquet")
    by_split = {s: int(n) for s, n in table.group_by("split").len().iter_rows()}
    return {"source": name, "clips": table.height, "hours": round(float(table["duration_s"].sum()) / 3600, 4),
            **{f"clips_{s}": by_split.get(s, 0) for s in ("train", "dev", "test")},
            "with_event_type": int(table["event"].is_not_null().sum()),
            "with_translation": int(table["translation"].is_not_null().sum())}
