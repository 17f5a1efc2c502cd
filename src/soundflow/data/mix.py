"""Dual-track composition helpers: gains, SNR scaling, crossfades, tiling, reverb, babble.

SNR convention (used by scale_to_snr and measure_snr alike): signal power is the mean power of
the *active* part of the signal, i.e. its 20 ms frames within ACTIVE_RANGE_DB of the loudest
frame, so pauses between turns do not make the noise quieter than asked; noise power is the mean
power of the whole noise array (noise is stationary background that fills the track).

Audio outputs are float32; randomness only comes from the numpy Generator passed in.
"""
from __future__ import annotations

import numpy as np
from scipy.signal import fftconvolve

from soundflow import SAMPLE_RATE
from soundflow.audio import as_mono

ROLE_GAIN_DB = {"foreground": 0.0, "background": -6.0, "ambient": -12.0}
ACTIVE_FRAME_S = 0.02
ACTIVE_RANGE_DB = 40.0


def _check_sr(sr) -> int:
    if isinstance(sr, bool) or not isinstance(sr, (int, np.integer)) or sr <= 0:
        raise ValueError(f"sr must be a positive integer, got {sr!r}")
    return int(sr)


def _samples(seconds: float, sr: int, name: str) -> int:
    if not np.isfinite(seconds) or seconds < 0:
        raise ValueError(f"{name} must be a non-negative number of seconds, got {seconds!r}")
    return round(seconds * _check_sr(sr))


def db_to_gain(db):
    """Amplitude gain for a level change in dB (works on scalars and arrays)."""
    return 10.0 ** (np.asarray(db, dtype=np.float64) / 20.0)


def _mean_power(x: np.ndarray) -> float:
    return float(np.mean(x * x))


# ---------------------------------------------------------------------------------------------
# SNR


def active_power(signal, sr: int = SAMPLE_RATE) -> float:
    """Mean power over the 20 ms frames within ACTIVE_RANGE_DB of the loudest frame (a tail
    shorter than one frame is ignored; a signal shorter than one frame uses all samples)."""
    x = as_mono(signal, "signal")
    frame = max(1, _samples(ACTIVE_FRAME_S, sr, "frame"))
    n_frames = len(x) // frame
    if n_frames == 0:
        return _mean_power(x)
    power = np.mean(x[: n_frames * frame].reshape(n_frames, frame) ** 2, axis=1)
    active = power >= power.max() * 10 ** (-ACTIVE_RANGE_DB / 10)
    return float(power[active].mean())


def measure_snr(signal, noise, sr: int = SAMPLE_RATE) -> float:
    """10 log10(active signal power / noise power) in dB; see the module docstring."""
    p_noise = _mean_power(as_mono(noise, "noise"))
    if p_noise == 0:
        raise ValueError("noise is all zeros: SNR is undefined")
    return float(10 * np.log10(active_power(signal, sr) / p_noise))


def scale_to_snr(signal, noise, snr_db: float, sr: int = SAMPLE_RATE) -> np.ndarray:
    """`noise` scaled so that measure_snr(signal, result) == snr_db."""
    n = as_mono(noise, "noise")
    p_signal, p_noise = active_power(signal, sr), _mean_power(n)
    if p_signal == 0:
        raise ValueError("signal is all zeros: cannot set an SNR against it")
    if p_noise == 0:
        raise ValueError("noise is all zeros: it cannot be scaled to an SNR")
    if not np.isfinite(snr_db):
        raise ValueError(f"snr_db must be finite, got {snr_db!r}")
    return (n * np.sqrt(p_signal / (p_noise * 10 ** (snr_db / 10)))).astype(np.float32)


# ---------------------------------------------------------------------------------------------
# concatenation and tiling


def _fades(n: int, equal_power: bool) -> tuple[np.ndarray, np.ndarray]:
    """(fade_in, fade_out) of n samples; they sum to 1 (correlated material) or their squares
    sum to 1 (equal power, for uncorrelated material such as noise)."""
    theta = 0.5 * np.pi * (np.arange(n) + 0.5) / n
    if equal_power:
        return np.sin(theta), np.cos(theta)
    return np.sin(theta) ** 2, np.cos(theta) ** 2


