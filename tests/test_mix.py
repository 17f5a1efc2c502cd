import numpy as np
import pytest

from soundflow.data import mix as M

SR = 16000


def sine(dur: float, freq: float = 440.0, amp: float = 0.5, phase: float = 0.0) -> np.ndarray:
    return amp * np.sin(2 * np.pi * freq * np.arange(int(dur * SR)) / SR + phase)


def schroeder_rt60(rir: np.ndarray) -> float:
    """RT60 from the backward-integrated energy decay curve, fitted from -5 to -25 dB (T20 x 3)."""
    edc = np.cumsum(rir[::-1].astype(np.float64) ** 2)[::-1]
    edc_db = 10 * np.log10(edc / edc[0])
    fit = (edc_db <= -5) & (edc_db >= -25)
    slope = np.polyfit(np.flatnonzero(fit) / SR, edc_db[fit], 1)[0]
    return -60.0 / slope


def test_db_to_gain_and_role_gains():
    assert M.db_to_gain(0.0) == 1.0
    assert M.db_to_gain(-6.0) == pytest.approx(0.501187, abs=1e-6)
    assert M.db_to_gain(20.0) == pytest.approx(10.0)
    assert M.ROLE_GAIN_DB == {"foreground": 0.0, "background": -6.0, "ambient": -12.0}


@pytest.mark.parametrize("snr", [5.0, 7.5, 10.0, 13.3, 20.0])
def test_scale_to_snr_is_exact(snr):
    rng = np.random.default_rng(0)
    speech = np.concatenate([sine(0.7), np.zeros(SR), sine(0.4, 220, 0.2)])
    noise = rng.standard_normal(3 * SR) * 0.3
    scaled = M.scale_to_snr(speech, noise, snr, SR)
    assert scaled.shape == noise.shape
    assert M.measure_snr(speech, scaled, SR) == pytest.approx(snr, abs=0.01)
    assert np.corrcoef(scaled, noise)[0, 1] == pytest.approx(1.0)  # only a gain


def test_snr_uses_active_signal_power_not_pauses():
    tone = sine(1.0, amp=0.5)  # power 0.125
    noise = np.full(SR, 0.05)  # power 0.0025 -> 10 log10(50) = 16.99 dB
    with_pause = np.concatenate([tone, np.zeros(SR)])
    assert M.measure_snr(tone, noise, SR) == pytest.approx(16.99, abs=0.01)
    assert M.measure_snr(with_pause, noise, SR) == pytest.approx(16.99, abs=0.01)
    whole_signal_db = 10 * np.log10(np.mean(with_pause**2) / 0.0025)
    assert whole_signal_db == pytest.approx(13.98, abs=0.01)  # what the other definition gives


def test_scale_to_snr_rejects_silence():
    with pytest.raises(ValueError, match="noise"):
        M.scale_to_snr(sine(0.5), np.zeros(100), 10.0)
    with pytest.raises(ValueError, match="signal"):
        M.scale_to_snr(np.zeros(SR), np.ones(100), 10.0)


def test_crossfade_concat_length_and_smooth_junctions():
    clips = [sine(1.0), sine(0.5, phase=np.pi), sine(0.7, phase=2.0)]
    out = M.crossfade_concat(clips, fade_s=0.02, sr=SR)
    assert len(out) == 16000 + 8000 + 11200 - 2 * 320
    max_step_inside = np.max(np.abs(np.diff(clips[0])))  # 2*pi*440/16000*0.5 = 0.086
    assert np.max(np.abs(np.diff(out))) <= 1.05 * max_step_inside
    assert np.max(np.abs(np.diff(np.concatenate(clips)))) > 4 * max_step_inside  # hard join: 4.3x
    # away from junctions the clips are untouched
    assert np.array_equal(out[:16000 - 320], clips[0][:16000 - 320].astype(np.float32))


def test_crossfade_concat_fades_sum_to_one_and_short_clips():
    out = M.crossfade_concat([np.ones(1000), np.ones(500)], fade_s=0.02, sr=SR)
    assert len(out) == 1500 - 250  # overlap capped at half of the shorter clip
    assert np.allclose(out, 1.0)
    single = M.crossfade_concat([np.arange(5.0)], sr=SR)
    assert np.array_equal(single, np.arange(5.0, dtype=np.float32))


def test_tile_length_continuity_and_level():
    rng = np.random.default_rng(1)
    noise = rng.standard_normal(int(0.3 * SR))
    out = M.tile(noise, 5 * SR, crossfade_s=0.05, sr=SR)
    assert len(out) == 5 * SR
    assert np.array_equal(out[:3000], noise[:3000].astype(np.float32))
    # equal-power crossfades: each junction region (50 ms) keeps the noise level within 1 dB
    period = len(noise) - 800
    levels = [10 * np.log10(np.mean(out[k * period + 4000 - 800: k * period + 4000] ** 2))
              for k in range(1, 10)]
    assert np.max(np.abs(np.array(levels) - 10 * np.log10(np.mean(noise**2)))) < 1.0
    # a tone that does not end on a whole period: tiled without a click (equal-power fades
    # may lift a self-similar tone by up to sqrt(2), a hard repeat jumps 4.4x the normal step)
    odd = sine(0.2537, freq=300.0)
    step = np.max(np.abs(np.diff(odd)))
    assert np.max(np.abs(np.diff(np.tile(odd, 4)))) > 4 * step
    assert np.max(np.abs(np.diff(M.tile(odd, SR, crossfade_s=0.02, sr=SR)))) <= 1.45 * step
    assert np.array_equal(M.tile(noise, 100, sr=SR), noise[:100].astype(np.float32))


