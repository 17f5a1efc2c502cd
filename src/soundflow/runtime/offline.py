"""Offline inference: the whole clip as one audio block, a user text, one greedy reply (DESIGN section 5).

`<offline> <lang> <audio_begin> <audio>x(N per chunk) <chunk_end> <user> text <assistant>` -> `<emo> reply <eos>`.
The format the offline samples teach; used for offline WER and for the offline baseline.
"""
from __future__ import annotations

import numpy as np
import torch

from soundflow import layout
from soundflow.precision import autocast
from soundflow.runtime.bundle import Bundle
from soundflow.runtime.decoder import TokenIds, greedy_reply, reply_text
from soundflow.runtime.frontend import stream_frames


@torch.no_grad()
def answer_offline(bundle: Bundle, audio: np.ndarray, user_text: str, lang: str | None = None) -> tuple[str, str]:
    """(reply text, emotion) for a whole clip; a partial last chunk is padded with silence."""
    audio = np.asarray(audio, dtype=np.float32)
    if audio.ndim != 1 or audio.size == 0:
        raise ValueError(f"answer_offline needs non-empty mono audio, got shape {audio.shape}")
    model, tok = bundle.model, bundle.tokenizer
    frames = stream_frames(bundle, audio)
    ids = TokenIds.from_tokenizer(tok)
    head = tok.convert_tokens_to_ids([layout.OFFLINE, layout.lang_token(lang or bundle.settings.default_lang)])
    prompt = (head + [ids.audio_begin] + [ids.audio] * frames.shape[1] + [ids.chunk_end]
              + tok.convert_tokens_to_ids([layout.USER]) + tok(user_text, add_special_tokens=False)["input_ids"]
              + tok.convert_tokens_to_ids([layout.ASSISTANT]))
    cache = model.new_cache()
    with autocast(bundle.lm_precision):
        logits = model.prefill(model.embed_chunk(prompt, frames), cache)[0, -1]
        tokens = greedy_reply(model, cache, logits, ids.eos, bundle.settings.max_reply_tokens)
    return reply_text(tokens, ids, tok)
