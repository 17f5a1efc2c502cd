"""Log-mel features: Kaldi fbank, 80 bins, 25 ms window, 10 ms hop, one global mean/std from train.

Shared by the tokens stage (training features) and the runtime (live features): one recipe, so the two
cannot drift apart. A stream's features are computed chunk by chunk (`stream_fbank`): a streaming runtime only ever has
the current 400 ms chunk, so computing them the same way here makes training features and live
features identical, 40 frames per chunk, with no look-ahead across a chunk boundary.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import torch
from torchaudio.compliance import kaldi

from soundflow import layout
from soundflow.audio import atomic_path

WINDOW = layout.SAMPLE_RATE * 25 // 1000  # the 25 ms analysis window, 400 samples
HOP = layout.SAMPLE_RATE * layout.FEATURE_HOP_MS // 1000  # 160 samples
CHUNK_SAMPLES = round(layout.SAMPLE_RATE * layout.CHUNK_SECONDS)  # 6400
FEATURE_FRAMES_PER_CHUNK = CHUNK_SAMPLES // HOP  # 40 log-mel frames = 10 encoder frames after 4x subsampling


def fbank(audio: np.ndarray) -> torch.Tensor:
    """[n_samples] float audio in [-1, 1] at 16 kHz -> [ceil(n_samples / 160), 80] log-mel."""
    wave = torch.as_tensor(np.asarray(audio, dtype=np.float32)).reshape(1, -1)
    if wave.shape[1] == 0:
        raise ValueError("fbank: empty audio")
    n_frames = -(-wave.shape[1] // HOP)
    if wave.shape[1] < WINDOW:  # Kaldi needs one whole window; zeros stand in for the missing samples
        wave = torch.nn.functional.pad(wave, (0, WINDOW - wave.shape[1]))
    # Kaldi's energy scale is int16; snip_edges=False centres frames so T = round(n / hop).
    feats = kaldi.fbank(wave * 32768.0, num_mel_bins=layout.N_MELS, frame_length=25.0,
                        frame_shift=float(layout.FEATURE_HOP_MS), dither=0.0, snip_edges=False,
                        sample_frequency=float(layout.SAMPLE_RATE))
    if feats.shape[0] < n_frames:  # pad by repeating the last frame (only for a ragged tail)
        feats = torch.cat([feats, feats[-1:].expand(n_frames - feats.shape[0], -1)])
    return feats[:n_frames]


def stream_fbank(audio: np.ndarray) -> torch.Tensor:
    """Features of a whole stream, one 400 ms chunk at a time: [n_chunks * 40, 80]."""
    audio = np.asarray(audio, dtype=np.float32)
    if audio.size == 0 or audio.size % CHUNK_SAMPLES:
        raise ValueError(f"stream of {audio.size} samples is not a whole number of {CHUNK_SAMPLES}-sample chunks")
    return torch.cat([fbank(chunk) for chunk in audio.reshape(-1, CHUNK_SAMPLES)])


class Cmvn:
    """Global per-bin mean and std, accumulated over train features in float64."""

    def __init__(self, mean: np.ndarray, std: np.ndarray, frames: int = 0):
        self.mean = np.asarray(mean, dtype=np.float32)
        self.std = np.asarray(std, dtype=np.float32)
        self.frames = frames

    @classmethod
    def from_sums(cls, total: np.ndarray, total_sq: np.ndarray, frames: int) -> Cmvn:
        if frames == 0:
            raise ValueError("cmvn: no training frames")
        mean = total / frames
        std = np.sqrt(np.maximum(total_sq / frames - mean ** 2, 1e-10))
        return cls(mean, std, frames)

    def apply(self, feats: torch.Tensor) -> torch.Tensor:
        return (feats.float() - torch.from_numpy(self.mean)) / torch.from_numpy(self.std)

    def to_dict(self) -> dict:
        return {"mean": self.mean.tolist(), "std": self.std.tolist(), "frames": self.frames}

    @classmethod
    def from_dict(cls, data: dict, source: str | Path) -> Cmvn:
        for key in ("mean", "std"):
            if len(data.get(key, [])) != layout.N_MELS:
                raise ValueError(f"{source}: '{key}' must hold {layout.N_MELS} values")
        return cls(data["mean"], data["std"], data.get("frames", 0))

    def save(self, path: str | Path) -> None:
        tmp = atomic_path(path)
        tmp.write_text(json.dumps(self.to_dict()))
        os.replace(tmp, path)

    @classmethod
    def load(cls, path: str | Path) -> Cmvn:
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"cmvn file not found: {path}")
        return cls.from_dict(json.loads(path.read_text()), path)
