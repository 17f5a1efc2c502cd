"""Audio file I/O shared by every stage: one clear error per bad file, atomic writes (files and figures).

soundfile reads WAV/FLAC/OGG/MP3 with no system dependency (reference/env.md section 3);
resampling uses scipy's polyphase filter so corpus synthesis needs no torch.
"""
from __future__ import annotations

import json
import os
import tempfile
from math import gcd
from pathlib import Path

import numpy as np
import soundfile as sf
from scipy.signal import resample_poly

from soundflow import SAMPLE_RATE


class AudioError(ValueError):
    """Raised for audio that cannot be used; the message names the file."""


def as_mono(audio, name: str = "audio") -> np.ndarray:
    """Validate a 1-D, non-empty, finite, real array and return it as float64 (for DSP code)."""
    x = np.asarray(audio)
    if x.ndim != 1:
        raise ValueError(f"{name} must be a 1-D mono array, got shape {x.shape}")
    if x.size == 0:
        raise ValueError(f"{name}: empty clip (0 samples)")
    if not np.issubdtype(x.dtype, np.number) or np.iscomplexobj(x):
        raise ValueError(f"{name} must be real numbers, got dtype {x.dtype}")
    x = x.astype(np.float64)
    if not np.all(np.isfinite(x)):
        raise ValueError(f"{name} contains NaN or inf")
    return x


def resample(audio: np.ndarray, sr_in: int, sr_out: int = SAMPLE_RATE) -> np.ndarray:
    if sr_in == sr_out:
        return audio.astype(np.float32, copy=False)
    g = gcd(sr_in, sr_out)
    return resample_poly(audio, sr_out // g, sr_in // g).astype(np.float32)


def read_audio(path: str | os.PathLike, sr: int = SAMPLE_RATE, mono: bool = True) -> np.ndarray:
    """Read any soundfile-readable file as float32 mono at `sr`; raise AudioError naming the file."""
    path = Path(path)
    if not path.is_file():
        raise AudioError(f"audio file not found: {path}")
    try:
        audio, file_sr = sf.read(str(path), dtype="float32", always_2d=True)
    except Exception as exc:  # soundfile raises several types for corrupt input
        raise AudioError(f"cannot read audio file {path}: {exc}") from None
    if audio.shape[0] == 0:
        raise AudioError(f"audio file is empty: {path}")
    audio = audio.mean(axis=1) if mono else audio[:, 0]
    return resample(audio, file_sr, sr)


def write_wav(path: str | os.PathLike, audio: np.ndarray, sr: int = SAMPLE_RATE) -> None:
    """Write 16-bit PCM WAV atomically: a temp file in the same folder, then rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    pcm = np.clip(np.asarray(audio, dtype=np.float32), -1.0, 1.0)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=".tmp.wav", dir=path.parent)
    os.close(fd)
    try:
        sf.write(tmp, pcm, sr, subtype="PCM_16", format="WAV")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_path(path: str | os.PathLike) -> Path:
    """A temp sibling of `path` for writers that take a file name (rename it to `path` when done)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    return path.with_name(f".{path.name}.tmp{os.getpid()}")


def write_json(data: dict, path: str | os.PathLike, sort_keys: bool = False) -> None:
    """Write indented JSON (UTF-8, Chinese text kept readable) atomically."""
    tmp = atomic_path(path)
    tmp.write_text(json.dumps(data, indent=2, ensure_ascii=False, sort_keys=sort_keys) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def pcm16(audio: np.ndarray) -> np.ndarray:
    """Float audio in [-1, 1] as little-endian 16-bit PCM samples (what pocketsphinx takes)."""
    return (np.clip(audio, -1.0, 1.0) * 32767.0).astype("<i2")


def save_figure(fig, path: str | os.PathLike, dpi: int = 110) -> None:
    """Write a matplotlib figure as PNG atomically, then close it."""
    import matplotlib.pyplot as plt

    tmp = atomic_path(path)
    fig.savefig(tmp, dpi=dpi, format="png")
    plt.close(fig)
    os.replace(tmp, path)


def rms_db(audio: np.ndarray) -> float:
    return float(10 * np.log10(np.mean(np.square(audio, dtype=np.float64)) + 1e-12))
