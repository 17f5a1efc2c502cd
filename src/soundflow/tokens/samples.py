"""Corpus rows -> token samples, exactly the layout of `soundflow.layout` (DESIGN section 5).

Labels follow the Hugging Face convention: `labels[i]` is `input_ids[i]` where position i is a
target (the model shifts them), -100 elsewhere. `label_kind` says which loss a target feeds:
LABEL_STREAM for the per-chunk decision `<silent>`/`<response>`, LABEL_LM for the emotion tag,
the reply text and `<eos>`.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

from transformers import PreTrainedTokenizerFast

from soundflow import layout
from soundflow.tokens.tokenizer import encode

IGNORE = -100


class SampleError(ValueError):
    """A corpus row that cannot be laid out; the message names the item."""


@dataclass
class Sample:
    input_ids: list[int] = field(default_factory=list)
    labels: list[int] = field(default_factory=list)
    label_kind: list[int] = field(default_factory=list)
    chunk_start: int = 0  # first chunk of the item's audio this sample covers
    n_chunks: int = 0  # its features are frames [40 * chunk_start, 40 * (chunk_start + n_chunks))

    def add(self, ids: list[int], kind: int = layout.LABEL_NONE) -> None:
        self.input_ids += ids
        self.labels += ids if kind != layout.LABEL_NONE else [IGNORE] * len(ids)
        self.label_kind += [kind] * len(ids)


def n_chunks(row: dict) -> int:
    n = row["duration_s"] / layout.CHUNK_SECONDS
    if abs(n - round(n)) > 1e-6 or round(n) < 1:
        raise SampleError(f"item {row['id']}: duration {row['duration_s']} s is not a whole number of chunks")
    return round(n)


def responses(row: dict) -> dict[int, dict]:
    """The item's respond entries by chunk; every other chunk's decision is <silent>."""
    total = n_chunks(row)
    out: dict[int, dict] = {}
    for entry in row["timeline"] or []:
        if entry["action"] != "respond":
            continue
        chunk = entry["chunk"]
        if not 0 <= chunk < total:
            raise SampleError(f"item {row['id']}: respond at chunk {chunk}, outside its {total} chunks")
        if chunk in out:
            raise SampleError(f"item {row['id']}: two responses at chunk {chunk}")
        if entry["emotion"] not in layout.EMOTIONS:
            raise SampleError(f"item {row['id']}: unknown emotion '{entry['emotion']}' at chunk {chunk}")
        out[chunk] = entry
    return out


def windows(total: int, max_chunks: int) -> list[tuple[int, int]]:
    """(start, length) of the fewest near-equal windows of at most max_chunks covering `total`."""
    if max_chunks < 1:
        raise ValueError(f"max_chunks must be >= 1, got {max_chunks}")
    count = math.ceil(total / max_chunks)
    out, start = [], 0
    for i in range(count):
        length = total // count + (1 if i < total % count else 0)
        out.append((start, length))
        start += length
    return out


def _ids(tok: PreTrainedTokenizerFast, *tokens: str) -> list[int]:
    return tok.convert_tokens_to_ids(list(tokens))


def _audio_block(tok: PreTrainedTokenizerFast, chunks: int) -> list[int]:
    return _ids(tok, layout.AUDIO_BEGIN, *[layout.AUDIO] * (layout.FRAMES_PER_CHUNK * chunks), layout.CHUNK_END)


def _reply(sample: Sample, tok: PreTrainedTokenizerFast, entry: dict) -> None:
    sample.add(_ids(tok, layout.emotion_token(entry["emotion"])), layout.LABEL_LM)
    sample.add(encode(tok, entry["text"]), layout.LABEL_LM)
    sample.add(_ids(tok, layout.EOS), layout.LABEL_LM)


def _lang(row: dict) -> str:
    if row["lang"] not in layout.LANGS:
        raise SampleError(f"item {row['id']}: unknown language '{row['lang']}'")
    return layout.lang_token(row["lang"])


def build_streaming_sample(row: dict, tok: PreTrainedTokenizerFast, max_chunks: int) -> list[Sample]:
    """One sample per window of at most `max_chunks` chunks; each repeats the mode/language/instruction prefix."""
    replies = responses(row)
    prefix = _ids(tok, layout.ONLINE, _lang(row), layout.INSTR) + encode(tok, row["instruction"])
    out = []
    for start, length in windows(n_chunks(row), max_chunks):
        sample = Sample(chunk_start=start, n_chunks=length)
        sample.add(prefix)
        for chunk in range(start, start + length):
            sample.add(_audio_block(tok, 1))
            if chunk in replies:
                sample.add(_ids(tok, layout.RESPONSE), layout.LABEL_STREAM)
                _reply(sample, tok, replies[chunk])
            else:
                sample.add(_ids(tok, layout.SILENT), layout.LABEL_STREAM)
        out.append(sample)
    return out


def build_offline_sample(row: dict, tok: PreTrainedTokenizerFast) -> Sample:
    """The whole clip as one audio block, the instruction as user text, the single reply as target."""
    replies = list(responses(row).values())
    if len(replies) != 1:
        raise SampleError(f"item {row['id']}: an offline item needs exactly one response, found {len(replies)}")
    total = n_chunks(row)
    sample = Sample(chunk_start=0, n_chunks=total)
    sample.add(_ids(tok, layout.OFFLINE, _lang(row)))
    sample.add(_audio_block(tok, total))
    sample.add(_ids(tok, layout.USER) + encode(tok, row["instruction"]) + _ids(tok, layout.ASSISTANT))
    _reply(sample, tok, replies[0])
    return sample


def build_samples(row: dict, tok: PreTrainedTokenizerFast, max_chunks: int) -> list[Sample]:
    if row["mode"] == "online":
        return build_streaming_sample(row, tok, max_chunks)
    if row["mode"] == "offline":
        return [build_offline_sample(row, tok)]
    raise SampleError(f"item {row['id']}: unknown mode '{row['mode']}'")
