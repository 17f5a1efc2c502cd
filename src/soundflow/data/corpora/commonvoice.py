"""Mozilla Common Voice (crowd-read, many languages): through lhotse's recipe `prepare_commonvoice`.

Layout (a release as extracted, e.g. cv-corpus-13.0-2023-03-09/, as lhotse reads it):
`<root>/<lang>/{train,dev,test}.tsv` and `<root>/<lang>/clips/<name>.mp3`, where <lang> is a Common
Voice locale (en, zh-CN, ...) and the TSVs have a header with at least client_id, path, sentence, age,
gender, accents and variant (lhotse reads all of them; `variant` exists from release 13 on). Common
Voice's own splits are speaker-disjoint and are kept.
"""
from __future__ import annotations

from pathlib import Path

from soundflow.data.corpora.schema import Clip, CorpusError, lang_code, need_columns, need_dir, read_tsv

SOURCE, KIND = "commonvoice", "speech"
SPLITS = ("train", "dev", "test")
COLUMNS = ("client_id", "path", "sentence", "age", "gender", "accents", "variant")  # the keys lhotse's recipe reads


def languages(root: Path, source: str = SOURCE) -> list[str]:
    """Locale folders of a release that hold at least one split TSV."""
    langs = sorted(p.name for p in root.iterdir() if p.is_dir() and any((p / f"{s}.tsv").is_file() for s in SPLITS))
    if not langs:
        raise CorpusError(f"{source}: {root} has no <lang>/{{train,dev,test}}.tsv (is it a Common Voice release folder?)")
    return langs


def _check(lang_dir: Path) -> list[str]:
    """The splits with rows; lhotse skips a row whose clip is missing, here that is an error naming it."""
    need_dir(lang_dir / "clips", SOURCE, "clips folder")
    splits = []
    for split in (s for s in SPLITS if (lang_dir / f"{s}.tsv").is_file()):
        tsv = lang_dir / f"{split}.tsv"
        df = read_tsv(tsv, SOURCE)
        need_columns(df, COLUMNS, tsv, SOURCE)
        if df.height:  # lhotse refuses a split without recordings
            splits.append(split)
        for n, name in enumerate(df["path"].to_list(), 2):
            if not (lang_dir / "clips" / name).is_file():
                raise CorpusError(f"{SOURCE}: {tsv}:{n}: no audio file {lang_dir / 'clips' / name}")
    if not splits:
        raise CorpusError(f"{SOURCE}: {lang_dir}: every split TSV is empty")
    return splits


def clips(root: Path, work_dir: Path) -> list[Clip]:
    from lhotse.recipes import prepare_commonvoice

    root = need_dir(Path(root), SOURCE, "corpus folder")
    out = []
    for lang in languages(root):
        splits = _check(root / lang)
        manifests = prepare_commonvoice(root, output_dir=work_dir / lang, languages=[lang], splits=splits)
        for split in splits:
            m = manifests[lang][split]
            recordings = {r.id: r for r in m["recordings"]}
            for sup in m["supervisions"]:
                out.append(Clip(recordings[sup.recording_id], split, id=f"{lang}/{sup.id}", text=sup.text,
                                lang=lang_code(lang), speaker=sup.speaker))
    return out
