"""Text tokenizer: a byte-level BPE trained on the train split's text, saved as a transformers folder; or, with a
pretrained thinker (rule thinker), the LM's own tokenizer with the project's special tokens added.

Byte-level so that any string, English or Chinese, seen in training or not, encodes and decodes back
to itself exactly (no unknown token). The special tokens of `soundflow.layout` are added first to the BPE, so
their ids are 0..len(SPECIAL_TOKENS)-1 whatever the corpus; a pretrained tokenizer has them above its own
vocabulary. Models and runtime look every special token up by name (special_id), never by position.
"""
from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from pathlib import Path

import polars as pl
from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers
from transformers import PreTrainedTokenizerFast

from soundflow import layout

# Chinese has no spaces: without this split BPE would merge whole sentences into single tokens.
CJK = Regex(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")


def _json_strings(value) -> Iterator[str]:
    """Every string inside a decoded JSON value (references hold nested lists and dicts)."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, list):
        for v in value:
            yield from _json_strings(v)
    elif isinstance(value, dict):
        for v in value.values():
            yield from _json_strings(v)


def corpus_texts(frame: pl.DataFrame) -> list[str]:
    """Instructions, replies and reference strings of a manifest, deduplicated, in first-seen order."""
    texts: dict[str, None] = {}
    for row in frame.select("instruction", "turns", "timeline", "references").iter_rows(named=True):
        texts[row["instruction"]] = None
        for turn in row["turns"] or []:
            if turn["reply"]:
                texts[turn["reply"]] = None
        for entry in row["timeline"] or []:
            if entry["text"]:
                texts[entry["text"]] = None
        for text in _json_strings(json.loads(row["references"] or "{}")):
            texts[text] = None
    return [t for t in texts if t]


def train_tokenizer(texts: Iterable[str], vocab_size: int) -> PreTrainedTokenizerFast:
    """Train the BPE; `vocab_size` counts the special tokens and the 256 byte symbols."""
    minimum = len(layout.SPECIAL_TOKENS) + 256
    if vocab_size < minimum:
        raise ValueError(f"vocab_size must be at least {minimum} (specials + 256 bytes), got {vocab_size}")
    tok = Tokenizer(models.BPE())
    # Every text gets a leading space, stripped again on decode (the Llama recipe): a word is then
    # the same token wherever it stands. Without it a reply's first word (most streaming ASR words,
    # one or two to a reply) was a different, more fragmented token than the same word mid-sentence.
    tok.normalizer = normalizers.Prepend(" ")
    # Each Chinese character is its own word (ByteLevel's own add_prefix_space would put a space
    # before every one of them, hence the normalizer).
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(CJK, behavior="isolated"),
        pre_tokenizers.ByteLevel(add_prefix_space=False),
    ])
    tok.decoder = decoders.Sequence([decoders.ByteLevel(), decoders.Strip(" ", 1, 0)])
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=list(layout.SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer=trainer)
    return wrap(tok)


def wrap(tok: Tokenizer) -> PreTrainedTokenizerFast:
    specials = [t for t in layout.SPECIAL_TOKENS if t not in (layout.PAD, layout.EOS)]
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        pad_token=layout.PAD,
        eos_token=layout.EOS,
        additional_special_tokens=specials,
        clean_up_tokenization_spaces=False,  # "it s" must not become "it's"
    )


def load(path: str | Path) -> PreTrainedTokenizerFast:
    path = Path(path)
    if not (path / "tokenizer.json").is_file():
        raise FileNotFoundError(f"tokenizer not found: {path / 'tokenizer.json'}")
    tok = PreTrainedTokenizerFast.from_pretrained(str(path))
    check_specials(tok, path)
    return tok


def check_specials(tok: PreTrainedTokenizerFast, where: str | Path = "tokenizer") -> None:
    """Every special token of the layout must be one id of its own that text never splits into pieces."""
    ids = tok.convert_tokens_to_ids(list(layout.SPECIAL_TOKENS))
    pieces = {t: encode(tok, t) for t in layout.SPECIAL_TOKENS}
    broken = [t for t, i in zip(layout.SPECIAL_TOKENS, ids) if i is None or i == tok.unk_token_id or pieces[t] != [i]]
    if broken or len(set(ids)) != len(ids):
        raise ValueError(f"{where}: special token(s) {', '.join(broken) or 'sharing ids'} are not single ids of "
                         f"their own ({dict(zip(layout.SPECIAL_TOKENS, ids))}); build it with soundflow.tokens "
                         "or python -m soundflow.pretrained thinker")


def encode(tok: PreTrainedTokenizerFast, text: str) -> list[int]:
    """Ids of plain text, without any special token around it."""
    return tok.encode(text, add_special_tokens=False)


def decode(tok: PreTrainedTokenizerFast, ids: Iterable[int]) -> str:
    return tok.decode(list(ids), skip_special_tokens=False, clean_up_tokenization_spaces=False)


def special_id(tok: PreTrainedTokenizerFast, token: str) -> int:
    return tok.convert_tokens_to_ids(token)
