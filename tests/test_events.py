"""Sound-event synthesizers, music, coloured noise and the freedesktop recordings."""
from __future__ import annotations

import numpy as np
import pytest
from scipy.signal import welch

from soundflow import SAMPLE_RATE as SR
from soundflow.data import events
from soundflow.data.events import (
    EVENT_TYPES,
    MUSIC_DIRECTIONS,
    MUSIC_TEMPOS,
    MUSIC_TIMBRES,
    SPEECH_EVENTS,
    colored_noise,
    event_clip,
    freedesktop_clips,
    load_freedesktop,
    synth_event,
    synth_music,
)

RESPOND = (
    "smoke_alarm co_alarm siren glass_break crash coughing_fit baby_cry kettle_whistle oven_beep "
    "phone_ring car_horn doorbell"
)
IGNORE = (
    "clock_tick notification_chime door_knock dish_clink single_cough fan_hum typing water_drip rain wind "
    "birdsong dog_bark footsteps bell music"
)


def rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


def rms_db(x: np.ndarray) -> float:
    return float(10 * np.log10(np.mean(np.square(x, dtype=np.float64)) + 1e-12))


def band_fraction(x: np.ndarray, lo: float, hi: float) -> float:
    power = np.abs(np.fft.rfft(x.astype(np.float64))) ** 2
    freqs = np.fft.rfftfreq(len(x), 1 / SR)
    return float(power[(freqs >= lo) & (freqs < hi)].sum() / power.sum())


