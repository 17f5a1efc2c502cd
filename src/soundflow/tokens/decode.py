"""Token sequence of a stream -> its per-chunk decisions and replies (the inverse of samples.py)."""
from __future__ import annotations

from collections.abc import Sequence

from transformers import PreTrainedTokenizerFast

from soundflow import layout
from soundflow.tokens.tokenizer import decode


def parse_stream(input_ids: Sequence[int], tok: PreTrainedTokenizerFast, chunk_start: int = 0) -> list[dict]:
    """One dict(chunk, action, text, emotion) per chunk that has a decision.

    `action` is "respond" or "silent"; a silent chunk has text "" and emotion None. A reply runs
    from after its optional emotion tag to `<eos>`, or to the next chunk / the end of the sequence
    when it was cut off. `chunk_start` numbers the chunks of a window from its place in the stream.
    """
    ids = [int(i) for i in input_ids]
    special = {tok.convert_tokens_to_ids(t): t for t in layout.SPECIAL_TOKENS}
    emotions = {tok.convert_tokens_to_ids(layout.emotion_token(e)): e for e in layout.EMOTIONS}
    stops = {tok.convert_tokens_to_ids(t) for t in (layout.EOS, layout.AUDIO_BEGIN)}
    out: list[dict] = []
    chunk = chunk_start - 1
    pos = 0
    while pos < len(ids):
        token = special.get(ids[pos])
        pos += 1
        if token != layout.CHUNK_END:
            continue
        chunk += 1
        if pos == len(ids):  # the decision of the last chunk is still to come
            break
        decision = special.get(ids[pos])
        pos += 1
        if decision == layout.SILENT:
            out.append({"chunk": chunk, "action": "silent", "text": "", "emotion": None})
            continue
        if decision != layout.RESPONSE:
            raise ValueError(f"token {pos - 1}: chunk {chunk} ends in id {ids[pos - 1]}, not a decision token")
        emotion = None
        if pos < len(ids) and ids[pos] in emotions:
            emotion = emotions[ids[pos]]
            pos += 1
        end = pos
        while end < len(ids) and ids[end] not in stops:
            end += 1
        out.append({"chunk": chunk, "action": "respond", "text": decode(tok, ids[pos:end]), "emotion": emotion})
        pos = end
    return out
