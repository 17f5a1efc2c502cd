"""The audio side of streaming inference: one chunk of PCM -> LM input embeddings, with the tower's state.

PCM [chunk_samples] -> Whisper log-mel of that chunk alone (the frame cache's recipe, soundflow.features,
with the tower's mel bins and ceiling) -> the tower's `encode_chunk` (key/value cache of its window) ->
projector (a conv projector also reads the frames of the chunks before) into `<audio_begin> <audio>xN
<chunk_end>`. The tower runs in the precision the bundle names
(`tower_precision`: bf16 where this machine runs it faster, as the frame cache did). The FIFO scheduler
runs this in its own thread while the decoder writes.

Where the whole recording is at hand (an offline answer, a benchmark), `stream_frames` encodes it in one
pass, as the frame cache encodes the training streams. The frames are the same: the tower's attention is
block-causal, so no frame sees later audio (equal to float tolerance, tests/test_runtime.py); one pass
costs about half of chunk-by-chunk encoding (11.2 against 20.9 ms a chunk, one thread, bf16, AMD EPYC;
scripts/one_pass_arm.py, reports/arms/one_pass_encode.json).
`EncodedStream` hands such frames to a session in place of `ChunkEncoder`.
"""
from __future__ import annotations

import numpy as np
import torch

from soundflow.features import chunks_logmel, stream_logmel
from soundflow.precision import autocast
from soundflow.runtime.bundle import Bundle
from soundflow.runtime.decoder import TokenIds, chunk_embeddings, keep_past


class ChunkEncoder:
    def __init__(self, bundle: Bundle):
        self.model = bundle.model
        self.chunk_samples = bundle.settings.chunk_samples
        self.precision = bundle.tower_precision
        tower = self.model.encoder.config
        self.n_mels, self.ceiling = tower.n_mels, tower.mel_ceiling
        self.ids = TokenIds.from_tokenizer(bundle.tokenizer)
        self.state = self.model.init_encoder_state()
        self.past: torch.Tensor | None = None  # the tower frames a conv projector reads before the next chunk

    @torch.no_grad()
    def frames(self, pcm: np.ndarray) -> torch.Tensor:
        """One chunk of PCM -> tower frames [1, N, d_enc] (float32)."""
        if pcm.shape != (self.chunk_samples,):
            raise ValueError(f"a chunk is {self.chunk_samples} samples, got shape {pcm.shape}")
        feats = chunks_logmel(pcm[None], self.n_mels, self.ceiling)
        with autocast(self.precision):
            frames, self.state = self.model.encode_chunk(feats, self.state)
        return frames.float()

    def __call__(self, pcm: np.ndarray) -> torch.Tensor:
        """One chunk of PCM -> LM input embeddings of `<audio_begin> <audio>xN <chunk_end>`."""
        frames = self.frames(pcm)
        embeds = chunk_embeddings(self.model, self.ids, frames, self.past)
        self.past = keep_past(self.model, frames if self.past is None else torch.cat([self.past, frames], dim=1))
        return embeds


@torch.no_grad()
def stream_frames(bundle: Bundle, audio: np.ndarray) -> torch.Tensor:
    """A whole recording -> its tower frames [1, n_chunks * N, d] (float32) in one pass; a partial last
    chunk is padded with silence, as a session pads it."""
    tower, n = bundle.model.encoder, bundle.settings.chunk_samples
    audio = np.asarray(audio, dtype=np.float32)
    if audio.size == 0:
        return torch.zeros(1, 0, tower.output_dim)
    feats = stream_logmel(np.pad(audio, (0, -audio.size % n)), tower.config.n_mels, tower.config.mel_ceiling)
    with autocast(bundle.tower_precision):
        frames, _ = tower(feats[None])
    return frames.float()


class EncodedStream:
    """ChunkEncoder's stand-in for a recording encoded beforehand (stream_frames): each call returns the
    embeddings of the next chunk's frames. The session feeds the same recording chunk by chunk, so the PCM
    it passes is the chunk these frames came from."""

    def __init__(self, bundle: Bundle, audio: np.ndarray):
        self.model = bundle.model
        self.ids = TokenIds.from_tokenizer(bundle.tokenizer)
        self.frames = stream_frames(bundle, audio)
        self.per_chunk = bundle.settings.frames_per_chunk
        self.chunks = 0

    def __call__(self, pcm: np.ndarray) -> torch.Tensor:
        n = self.per_chunk
        frames = self.frames[:, self.chunks * n:(self.chunks + 1) * n]
        if frames.shape[1] != n:
            raise ValueError(f"chunk {self.chunks} fed, but the encoded recording holds {self.frames.shape[1] // n}")
        embeds = chunk_embeddings(self.model, self.ids, frames, self.frames[:, :self.chunks * n])
        self.chunks += 1
        return embeds
