"""Training-side features: the shared recipe of soundflow.features applied to corpus files."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from soundflow.audio import AudioError, read_audio
from soundflow.features import CHUNK_SAMPLES, FEATURE_FRAMES_PER_CHUNK, Cmvn, fbank, stream_fbank  # noqa: F401


def file_features(path: str | Path) -> torch.Tensor:
    """Raw (not normalized) stream features of one audio file, fp16 to halve what crosses a process pool."""
    audio = read_audio(path)
    if audio.size % CHUNK_SAMPLES:
        raise AudioError(f"{path}: {audio.size} samples is not a whole number of 400 ms chunks")
    return stream_fbank(audio).half()


def sums(feats: torch.Tensor) -> tuple[np.ndarray, np.ndarray, int]:
    """Per-bin sum and sum of squares of one item's features, for Cmvn.from_sums."""
    f = feats.double().numpy()
    return f.sum(axis=0), np.square(f).sum(axis=0), f.shape[0]
