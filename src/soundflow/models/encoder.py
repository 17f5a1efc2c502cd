"""Chunk-streaming conformer-lite audio encoder with a CTC head (DESIGN section 6).

log-mel [B, T, 80] at 10 ms -> causal 4x conv subsampling -> 40 ms frames -> blocks of
(chunk-masked MHSA, causal depthwise conv module, FFN) -> LayerNorm -> frames [B, T', d].

Nothing looks ahead of the current 400 ms chunk: the front end and the conv modules are padded on the
left only, and attention sees the current chunk plus `left_chunks` previous ones. Because of that, the
whole-utterance `forward` (chunk mask) and chunk-by-chunk `encode_chunk` (caches) give the same frames.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from transformers import AutoConfig, AutoModel, PretrainedConfig, PreTrainedModel

from soundflow import layout

CONTEXT = 2  # left frames each stride-2, kernel-3 front-end conv needs


class StreamingEncoderConfig(PretrainedConfig):
    """Sizes of the streaming encoder. Defaults are the 2.5 M-parameter model of feasibility.md section 4."""

    model_type = "soundflow_encoder"

    n_mels: int = layout.N_MELS
    d_model: int = 192
    n_layers: int = 4
    n_heads: int = 4
    ff: int = 768
    conv_kernel: int = 15
    frontend_channels: int = 64
    left_chunks: int = 8  # previous chunks each attention layer may see (8 x 400 ms = 3.2 s)
    frames_per_chunk: int = layout.FRAMES_PER_CHUNK
    dropout: float = 0.1
    # "absolute": sinusoid of the frame index in the stream (what feasibility.md measured); "chunk": of the
    # index within its chunk, as the paper encodes each chunk with its own positions - never out of the
    # trained range, however long the stream runs
    positions: str = "absolute"
    vocab_size: int = 30  # CTC classes: blank, space, apostrophe, a-z, one spare


@dataclass
class EncoderState:
    """Everything `encode_chunk` must remember between chunks (batch-first tensors)."""

    frontend: list[torch.Tensor]  # last CONTEXT input rows of each front-end conv
    keys: list[torch.Tensor]  # per layer [B, heads, <= left_chunks * frames_per_chunk, head_dim]
    values: list[torch.Tensor]
    conv: list[torch.Tensor]  # per layer last (kernel - 1) GLU outputs [B, d, kernel - 1]
    offset: int = 0  # frames emitted so far (absolute position of the next frame)


def sinusoids(positions: torch.Tensor, dim: int) -> torch.Tensor:
    """Sinusoidal position table for integer positions; elementwise, so chunked and full calls agree."""
    inv = torch.exp(-math.log(10000.0) * torch.arange(0, dim, 2, dtype=torch.float32, device=positions.device) / dim)
    angles = positions.float()[:, None] * inv[None, :]
    return torch.cat([angles.sin(), angles.cos()], dim=-1)


def output_lengths(lengths: torch.Tensor) -> torch.Tensor:
    """Frames after the two stride-2 convs: ceil(ceil(T / 2) / 2)."""
    return ((lengths + 1) // 2 + 1) // 2


def chunk_mask(n_frames: int, lengths: torch.Tensor, frames_per_chunk: int, left_chunks: int) -> torch.Tensor:
    """Boolean [B, 1, T, T] attention mask: query chunk c sees key chunks c - left_chunks .. c, no padded keys."""
    chunk = torch.arange(n_frames, device=lengths.device) // frames_per_chunk
    delta = chunk[:, None] - chunk[None, :]
    allowed = (delta >= 0) & (delta <= left_chunks)
    valid_key = torch.arange(n_frames, device=lengths.device)[None, :] < lengths[:, None]
    mask = allowed[None] & valid_key[:, None, :]
    # padded query rows would have no key at all (NaN softmax); let every frame see itself
    return (mask | torch.eye(n_frames, dtype=torch.bool, device=lengths.device)[None]).unsqueeze(1)


class CausalSubsampling(nn.Module):
    """Two Conv2d(k=3, s=2), padded by CONTEXT frames on the left in time only: frame j sees inputs <= 4j."""

    def __init__(self, config: StreamingEncoderConfig):
        super().__init__()
        ch = config.frontend_channels
        self.conv1 = nn.Conv2d(1, ch, kernel_size=3, stride=2)
        self.conv2 = nn.Conv2d(ch, ch, kernel_size=3, stride=2)
        freq = ((config.n_mels - 3) // 2 + 1 - 3) // 2 + 1
        self.out = nn.Linear(ch * freq, config.d_model)

    def forward(self, x: torch.Tensor, cache: list[torch.Tensor] | None = None):
        """x [B, T, n_mels] -> ([B, ceil(ceil(T/2)/2), d], new cache). No cache = zero left padding."""
        h = x.unsqueeze(1)  # [B, 1, T, F]
        new_cache = []
        for i, conv in enumerate((self.conv1, self.conv2)):
            left = cache[i] if cache is not None else h.new_zeros(h.shape[0], h.shape[1], CONTEXT, h.shape[3])
            h = torch.cat([left, h], dim=2)
            new_cache.append(h[:, :, -CONTEXT:])
            h = F.gelu(conv(h))
        b, c, t, f = h.shape
        return self.out(h.permute(0, 2, 1, 3).reshape(b, t, c * f)), new_cache


class ChunkAttention(nn.Module):
    """Multi-head self-attention; the caller supplies the chunk mask (full) or cached keys/values (streaming)."""

    def __init__(self, config: StreamingEncoderConfig):
        super().__init__()
        self.heads = config.n_heads
        self.qkv = nn.Linear(config.d_model, 3 * config.d_model)
        self.proj = nn.Linear(config.d_model, config.d_model)
        self.dropout = config.dropout

    def forward(self, x, mask=None, past_k=None, past_v=None):
        b, t, d = x.shape
        q, k, v = self.qkv(x).view(b, t, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        if past_k is not None:
            k, v = torch.cat([past_k, k], dim=2), torch.cat([past_v, v], dim=2)
        drop = self.dropout if self.training else 0.0
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=drop)
        return self.proj(out.transpose(1, 2).reshape(b, t, d)), k, v


class CausalConvModule(nn.Module):
    """Linear d->2d, GLU, depthwise Conv1d padded on the left only, LayerNorm, SiLU, Linear."""

    def __init__(self, config: StreamingEncoderConfig):
        super().__init__()
        d, self.context = config.d_model, config.conv_kernel - 1
        self.inp = nn.Linear(d, 2 * d)
        self.depthwise = nn.Conv1d(d, d, config.conv_kernel, groups=d)
        self.norm = nn.LayerNorm(d)
        self.out = nn.Linear(d, d)

    def forward(self, x, cache=None):
        h = F.glu(self.inp(x), dim=-1).transpose(1, 2)  # [B, d, T]
        left = cache if cache is not None else h.new_zeros(h.shape[0], h.shape[1], self.context)
        h = torch.cat([left, h], dim=2)
        new_cache = h[:, :, -self.context:]
        h = self.depthwise(h).transpose(1, 2)
        return self.out(F.silu(self.norm(h))), new_cache


class ConformerLiteBlock(nn.Module):
    """Pre-LN residual block: chunk MHSA -> causal conv module -> FFN."""

    def __init__(self, config: StreamingEncoderConfig):
        super().__init__()
        d = config.d_model
        self.norm_att, self.norm_conv, self.norm_ff = nn.LayerNorm(d), nn.LayerNorm(d), nn.LayerNorm(d)
        self.att = ChunkAttention(config)
        self.conv = CausalConvModule(config)
        self.ff = nn.Sequential(nn.Linear(d, config.ff), nn.GELU(), nn.Dropout(config.dropout), nn.Linear(config.ff, d))
        self.drop = nn.Dropout(config.dropout)

    def forward(self, x, mask=None, past_k=None, past_v=None, conv_cache=None):
        a, k, v = self.att(self.norm_att(x), mask, past_k, past_v)
        x = x + self.drop(a)
        c, conv_cache = self.conv(self.norm_conv(x), conv_cache)
        x = x + self.drop(c)
        x = x + self.drop(self.ff(self.norm_ff(x)))
        return x, k, v, conv_cache


class StreamingEncoder(PreTrainedModel):
    """features [B, T, n_mels] -> 40 ms frames [B, T', d]; `encode_chunk` streams 400 ms at a time."""

    config_class = StreamingEncoderConfig
    main_input_name = "features"

    def __init__(self, config: StreamingEncoderConfig):
        super().__init__(config)
        if config.positions not in ("absolute", "chunk"):
            raise ValueError(f"positions must be 'absolute' or 'chunk', got '{config.positions}'")
        self.frontend = CausalSubsampling(config)
        self.blocks = nn.ModuleList(ConformerLiteBlock(config) for _ in range(config.n_layers))
        self.norm = nn.LayerNorm(config.d_model)
        self.ctc_head = nn.Linear(config.d_model, config.vocab_size)
        self.drop = nn.Dropout(config.dropout)
        self.post_init()

    def _init_weights(self, module):
        # PyTorch's own per-layer init, the one the feasibility runs were trained with
        if hasattr(module, "reset_parameters"):
            module.reset_parameters()

    @property
    def output_dim(self) -> int:
        return self.config.d_model

    @property
    def chunk_features(self) -> int:
        """Feature frames (10 ms) in one chunk: 4x the encoder frames per chunk."""
        return 4 * self.config.frames_per_chunk

    def _embed(self, features, frontend_cache, offset):
        x, frontend_cache = self.frontend(features, frontend_cache)
        positions = torch.arange(offset, offset + x.shape[1], device=x.device)
        if self.config.positions == "chunk":
            positions = positions % self.config.frames_per_chunk
        return self.drop(x + sinusoids(positions, x.shape[-1]).to(x.dtype)), frontend_cache

    def forward(self, features: torch.Tensor, lengths: torch.Tensor | None = None):
        """Whole utterances under the chunk mask -> (frames [B, T', d], frame_lengths [B])."""
        if lengths is None:
            lengths = torch.full((features.shape[0],), features.shape[1], device=features.device)
        x, _ = self._embed(features, None, 0)
        frame_lengths = output_lengths(lengths.to(x.device))
        mask = chunk_mask(x.shape[1], frame_lengths, self.config.frames_per_chunk, self.config.left_chunks)
        for block in self.blocks:
            x = block(x, mask=mask)[0]
        return self.norm(x), frame_lengths

    def ctc_logits(self, frames: torch.Tensor) -> torch.Tensor:
        return self.ctc_head(frames)

    def init_state(self, batch_size: int = 1) -> EncoderState:
        p = next(self.parameters())
        c, heads = self.config, self.config.n_heads
        frontend = [p.new_zeros(batch_size, 1, CONTEXT, c.n_mels),
                    p.new_zeros(batch_size, c.frontend_channels, CONTEXT, (c.n_mels - 3) // 2 + 1)]
        empty = p.new_zeros(batch_size, heads, 0, c.d_model // heads)
        return EncoderState(
            frontend=frontend,
            keys=[empty] * c.n_layers,
            values=[empty] * c.n_layers,
            conv=[p.new_zeros(batch_size, c.d_model, c.conv_kernel - 1) for _ in range(c.n_layers)],
        )

    @torch.no_grad()
    def encode_chunk(self, chunk_features: torch.Tensor, state: EncoderState):
        """One chunk [B, 4 * frames_per_chunk, n_mels] -> (frames [B, frames_per_chunk, d], new state)."""
        if chunk_features.shape[1] != self.chunk_features:
            raise ValueError(f"encode_chunk needs {self.chunk_features} feature frames, got {chunk_features.shape[1]}")
        x, frontend = self._embed(chunk_features, state.frontend, state.offset)
        keep = self.config.left_chunks * self.config.frames_per_chunk
        keys, values, convs = [], [], []
        for block, k, v, conv in zip(self.blocks, state.keys, state.values, state.conv):
            x, k, v, conv = block(x, past_k=k, past_v=v, conv_cache=conv)
            # the next chunk may look back left_chunks chunks: keep exactly those keys/values
            keys.append(k[:, :, -keep:] if keep else k[:, :, :0])
            values.append(v[:, :, -keep:] if keep else v[:, :, :0])
            convs.append(conv)
        new_state = EncoderState(frontend, keys, values, convs, state.offset + x.shape[1])
        return self.norm(x), new_state


AutoConfig.register(StreamingEncoderConfig.model_type, StreamingEncoderConfig, exist_ok=True)
AutoModel.register(StreamingEncoderConfig, StreamingEncoder, exist_ok=True)
