"""Audio-Interaction model: audio tower + projector + a Hugging Face causal LM (DESIGN sections 5-6).

The LM never sees token ids directly: `embed` looks the tokens up and writes the projected tower frames
into the `<audio>` placeholder positions (the i-th slot of a sample gets its i-th frame), and the LM runs
on `inputs_embeds`. Loss = lm_weight * L_LM + stream_weight * L_stream, split by a per-position label kind.
An optional CTC head reads characters from the projected frames: dense supervision that makes the
projector carry the words (training only; `ctc_log_probs`).
"""
from __future__ import annotations

import json

import torch
import torch.nn.functional as F
from torch import nn
from transformers import (
    AutoConfig,
    AutoModel,
    AutoModelForCausalLM,
    DynamicCache,
    LlamaConfig,
    PretrainedConfig,
    PreTrainedModel,
)

from soundflow import layout
from soundflow.models.whisper_tower import WhisperTowerConfig

IGNORE = -100  # label of positions without a target

# Tiny-profile LM of feasibility.md section 3; the vocabulary size comes from the tokenizer.
DEFAULT_LM = dict(hidden_size=256, num_hidden_layers=4, num_attention_heads=4, intermediate_size=768,
                  max_position_embeddings=8192, tie_word_embeddings=True, vocab_size=256)


def sub_config(config: dict | PretrainedConfig) -> PretrainedConfig:
    """A sub-config stored as a plain dict (so config.json stays self-contained) back as its config class."""
    if isinstance(config, PretrainedConfig):
        return config
    fields = {k: v for k, v in config.items() if k not in ("model_type", "transformers_version", "architectures")}
    return AutoConfig.for_model(config["model_type"], **fields)


def as_dict(config: dict | PretrainedConfig | None, default: type[PretrainedConfig], **defaults) -> dict:
    """Full sub-config as config.json will hold it (so saved and reloaded configs compare equal).

    None gives `default(**defaults)`; a dict without `model_type` (e.g. a params.yaml slice) overrides those.
    """
    if config is None or (isinstance(config, dict) and "model_type" not in config):
        config = default(**{**defaults, **(config or {})})
    if isinstance(config, PretrainedConfig):
        return json.loads(config.to_json_string(use_diff=False))
    return dict(config)


class AudioLMConfig(PretrainedConfig):
    """Encoder and LM configs (dicts with their `model_type`), projector kind and the `<audio>` token id."""

    model_type = "soundflow_audio_lm"

    encoder_config: dict | None = None  # WhisperTowerConfig (default) or any registered tower config
    lm_config: dict | None = None  # any causal-LM config; default LlamaConfig(**DEFAULT_LM)
    vocab_size: int | None = None  # when given, overrides lm_config's vocab_size; afterwards always mirrors it
    projector_type: str = "mlp"  # "mlp" (d_enc -> hidden -> hidden, GELU), "conv" (CausalConvProjector) or "linear"
    audio_token_id: int | None = None  # id of <audio> in the tokenizer (None: text only, no slot matches)
    frame_dropout: float = 0.1  # training only: zero whole encoder frames with this probability
    ctc_vocab_size: int = 0  # classes of the CTC head on the projected frames (0: no head)

    def __post_init__(self, **kwargs):
        self.encoder_config = as_dict(self.encoder_config, WhisperTowerConfig)
        self.lm_config = as_dict(self.lm_config, LlamaConfig, **DEFAULT_LM)
        if self.vocab_size is not None:
            self.lm_config["vocab_size"] = self.vocab_size
        self.vocab_size = self.lm_config["vocab_size"]
        if self.projector_type not in PROJECTORS:
            raise ValueError(f"projector_type must be one of {', '.join(PROJECTORS)}, got '{self.projector_type}'")
        super().__post_init__(**kwargs)


PROJECTORS = ("mlp", "conv", "linear")