def _concat(arrays: list[np.ndarray], fade_n: int, equal_power: bool) -> np.ndarray:
    # each overlap is at most half of either neighbour so two fades never meet inside a clip
    overlaps = [min(fade_n, len(a) // 2, len(b) // 2) for a, b in zip(arrays, arrays[1:])]
    starts = [0]
    for a, o in zip(arrays, overlaps):
        starts.append(starts[-1] + len(a) - o)
    out = np.zeros(starts[-1] + len(arrays[-1]))
    for i, a in enumerate(arrays):
        a = a.copy()
        if i > 0 and overlaps[i - 1]:
            a[: overlaps[i - 1]] *= _fades(overlaps[i - 1], equal_power)[0]
        if i < len(overlaps) and overlaps[i]:
            a[len(a) - overlaps[i]:] *= _fades(overlaps[i], equal_power)[1]
        out[starts[i]: starts[i] + len(a)] += a
    return out


def crossfade_concat(clips, fade_s: float = 0.02, sr: int = SAMPLE_RATE,
                     equal_power: bool = False) -> np.ndarray:
    """Join clips, overlapping each junction by fade_s (less if a clip is shorter than two fades).

    Length = sum of lengths - sum of overlaps. Default fades sum to 1 (no level bump when the
    clips continue each other); equal_power=True keeps the level of uncorrelated material.
    """
    if isinstance(clips, np.ndarray) or len(clips) == 0:
        raise ValueError("clips must be a non-empty list of 1-D arrays")
    arrays = [as_mono(c, f"clips[{i}]") for i, c in enumerate(clips)]
    return _concat(arrays, _samples(fade_s, sr, "fade_s"), equal_power).astype(np.float32)


def tile(noise, n: int, crossfade_s: float = 0.05, sr: int = SAMPLE_RATE) -> np.ndarray:
    """Repeat `noise` to exactly n samples, each repeat joined with an equal-power crossfade."""
    x = as_mono(noise, "noise")
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n <= 0:
        raise ValueError(f"n must be a positive integer number of samples, got {n!r}")
    if n <= len(x):
        return x[:n].astype(np.float32)
    overlap = min(_samples(crossfade_s, sr, "crossfade_s"), len(x) // 2)
    copies = 1 + -(-(n - len(x)) // (len(x) - overlap))  # ceil
    return _concat([x] * copies, overlap, equal_power=True)[:n].astype(np.float32)


def place(track: np.ndarray, clip, offset_samples: int, gain_db: float = 0.0) -> np.ndarray:
    """Add clip * db_to_gain(gain_db) into `track` at offset_samples, in place; the parts of the
    clip outside the track (negative offset or past the end) are dropped. Returns `track`."""
    if not (isinstance(track, np.ndarray) and track.ndim == 1
            and np.issubdtype(track.dtype, np.floating)):
        raise ValueError("track must be a 1-D float numpy array (it is changed in place)")
    c = as_mono(clip, "clip")
    if isinstance(offset_samples, bool) or not isinstance(offset_samples, (int, np.integer)):
        raise ValueError(f"offset_samples must be an integer, got {offset_samples!r}")
    if not np.isfinite(gain_db):
        raise ValueError(f"gain_db must be finite, got {gain_db!r}")
    lo, hi = max(0, offset_samples), min(len(track), offset_samples + len(c))
    if lo < hi:
        track[lo:hi] += db_to_gain(gain_db) * c[lo - offset_samples: hi - offset_samples]
    return track


# ---------------------------------------------------------------------------------------------
# reverb, babble, peak


def _check_rng(rng) -> np.random.Generator:
    if not isinstance(rng, np.random.Generator):
        raise ValueError(f"rng must be a numpy.random.Generator, got {type(rng).__name__}")
    return rng


def synthetic_rir(rng, sr: int = SAMPLE_RATE, rt60_s: float = 0.4,
                  drr_db: float = 3.0) -> np.ndarray:
    """Room impulse response: a direct-path impulse at t=0, then Gaussian noise whose power falls
    60 dB per rt60_s (starting 2 ms later, like the first reflections), with a direct-to-
    reverberant energy ratio of drr_db. Length 1.2 * rt60_s (the tail ends 72 dB down);
    normalised to unit energy."""
    rng = _check_rng(rng)
    if not np.isfinite(rt60_s) or not 0.01 <= rt60_s <= 10:
        raise ValueError(f"rt60_s must be between 0.01 and 10 seconds, got {rt60_s!r}")
    if not np.isfinite(drr_db):
        raise ValueError(f"drr_db must be finite, got {drr_db!r}")
    n = _samples(1.2 * rt60_s, sr, "rt60_s")
    t = np.arange(n) / sr
    tail = rng.standard_normal(n) * np.exp(-3 * np.log(10) * t / rt60_s)  # amplitude: -60 dB
    tail[: round(0.002 * sr) + 1] = 0.0
    rir = tail * np.sqrt(10 ** (-drr_db / 10) / np.sum(tail**2))  # direct path has energy 1
    rir[0] = 1.0
    return (rir / np.sqrt(np.sum(rir**2))).astype(np.float32)


def reverb(audio, rir) -> np.ndarray:
    """Convolve with `rir`, keep the input length and the dry signal's RMS."""
    x, h = as_mono(audio, "audio"), as_mono(rir, "rir")
    wet = fftconvolve(x, h)[: len(x)]
    p_wet = _mean_power(wet)
    if p_wet == 0:
        return wet.astype(np.float32)
    return (wet * np.sqrt(_mean_power(x) / p_wet)).astype(np.float32)


def babble(clips, n: int, rng, n_talkers: int = 4, sr: int = SAMPLE_RATE) -> np.ndarray:
    """n samples of babble at unit RMS: n_talkers continuous talkers, each a random sequence of
    the (RMS-equalised) clips joined with 20 ms fades and started at a random offset."""
    rng = _check_rng(rng)
    if isinstance(clips, np.ndarray) or len(clips) == 0:
        raise ValueError("clips must be a non-empty list of 1-D speech arrays")
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n <= 0:
        raise ValueError(f"n must be a positive integer number of samples, got {n!r}")
    if isinstance(n_talkers, bool) or not isinstance(n_talkers, (int, np.integer)) \
            or n_talkers < 1:
        raise ValueError(f"n_talkers must be a positive integer, got {n_talkers!r}")
    voices = []
    for i, c in enumerate(clips):
        x = as_mono(c, f"clips[{i}]")
        if not x.any():
            raise ValueError(f"clips[{i}] is all zeros")
        voices.append(x / np.sqrt(_mean_power(x)))  # every talker equally loud
    longest = max(len(v) for v in voices)
    out = np.zeros(n)
    for _ in range(n_talkers):
        picked, total = [], 0
        while total < n + longest:
            picked.append(voices[int(rng.integers(len(voices)))])
            total += len(picked[-1])
        offset = int(rng.integers(len(picked[0])))  # start mid-sentence, not all together
        stream = _concat(picked, _samples(0.02, sr, "fade"), equal_power=False)
        out += tile(stream, n + offset, sr=sr)[offset:]
    rms = np.sqrt(_mean_power(out))
    return (out / rms if rms > 0 else out).astype(np.float32)


def normalize_peak(audio, peak_db: float = -1.0) -> np.ndarray:
    """Scale so the largest |sample| is peak_db dBFS (all-zero input is returned as is)."""
    x = as_mono(audio, "audio")
    if not np.isfinite(peak_db) or peak_db > 0:
        raise ValueError(f"peak_db must be a finite level <= 0 dBFS, got {peak_db!r}")
    peak = np.max(np.abs(x))
    return (x if peak == 0 else x * (db_to_gain(peak_db) / peak)).astype(np.float32)
