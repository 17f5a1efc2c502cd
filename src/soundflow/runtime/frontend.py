"""The audio side of streaming inference: one chunk of PCM -> LM input embeddings, with the encoder's state.

PCM [chunk_samples] -> Kaldi fbank of that chunk alone (the training recipe, soundflow.features) -> train
CMVN -> streaming encoder (bounded left context) -> projector into `<audio_begin> <audio>xN <chunk_end>`.
The FIFO scheduler runs this in its own thread while the decoder writes.
"""
from __future__ import annotations

import numpy as np
import torch

from soundflow.features import fbank
from soundflow.runtime.bundle import Bundle
from soundflow.runtime.decoder import TokenIds, chunk_embeddings


class ChunkEncoder:
    def __init__(self, bundle: Bundle):
        self.model, self.cmvn = bundle.model, bundle.cmvn
        self.chunk_samples = bundle.settings.chunk_samples
        self.ids = TokenIds.from_tokenizer(bundle.tokenizer)
        self.state = self.model.init_encoder_state()

    @torch.no_grad()
    def frames(self, pcm: np.ndarray) -> torch.Tensor:
        """One chunk of PCM -> encoder frames [1, N, d_enc]."""
        if pcm.shape != (self.chunk_samples,):
            raise ValueError(f"a chunk is {self.chunk_samples} samples, got shape {pcm.shape}")
        feats = self.cmvn.apply(fbank(pcm)).unsqueeze(0)
        frames, self.state = self.model.encode_chunk(feats, self.state)
        return frames

    def __call__(self, pcm: np.ndarray) -> torch.Tensor:
        """One chunk of PCM -> LM input embeddings of `<audio_begin> <audio>xN <chunk_end>`."""
        return chunk_embeddings(self.model, self.ids, self.frames(pcm))
