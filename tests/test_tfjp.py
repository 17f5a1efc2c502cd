import numpy as np
import pytest
from scipy.signal import get_window

from soundflow.data import tfjp as T

SR = 16000


def burst(dur: float, f0: float) -> np.ndarray:
    """Speech-like voiced burst: harmonics of a wobbling f0 under a syllable-rate envelope."""
    t = np.arange(int(dur * SR)) / SR
    phase = 2 * np.pi * np.cumsum(f0 * (1 + 0.05 * np.sin(2 * np.pi * 3 * t))) / SR
    x = sum(np.sin(k * phase) / k for k in range(1, 30) if k * f0 < 4000)
    syllables = 0.6 + 0.4 * np.cos(2 * np.pi * 4 * t)
    ramp = np.minimum(1, np.minimum(t, dur - t) / 0.03)  # 30 ms on/off, like a real word edge
    return 0.1 * x * syllables * ramp


def tone(dur: float, freq: float = 1000.0, amp: float = 0.3) -> np.ndarray:
    return amp * np.sin(2 * np.pi * freq * np.arange(int(dur * SR)) / SR)


def gaps_s(x: np.ndarray, below_db: float = -60.0) -> list[float]:
    """Lengths of runs of 10 ms frames quieter than below_db, longer than 50 ms."""
    starts, ends = T._runs(T.frame_db(x, SR) < below_db)
    return [(e - s) * 0.01 for s, e in zip(starts, ends) if e - s > 5]


def snr_db(ref: np.ndarray, y: np.ndarray) -> float:
    return 10 * np.log10(np.sum(ref**2) / np.sum((y - ref) ** 2))


@pytest.fixture
def speech_with_gaps():
    rng = np.random.default_rng(0)
    gap = np.zeros(int(1.5 * SR))
    x = np.concatenate([burst(0.8, 120), gap, burst(0.8, 160), gap, burst(0.8, 200)])
    return x + 1e-4 * rng.standard_normal(len(x))  # -80 dBFS floor, not digital zero


def test_silence_cut_shortens_long_gaps_and_keeps_bursts(speech_with_gaps):
    x = speech_with_gaps
    y = T.silence_cut(x, SR)
    assert gaps_s(x) == pytest.approx([1.5, 1.5], abs=0.07)
    assert len(gaps_s(y)) == 2 and max(gaps_s(y)) <= 0.31
    assert len(y) / SR == pytest.approx(3 * 0.8 + 2 * 0.3, abs=0.06)  # measured 3.04 s
    assert np.sum(y**2) / np.sum(x**2) == pytest.approx(1.0, abs=0.005)


def test_silence_cut_leaves_short_pauses_and_gapless_sound_alone():
    pauses = np.concatenate([burst(0.5, 150), np.zeros(int(0.25 * SR)), burst(0.5, 150)])
    assert len(T.silence_cut(pauses, SR)) == len(pauses)
    # a quiet stretch 25 dB under the rest is sound, not silence (headroom rule)
    quiet_word = np.concatenate([tone(0.5), tone(0.6, amp=0.3 * 10 ** (-25 / 20)), tone(0.5)])
    assert len(T.silence_cut(quiet_word, SR)) == len(quiet_word)


def test_silence_cut_trims_leading_and_trailing_silence_to_limit():
    x = np.concatenate([np.zeros(SR), burst(0.6, 150), np.zeros(2 * SR)])
    y = T.silence_cut(x, SR, max_silence_s=0.3)
    assert len(y) / SR == pytest.approx(0.6 + 0.3 + 0.3, abs=0.06)
    # what stays of the leading silence is the part just before the sound
    assert np.argmax(np.abs(y) > 1e-3) / SR == pytest.approx(0.3, abs=0.03)


def test_noise_profile_estimates_white_noise_floor():
    rng = np.random.default_rng(1)
    on = (np.sin(2 * np.pi * 0.5 * np.arange(4 * SR) / SR) > 0)  # tone 1 s on, 1 s off
    noise = 0.05 * rng.standard_normal(4 * SR)
    prof = T.noise_profile(tone(4.0) * on + noise, SR)
    pure = T.noise_profile(np.concatenate([noise, tone(1.0, amp=1.0)]), SR)
    # expected mean |STFT| of white noise: Rayleigh mean = sigma_bin * sqrt(pi) / 2
    win = get_window("hann", 400)
    sigma_bin = 0.05 * np.sqrt(np.sum(win**2)) / np.sum(win)  # scipy scales the STFT by 1/sum(win)
    assert np.median(prof[5:-5]) == pytest.approx(sigma_bin * np.sqrt(np.pi) / 2, rel=0.15)
    assert np.median(prof) == pytest.approx(np.median(pure), rel=0.1)


def test_noise_profile_is_zero_for_gapless_stationary_sound():
    assert not T.noise_profile(tone(2.0), SR).any()
    rng = np.random.default_rng(2)
    assert not T.noise_profile(0.1 * rng.standard_normal(2 * SR), SR).any()  # rain-like clip


def test_denoise_improves_snr_of_tone_in_white_noise():
    rng = np.random.default_rng(3)
    on = (np.sin(2 * np.pi * 0.5 * np.arange(4 * SR) / SR) > 0)
    clean = tone(4.0) * on
    noisy = clean + 0.1 * rng.standard_normal(len(clean))
    before, after = snr_db(clean, noisy), snr_db(clean, T.denoise(noisy, SR))
    assert before == pytest.approx(3.5, abs=0.3)
    assert after - before > 6.0  # measured +8.1 dB


