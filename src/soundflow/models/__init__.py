"""Models: one file per model. Importing the package registers the configs/models with AutoConfig/AutoModel,
so `from_pretrained` works on our checkpoints offline (no trust_remote_code)."""
from soundflow.models.audio_lm import AudioInteractionModel, AudioLMConfig, split_losses
from soundflow.models.qwen_omni import (
    QwenAudioEncoderConfig,
    QwenChunkedAudioEncoder,
    load_paper_backbone,
)
from soundflow.models.whisper_tower import TowerState, WhisperTower, WhisperTowerConfig

__all__ = [
    "AudioInteractionModel",
    "AudioLMConfig",
    "QwenAudioEncoderConfig",
    "QwenChunkedAudioEncoder",
    "load_paper_backbone",
    "split_losses",
    "TowerState",
    "WhisperTower",
    "WhisperTowerConfig",
]
