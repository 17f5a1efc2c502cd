"""TFJP: time-frequency joint preprocessing of one clip (paper Algorithm 1).

All six operators use one frame grid (25 ms Hann window, 10 ms hop), so a frame index means the
same stretch of audio everywhere:

  S1 silence_cut -> S2 noise_profile -> S3 denoise, repeated (at most K = 3 times) until S1 no
  longer changes the length; then S4 core_locate -> S5 boundary_norm -> S6 spec_smooth; a final
  silence_cut that would still change the clip sends it back to S1 (a bounded number of times).

Every operator takes float audio and returns float32; none uses randomness.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.signal import istft, stft

from soundflow import SAMPLE_RATE
from soundflow.audio import as_mono

WIN_S = 0.025
HOP_S = 0.010
EPS = 1e-12

GATE_PERCENTILE = 10.0
GATE_MARGIN_DB = 6.0  # a frame this far above the quiet floor is already sound
GATE_FLOOR_DB = -60.0  # below this (dBFS) a frame is always silence, whatever the percentile says
GATE_HEADROOM_DB = 30.0  # within this of the loudest frame a frame is always sound (clean speech)

NOISE_SHARE = 0.05
MIN_NOISE_CONTRAST_DB = 6.0  # quiet frames must be this far below loud ones to be "noise floor"
SILENT_PEAK = 1e-4  # -80 dBFS: a clip whose peak is below this has nothing in it


# ---------------------------------------------------------------------------------------------
# shared helpers


def _grid(sr) -> tuple[int, int]:
    """(window, hop) in samples for `sr`; also validates sr."""
    if isinstance(sr, bool) or not isinstance(sr, (int, np.integer)) or sr < 1000:
        raise ValueError(f"sr must be an integer sample rate >= 1000, got {sr!r}")
    return round(WIN_S * sr), round(HOP_S * sr)


def _positive(value, name: str) -> float:
    if not np.isfinite(value) or value <= 0:
        raise ValueError(f"{name} must be a positive number, got {value!r}")
    return float(value)


def _stft(x: np.ndarray, sr: int) -> np.ndarray:
    """Complex STFT, frame t centred on sample t * hop (zero padding at both ends)."""
    win, hop = _grid(sr)
    if len(x) < win:  # scipy would shrink the window for a clip shorter than one frame
        x = np.pad(x, (0, win - len(x)))
    _, _, z = stft(x, fs=sr, window="hann", nperseg=win, noverlap=win - hop,
                   boundary="zeros", padded=True)
    return z


def _istft(z: np.ndarray, sr: int, n: int) -> np.ndarray:
    win, hop = _grid(sr)
    _, x = istft(z, fs=sr, window="hann", nperseg=win, noverlap=win - hop, boundary=True)
    return x[:n]


def _full_frames(n_frames: int, n: int, sr: int) -> np.ndarray:
    """Mask of STFT frames whose window lies inside the signal (edge frames read padding zeros)."""
    win, hop = _grid(sr)
    centre = np.arange(n_frames) * hop
    full = (centre - win // 2 >= 0) & (centre + win - win // 2 <= n)
    return full if full.any() else np.ones(n_frames, bool)


def frame_db(audio, sr: int = SAMPLE_RATE) -> np.ndarray:
    """Power in dBFS of the 25 ms window around each 10 ms hop; frame t owns samples
    [t*hop, (t+1)*hop). Computed from a cumulative sum, so it costs O(n) for any length."""
    x = as_mono(audio)
    win, hop = _grid(sr)
    n = len(x)
    cs = np.concatenate(([0.0], np.cumsum(x * x)))
    centre = np.arange(-(-n // hop)) * hop + hop // 2
    lo = np.clip(centre - win // 2, 0, n)
    hi = np.clip(centre + win - win // 2, 0, n)
    return 10 * np.log10((cs[hi] - cs[lo]) / win + EPS)


def _runs(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Start and end (exclusive) indices of the runs of True in `mask`."""
    edges = np.diff(np.concatenate(([0], mask.astype(np.int8), [0])))
    return np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)


# ---------------------------------------------------------------------------------------------
# S1 silence_cut


def silence_gate_db(e_db: np.ndarray) -> float:
    """Energy gate: 10th-percentile frame energy plus a margin, never below the absolute floor,
    and never within GATE_HEADROOM_DB of the loudest frame (a clip without pauses keeps all)."""
    gate = max(np.percentile(e_db, GATE_PERCENTILE) + GATE_MARGIN_DB, GATE_FLOOR_DB)
    return float(min(gate, e_db.max() - GATE_HEADROOM_DB))


