"""Paper backbone: Qwen2.5-Omni audio tower + thinker LM as an AudioInteractionModel (DESIGN section 6, paper profile).

Encoder: `Qwen2_5OmniAudioEncoder` run chunk by chunk as in the paper ("each 0.4 s chunk is encoded with
independent position embeddings and without cross-chunk encoder attention"): 40 mel frames (128 bins,
Whisper-style log-mel, 10 ms hop) go in as one tower "utterance" (`feature_lens` = 40), which inside the tower
is conv (stride 2) -> 20 frames with positions 0..19 -> attention within the chunk -> avg-pool 2 -> 10 frames
-> `proj` to the LM width. Chunks never see each other, so streaming needs no state and one batched tower call
encodes a whole utterance.

LM: the thinker's text stack is Qwen2 with multimodal RoPE; with the same position on all three RoPE axes
(our layout writes audio frames into ordinary sequence positions, like the paper's released LitGPT code) it
equals `Qwen2ForCausalLM` exactly, so the weights load into a plain Qwen2 LM and the runtime needs nothing
Qwen-specific.
"""
from __future__ import annotations

import json
import math
from pathlib import Path

import torch
from transformers import AutoConfig, AutoModel, PretrainedConfig, PreTrainedModel, Qwen2Config, Qwen2ForCausalLM
from transformers.models.qwen2_5_omni import Qwen2_5OmniAudioEncoderConfig, Qwen2_5OmniThinkerConfig
from transformers.models.qwen2_5_omni.modeling_qwen2_5_omni import Qwen2_5OmniAudioEncoder

from soundflow import layout
from soundflow.models.audio_lm import AudioInteractionModel, AudioLMConfig

# Checkpoint names -> AudioInteractionModel names. A thinker folder stores `audio_tower.*`, `model.*`
# (the text stack) and `lm_head.*`; a full Qwen2.5-Omni folder has the same under `thinker.`.
KEY_MAPPING = {
    r"^(thinker\.)?audio_tower\.": "encoder.tower.",
    r"^(thinker\.)?model\.": "lm.model.",
    r"^(thinker\.)?lm_head\.": "lm.lm_head.",
}
# The same checkpoints read part by part (the paper profile's tower and thinker import rules)
TOWER_KEY_MAPPING = {r"^(thinker\.)?audio_tower\.": "tower."}
LM_KEY_MAPPING = {r"^(thinker\.)?model\.": "model.", r"^(thinker\.)?lm_head\.": "lm_head."}
OMNI_MODEL_TYPES = ("qwen2_5_omni", "qwen2_5_omni_thinker")  # config.json of a full Omni folder or a thinker one


class QwenAudioEncoderConfig(PretrainedConfig):
    """The Qwen2.5-Omni audio tower config plus our chunking."""

    model_type = "soundflow_qwen_audio"
    sub_configs_defaults = {"audio_config": Qwen2_5OmniAudioEncoderConfig}

    audio_config: dict | PretrainedConfig | None = None
    frames_per_chunk: int = layout.FRAMES_PER_CHUNK
    mel_ceiling: float = 1.5  # fixed log-mel ceiling of the streaming front end (soundflow.features)

    @property
    def n_mels(self) -> int:
        return self.audio_config.num_mel_bins


