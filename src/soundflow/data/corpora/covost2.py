"""CoVoST 2 (speech translation over Common Voice): hand-written, lhotse has no CoVoST recipe.

Layout (as fairseq's examples/speech_to_text/prep_covost_data.py reads it): the Common Voice 4.0
release folder with, per source locale, `<root>/<src>/validated.tsv` (client_id, path, sentence, ...),
`<root>/<src>/clips/<name>.mp3` and the CoVoST table `<root>/<src>/covost_v2.<src>_<tgt>.tsv`
(extracted from covost_v2.<src>_<tgt>.tsv.tar.gz; columns path, translation, split, ...). As in fairseq,
the two tables are joined on `path` and the split "train_covost" counts as train. Every pair found is
imported (en_zh-CN and zh-CN_en are the paper's); audio headers are read through lhotse.
"""
from __future__ import annotations

import re
from pathlib import Path

import polars as pl

from soundflow.data.corpora.schema import Clip, CorpusError, lang_code, need_columns, need_dir, need_file, read_tsv, recording

SOURCE, KIND = "covost2", "speech"
_TABLE = re.compile(r"covost_v2\.(?P<src>[A-Za-z-]+)_(?P<tgt>[A-Za-z-]+)\.tsv$")
_SPLITS = {"train": "train", "train_covost": "train", "dev": "dev", "test": "test"}


def tables(root: Path) -> list[tuple[Path, str, str]]:
    found = []
    for path in sorted(root.glob("*/covost_v2.*.tsv")):
        m = _TABLE.search(path.name)
        if m and m["src"] == path.parent.name:
            found.append((path, m["src"], m["tgt"]))
    if not found:
        raise CorpusError(f"{SOURCE}: {root} has no <src>/covost_v2.<src>_<tgt>.tsv "
                          "(extract covost_v2.<src>_<tgt>.tsv.tar.gz into the Common Voice locale folder)")
    return found


def clips(root: Path, work_dir: Path) -> list[Clip]:
    root = need_dir(Path(root), SOURCE, "corpus folder")
    out = []
    for table, src, tgt in tables(root):
        lang_dir = table.parent
        validated = need_file(lang_dir / "validated.tsv", SOURCE, "Common Voice table")
        cv, cov = read_tsv(validated, SOURCE), read_tsv(table, SOURCE)
        need_columns(cv, ("path", "sentence", "client_id"), validated, SOURCE)
        need_columns(cov, ("path", "translation", "split"), table, SOURCE)
        joined = cv.select("path", "sentence", "client_id").join(
            cov.select("path", "translation", "split"), on="path", how="inner", maintain_order="left")
        joined = joined.filter(pl.col("split").is_in(list(_SPLITS)))
        for row in joined.iter_rows(named=True):
            audio = lang_dir / "clips" / row["path"]
            if not audio.is_file():
                raise CorpusError(f"{SOURCE}: {table}: row path={row['path']!r}: no audio file {audio}")
            stem = Path(row["path"]).stem
            out.append(Clip(recording(audio, SOURCE, recording_id=stem), _SPLITS[row["split"]],
                            id=f"{src}_{tgt}/{stem}", text=row["sentence"].strip(), lang=lang_code(src),
                            translation=row["translation"].strip(), translation_lang=lang_code(tgt),
                            speaker=row["client_id"]))
    return out