def silence_cut(audio, sr: int = SAMPLE_RATE, max_silence_s: float = 0.3) -> np.ndarray:
    """Shorten every run of silent frames longer than max_silence_s to max_silence_s.

    Interior runs lose their middle (both edges of the neighbouring speech keep their lead-in
    and tail); a leading run keeps the part just before the sound, a trailing run the part just
    after it.
    """
    x = as_mono(audio)
    _, hop = _grid(sr)
    keep_max = max(1, round(_positive(max_silence_s, "max_silence_s") * sr / hop))
    e_db = frame_db(x, sr)
    silent = e_db < silence_gate_db(e_db)
    keep = np.ones(len(e_db), bool)
    for start, end in zip(*_runs(silent)):
        if end - start <= keep_max:
            continue
        if start == 0:
            keep[: end - keep_max] = False
        elif end == len(e_db):
            keep[start + keep_max:] = False
        else:
            head = keep_max // 2
            keep[start + head: end - (keep_max - head)] = False
    return x[np.repeat(keep, hop)[: len(x)]].astype(np.float32)


# ---------------------------------------------------------------------------------------------
# S2 noise_profile, S3 denoise


def _profile_from(mag: np.ndarray, n: int, sr: int, share: float) -> np.ndarray:
    full = _full_frames(mag.shape[1], n, sr)
    mag = mag[:, full]
    energy = np.sum(mag * mag, axis=0)
    k = max(1, round(share * len(energy)))
    quiet = np.argpartition(energy, k - 1)[:k]
    contrast_db = 10 * np.log10((np.percentile(energy, 90) + EPS) / (energy[quiet].mean() + EPS))
    if contrast_db < MIN_NOISE_CONTRAST_DB:
        # No quieter floor under the sound: the clip is the stationary thing (a tone, rain);
        # subtracting it from itself would destroy it.
        return np.zeros(mag.shape[0])
    return mag[:, quiet].mean(axis=1)


def noise_profile(audio, sr: int = SAMPLE_RATE, share: float = NOISE_SHARE) -> np.ndarray:
    """Mean STFT magnitude of the lowest-energy `share` of frames (one value per frequency bin);
    all zeros when those frames are within MIN_NOISE_CONTRAST_DB of the loud (90th pct) frames."""
    x = as_mono(audio)
    if not 0 < share <= 1:
        raise ValueError(f"share must be in (0, 1], got {share!r}")
    return _profile_from(np.abs(_stft(x, sr)), len(x), sr, share)


def denoise(audio, sr: int = SAMPLE_RATE, profile: np.ndarray | None = None,
            gamma: float = 1.0, floor: float = 0.05) -> np.ndarray:
    """Magnitude spectral subtraction |Y| = max(|X| - gamma * N, floor * |X|), phase kept.

    The floor keeps a little of every bin, so residual noise is a quiet copy of the input rather
    than isolated "musical" peaks. Without `profile` the noise is estimated (noise_profile) from
    the same STFT; an all-zero profile returns the input unchanged.
    """
    x = as_mono(audio)
    z = _stft(x, sr)
    mag = np.abs(z)
    if profile is None:
        profile = _profile_from(mag, len(x), sr, NOISE_SHARE)
    profile = np.asarray(profile, dtype=np.float64)
    if profile.shape != (z.shape[0],) or not np.all(np.isfinite(profile)) or np.any(profile < 0):
        raise ValueError(f"profile must be {z.shape[0]} non-negative finite magnitudes, "
                         f"got shape {profile.shape}")
    if not (0 <= floor <= 1):
        raise ValueError(f"floor must be in [0, 1], got {floor!r}")
    if not profile.any():
        return x.astype(np.float32)
    gain = np.maximum(1.0 - _positive(gamma, "gamma") * profile[:, None] / (mag + EPS), floor)
    return _istft(z * gain, sr, len(x)).astype(np.float32)


# ---------------------------------------------------------------------------------------------
# S4 core_locate


def _max_sum_span(values: np.ndarray) -> tuple[int, int]:
    """[i, j) with the largest sum of values[i:j] (Kadane via prefix sums, vectorised)."""
    prefix = np.concatenate(([0.0], np.cumsum(values)))
    best_gain = prefix[1:] - np.minimum.accumulate(prefix[:-1])
    j = int(np.argmax(best_gain)) + 1
    return int(np.argmin(prefix[:j])), j