class QwenChunkedAudioEncoder(PreTrainedModel):
    """Same contract as WhisperTower (whisper_tower.py): forward(features, lengths) -> (frames, frame_lengths); encode_chunk."""

    config_class = QwenAudioEncoderConfig
    main_input_name = "features"

    def __init__(self, config: QwenAudioEncoderConfig):
        super().__init__(config)
        self.tower = Qwen2_5OmniAudioEncoder._from_config(config.audio_config)
        self.post_init()

    @property
    def output_dim(self) -> int:
        return self.config.audio_config.output_dim

    @property
    def chunk_features(self) -> int:
        return 4 * self.config.frames_per_chunk

    def encode_chunks(self, chunks: torch.Tensor) -> torch.Tensor:
        """[N, 40, n_mels] independent chunks -> [N, 10, output_dim] in one tower call."""
        n, size, mels = chunks.shape
        features = chunks.reshape(n * size, mels).T  # the tower takes (n_mels, total_frames)
        lens = torch.full((n,), size, dtype=torch.long, device=chunks.device)
        frames = self.tower(features, feature_lens=lens).last_hidden_state
        return frames.view(n, self.config.frames_per_chunk, -1)

    def forward(self, features: torch.Tensor, lengths: torch.Tensor | None = None):
        """features [B, T, n_mels] -> (frames [B, 10 * chunks, d], 10 * ceil(lengths / 40)); a partial last
        chunk is zero-padded to 40 frames."""
        b, t, mels = features.shape
        size = self.chunk_features
        if lengths is None:
            lengths = torch.full((b,), t, device=features.device)
        n_chunks = (lengths.to(features.device) + size - 1) // size
        padded = torch.nn.functional.pad(features, (0, 0, 0, math.ceil(t / size) * size - t))
        chunks = padded.view(b, -1, size, mels)
        valid = torch.arange(chunks.shape[1], device=features.device)[None, :] < n_chunks[:, None]
        encoded = self.encode_chunks(chunks[valid])
        frames = encoded.new_zeros(b, chunks.shape[1], *encoded.shape[1:])
        frames[valid] = encoded
        return frames.flatten(1, 2), n_chunks * self.config.frames_per_chunk

    def init_state(self, batch_size: int = 1):
        return None  # chunks are independent: nothing to carry

    @torch.no_grad()
    def encode_chunk(self, chunk_features: torch.Tensor, state=None):
        if chunk_features.shape[1] != self.chunk_features:
            raise ValueError(f"encode_chunk needs {self.chunk_features} feature frames, got {chunk_features.shape[1]}")
        return self.encode_chunks(chunk_features), state


AutoConfig.register(QwenAudioEncoderConfig.model_type, QwenAudioEncoderConfig, exist_ok=True)
AutoModel.register(QwenAudioEncoderConfig, QwenChunkedAudioEncoder, exist_ok=True)


def qwen2_config_from_thinker(thinker: Qwen2_5OmniThinkerConfig) -> Qwen2Config:
    """The thinker text stack as a plain Qwen2 config (multimodal RoPE sections dropped, see module doc)."""
    text = thinker.text_config
    rope = {"rope_type": "default", "rope_theta": text.rope_parameters["rope_theta"]}
    return Qwen2Config(
        vocab_size=text.vocab_size, hidden_size=text.hidden_size, intermediate_size=text.intermediate_size,
        num_hidden_layers=text.num_hidden_layers, num_attention_heads=text.num_attention_heads,
        num_key_value_heads=text.num_key_value_heads, hidden_act=text.hidden_act,
        max_position_embeddings=text.max_position_embeddings, rms_norm_eps=text.rms_norm_eps,
        rope_parameters=rope, attention_dropout=text.attention_dropout,
        # the thinker decides the lm_head tie at its own level (False for the released checkpoints)
        tie_word_embeddings=thinker.tie_word_embeddings,
    )


def paper_config(thinker: Qwen2_5OmniThinkerConfig, audio_token_id: int,
                 projector_type: str = "linear") -> AudioLMConfig:
    encoder = QwenAudioEncoderConfig(audio_config=thinker.audio_config.to_dict())
    return AudioLMConfig(encoder_config=encoder, lm_config=qwen2_config_from_thinker(thinker),
                         projector_type=projector_type, audio_token_id=audio_token_id)


def is_qwen_omni(path: str | Path) -> bool:
    """Whether `path` is a local Qwen2.5-Omni folder (full model or thinker only)."""
    config = Path(path) / "config.json"
    return config.is_file() and json.loads(config.read_text()).get("model_type") in OMNI_MODEL_TYPES


