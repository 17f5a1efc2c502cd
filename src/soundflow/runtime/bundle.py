"""The exported bundle: everything the runtime needs, in one folder, loadable with no training code.

data/export/<name>/
    config.json, model.safetensors        the AudioInteractionModel (save_pretrained)
    tokenizer.json, tokenizer_config.json  the BPE tokenizer with the layout's special tokens
    streaming.json                         sample rate, chunk length, frames per chunk, feature recipe
                                           (Whisper log-mel: bins, ceiling), special-token ids, context policy
"""
from __future__ import annotations

import json
import os
import shutil
from dataclasses import MISSING, asdict, dataclass
from functools import cached_property
from pathlib import Path

from transformers import PreTrainedTokenizerFast

from soundflow import layout, precision
from soundflow.models import AudioInteractionModel, AudioLMConfig
from soundflow.models.audio_lm import sub_config
from soundflow.runtime.decoder import lm_bf16_speedup

STREAMING_FILE = "streaming.json"
FORMAT_VERSION = 2  # 2: Whisper log-mel features and tower (1: Kaldi fbank + CMVN)
MODEL_FILES = ("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json")


@dataclass(frozen=True)
class StreamingSettings:
    sample_rate: int
    chunk_seconds: float
    frames_per_chunk: int  # encoder frames (40 ms) per chunk = <audio> slots per chunk
    n_mels: int
    max_context_chunks: int  # the LM cache holds at most this many chunks ...
    keep_context_chunks: int  # ... then restarts from the prefix and the last `keep` chunks
    max_reply_tokens: int
    default_instruction: str
    default_lang: str
    tower_precision: str = "auto"  # bf16 | fp32 | auto (the faster on the machine that loads the bundle)
    lm_precision: str = "auto"  # the same for the LM (bf16 autocast pays off for a large LM's listening steps)

    @property
    def chunk_samples(self) -> int:
        return round(self.sample_rate * self.chunk_seconds)

    def check(self, source: str | Path) -> None:
        if not 0 < self.keep_context_chunks < self.max_context_chunks:
            raise ValueError(f"{source}: need 0 < keep_context_chunks < max_context_chunks, got "
                             f"{self.keep_context_chunks} and {self.max_context_chunks}")
        if self.sample_rate != layout.SAMPLE_RATE:
            raise ValueError(f"{source}: this runtime reads {layout.SAMPLE_RATE} Hz audio, the bundle wants "
                             f"{self.sample_rate}")
        for key in ("tower_precision", "lm_precision"):
            if getattr(self, key) not in precision.CHOICES:
                raise ValueError(f"{source}: {key} must be one of {', '.join(precision.CHOICES)}, "
                                 f"got '{getattr(self, key)}'")


@dataclass
class Bundle:
    path: Path
    model: AudioInteractionModel
    tokenizer: PreTrainedTokenizerFast
    settings: StreamingSettings

    # resolved once per loaded bundle: offline answers and one-pass encodes ask for them on every item
    @cached_property
    def tower_precision(self) -> str:
        """The tower's precision on this machine ("auto" resolved by the per-machine probe)."""
        return precision.resolve(self.settings.tower_precision, "tower")

    @cached_property
    def lm_precision(self) -> str:
        """The LM's precision on this machine ("auto": a probe of this LM's shape, kept per machine)."""
        lm = self.model.lm.config
        key = f"runtime-{lm.model_type}-{lm.num_hidden_layers}x{lm.hidden_size}-v{lm.vocab_size}"
        return precision.resolve(self.settings.lm_precision, key, lambda: lm_bf16_speedup(self.model))