def frame_peaks(x: np.ndarray, frame_s: float = 0.064, min_rel_rms: float = 0.3):
    """(time, dominant frequency) of each frame loud enough to hold a note."""
    m = int(frame_s * SR)
    frames = [x[i : i + m] for i in range(0, len(x) - m, m // 2)]
    loudest = max(np.sqrt(np.mean(f.astype(float) ** 2)) for f in frames)
    times, peaks = [], []
    for i, f in enumerate(frames):
        if np.sqrt(np.mean(f.astype(float) ** 2)) >= min_rel_rms * loudest:
            spectrum = np.abs(np.fft.rfft(f * np.hanning(m), 4 * m))
            times.append(i * m / 2 / SR)
            peaks.append(np.argmax(spectrum) * SR / (4 * m))
    return np.array(times), np.array(peaks)


def count_onsets(x: np.ndarray, frame_s: float = 0.01, rel: float = 0.2) -> int:
    m = int(frame_s * SR)
    env = np.array([np.sqrt(np.mean(x[i : i + m].astype(float) ** 2)) for i in range(0, len(x) - m, m)])
    loud = env > rel * env.max()
    return int(loud[0]) + int(np.sum(loud[1:] & ~loud[:-1]))


# --- the event table -------------------------------------------------------------------------


def test_event_table_names_domains_actions():
    assert {n for n, t in EVENT_TYPES.items() if t.action == "respond"} == set(RESPOND.split())
    assert {n for n, t in EVENT_TYPES.items() if t.action == "ignore"} == set(IGNORE.split())
    assert {t.domain for t in EVENT_TYPES.values()} == {
        "alarm", "breakage", "distress", "appliance", "outdoor", "household"
    }
    assert EVENT_TYPES["siren"].domain == "alarm" and EVENT_TYPES["dog_bark"].domain == "outdoor"
    assert EVENT_TYPES["music"] == events.EventType("music", "household", "ignore")
    assert all(t.name == n for n, t in EVENT_TYPES.items())
    assert SPEECH_EVENTS == {"tv_speech": "household", "cry_for_help": "distress"}


# --- every synthesizer -----------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(EVENT_TYPES))
def test_every_event_synthesizes_plausible_audio(name):
    for seed in (0, 1):
        audio = synth_event(name, rng(seed))
        assert audio.dtype == np.float32 and audio.ndim == 1
        assert 1.0 * SR <= len(audio) <= 4.0 * SR + 1
        assert np.isfinite(audio).all()
        assert np.max(np.abs(audio)) == pytest.approx(10 ** (-3 / 20), rel=1e-3)  # -3 dBFS peak
        assert rms_db(audio) > -45.0


@pytest.mark.parametrize("name", sorted(EVENT_TYPES))
def test_duration_is_honoured_and_long_patterns_keep_sounding(name):
    audio = synth_event(name, rng(3), duration_s=6.5)
    assert len(audio) == int(6.5 * SR)
    one_shot = {"glass_break", "crash", "single_cough", "notification_chime"}
    if name not in one_shot:  # sustained and pattern types still sound in the last 2.5 s
        assert rms_db(audio[-int(2.5 * SR) :]) > -50.0
    assert len(synth_event(name, rng(3), duration_s=0.25)) == int(0.25 * SR)


def test_same_seed_same_audio_different_seed_different_audio():
    for name in ("smoke_alarm", "glass_break", "rain", "baby_cry", "music"):
        a, b = synth_event(name, rng(7)), synth_event(name, rng(7))
        np.testing.assert_array_equal(a, b)
        c = synth_event(name, rng(8))
        assert len(a) != len(c) or not np.array_equal(a, c)
    # fixed length too: the content itself varies with the seed, not only the length
    x, y = synth_event("siren", rng(1), duration_s=2.0), synth_event("siren", rng(2), duration_s=2.0)
    assert not np.allclose(x, y)


def test_unknown_event_and_bad_arguments_raise():
    with pytest.raises(KeyError, match="toaster.*smoke_alarm"):
        synth_event("toaster", rng())
    with pytest.raises(KeyError, match="toaster"):
        event_clip("toaster", rng())
    with pytest.raises(ValueError, match="duration_s"):
        synth_event("siren", rng(), duration_s=0.0)
    with pytest.raises(TypeError, match="Generator"):
        synth_event("siren", 42)
    with pytest.raises(ValueError, match="p_real"):
        event_clip("siren", rng(), p_real=1.5)


# --- spectral sanity ------------------------------------------------------------------------


def test_smoke_alarm_peaks_near_3khz_in_three_beep_groups():
    for seed in range(3):
        audio = synth_event("smoke_alarm", rng(seed), duration_s=3.5)
        spectrum = np.abs(np.fft.rfft(audio))
        peak_hz = np.argmax(spectrum) * SR / len(audio)
        assert 2800 < peak_hz < 3400
        assert count_onsets(audio) == 3  # temporal-three: beep beep beep, pause


def test_co_alarm_beeps_four_times_quickly():
    audio = synth_event("co_alarm", rng(0), duration_s=1.0)
    assert count_onsets(audio) == 4


def test_siren_dominant_frequency_sweeps():
    for seed in range(4):
        _, peaks = frame_peaks(synth_event("siren", rng(seed), duration_s=3.0), frame_s=0.032)
        assert peaks.max() - peaks.min() > 300
    steady = synth_event("smoke_alarm", rng(0), duration_s=3.0)
    _, peaks = frame_peaks(steady, frame_s=0.032)
    assert peaks.max() - peaks.min() < 50  # the check itself tells a sweep from a fixed tone


def test_fan_hum_is_low_and_rain_is_broadband():
    for seed in range(3):
        assert band_fraction(synth_event("fan_hum", rng(seed)), 0, 500) > 0.9
        rain = synth_event("rain", rng(seed))
        for lo, hi in ((250, 1000), (1000, 4000), (4000, 7500)):
            assert band_fraction(rain, lo, hi) > 0.08
    assert band_fraction(synth_event("glass_break", rng(0)), 2000, 8000) > 0.7


# --- music ----------------------------------------------------------------------------------


@pytest.mark.parametrize("timbre", MUSIC_TIMBRES)
def test_melody_direction_shows_in_dominant_pitch(timbre):
    for seed in range(2):
        slopes = {}
        for direction in MUSIC_DIRECTIONS:
            audio = synth_music(rng(seed), "medium", direction, timbre, duration_s=4.0)
            times, peaks = frame_peaks(audio)
            slopes[direction] = np.polyfit(times, np.log2(peaks), 1)[0]  # octaves per second
            if direction != "steady":
                corr = np.corrcoef(times, np.log2(peaks))[0, 1]
                assert (corr > 0.8) if direction == "rising" else (corr < -0.8), (direction, corr)
        assert slopes["rising"] > 0.3 and slopes["falling"] < -0.3
        assert abs(slopes["steady"]) < 0.1


def test_faster_tempo_has_more_note_onsets():
    counts = {t: count_onsets(synth_music(rng(4), t, "steady", "sine", duration_s=4.0)) for t in MUSIC_TEMPOS}
    assert counts["slow"] < counts["medium"] < counts["fast"]
    assert 4 <= counts["slow"] <= 5 and 10 <= counts["fast"] <= 12  # one note per beat: 70 / 160 bpm +-5%


def test_music_is_deterministic_and_checks_arguments():
    a = synth_music(rng(5), "fast", "rising", "plucked", duration_s=2.0)
    np.testing.assert_array_equal(a, synth_music(rng(5), "fast", "rising", "plucked", duration_s=2.0))
    assert len(a) == 2 * SR and a.dtype == np.float32
    with pytest.raises(ValueError, match="tempo.*slow"):
        synth_music(rng(), "presto", "rising", "sine")
    with pytest.raises(ValueError, match="direction.*falling"):
        synth_music(rng(), "slow", "up", "sine")
    with pytest.raises(ValueError, match="timbre.*organ"):
        synth_music(rng(), "slow", "rising", "violin")


def test_timbres_differ_in_harmonic_content():
    def brightness(timbre):
        audio = synth_music(rng(6), "slow", "steady", timbre, duration_s=2.0)
        return band_fraction(audio, 1500, 8000)

    assert brightness("sine") < 0.01
    assert brightness("sawtooth") > brightness("organ") > brightness("sine")
    assert brightness("square") > brightness("sine")


# --- coloured noise -------------------------------------------------------------------------


@pytest.mark.parametrize("color, db_per_octave", [("white", 0.0), ("pink", -3.0), ("brown", -6.0)])
def test_colored_noise_spectral_slope(color, db_per_octave):
    noise = colored_noise(color, 10 * SR, rng(9))
    assert noise.dtype == np.float32 and len(noise) == 10 * SR
    assert np.sqrt(np.mean(noise.astype(float) ** 2)) == pytest.approx(1.0, rel=1e-3)
    freqs, power = welch(noise, SR, nperseg=4096)
    keep = (freqs >= 100) & (freqs <= 4000)
    slope = np.polyfit(np.log2(freqs[keep]), 10 * np.log10(power[keep]), 1)[0]
    assert slope == pytest.approx(db_per_octave, abs=0.7)


def test_colored_noise_rejects_bad_input():
    with pytest.raises(ValueError, match="color.*pink"):
        colored_noise("purple", 100, rng())
    with pytest.raises(ValueError, match="n must"):
        colored_noise("white", 0, rng())
    np.testing.assert_array_equal(colored_noise("pink", 500, rng(1)), colored_noise("pink", 500, rng(1)))


# --- real recordings ------------------------------------------------------------------------

needs_freedesktop = pytest.mark.skipif(
    not events.FREEDESKTOP_DIR.is_dir(), reason="sound-theme-freedesktop not installed"
)


@needs_freedesktop
def test_freedesktop_mapping_points_at_real_files_of_known_events():
    clips = freedesktop_clips()
    assert {"phone_ring", "bell", "notification_chime", "oven_beep"} <= set(clips)
    for name, paths in clips.items():
        assert name in EVENT_TYPES
        assert paths and all(p.is_file() and p.suffix == ".oga" for p in paths)


@needs_freedesktop
def test_load_freedesktop_and_event_clip_sources():
    audio = load_freedesktop("phone_ring", rng())
    assert audio.dtype == np.float32 and len(audio) > 0.5 * SR
    assert np.max(np.abs(audio)) == pytest.approx(10 ** (-3 / 20), rel=1e-3)
    with pytest.raises(KeyError, match="siren"):
        load_freedesktop("siren", rng())

    audio, source = event_clip("bell", rng(), p_real=1.0)
    assert source.startswith("freedesktop:") and source.endswith(".oga") and len(audio) > 0
    assert event_clip("bell", rng(), p_real=0.0)[1] == "procedural"
    assert event_clip("siren", rng(), p_real=1.0)[1] == "procedural"  # no recording of a siren
    sources = [event_clip("notification_chime", rng(s), p_real=0.5)[1] for s in range(20)]
    assert 3 <= sum(s != "procedural" for s in sources) <= 17


def test_missing_freedesktop_folder_has_install_hint(monkeypatch, tmp_path):
    monkeypatch.setattr(events, "FREEDESKTOP_DIR", tmp_path / "absent")
    with pytest.raises(FileNotFoundError, match="apt-get install sound-theme-freedesktop"):
        freedesktop_clips()
    with pytest.raises(FileNotFoundError, match="sound-theme-freedesktop is not installed"):
        event_clip("phone_ring", rng(), p_real=1.0)
