"""The frozen audio tower on its own: its config (the imported folder plus `model.tower`), its weights, and a
fingerprint of them.

`init` builds the model around this tower, and the frame cache encodes with it, so the cache depends on the
tower alone: a change to the LM, projector, tokens or training code does not re-encode the corpus.
"""
from __future__ import annotations

import hashlib
from pathlib import Path

import torch
from transformers import AutoConfig, AutoModel, WhisperConfig, WhisperForConditionalGeneration

from soundflow.models import QwenAudioEncoderConfig, QwenChunkedAudioEncoder, WhisperTowerConfig

TOWER_KEYS = ("attention", "window_frames", "carry_frames", "mel_ceiling")


def is_qwen_tower(tower_dir: Path | None) -> bool:
    """Whether the imported tower folder holds the paper's Qwen2.5-Omni tower (else Whisper)."""
    return tower_dir is not None and AutoConfig.from_pretrained(tower_dir).model_type == QwenAudioEncoderConfig.model_type


def tower_config(tower_cfg: dict, tower_dir: Path | None) -> WhisperTowerConfig | QwenAudioEncoderConfig:
    """The tower's config: the imported Whisper folder's sizes, or a random tower of `sizes` (smoke); for the
    paper's Qwen2.5-Omni tower its own config, which encodes each chunk alone (the paper's mode)."""
    if is_qwen_tower(tower_dir):
        if tower_cfg["attention"] != "chunk":
            raise ValueError(f"model.tower.attention: the Qwen2.5-Omni tower of {tower_dir} encodes each 400 ms "
                             f"chunk alone; set it to chunk (got {tower_cfg['attention']})")
        config = QwenAudioEncoderConfig.from_pretrained(tower_dir)
        config.mel_ceiling = tower_cfg["mel_ceiling"]
        return config
    if tower_dir is not None:
        whisper = WhisperConfig.from_pretrained(tower_dir, local_files_only=True)
    elif tower_cfg.get("sizes"):
        whisper = WhisperConfig(**tower_cfg["sizes"])
    else:
        raise ValueError("model.tower: a pretrained tower needs its imported folder (--tower); "
                         "a random one needs model.tower.sizes")
    return WhisperTowerConfig(whisper_config=whisper.to_dict(), **{k: tower_cfg[k] for k in TOWER_KEYS})


def load_weights(encoder: torch.nn.Module, tower_dir: Path) -> None:
    """Copy the imported tower's weights (rule tower) into `encoder`; strict: every weight."""
    if isinstance(encoder, QwenChunkedAudioEncoder):
        encoder.load_state_dict(AutoModel.from_pretrained(tower_dir).state_dict())
    else:
        whisper = WhisperForConditionalGeneration.from_pretrained(tower_dir, local_files_only=True)
        encoder.whisper.load_state_dict(whisper.get_encoder().state_dict())


def build(tower_cfg: dict, tower_dir: Path) -> torch.nn.Module:
    """The imported tower alone, as `init` puts it into the model (eval mode)."""
    encoder = AutoModel.from_config(tower_config(tower_cfg, tower_dir))
    load_weights(encoder, tower_dir)
    return encoder.eval()


def fingerprint(encoder: torch.nn.Module) -> str:
    """sha256 of the tower's weights, each rounded to bf16: equal for the same weights whether they are held in
    fp32 or bf16, different for another tower (another import, or a random tower of another seed)."""
    digest = hashlib.sha256()
    for name, tensor in sorted(encoder.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().to("cpu", torch.bfloat16).contiguous().view(torch.int16).numpy().tobytes())
    return digest.hexdigest()
