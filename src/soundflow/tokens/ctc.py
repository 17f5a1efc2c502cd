"""Speech segments for the encoder's CTC warm-up (stage s0).

Every turn that is one English speech clip is cut from its stream's normalised features (with 100 ms
of context each side) and paired with its text as a character target. The segments come from the
composed streams, so they carry the streams' noise, reverb and background.
"""
from __future__ import annotations

import json

import torch

from soundflow.data import tts

CHARS = " 'abcdefghijklmnopqrstuvwxyz"  # CTC classes 1..28; 0 is the blank
BLANK = 0
CONTEXT_S = 0.1
FRAMES_PER_S = 100
SUBSAMPLING = 4  # log-mel frames per encoder frame


def char_ids(text: str) -> list[int] | None:
    """Character targets, or None when the text has a character outside CHARS."""
    ids = [CHARS.find(c) + 1 for c in text]
    return None if not ids or min(ids) == 0 else ids


def ids_to_text(ids) -> str:
    return "".join(CHARS[i - 1] for i in ids if 0 < i <= len(CHARS))


def segments(row: dict, normed: torch.Tensor) -> list[dict]:
    out = []
    for turn in row["turns"]:
        pieces = json.loads(turn["pieces"])
        if len(pieces) != 1 or pieces[0]["kind"] != "speech" or tts.get_voice(pieces[0]["voice"]).lang != "en":
            continue
        target = char_ids(pieces[0]["label"])
        if target is None:
            continue
        start = max(int((turn["start_s"] - CONTEXT_S) * FRAMES_PER_S), 0)
        end = min(int((turn["end_s"] + CONTEXT_S) * FRAMES_PER_S) + 1, normed.shape[0])
        end = start + (end - start) // SUBSAMPLING * SUBSAMPLING  # whole 40 ms encoder frames
        out.append({
            "features": normed[start:end].to(torch.float16).clone(),
            "target": torch.tensor(target, dtype=torch.int8),
            "text": pieces[0]["label"],
            "voice": pieces[0]["voice"],
            "item_id": row["id"],
            "condition": row["condition"],
        })
    return out
