"""MUSAN (music, speech and noise recordings for augmentation): through lhotse's recipe `prepare_musan`.

Layout (openslr.org/17, as lhotse reads it): `<root>/{music,speech,noise}/<collection>/*.wav`, each
collection with an ANNOTATIONS file (music: `<utt> <genres> <vocals Y/N> <artist>`). Every recording
becomes a noise clip labelled with its part; music with vocals is left out (lhotse's use_vocals=False),
since sung words under speech would be words the transcript does not have. MUSAN has no splits:
recordings go to train/dev/test by a hash of their id (80/10/10).
"""
from __future__ import annotations

from pathlib import Path

from soundflow.data.corpora.schema import Clip, CorpusError, hash_split, need_dir

SOURCE, KIND = "musan", "noise"
PARTS = ("music", "speech", "noise")


def clips(root: Path, work_dir: Path) -> list[Clip]:
    from lhotse.recipes import prepare_musan

    root = need_dir(Path(root), SOURCE, "corpus folder")
    parts = [p for p in PARTS if (root / p).is_dir()]
    if not parts:
        raise CorpusError(f"{SOURCE}: {root} has none of the folders {', '.join(PARTS)}")
    for part in parts:
        if not any((root / part).rglob("*.wav")):
            raise CorpusError(f"{SOURCE}: {root / part} has no <collection>/*.wav recording")
    if "music" in parts and not any((root / "music").rglob("ANNOTATIONS")):
        raise CorpusError(f"{SOURCE}: {root / 'music'} has no <collection>/ANNOTATIONS file")
    manifests = prepare_musan(root, output_dir=None, parts=parts, use_vocals=False)
    out = []
    for part in parts:
        recordings = manifests[part]["recordings"]
        if part == "music":  # keep the instrumental recordings (their supervisions survive use_vocals=False)
            keep = {s.recording_id for s in manifests[part]["supervisions"]}
            recordings = [r for r in recordings if r.id in keep]
        for rec in recordings:
            out.append(Clip(rec, hash_split(rec.id), id=f"{part}/{rec.id}", labels=[part]))
    return out