def export_bundle(model_dir: Path, out_dir: Path, *, max_context_chunks: int,
                  keep_context_chunks: int, max_reply_tokens: int, default_instruction: str,
                  default_lang: str = "en", tower_precision: str = "auto", lm_precision: str = "auto") -> Path:
    """Copy a trained model folder into a bundle with its streaming.json; written to a temp folder, renamed."""
    model_dir, out_dir = Path(model_dir), Path(out_dir)
    missing = [f for f in MODEL_FILES if not (model_dir / f).is_file()]
    if missing:
        raise FileNotFoundError(f"model folder {model_dir} lacks {', '.join(missing)}")
    tower = sub_config(AudioLMConfig.from_pretrained(model_dir).encoder_config)
    settings = StreamingSettings(
        sample_rate=layout.SAMPLE_RATE, chunk_seconds=layout.CHUNK_SECONDS, frames_per_chunk=layout.FRAMES_PER_CHUNK,
        n_mels=tower.n_mels, max_context_chunks=max_context_chunks, keep_context_chunks=keep_context_chunks,
        max_reply_tokens=max_reply_tokens, default_instruction=default_instruction, default_lang=default_lang,
        tower_precision=tower_precision, lm_precision=lm_precision)
    settings.check(out_dir / STREAMING_FILE)
    tmp = out_dir.with_name(f".{out_dir.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    for name in MODEL_FILES:
        shutil.copy2(model_dir / name, tmp / name)
    tokenizer = PreTrainedTokenizerFast.from_pretrained(str(tmp))
    streaming = {
        "format_version": FORMAT_VERSION,
        **asdict(settings),
        "chunk_samples": settings.chunk_samples,
        "features": {"kind": "whisper_logmel", "n_mels": tower.n_mels, "n_fft": 400, "hop": 160, "per_chunk": True,
                     "ceiling": tower.mel_ceiling},
        "special_token_ids": {t: tokenizer.convert_tokens_to_ids(t) for t in layout.SPECIAL_TOKENS},
    }
    (tmp / STREAMING_FILE).write_text(json.dumps(streaming, indent=1, ensure_ascii=False) + "\n")
    shutil.rmtree(out_dir, ignore_errors=True)
    os.replace(tmp, out_dir)
    return out_dir


def load_bundle(path: str | Path, chunk_seconds: float | None = None) -> Bundle:
    """Load a bundle for inference. `chunk_seconds` overrides the trained chunk length (runtime-cost
    sweeps only: the model was trained on the bundle's own chunk length)."""
    path = Path(path)
    spec_file = path / STREAMING_FILE
    if not spec_file.is_file():
        raise FileNotFoundError(f"not a SoundFlow bundle (no {STREAMING_FILE}): {path}")
    spec = json.loads(spec_file.read_text())
    if spec.get("format_version") != FORMAT_VERSION:
        raise ValueError(f"{spec_file}: format_version {spec.get('format_version')}, this runtime reads {FORMAT_VERSION}")
    fields = StreamingSettings.__dataclass_fields__
    missing = [k for k, f in fields.items() if k not in spec and f.default is MISSING]
    if missing:
        raise ValueError(f"{spec_file}: missing key '{missing[0]}'")
    settings = StreamingSettings(**{k: spec[k] for k in fields if k in spec})  # lm_precision: "auto" where absent
    settings.check(spec_file)
    tokenizer = PreTrainedTokenizerFast.from_pretrained(str(path))
    wrong = {t: i for t, i in spec["special_token_ids"].items() if tokenizer.convert_tokens_to_ids(t) != i}
    if wrong:
        raise ValueError(f"{spec_file}: special-token ids disagree with the bundle's tokenizer: {wrong}")
    model = AudioInteractionModel.from_pretrained(str(path)).eval()
    if chunk_seconds is not None and chunk_seconds != settings.chunk_seconds:
        frames = round(chunk_seconds / settings.chunk_seconds * settings.frames_per_chunk)
        if frames < 1 or abs(frames * settings.chunk_seconds / settings.frames_per_chunk - chunk_seconds) > 1e-9:
            raise ValueError(f"chunk_seconds {chunk_seconds} is not a whole number of 40 ms encoder frames")
        model.encoder.config.frames_per_chunk = frames
        settings = StreamingSettings(**{**asdict(settings), "chunk_seconds": chunk_seconds, "frames_per_chunk": frames})
    return Bundle(path, model, tokenizer, settings)