class CausalConvProjector(nn.Module):
    """Tower frames -> LM width, then residual causal conv blocks over time: a projected frame also reads the
    `context` frames before it (3 blocks of kernel 5: 12 frames, 480 ms), never a later one. Through it a CTC
    readout of the frozen tower's block-causal frames reads at CER 0.26 / 0.22 (held-out voice / unseen
    engine) against 0.42 / 0.38 per frame (the mlp) after 120 s of training each (scripts/adapter_arm.py).
    Streaming passes a chunk's `past` frames (the `context` tower frames before it): the chunk then projects
    as it does inside the whole stream."""

    def __init__(self, d_in: int, d_out: int, blocks: int = 3, kernel: int = 5):
        super().__init__()
        self.proj = nn.Linear(d_in, d_out)
        self.convs = nn.ModuleList(nn.Conv1d(d_out, d_out, kernel) for _ in range(blocks))
        self.context = blocks * (kernel - 1)

    def forward(self, frames: torch.Tensor, past: torch.Tensor | None = None) -> torch.Tensor:
        """frames [B, T, d_in] (after `past` [B, P, d_in], P <= context; zeros before either) -> [B, T, d_out]."""
        n = frames.shape[1]
        if past is not None:
            frames = torch.cat([past.to(frames.dtype), frames], dim=1)
        x = self.proj(frames).transpose(1, 2)
        for conv in self.convs:
            x = x + F.gelu(conv(F.pad(x, (conv.kernel_size[0] - 1, 0))))
        return x.transpose(1, 2)[:, frames.shape[1] - n:]


def build_projector(kind: str, d_in: int, d_out: int) -> nn.Module:
    if kind == "linear":
        return nn.Linear(d_in, d_out)
    if kind == "conv":
        return CausalConvProjector(d_in, d_out)
    return nn.Sequential(nn.Linear(d_in, d_out), nn.GELU(), nn.Linear(d_out, d_out))


def pad_frames(frames: list[torch.Tensor] | torch.Tensor, lengths: torch.Tensor | None = None):
    """Precomputed encoder frames as a list of [n_i, d] or a padded [B, T, d] -> (padded, lengths)."""
    if isinstance(frames, torch.Tensor):
        if lengths is None:
            lengths = torch.full((frames.shape[0],), frames.shape[1], device=frames.device)
        return frames, lengths
    lengths = torch.tensor([f.shape[0] for f in frames], device=frames[0].device)
    return nn.utils.rnn.pad_sequence(list(frames), batch_first=True), lengths


def split_losses(logits, labels, label_kind=None):
    """Mean next-token cross-entropy over LABEL_LM and over LABEL_STREAM positions (0 where a kind is absent)."""
    target = labels[:, 1:]
    kind = label_kind[:, 1:] if label_kind is not None else torch.full_like(target, layout.LABEL_LM)
    token_loss = F.cross_entropy(logits[:, :-1].float().transpose(1, 2), target.clamp(min=0), reduction="none")
    labelled = target != IGNORE
    losses = {}
    for name, value in (("loss_lm", layout.LABEL_LM), ("loss_stream", layout.LABEL_STREAM)):
        mask = labelled & (kind == value)
        losses[name] = (token_loss * mask).sum() / mask.sum().clamp(min=1)
    return losses


