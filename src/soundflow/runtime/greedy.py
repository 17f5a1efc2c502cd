"""Greedy streaming decoding of one stream, chunk by chunk, with the LM's KV cache.

After each chunk's `<audio_begin> <audio>x10 <chunk_end>` the model decides between `<silent>` and
`<response>`; on `<response>` it writes `<emo_*> text <eos>` greedily, and listening goes on.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from soundflow import layout


@dataclass(frozen=True)
class TokenIds:
    silent: int
    response: int
    eos: int
    audio_begin: int
    audio: int
    chunk_end: int
    emotions: dict[int, str]

    @classmethod
    def from_tokenizer(cls, tok) -> "TokenIds":
        ids = tok.convert_tokens_to_ids
        return cls(ids(layout.SILENT), ids(layout.RESPONSE), ids(layout.EOS), ids(layout.AUDIO_BEGIN),
                   ids(layout.AUDIO), ids(layout.CHUNK_END),
                   {ids(layout.emotion_token(e)): e for e in layout.EMOTIONS})

    def chunk_tokens(self) -> list[int]:
        return [self.audio_begin] + [self.audio] * layout.FRAMES_PER_CHUNK + [self.chunk_end]


def prefix_ids(tok, lang: str, instruction: str) -> list[int]:
    head = tok.convert_tokens_to_ids([layout.ONLINE, layout.lang_token(lang), layout.INSTR])
    return head + tok(instruction, add_special_tokens=False)["input_ids"]


@torch.no_grad()
def decode_stream(model, tok, ids: TokenIds, prefix: list[int], chunk_frames: torch.Tensor,
                  max_reply_tokens: int = 48) -> list[dict]:
    """chunk_frames [n_chunks, 10, d_enc] -> one decision per chunk: {chunk, action, text, emotion}."""
    cache = model.new_cache()
    model.prefill(model.embed_chunk(prefix), cache)
    events = []
    for c in range(chunk_frames.shape[0]):
        embeds = model.embed_chunk(ids.chunk_tokens(), chunk_frames[c:c + 1])
        logits = model.prefill(embeds, cache)[0, -1]
        if logits[ids.response] <= logits[ids.silent]:
            model.prefill(model.embed_chunk([ids.silent]), cache)
            events.append({"chunk": c, "action": "silent", "text": "", "emotion": ""})
            continue
        next_logits = model.prefill(model.embed_chunk([ids.response]), cache)[0, -1]
        tokens, _ = model.generate_greedy(next_logits, cache, {ids.eos}, max_reply_tokens)
        emotion = ids.emotions.get(tokens[0], "") if tokens else ""
        body = [t for t in tokens if t != ids.eos and t not in ids.emotions]
        text = tok.decode(body, skip_special_tokens=False, clean_up_tokenization_spaces=False)
        events.append({"chunk": c, "action": "respond", "text": text, "emotion": emotion})
    return events
