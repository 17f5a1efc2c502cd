"""Pretrained Whisper encoder run as a streaming audio tower (DESIGN section 6, tiny and small profiles).

Same contract as the Qwen2.5-Omni tower (qwen_omni.py): log-mel [B, T, n_mels] in, 10 frames of 40 ms per
400 ms chunk out; `encode_chunk` streams one chunk at a time with a state.

Per chunk: its 40 mel frames go through Whisper's two convolutions alone (zero padding at the chunk's
edges, so nothing looks past the chunk) -> 20 frames. Attention is block-causal over a window of up to
`window_frames` frames (30 s, Whisper's 1500 positions): a frame of chunk k sees every frame of chunks
<= k of its window, at absolute positions within the window. After the final LayerNorm, average pooling
by 2 gives the 10 frames. (Other chunk lengths, for the runtime's chunk-size sweep, scale all of this.) Streaming runs the same computation with a key/value cache, so streamed frames
equal whole-stream frames to float tolerance.

Streams longer than a window: when a window is full, the next one starts with its last `carry_chunks`
chunks re-encoded at positions 0.. as context (their frames were already emitted and are not emitted
again), then goes on. Frames only ever depend on the audio up to their own chunk.

`attention="chunk"` is the paper's literal mode (each chunk its own window, positions 0..19), kept as
the measured baseline: frozen Whisper cannot read words from isolated 400 ms chunks.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from transformers import AutoConfig, AutoModel, PretrainedConfig, PreTrainedModel, WhisperConfig
from transformers.models.whisper.modeling_whisper import WhisperEncoder

from soundflow import layout


class WhisperTowerConfig(PretrainedConfig):
    """The Whisper config (encoder sizes) plus how the tower streams."""

    model_type = "soundflow_whisper_tower"
    sub_configs_defaults = {"whisper_config": WhisperConfig}

    whisper_config: dict | PretrainedConfig | None = None
    frames_per_chunk: int = layout.FRAMES_PER_CHUNK
    attention: str = "block_causal"  # block_causal | chunk (isolated chunks, the paper's literal mode)
    window_frames: int = 1500  # conv frames (20 ms) per attention window: Whisper's 1500 positions, 30 s
    carry_frames: int = 200  # frames (whole chunks) re-encoded as context when a new window starts: 4 s
    mel_ceiling: float = 1.5  # fixed log-mel ceiling in place of Whisper's per-input maximum (soundflow.features)

    def __post_init__(self, **kwargs):
        if isinstance(self.whisper_config, dict):
            fields = {k: v for k, v in self.whisper_config.items() if k not in ("model_type", "transformers_version")}
            self.whisper_config = WhisperConfig(**fields)
        elif self.whisper_config is None:
            self.whisper_config = WhisperConfig()
        if self.attention not in ("block_causal", "chunk"):
            raise ValueError(f"attention must be 'block_causal' or 'chunk', got '{self.attention}'")
        positions = self.whisper_config.max_source_positions
        if self.attention == "block_causal" and not 0 <= self.carry_frames < self.window_frames <= positions:
            raise ValueError(f"need 0 <= carry_frames < window_frames <= {positions} (Whisper's positions), "
                             f"got {self.carry_frames} and {self.window_frames}")
        super().__post_init__(**kwargs)

    @property
    def n_mels(self) -> int:
        return self.whisper_config.num_mel_bins

    @property
    def conv_per_chunk(self) -> int:
        return 2 * self.frames_per_chunk  # conv2's stride 2, before the pooling by 2

    @property
    def window_chunks(self) -> int:
        return 1 if self.attention == "chunk" else self.window_frames // self.conv_per_chunk

    @property
    def carry_chunks(self) -> int:
        return 0 if self.attention == "chunk" else self.carry_frames // self.conv_per_chunk


@dataclass
class TowerState:
    """What `encode_chunk` carries between chunks: per-layer key/value buffers of the current window
    ([B, heads, window frames, head dim], filled up to its chunks so far; written in place, since copying a
    growing cache every chunk cost a quarter of the tower's time) and the conv frames of its last
    `carry_chunks` chunks (the next window's context)."""

    cache: list[tuple[torch.Tensor, torch.Tensor]] = field(default_factory=list)
    recent: list[torch.Tensor] = field(default_factory=list)  # conv frames [B, 20, d] of the last chunks
    chunks_in_window: int = 0


def block_causal_mask(n_query_chunks: int, n_past_chunks: int, frames_per_chunk: int, device=None) -> torch.Tensor:
    """[Tq, Tk] bool: query chunk i (after n_past cached chunks) sees key chunks 0 .. n_past + i."""
    q = torch.arange(n_query_chunks, device=device).repeat_interleave(frames_per_chunk) + n_past_chunks
    k = torch.arange(n_past_chunks + n_query_chunks, device=device).repeat_interleave(frames_per_chunk)
    return k[None, :] <= q[:, None]


class WhisperTower(PreTrainedModel):
    """Whisper encoder -> 10 frames per 400 ms chunk, streamable; see the module docstring."""

    config_class = WhisperTowerConfig
    main_input_name = "features"

    def __init__(self, config: WhisperTowerConfig):
        super().__init__(config)
        self.whisper = WhisperEncoder(config.whisper_config)
        self.post_init()

    @property
    def output_dim(self) -> int:
        return self.config.whisper_config.d_model

    @property
    def chunk_features(self) -> int:
        return 4 * self.config.frames_per_chunk  # 10 ms mel frames per chunk

    # ----- building blocks ------------------------------------------------------------------------------

    def conv_frames(self, chunks: torch.Tensor) -> torch.Tensor:
        """[N, 40, n_mels] chunks, each alone -> [N, 20, d] (for 400 ms chunks)."""
        w = self.whisper
        x = F.gelu(w.conv1(chunks.transpose(1, 2).to(w.conv1.weight.dtype)))
        return F.gelu(w.conv2(x)).transpose(1, 2)

    def _layers(self, x: torch.Tensor, mask: torch.Tensor | None, cache: list | None = None, start: int = 0):
        """Whisper's pre-LN encoder layers on [B, T, d]. With `cache` (per-layer key/value buffers, allocated
        here when empty), x's keys and values go to frames [start, start + T) and attention runs over
        frames [0, start + T)."""
        heads = self.config.whisper_config.encoder_attention_heads
        b, t, d = x.shape
        for i, layer in enumerate(self.whisper.layers):
            attn = layer.self_attn
            h = layer.self_attn_layer_norm(x)
            q, k, v = (proj(h).view(b, t, heads, d // heads).transpose(1, 2)
                       for proj in (attn.q_proj, attn.k_proj, attn.v_proj))
            if cache is not None:
                if len(cache) == i:
                    size = self.config.window_chunks * self.config.conv_per_chunk
                    cache.append((k.new_empty(b, heads, size, d // heads), v.new_empty(b, heads, size, d // heads)))
                key_buf, value_buf = cache[i]
                key_buf[:, :, start:start + t], value_buf[:, :, start:start + t] = k, v
                k, v = key_buf[:, :, :start + t], value_buf[:, :, :start + t]
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
            x = x + attn.out_proj(out.transpose(1, 2).reshape(b, t, d))
            x = x + layer.fc2(layer.activation_fn(layer.fc1(layer.final_layer_norm(x))))
        return x

    def _positions(self, start_chunk: int, n_chunks: int) -> torch.Tensor:
        per_chunk = self.config.conv_per_chunk
        return self.whisper.embed_positions.weight[start_chunk * per_chunk:(start_chunk + n_chunks) * per_chunk]

    def _mask(self, n_query_chunks: int, n_past_chunks: int, device) -> torch.Tensor:
        return block_causal_mask(n_query_chunks, n_past_chunks, self.config.conv_per_chunk, device)

    def _finish(self, x: torch.Tensor) -> torch.Tensor:
        """Final LayerNorm, then average pooling 2 -> [B, 10 per chunk, d]."""
        x = self.whisper.layer_norm(x)
        return F.avg_pool1d(x.transpose(1, 2), 2).transpose(1, 2)

    def window_plan(self, n_chunks: int) -> list[tuple[int, int, int]]:
        """(context_start, new_start, end) chunk indices of each attention window over a stream."""
        c, plan = self.config, []
        start = new = 0
        while new < n_chunks:
            end = min(start + c.window_chunks, n_chunks)
            plan.append((start, new, end))
            new, start = end, end - c.carry_chunks
        return plan

    # ----- whole streams (the frame cache) -------------------------------------------------------------

    def forward(self, features: torch.Tensor, lengths: torch.Tensor | None = None):
        """features [B, T, n_mels] (T a multiple of 40) -> (frames [B, T / 4, d], frame lengths [B]).

        Padding at the end of a shorter stream never reaches its valid frames (attention is causal)."""
        b, t, mels = features.shape
        size, per_chunk = self.chunk_features, self.config.conv_per_chunk
        if t % size:
            raise ValueError(f"whisper tower: {t} feature frames is not a whole number of {size}-frame chunks")
        if lengths is None:
            lengths = torch.full((b,), t, device=features.device)
        n_chunks = t // size
        conv = self.conv_frames(features.reshape(b * n_chunks, size, mels)).reshape(b, n_chunks * per_chunk, -1)
        out = []
        for start, new, end in self.window_plan(n_chunks):
            x = conv[:, start * per_chunk:end * per_chunk] + self._positions(0, end - start).to(conv.dtype)
            x = self._layers(x, self._mask(end - start, 0, x.device))
            out.append(self._finish(x[:, (new - start) * per_chunk:]))
        return torch.cat(out, dim=1), lengths.to(features.device) // 4

    # ----- streaming (the runtime) ---------------------------------------------------------------------

    def init_state(self, batch_size: int = 1) -> TowerState:
        return TowerState()

    @torch.no_grad()
    def encode_chunk(self, chunk_features: torch.Tensor, state: TowerState):
        """One chunk [B, 40, n_mels] -> (frames [B, 10, d], new state)."""
        if chunk_features.shape[1] != self.chunk_features:
            raise ValueError(f"encode_chunk needs {self.chunk_features} feature frames, got {chunk_features.shape[1]}")
        c = self.config
        conv = self.conv_frames(chunk_features)
        n_past = state.chunks_in_window
        if n_past == c.window_chunks:  # window full: the next one starts from the last carry_chunks chunks
            n_past = c.carry_chunks
            if n_past:
                context = torch.cat(state.recent[-n_past:], dim=1)
                context = context + self._positions(0, n_past).to(context.dtype)
                self._layers(context, self._mask(n_past, 0, context.device), state.cache)
        x = conv + self._positions(n_past, 1).to(conv.dtype)
        # the chunk sees every frame the window holds so far, its own included: no mask
        x = self._layers(x, None, state.cache, n_past * c.conv_per_chunk)
        recent = (state.recent + [conv])[-c.carry_chunks:] if c.carry_chunks else []
        return self._finish(x), TowerState(state.cache, recent, n_past + 1)


AutoConfig.register(WhisperTowerConfig.model_type, WhisperTowerConfig, exist_ok=True)
AutoModel.register(WhisperTowerConfig, WhisperTower, exist_ok=True)