def test_denoise_leaves_clean_signals_alone(speech_with_gaps):
    for clean in (tone(2.0), speech_with_gaps):
        y = T.denoise(clean, SR)
        assert len(y) == len(clean)
        assert snr_db(clean, y) > 40  # measured 150 dB (tone), 55 dB (only the -80 dB floor goes)
        assert abs(10 * np.log10(np.sum(y**2) / np.sum(clean**2))) < 0.01
    # with an explicit zero profile the STFT round trip is exact too
    x = burst(0.5, 150)
    assert snr_db(x, T.denoise(x, SR, profile=np.full(201, 1e-9))) > 60


def test_denoise_floor_keeps_a_quiet_copy_of_pure_noise():
    rng = np.random.default_rng(4)
    noise = 0.1 * rng.standard_normal(SR)
    y = T.denoise(noise, SR, profile=T.noise_profile(np.concatenate([noise, tone(1, amp=1)])))
    drop_db = 10 * np.log10(np.mean(y**2) / np.mean(noise**2))
    assert -15 < drop_db < -5  # reduced, but no holes: every bin keeps >= 5 % (-26 dB)


def test_core_locate_trims_low_level_noise_around_the_event():
    rng = np.random.default_rng(5)
    lead = 0.0005 * rng.standard_normal(SR)  # ~40 dB under the burst
    ev = burst(0.8, 150)
    start, end = T.core_locate(np.concatenate([lead, ev, lead]), SR)
    assert SR - 0.08 * SR <= start <= SR  # 50 ms margin (+ frame rounding) before the event
    assert SR + len(ev) <= end <= SR + len(ev) + 0.08 * SR


def test_core_locate_keeps_quiet_parts_within_keep_db():
    # a word ending 25 dB under the peak is inside the kept share
    x = np.concatenate([np.zeros(SR // 2), tone(0.5), tone(0.4, amp=0.3 * 10 ** (-25 / 20)),
                        np.zeros(SR // 2)])
    start, end = T.core_locate(x, SR)
    assert start / SR == pytest.approx(0.45, abs=0.02)
    assert end / SR == pytest.approx(1.45, abs=0.02)


def test_boundary_norm_pads_to_200ms_without_cutting():
    x = burst(0.53, 150) + 0.01
    y = T.boundary_norm(x, SR)
    assert len(y) == 3 * 3200
    assert np.allclose(y[: len(x) - 320], x[: len(x) - 320], atol=1e-6)  # content untouched
    assert np.all(y[len(x):] == 0) and abs(y[len(x) - 1]) < 1e-3  # faded into the padding
    exact = burst(0.4, 150)
    assert np.array_equal(T.boundary_norm(exact, SR), exact.astype(np.float32))


def test_spec_smooth_tapers_20ms_edges():
    x = np.ones(SR)
    y = T.spec_smooth(x, SR)
    n = 320
    assert y[0] == 0 and y[-1] == pytest.approx(0.0, abs=1e-4)
    assert y[n // 2] == pytest.approx(0.5, abs=1e-6)  # half-Hann midpoint
    assert np.all(np.diff(y[:n]) > 0)
    assert np.all(y[n:-n] == 1)


def test_tfjp_end_to_end(speech_with_gaps):
    rng = np.random.default_rng(6)
    noisy_edges = np.concatenate([0.001 * rng.standard_normal(SR), speech_with_gaps,
                                  0.001 * rng.standard_normal(SR)])
    rep = T.tfjp_report(noisy_edges, SR)
    y = rep.audio
    assert y.dtype == np.float32 and len(y) % 3200 == 0
    # 2.4 s of bursts + two 0.3 s gaps + margins, padded to 200 ms: 1 s noisy edges are gone
    assert 3.0 <= len(y) / SR <= 3.4
    assert max(gaps_s(y[: int(3.0 * SR)])) <= 0.32
    assert np.sum(y**2) / np.sum(speech_with_gaps**2) == pytest.approx(1.0, abs=0.03)
    assert abs(y[0]) < 1e-4 and abs(y[-1]) < 1e-4
    assert np.max(np.abs(y[:32])) < 0.1 * np.max(np.abs(y))  # first 2 ms of the taper
    assert 1 <= rep.iterations <= 3 and rep.restarts <= 2
    assert np.array_equal(T.tfjp(noisy_edges, SR), y)  # deterministic


def test_tfjp_keeps_a_clean_tone_and_snaps_length():
    y = T.tfjp(tone(0.93), SR)
    assert len(y) == 5 * 3200
    assert 10 * np.log10(np.mean(y[:14000] ** 2) / np.mean(tone(0.93) ** 2)) > -0.5


@pytest.mark.parametrize("bad", [np.zeros(0), np.zeros(SR), 1e-6 * np.ones(SR)])
def test_tfjp_rejects_empty_clips(bad):
    with pytest.raises(ValueError, match="empty clip"):
        T.tfjp(bad, SR)


def test_bad_arguments_name_themselves():
    with pytest.raises(ValueError, match="1-D"):
        T.tfjp(np.ones((2, SR)), SR)
    with pytest.raises(ValueError, match="NaN"):
        T.silence_cut(np.array([0.1, np.nan]), SR)
    with pytest.raises(ValueError, match="sr"):
        T.tfjp(tone(1.0), 0)
    with pytest.raises(ValueError, match="max_silence_s"):
        T.silence_cut(tone(1.0), SR, max_silence_s=0)
    with pytest.raises(ValueError, match="profile"):
        T.denoise(tone(1.0), SR, profile=np.ones(7))


@pytest.mark.parametrize("n", [1, 50, 399, 3201])
def test_tfjp_handles_clips_shorter_than_a_frame_or_a_boundary(n):
    x = 0.3 * np.sin(0.3 * np.arange(n)) + 0.01
    y = T.tfjp(x, SR)
    assert len(y) == 3200 * (1 + (n > 3200)) and np.all(np.isfinite(y))
    assert len(T.denoise(x, SR)) == n