def core_locate(audio, sr: int = SAMPLE_RATE, keep_db: float = 30.0, margin_s: float = 0.05,
                range_db: float = 40.0, min_score: float = 0.05) -> tuple[int, int]:
    """Sample span [start, end) of the main event.

    Frame score = normalised energy (1 at the loudest frame, 0 at range_db below) times
    (1 - normalised spectral entropy): loud, structured frames score high, quiet noise ~0.
    The core is the span maximising sum(score - min_score), widened to cover every frame within
    keep_db of the peak (so quiet word edges are never cut) and then by margin_s each side.
    """
    x = as_mono(audio)
    _, hop = _grid(sr)
    power = np.abs(_stft(x, sr)) ** 2
    energy = power.sum(axis=0)
    e_db = 10 * np.log10(energy + EPS)
    peak = e_db.max()
    energy_n = np.clip(1 + (e_db - peak) / _positive(range_db, "range_db"), 0, 1)
    p = power / (energy + EPS)
    entropy_n = -(p * np.log(p + EPS)).sum(axis=0) / np.log(power.shape[0])
    first, last = _max_sum_span(energy_n * (1 - entropy_n) - min_score)
    loud = np.flatnonzero(e_db >= peak - _positive(keep_db, "keep_db"))
    first, last = min(first, loud[0]), max(last, loud[-1] + 1)
    margin = round(max(margin_s, 0.0) * sr)
    # frame t is centred on sample t * hop and stands for [t*hop - hop/2, t*hop + hop/2)
    start = max(0, first * hop - hop // 2 - margin)
    end = min(len(x), (last - 1) * hop + hop - hop // 2 + margin)
    return start, end


# ---------------------------------------------------------------------------------------------
# S5 boundary_norm, S6 spec_smooth


def _fade_in(n: int) -> np.ndarray:
    """Rising half Hann of n samples, exactly 0 at the first sample."""
    return 0.5 - 0.5 * np.cos(np.pi * np.arange(n) / n)


def boundary_norm(audio, sr: int = SAMPLE_RATE, delta_s: float = 0.2,
                  fade_s: float = 0.02) -> np.ndarray:
    """Pad with silence at the end so the length is a multiple of delta_s (never cut).

    When padding is added the last fade_s of the content is faded out into it, so the
    content/silence junction is not a click (spec_smooth only tapers the clip's outer edges).
    """
    x = as_mono(audio)
    _grid(sr)
    step = max(1, round(_positive(delta_s, "delta_s") * sr))
    pad = -len(x) % step
    if pad == 0:
        return x.astype(np.float32)
    n_fade = min(round(max(fade_s, 0.0) * sr), len(x))
    if n_fade:
        x[len(x) - n_fade:] *= _fade_in(n_fade)[::-1]
    return np.concatenate([x, np.zeros(pad)]).astype(np.float32)


def spec_smooth(audio, sr: int = SAMPLE_RATE, taper_s: float = 0.02) -> np.ndarray:
    """Half-Hann fade-in over the first taper_s and fade-out over the last taper_s."""
    x = as_mono(audio)
    _grid(sr)
    n = min(round(_positive(taper_s, "taper_s") * sr), len(x) // 2)
    if n:
        ramp = _fade_in(n)
        x[:n] *= ramp
        x[len(x) - n:] *= ramp[::-1]
    return x.astype(np.float32)


# ---------------------------------------------------------------------------------------------
# the pipeline


@dataclass(frozen=True)
class TfjpReport:
    audio: np.ndarray  # processed clip, float32, length a multiple of 200 ms
    iterations: int  # S1-S3 passes in the last round
    hit_max_iter: bool  # the S1-S3 loop stopped at K with the length still changing
    restarts: int  # times the final silence_cut sent the clip back to S1
    core_s: float  # seconds kept by core_locate (before boundary padding)


def _clean_loop(x: np.ndarray, sr: int, max_iter: int) -> tuple[np.ndarray, int, bool]:
    """S1, then S2-S3 and S1 again until the cut no longer changes the length (max_iter passes).

    Denoising can turn a noisy pause into silence that the next cut removes, hence the loop.
    """
    x = silence_cut(x, sr)
    for it in range(1, max_iter + 1):
        x = denoise(x, sr)  # S2 noise_profile runs inside, on the same STFT as S3
        cut = silence_cut(x, sr)
        if len(cut) == len(x):
            return x, it, False
        x = cut
    return x, max_iter, True


def tfjp_report(audio, sr: int = SAMPLE_RATE, max_iter: int = 3,
                max_restarts: int = 2) -> TfjpReport:
    """Run TFJP on one clip and say how it went; see the module docstring for the order."""
    x = as_mono(audio)
    _grid(sr)
    if np.max(np.abs(x)) < SILENT_PEAK:
        raise ValueError("audio: empty clip (all samples below -80 dBFS)")
    if max_iter < 1 or max_restarts < 0:
        raise ValueError(f"max_iter must be >= 1 and max_restarts >= 0, "
                         f"got {max_iter!r}, {max_restarts!r}")
    for restart in range(max_restarts + 1):
        x, iterations, hit = _clean_loop(x, sr, max_iter)
        start, end = core_locate(x, sr)
        out = spec_smooth(boundary_norm(x[start:end], sr), sr)
        if restart == max_restarts or len(silence_cut(out, sr)) == len(out):
            break
        x = out  # S1 of the next round makes the same cut
    return TfjpReport(out, iterations, hit, restart, (end - start) / sr)


def tfjp(audio, sr: int = SAMPLE_RATE, max_iter: int = 3) -> np.ndarray:
    """TFJP-processed clip (float32, length a multiple of 200 ms); ValueError for empty input."""
    return tfjp_report(audio, sr, max_iter).audio
