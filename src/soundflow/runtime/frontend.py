"""The audio side of streaming inference: one chunk of PCM -> LM input embeddings, with the tower's state.

PCM [chunk_samples] -> Whisper log-mel of that chunk alone (the frame cache's recipe, soundflow.features,
with the tower's mel bins and ceiling) -> the tower's `encode_chunk` (key/value cache of its window) ->
projector into `<audio_begin> <audio>xN <chunk_end>`. The tower runs in the precision the bundle names
(`tower_precision`: bf16 where this machine runs it faster, as the frame cache did). The FIFO scheduler
runs this in its own thread while the decoder writes.
"""
from __future__ import annotations

import numpy as np
import torch

from soundflow.features import chunks_logmel
from soundflow.precision import autocast
from soundflow.runtime.bundle import Bundle
from soundflow.runtime.decoder import TokenIds, chunk_embeddings


class ChunkEncoder:
    def __init__(self, bundle: Bundle):
        self.model = bundle.model
        self.chunk_samples = bundle.settings.chunk_samples
        self.precision = bundle.tower_precision
        tower = self.model.encoder.config
        self.n_mels, self.ceiling = tower.n_mels, tower.mel_ceiling
        self.ids = TokenIds.from_tokenizer(bundle.tokenizer)
        self.state = self.model.init_encoder_state()

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
        return chunk_embeddings(self.model, self.ids, self.frames(pcm))
