"""LibriSpeech (read English): through lhotse's recipe `prepare_librispeech`.

Layout (openslr.org/12, as lhotse reads it): `<root>/<part>/<speaker>/<chapter>/<speaker>-<chapter>.trans.txt`
with lines `<speaker>-<chapter>-<utt> TRANSCRIPT` and the audio beside it as `<utt-id>.flac`; parts are
train-clean-100, dev-clean, test-other, ... (or mini_librispeech's train-clean-5 / dev-clean-2).
Splits follow the part names; LibriSpeech's speakers are disjoint across them.
"""
from __future__ import annotations

from pathlib import Path

from soundflow.data.corpora.schema import Clip, CorpusError, lang_code, need_dir

SOURCE, KIND = "librispeech", "speech"


def _parts(root: Path) -> list[str]:
    from lhotse.recipes.librispeech import LIBRISPEECH, MINI_LIBRISPEECH

    known = set(LIBRISPEECH) | set(MINI_LIBRISPEECH)
    parts = sorted(p.name for p in root.iterdir() if p.is_dir() and p.name in known)
    if not parts:
        raise CorpusError(f"{SOURCE}: {root} holds none of the LibriSpeech part folders "
                          f"(train-clean-100, dev-clean, test-clean, ...)")
    return parts


def _check(root: Path, part: str) -> None:
    """lhotse skips an utterance whose FLAC is missing with a log line; here that is an error naming it."""
    transcripts = sorted((root / part).rglob("*.trans.txt"))
    if not transcripts:
        raise CorpusError(f"{SOURCE}: {root / part} has no <speaker>-<chapter>.trans.txt transcript")
    for trans in transcripts:
        for n, line in enumerate(trans.read_text().splitlines(), 1):
            if not line.strip():
                continue
            fields = line.split(maxsplit=1)
            if len(fields) < 2 or fields[0].count("-") != 2:
                raise CorpusError(f"{SOURCE}: {trans}:{n}: expected '<speaker>-<chapter>-<utt> TRANSCRIPT'")
            flac = trans.parent / f"{fields[0]}.flac"
            if not flac.is_file():
                raise CorpusError(f"{SOURCE}: {trans}:{n}: no audio file {flac}")


def clips(root: Path, work_dir: Path) -> list[Clip]:
    from lhotse.recipes import prepare_librispeech

    root = need_dir(Path(root), SOURCE, "corpus folder")
    parts = _parts(root)
    for part in parts:
        _check(root, part)
    manifests = prepare_librispeech(root, dataset_parts=parts, output_dir=None)
    out = []
    for part in parts:
        recordings = {r.id: r for r in manifests[part]["recordings"]}
        split = part.split("-")[0]
        for sup in manifests[part]["supervisions"]:
            out.append(Clip(recordings[sup.recording_id], split, id=sup.id, text=sup.text,
                            lang=lang_code(sup.language), speaker=sup.speaker))
    return out