def _load_part(cls, path: Path, config: PretrainedConfig, key_mapping: dict, what: str):
    """One part of a Qwen2.5-Omni checkpoint as `cls`; every weight of the part must be in the checkpoint
    (the rest of the checkpoint, the other parts, is skipped)."""
    model, info = cls.from_pretrained(path, config=config, key_mapping=key_mapping, local_files_only=True,
                                      dtype=torch.float32, output_loading_info=True)
    if info["missing_keys"]:
        raise ValueError(f"{path}: the {what} lacks weights: {', '.join(sorted(info['missing_keys'])[:5])}")
    model._weight_conversions = []  # saved under its own names: transformers would otherwise undo key_mapping
    return model.eval()


def load_audio_tower(path: str | Path, mel_ceiling: float = QwenAudioEncoderConfig.mel_ceiling
                     ) -> QwenChunkedAudioEncoder:
    """The audio tower of a LOCAL Qwen2.5-Omni folder as a QwenChunkedAudioEncoder (float32)."""
    thinker = Qwen2_5OmniThinkerConfig.from_pretrained(path, local_files_only=True)
    config = QwenAudioEncoderConfig(audio_config=thinker.audio_config.to_dict(), mel_ceiling=mel_ceiling)
    return _load_part(QwenChunkedAudioEncoder, Path(path), config, TOWER_KEY_MAPPING, "audio tower")


def load_thinker_lm(path: str | Path) -> Qwen2ForCausalLM:
    """The thinker's text stack of a LOCAL Qwen2.5-Omni folder as a plain Qwen2 causal LM (float32)."""
    thinker = Qwen2_5OmniThinkerConfig.from_pretrained(path, local_files_only=True)
    return _load_part(Qwen2ForCausalLM, Path(path), qwen2_config_from_thinker(thinker), LM_KEY_MAPPING,
                      "thinker LM")


def identity_projector(model: AudioInteractionModel) -> None:
    """A linear projector between equal widths starts as the identity: the Qwen tower's `proj` already maps
    into the thinker's width, so the pretrained audio->LM alignment is kept until s2 fine-tunes it."""
    if model.config.projector_type == "linear" and model.encoder.output_dim == model.lm.config.hidden_size:
        with torch.no_grad():
            model.projector.weight.copy_(torch.eye(model.encoder.output_dim))
            model.projector.bias.zero_()


def load_paper_backbone(path: str | Path, audio_token_id: int, vocab_size: int | None = None,
                        projector_type: str = "linear", dtype: torch.dtype | None = None,
                        **from_pretrained_kwargs) -> AudioInteractionModel:
    """AudioInteractionModel from a LOCAL Qwen2.5-Omni folder (full model or thinker only), offline.

    The audio tower and the thinker LM are loaded with `from_pretrained`; vision/talker/token2wav weights are
    skipped. The projector is new: "linear" starts as the identity (the tower's `proj` already maps into the LM
    width, so the pretrained audio->LM alignment is kept and stage s2 fine-tunes it), "mlp" starts random.
    `vocab_size` larger than the checkpoint's grows the embeddings for our special tokens.
    """
    path = Path(path)
    if not (path / "config.json").is_file():
        raise FileNotFoundError(f"no config.json in paper backbone folder {path}")
    thinker = Qwen2_5OmniThinkerConfig.from_pretrained(path, local_files_only=True)
    config = paper_config(thinker, audio_token_id, projector_type)
    model = AudioInteractionModel.from_pretrained(path, config=config, key_mapping=KEY_MAPPING, dtype=dtype,
                                                  local_files_only=True, **from_pretrained_kwargs)
    identity_projector(model)
    if vocab_size is not None and vocab_size > model.config.vocab_size:
        model.resize_token_embeddings(vocab_size)
    return model
