"""AISHELL-1 (read Mandarin): through lhotse's recipe `prepare_aishell`.

Layout (openslr.org/33, as lhotse reads it): `<root>/data_aishell/transcript/aishell_transcript_v0.8.txt`
with lines `<utt-id> 词 词 ...`, and `<root>/data_aishell/wav/{train,dev,test}/<speaker>/<utt-id>.wav`
(the per-speaker tarballs extracted). lhotse removes the word spaces of the transcripts. AISHELL has
no translations. A WAV without a transcript line is skipped, as in lhotse (AISHELL-1 has a few).
"""
from __future__ import annotations

from pathlib import Path

from soundflow.data.corpora.schema import Clip, CorpusError, lang_code, need_dir, need_file

SOURCE, KIND = "aishell", "speech"


def clips(root: Path, work_dir: Path) -> list[Clip]:
    from lhotse.recipes import prepare_aishell

    root = need_dir(Path(root), SOURCE, "corpus folder")
    need_file(root / "data_aishell/transcript/aishell_transcript_v0.8.txt", SOURCE, "transcript file")
    wav = need_dir(root / "data_aishell/wav", SOURCE, "audio folder")
    if not any(wav.glob("*/*/*.wav")):
        raise CorpusError(f"{SOURCE}: {wav} has no <split>/<speaker>/<utt-id>.wav file "
                          "(extract the per-speaker .tar.gz archives first)")
    manifests = prepare_aishell(root, output_dir=None)
    out = []
    for split, m in manifests.items():
        recordings = {r.id: r for r in m["recordings"]}
        for sup in m["supervisions"]:
            out.append(Clip(recordings[sup.recording_id], split, id=sup.id, text=sup.text,
                            lang=lang_code(sup.language), speaker=sup.speaker))
    return out