def test_place_adds_in_place_with_role_gain_and_clipping():
    track = np.zeros(SR)
    clip = sine(1.0)
    returned = M.place(track, clip, SR // 2, M.ROLE_GAIN_DB["background"])
    assert returned is track
    assert np.all(track[: SR // 2] == 0)
    assert np.allclose(track[SR // 2:], clip[: SR // 2] * 10 ** (-6 / 20))
    level_db = 10 * np.log10(np.mean(track[SR // 2:] ** 2) / np.mean(clip[: SR // 2] ** 2))
    assert level_db == pytest.approx(-6.0, abs=1e-9)
    M.place(track, np.ones(300), -100, M.ROLE_GAIN_DB["ambient"])  # head falls off the track
    assert np.allclose(track[:200], 10 ** (-12 / 20)) and track[200] == 0
    with pytest.raises(ValueError, match="track"):
        M.place([0.0, 0.0], clip, 0)


@pytest.mark.parametrize("rt60", [0.25, 0.5, 1.0])
def test_synthetic_rir_has_the_asked_rt60(rt60):
    rir = M.synthetic_rir(np.random.default_rng(2), SR, rt60)
    assert len(rir) == round(1.2 * rt60 * SR)
    assert np.sum(rir.astype(np.float64) ** 2) == pytest.approx(1.0, abs=1e-5)
    assert np.argmax(np.abs(rir)) == 0  # direct path first and strongest
    assert schroeder_rt60(rir) == pytest.approx(rt60, rel=0.25)  # measured within 5 %


def test_synthetic_rir_is_deterministic_per_seed():
    a = M.synthetic_rir(np.random.default_rng(3), SR, 0.4)
    assert np.array_equal(a, M.synthetic_rir(np.random.default_rng(3), SR, 0.4))
    assert not np.array_equal(a, M.synthetic_rir(np.random.default_rng(4), SR, 0.4))
    with pytest.raises(ValueError, match="rng"):
        M.synthetic_rir(3, SR, 0.4)


def test_reverb_keeps_length_and_level_and_smears_time():
    rir = M.synthetic_rir(np.random.default_rng(5), SR, 0.5)
    dry = np.concatenate([sine(0.3), np.zeros(SR)])
    wet = M.reverb(dry, rir)
    assert len(wet) == len(dry)
    assert np.mean(wet.astype(np.float64) ** 2) == pytest.approx(np.mean(dry**2), rel=1e-5)
    # the dry clip is silent after 0.3 s; the reverberant tail is not (-60 dB by 0.5 s later)
    tail_db = 10 * np.log10(np.mean(wet[int(0.35 * SR): int(0.45 * SR)] ** 2) / np.mean(dry**2))
    assert -30 < tail_db < -3
    assert not np.any(M.reverb(np.zeros(100), rir))


def test_babble_length_rms_and_overlap():
    clips = [np.concatenate([sine(0.4, f), np.zeros(int(0.3 * SR)), sine(0.6, 1.5 * f)])
             for f in (150, 190, 230, 270, 310)]
    one = M.babble(clips, 4 * SR, np.random.default_rng(6), n_talkers=1)
    four = M.babble(clips, 4 * SR, np.random.default_rng(6), n_talkers=4)
    for b in (one, four):
        assert len(b) == 4 * SR and b.dtype == np.float32
        assert np.sqrt(np.mean(b.astype(np.float64) ** 2)) == pytest.approx(1.0, abs=1e-4)

    def silent_share(x):  # share of 50 ms frames more than 20 dB under the mean level
        frames = x[: len(x) // 800 * 800].reshape(-1, 800).astype(np.float64)
        return np.mean(np.mean(frames**2, axis=1) < 0.01)

    # one talker pauses (30 % of each clip is silence); four overlapping talkers rarely do
    assert silent_share(one) > 0.15 and silent_share(four) < 0.05
    assert np.array_equal(four, M.babble(clips, 4 * SR, np.random.default_rng(6), n_talkers=4))
    assert not np.array_equal(four, M.babble(clips, 4 * SR, np.random.default_rng(7)))


def test_normalize_peak():
    out = M.normalize_peak(np.array([0.1, -3.0, 2.0]), peak_db=-1.0)
    assert np.max(np.abs(out)) == pytest.approx(10 ** (-1 / 20), abs=1e-6)
    assert out[2] / out[1] == pytest.approx(-2 / 3)
    assert not np.any(M.normalize_peak(np.zeros(10)))
    with pytest.raises(ValueError, match="peak_db"):
        M.normalize_peak(np.ones(10), peak_db=3.0)