class AudioInteractionModel(PreTrainedModel):
    """encoder -> projector -> causal LM on inputs_embeds, with a KV-cached streaming interface."""

    config_class = AudioLMConfig
    main_input_name = "input_ids"
    supports_gradient_checkpointing = True
    _supports_sdpa = True
    # parts of a Qwen2.5-Omni checkpoint the paper backbone (qwen_omni.py) does not use
    _keys_to_ignore_on_load_unexpected = [r"^(thinker\.)?visual\.", r"^talker\.", r"^token2wav\."]

    def __init__(self, config: AudioLMConfig):
        super().__init__(config)
        self.encoder = AutoModel.from_config(sub_config(config.encoder_config))
        lm_config = sub_config(config.lm_config)
        self.projector = build_projector(config.projector_type, self.encoder.output_dim, lm_config.hidden_size)
        self.lm = AutoModelForCausalLM.from_config(lm_config)
        self.ctc_head = nn.Linear(lm_config.hidden_size, config.ctc_vocab_size) if config.ctc_vocab_size else None
        self.post_init()

    def _init_weights(self, module):
        # only the projector is ours here; encoder and LM bring their own init
        if hasattr(module, "reset_parameters"):
            module.reset_parameters()

    def get_input_embeddings(self):
        return self.lm.get_input_embeddings()

    def set_input_embeddings(self, value):
        self.lm.set_input_embeddings(value)

    def get_output_embeddings(self):
        return self.lm.get_output_embeddings()

    def resize_token_embeddings(self, new_num_tokens: int, **kwargs):
        """Resize the LM vocabulary (a pretrained tokenizer plus our special tokens); keeps the configs in sync."""
        out = self.lm.resize_token_embeddings(new_num_tokens, **kwargs)
        self.config.vocab_size = self.config.lm_config["vocab_size"] = self.lm.config.vocab_size
        return out

    # ----- audio -> embeddings -------------------------------------------------------------------------

    def encode_audio(self, features: torch.Tensor, feature_lengths: torch.Tensor | None = None):
        """Whole streams (computed as streaming computes them) -> (frames [B, T', d_enc], frame_lengths)."""
        return self.encoder(features, feature_lengths)

    @property
    def projector_context(self) -> int:
        """Tower frames before a frame that its projection reads (0: the projector works per frame)."""
        return getattr(self.projector, "context", 0)

    def project(self, frames: torch.Tensor, past: torch.Tensor | None = None) -> torch.Tensor:
        """Tower frames [B, T, d_enc] -> LM-width frames; `past`: the frames before them (streaming, conv only)."""
        dtype = next(self.projector.parameters()).dtype
        frames = self._drop_frames(frames.to(dtype))
        if self.projector_context:
            return self.projector(frames, past)
        return self.projector(frames)

    def embed(self, input_ids: torch.Tensor, frames: torch.Tensor | None = None,
              frame_lengths: torch.Tensor | None = None, past_frames: torch.Tensor | None = None) -> torch.Tensor:
        """Token embeddings [B, L, H] with the i-th `<audio>` slot of each sample replaced by its i-th frame
        (`past_frames`: the tower frames before `frames`, which a conv projector reads)."""
        embeds = self.lm.get_input_embeddings()(input_ids)
        if self.config.audio_token_id is None:
            return embeds
        slots = input_ids == self.config.audio_token_id
        if not bool(slots.any()):
            return embeds
        if frames is None:
            raise ValueError("input_ids contain <audio> slots but no features or audio_frames were given")
        counts = slots.sum(dim=1)
        available = frame_lengths if frame_lengths is not None else torch.full_like(counts, frames.shape[1])
        short = (counts > available.to(counts.device)).nonzero().flatten().tolist()
        if short:
            b = short[0]
            raise ValueError(
                f"sample {b} has {int(counts[b])} <audio> slots but only {int(available[b])} encoder frames")
        audio = self.project(frames, past_frames).to(embeds.dtype)
        index = (slots.long().cumsum(dim=1) - 1).clamp(min=0)  # position -> index of its frame
        picked = torch.gather(audio, 1, index.unsqueeze(-1).expand(-1, -1, audio.shape[-1]))
        return torch.where(slots.unsqueeze(-1), picked, embeds)

    def ctc_log_probs(self, frames: torch.Tensor) -> torch.Tensor:
        """Tower frames [B, T, d_enc] -> CTC log-probabilities [B, T, ctc_vocab_size] of the projected frames."""
        if self.ctc_head is None:
            raise ValueError("this model has no CTC head (config.ctc_vocab_size is 0)")
        return self.ctc_head(self.project(frames)).float().log_softmax(-1)

    def _drop_frames(self, frames: torch.Tensor) -> torch.Tensor:
        if not self.training or self.config.frame_dropout <= 0:
            return frames
        keep = torch.rand(frames.shape[:2], device=frames.device) >= self.config.frame_dropout
        return frames * keep.unsqueeze(-1).to(frames.dtype)

    # ----- training forward ----------------------------------------------------------------------------

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                features: torch.Tensor | None = None, feature_lengths: torch.Tensor | None = None,
                audio_frames: list[torch.Tensor] | torch.Tensor | None = None,
                audio_frame_lengths: torch.Tensor | None = None,
                labels: torch.Tensor | None = None, label_kind: torch.Tensor | None = None,
                lm_weight: float = 1.0, stream_weight: float = 1.0, labelled_logits_only: bool = False) -> dict:
        """Teacher-forced pass. Audio comes as features (encoded here) or as precomputed `audio_frames`.

        labels: [B, L] token ids at labelled positions, IGNORE (-100) elsewhere; position t predicts t+1.
        label_kind: [B, L] layout.LABEL_* per position; without it every label counts as L_LM.
        """
        frames, frame_lengths = None, None
        if audio_frames is not None:
            frames, frame_lengths = pad_frames(audio_frames, audio_frame_lengths)
        elif features is not None:
            frames, frame_lengths = self.encode_audio(features, feature_lengths)
        embeds = self.embed(input_ids, frames, frame_lengths)
        if labelled_logits_only and labels is not None:
            return self._labelled_losses(embeds, attention_mask, labels, label_kind, lm_weight, stream_weight)
        logits = self.lm(inputs_embeds=embeds, attention_mask=attention_mask, use_cache=False).logits
        out = {"logits": logits}
        if labels is not None:
            out.update(split_losses(logits, labels, label_kind))
            out["loss"] = lm_weight * out["loss_lm"] + stream_weight * out["loss_stream"]
        return out

    def _labelled_losses(self, embeds, attention_mask, labels, label_kind, lm_weight, stream_weight) -> dict:
        """Training speed-up: the LM head and the loss only at positions that predict a label (most
        positions of a stream are audio slots without one), with the same losses as the full pass."""
        hidden = self.lm.get_decoder()(inputs_embeds=embeds, attention_mask=attention_mask, use_cache=False)[0]
        target = labels[:, 1:]
        kind = label_kind[:, 1:] if label_kind is not None else torch.full_like(target, layout.LABEL_LM)
        keep = target != IGNORE
        logits = self.lm.get_output_embeddings()(hidden[:, :-1][keep])
        token_loss = F.cross_entropy(logits.float(), target[keep], reduction="none")
        out = {"logits": None}
        for name, value in (("loss_lm", layout.LABEL_LM), ("loss_stream", layout.LABEL_STREAM)):
            mask = kind[keep] == value
            out[name] = (token_loss * mask).sum() / mask.sum().clamp(min=1)
        out["loss"] = lm_weight * out["loss_lm"] + stream_weight * out["loss_stream"]
        return out

    # ----- streaming interface (runtime) ---------------------------------------------------------------

    def init_encoder_state(self, batch_size: int = 1):
        return self.encoder.init_state(batch_size)

    def encode_chunk(self, chunk_features: torch.Tensor, state):
        """400 ms of features [1, 40, n_mels] -> (frames [1, 10, d_enc], new encoder state)."""
        return self.encoder.encode_chunk(chunk_features, state)

    def new_cache(self) -> DynamicCache:
        return DynamicCache(config=self.lm.config)

    def embed_chunk(self, input_ids: torch.Tensor | list[int], frames: torch.Tensor | None = None,
                    past_frames: torch.Tensor | None = None) -> torch.Tensor:
        """Embeddings [1, n, H] of one sample's next tokens, e.g. `<audio_begin> <audio>x10 <chunk_end>`."""
        ids = torch.as_tensor(input_ids, device=self.device).view(1, -1)
        return self.embed(ids, frames, past_frames=past_frames)

    @torch.no_grad()
    def prefill(self, inputs_embeds: torch.Tensor, cache: DynamicCache) -> torch.Tensor:
        """Append embeddings to the KV cache (in place) and return their logits [1, n, V]."""
        return self.lm(inputs_embeds=inputs_embeds, cache=cache, use_cache=True).logits


AutoConfig.register(AudioLMConfig.model_type, AudioLMConfig, exist_ok=True)
AutoModel.register(AudioLMConfig, AudioInteractionModel, exist_ok=True)
