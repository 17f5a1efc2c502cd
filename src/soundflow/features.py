"""Whisper log-mel features computed one 400 ms chunk at a time, with no look-ahead.

Shared by the frame cache (training frames) and the runtime (live frames): one recipe, so the two cannot
drift apart. Each 6400-sample chunk gets its own STFT (n_fft 400, hop 160, Hann window, reflect padding
inside the chunk, last frame dropped, as Whisper does for a whole input) -> 40 frames of `n_mels` Slaney mel
bins -> log10. Whisper clamps the log-mel at (the input's maximum - 8), a maximum a streaming model cannot
see in advance; a fixed `ceiling` stands in for that maximum (1.5 is near the train streams' median maximum,
and scored as well as the per-stream maximum: reference/pretrained.md). Then Whisper's (x + 4) / 4 scaling.
"""
from __future__ import annotations

from functools import cache

import numpy as np
import torch
from transformers.audio_utils import mel_filter_bank

from soundflow import layout

N_FFT = 400
HOP = layout.SAMPLE_RATE * layout.FEATURE_HOP_MS // 1000  # 160 samples
CHUNK_SAMPLES = round(layout.SAMPLE_RATE * layout.CHUNK_SECONDS)  # 6400
FEATURE_FRAMES_PER_CHUNK = CHUNK_SAMPLES // HOP  # 40 log-mel frames = 10 tower frames after conv stride 2 and pooling
DEFAULT_CEILING = 1.5


@cache
def _mel_filters(n_mels: int) -> torch.Tensor:
    """[n_fft // 2 + 1, n_mels] Slaney filters, as transformers' WhisperFeatureExtractor builds them."""
    filters = mel_filter_bank(num_frequency_bins=N_FFT // 2 + 1, num_mel_filters=n_mels, min_frequency=0.0,
                              max_frequency=layout.SAMPLE_RATE / 2, sampling_rate=layout.SAMPLE_RATE,
                              norm="slaney", mel_scale="slaney")
    return torch.from_numpy(np.asarray(filters, dtype=np.float32))


@cache
def _window() -> torch.Tensor:
    return torch.hann_window(N_FFT)


def chunks_logmel(chunks: torch.Tensor | np.ndarray, n_mels: int = layout.N_MELS,
                  ceiling: float = DEFAULT_CEILING) -> torch.Tensor:
    """[N, 6400] chunks of float audio in [-1, 1] at 16 kHz -> [N, 40, n_mels] log-mel, each chunk alone
    (other chunk lengths, a multiple of the 160-sample hop, give 1 frame per hop)."""
    chunks = torch.as_tensor(np.asarray(chunks, dtype=np.float32))
    if chunks.ndim != 2 or chunks.shape[1] == 0 or chunks.shape[1] % HOP:
        raise ValueError(f"log-mel needs chunks of a multiple of {HOP} samples, got shape {tuple(chunks.shape)}")
    stft = torch.stft(chunks, N_FFT, HOP, window=_window(), center=True, pad_mode="reflect", return_complex=True)
    power = stft[..., :-1].abs() ** 2  # [N, 201, 40]
    mel = (_mel_filters(n_mels).T @ power).clamp(min=1e-10).log10()
    mel = torch.maximum(mel, torch.tensor(ceiling - 8.0))
    return ((mel + 4.0) / 4.0).transpose(1, 2).contiguous()


def stream_logmel(audio: np.ndarray, n_mels: int = layout.N_MELS, ceiling: float = DEFAULT_CEILING) -> torch.Tensor:
    """A whole stream's features, chunk by chunk: [n_chunks * 40, n_mels]."""
    audio = np.asarray(audio, dtype=np.float32)
    if audio.size == 0 or audio.size % CHUNK_SAMPLES:
        raise ValueError(f"stream of {audio.size} samples is not a whole number of {CHUNK_SAMPLES}-sample chunks")
    return chunks_logmel(audio.reshape(-1, CHUNK_SAMPLES), n_mels, ceiling).flatten(0, 1)
