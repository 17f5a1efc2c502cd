"""Speech segments for the CTC head on the projected tower frames (dense supervision of the adapter).

Every turn that is one English speech clip becomes a segment: its item, its span in 40 ms tower frames
(with 100 ms of context each side) and its text as a character target. The frames are sliced from the
frame cache at training time, so the segments carry the streams' noise, reverb and background.
"""
from __future__ import annotations

import json
import math

import torch

from soundflow import layout
from soundflow.data.plan import voice_lang  # TTS voices and imported speakers (soundflow.data.corpora)

CHARS = " 'abcdefghijklmnopqrstuvwxyz"  # CTC classes 1..28; 0 is the blank
BLANK = 0
VOCAB_SIZE = len(CHARS) + 1
CONTEXT_S = 0.1
FRAME_S = layout.CHUNK_SECONDS / layout.FRAMES_PER_CHUNK  # 40 ms


def char_ids(text: str) -> list[int] | None:
    """Character targets, or None when the text has a character outside CHARS."""
    ids = [CHARS.find(c) + 1 for c in text]
    return None if not ids or min(ids) == 0 else ids


def ids_to_text(ids) -> str:
    return "".join(CHARS[i - 1] for i in ids if 0 < i <= len(CHARS))


def segments(row: dict, n_frames: int) -> list[dict]:
    """The English single-clip speech turns of an online item, as frame spans of its `n_frames` frames."""
    out = []
    for turn in row["turns"]:
        pieces = json.loads(turn["pieces"])
        if len(pieces) != 1 or pieces[0]["kind"] != "speech" or voice_lang(pieces[0]["voice"]) != "en":
            continue
        target = char_ids(pieces[0]["label"])
        if target is None:
            continue
        start = max(math.floor((turn["start_s"] - CONTEXT_S) / FRAME_S), 0)
        end = min(math.ceil((turn["end_s"] + CONTEXT_S) / FRAME_S), n_frames)
        out.append({
            "item_id": row["id"], "start": start, "end": end,
            "target": torch.tensor(target, dtype=torch.int8),
            "text": pieces[0]["label"],
            "voice": pieces[0]["voice"],
            "condition": row["condition"],
        })
    return out
