"""Sound events for the corpus: procedural synthesizers, real freedesktop recordings, music, noise.

Every synthesizer is numpy/scipy only and draws all its randomness from the `numpy.random.Generator`
it is given, so an item is reproducible from its seed. Output is 16 kHz float32 mono, peak-normalised
to -3 dBFS. Each event type varies with the rng (pitch, pattern, timing, length) so a model has to
learn the kind of sound, not one waveform.
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
from scipy.signal import butter, sosfilt

from soundflow import SAMPLE_RATE
from soundflow.audio import read_audio

SR = SAMPLE_RATE
_MAX_PARTIAL_HZ = 0.45 * SR  # partials above this would alias or sit in the resampler's roll-off
_PEAK = 10 ** (-3 / 20)  # -3 dBFS
_MIN_DURATION_S = 0.1


@dataclass(frozen=True)
class EventType:
    name: str
    domain: str
    action: str  # "respond" or "ignore"


def _types(action: str, pairs: str) -> dict[str, EventType]:
    out = {}
    for pair in pairs.split():
        name, domain = pair.split(":")
        out[name] = EventType(name, domain, action)
    return out


EVENT_TYPES: dict[str, EventType] = {
    **_types(
        "respond",
        "smoke_alarm:alarm co_alarm:alarm siren:alarm glass_break:breakage crash:breakage "
        "coughing_fit:distress baby_cry:distress kettle_whistle:appliance oven_beep:appliance "
        "phone_ring:appliance car_horn:outdoor doorbell:household",
    ),
    **_types(
        "ignore",
        "clock_tick:alarm notification_chime:alarm door_knock:breakage dish_clink:breakage "
        "single_cough:distress fan_hum:appliance typing:appliance water_drip:appliance rain:outdoor "
        "wind:outdoor birdsong:outdoor dog_bark:outdoor footsteps:household bell:household "
        "music:household",
    ),
}

# Spoken events come from TTS in another module; listed here so the domain table is complete.
SPEECH_EVENTS: dict[str, str] = {"tv_speech": "household", "cry_for_help": "distress"}

MUSIC_TEMPOS = ("slow", "medium", "fast")
MUSIC_DIRECTIONS = ("rising", "falling", "steady")
MUSIC_TIMBRES = ("sine", "square", "sawtooth", "plucked", "organ")
_BPM = {"slow": 70, "medium": 110, "fast": 160}
_MAJOR_SCALE = (0, 2, 4, 5, 7, 9, 11)
_MAX_MELODY_SPAN = 21  # scale steps (3 octaves); longer runs restart so pitch stays audible

_NOISE_EXPONENTS = {"white": 0.0, "pink": 1.0, "brown": 2.0}  # power spectrum ~ 1/f**exponent

FREEDESKTOP_DIR = Path("/usr/share/sounds/freedesktop/stereo")
# Chosen by listening to the files and measuring their spectra; files that match no event type
# (audio-channel-*, camera-shutter, trash-empty, service-login ...) are left out.
_FREEDESKTOP_FILES = {
    "oven_beep": ("alarm-clock-elapsed", "suspend-error"),  # timer run out; five 1.4 kHz beeps
    "phone_ring": ("phone-incoming-call",),
    "bell": ("bell",),
    "notification_chime": ("message", "message-new-instant", "complete", "dialog-warning"),
}


# ---------------------------------------------------------------------------------------------
# small signal helpers


def _n(seconds: float) -> int:
    return max(1, int(round(seconds * SR)))


def _time(n: int) -> np.ndarray:
    return np.arange(n) / SR


def _filter(x: np.ndarray, cutoff, btype: str, order: int = 2) -> np.ndarray:
    sos = butter(order, cutoff, btype=btype, fs=SR, output="sos")
    return sosfilt(sos, x)


def _lowpass(x: np.ndarray, hz: float, order: int = 2) -> np.ndarray:
    return _filter(x, min(hz, _MAX_PARTIAL_HZ), "lowpass", order)


def _highpass(x: np.ndarray, hz: float, order: int = 2) -> np.ndarray:
    return _filter(x, hz, "highpass", order)


def _bandpass(x: np.ndarray, lo: float, hi: float, order: int = 2) -> np.ndarray:
    return _filter(x, [lo, min(hi, _MAX_PARTIAL_HZ)], "bandpass", order)


def _fade(x: np.ndarray, seconds: float = 0.005) -> np.ndarray:
    """Linear fade in and out so clip edges do not click."""
    m = min(_n(seconds), len(x) // 2)
    if m > 0:
        ramp = np.linspace(0.0, 1.0, m)
        x[:m] *= ramp
        x[len(x) - m :] *= ramp[::-1]
    return x


def _add(out: np.ndarray, clip: np.ndarray, start: int) -> None:
    """Mix `clip` into `out` at sample `start`, dropping what falls past the end."""
    if start >= len(out):
        return
    m = min(len(clip), len(out) - start)
    out[start : start + m] += clip[:m]


def _harmonic(f0, amps, n: int | None = None, phase: float = 0.0) -> np.ndarray:
    """Sum of harmonics k*f0 with amplitudes `amps`: f0 is a scalar held for n samples, or an array
    with one frequency per sample (phase-continuous glides). Harmonics that would alias are dropped."""
    f0 = np.broadcast_to(np.asarray(f0, dtype=float), (n,) if n else np.shape(f0))
    cycles = np.cumsum(f0) / SR + phase
    top = float(np.max(f0))
    out = np.zeros(len(f0))
    for k, amp in enumerate(amps, start=1):
        if amp and k * top < _MAX_PARTIAL_HZ:
            out += amp * np.sin(2 * np.pi * k * cycles)
    return out


def _struck(freqs, amps, taus, seconds: float, attack: float = 0.002) -> np.ndarray:
    """Exponentially decaying partials, the sound of a struck bar, bell or glass."""
    t = _time(_n(seconds))
    out = np.zeros(len(t))
    for f, amp, tau in zip(freqs, amps, taus):
        if f < _MAX_PARTIAL_HZ:
            out += amp * np.sin(2 * np.pi * f * t) * np.exp(-t / tau)
    out *= np.minimum(1.0, t / attack)
    return _fade(out, 0.01)


def _noise_burst(rng, seconds: float, tau: float) -> np.ndarray:
    m = _n(seconds)
    return rng.standard_normal(m) * np.exp(-_time(m) / tau)


def _square_amps(count: int = 9) -> list[float]:
    return [1.0 / k if k % 2 else 0.0 for k in range(1, count + 1)]


def _saw_amps(count: int = 20) -> list[float]:
    return [1.0 / k for k in range(1, count + 1)]


def _repeat(n: int, make_cycle: Callable[[], tuple[np.ndarray, float]], start_s: float = 0.0):
    """Overlap-add cycles of a pattern until n samples are filled.

    `make_cycle()` returns (clip, period_s); a clip may ring on past its period (bells).
    """
    out = np.zeros(n)
    pos = _n(start_s) if start_s else 0
    while pos < n:
        clip, period = make_cycle()
        _add(out, clip, pos)
        pos += _n(period)
    return out


def _smooth_envelope(rng, n: int, step_s: float, lo: float, hi: float) -> np.ndarray:
    """Random slowly varying gain, roughly within [lo, hi]: control points every step_s, interpolated."""
    points = rng.uniform(lo, hi, int(n / (step_s * SR)) + 2)
    env = np.interp(np.arange(n), np.linspace(0, n, len(points)), points)
    return _lowpass(env - env.mean(), 4.0) + env.mean()


# ---------------------------------------------------------------------------------------------
# respond events


def _smoke_alarm(rng, n):
    # NFPA 72 temporal-three: beep-beep-beep, pause; piezo horn near 3.1 kHz.
    f = rng.uniform(2900, 3300)
    on, off, pause = rng.uniform(0.45, 0.55), rng.uniform(0.45, 0.55), rng.uniform(1.3, 1.7)
    beep = _fade(_harmonic(f, (1.0, 0.15), _n(on)))

    def cycle():
        clip = np.zeros(_n(3 * on + 2 * off))
        for i in range(3):
            _add(clip, beep, _n(i * (on + off)))
        return clip, 3 * on + 2 * off + pause

    return _repeat(n, cycle)


def _co_alarm(rng, n):
    # CO alarms: four quick beeps, then a pause (shortened here so short clips still hold a group).
    f = rng.uniform(3000, 3500)
    on = rng.uniform(0.08, 0.12)
    beep = _fade(_harmonic(f, (1.0, 0.15), _n(on)))

    def cycle():
        clip = np.zeros(_n(8 * on))
        for i in range(4):
            _add(clip, beep, _n(2 * i * on))
        return clip, 8 * on + rng.uniform(0.9, 1.6)

    return _repeat(n, cycle)


def _siren(rng, n):
    # Wail (slow sweep) or yelp (fast sweep) between a low and a high pitch, phase-continuous.
    lo = rng.uniform(550, 800)
    hi = lo * rng.uniform(1.8, 2.2)
    period = rng.uniform(2.5, 4.0) if rng.random() < 0.5 else rng.uniform(0.25, 0.4)
    sweep = 0.5 - 0.5 * np.cos(2 * np.pi * (_time(n) / period + rng.uniform(0, 1)))
    return _harmonic(lo + (hi - lo) * sweep, (1.0, 0.4, 0.25, 0.1))


def _glass_break(rng, n):
    out = np.zeros(n)
    start = _n(0.02)
    _add(out, 2.0 * _highpass(_noise_burst(rng, 0.01, 0.002), 2000), start)  # the impact
    for _ in range(rng.integers(20, 40)):  # the pane shattering: many bright resonances at once
        ping = _struck([rng.uniform(2000, 7000)], [rng.uniform(0.1, 0.5)], [rng.uniform(0.02, 0.25)], 0.8)
        _add(out, ping, start + int(rng.integers(0, _n(0.06))))
    span = min(1.5, n / SR - 0.15)
    for _ in range(rng.integers(6, 20)):  # shards landing: sparser and quieter over time
        frac = rng.beta(1.0, 2.5)
        ping = _struck([rng.uniform(3000, 7000)], [0.35 * (1 - frac) + 0.05], [rng.uniform(0.01, 0.06)], 0.3)
        _add(out, ping, start + _n(0.1 + frac * max(span, 0.0)))
    return out


def _crash(rng, n):
    out = np.zeros(n)
    start = _n(0.02)
    burst = _lowpass(_noise_burst(rng, 0.8, rng.uniform(0.08, 0.2)), rng.uniform(3000, 6000))
    m = _n(0.6)  # the low thud of something heavy hitting the floor, pitch dropping
    thud = _harmonic(np.linspace(rng.uniform(80, 110), 45, m), (1.0,)) * np.exp(-_time(m) / 0.15)
    _add(out, burst, start)
    _add(out, 1.5 * thud, start)
    span = min(1.8, n / SR - 0.2)
    for _ in range(rng.integers(10, 30)):  # debris tumbling afterwards
        frac = rng.beta(1.0, 2.0)
        centre = rng.uniform(500, 4000)
        bit = _bandpass(_noise_burst(rng, 0.05, rng.uniform(0.005, 0.02)), centre * 0.7, centre * 1.3)
        _add(out, 2.0 * (1 - frac) * bit, start + _n(0.1 + frac * max(span, 0.0)))
    return out


def _cough_voice(rng) -> dict:
    """One person's vocal tract: formant centres shared by all their coughs."""
    return {"f1": rng.uniform(400, 800), "f2": rng.uniform(1200, 2200), "f3": rng.uniform(2500, 3500)}


def _cough(rng, voice: dict, strength: float = 1.0) -> np.ndarray:
    # Explosive burst of turbulent air shaped by the vocal tract, then a quieter voiced tail.
    m = _n(rng.uniform(0.25, 0.45))
    t = _time(m)
    noise = rng.standard_normal(m)
    shaped = (
        _bandpass(noise, voice["f1"] * 0.7, voice["f1"] * 1.3)
        + 0.6 * _bandpass(noise, voice["f2"] * 0.8, voice["f2"] * 1.2)
        + 0.3 * _bandpass(noise, voice["f3"] * 0.85, voice["f3"] * 1.15)
    )
    env = np.minimum(1.0, t / 0.012) * (np.exp(-t / rng.uniform(0.04, 0.08)) + 0.25 * np.exp(-t / 0.15))
    return _fade(strength * shaped * env, 0.01)


def _coughing_fit(rng, n):
    voice = _cough_voice(rng)

    def cycle():
        clip = np.zeros(_n(4.0))
        pos, strength = 0.0, 1.0
        for _ in range(rng.integers(3, 9)):
            _add(clip, _cough(rng, voice, strength), _n(pos))
            pos += rng.uniform(0.25, 0.5)
            strength *= rng.uniform(0.8, 1.0)
        return clip, pos + rng.uniform(0.4, 0.8)  # gasp for air before the next bout

    return _repeat(n, cycle, start_s=0.02)


def _baby_cry(rng, n):
    f0 = rng.uniform(400, 600)
    vibrato_hz = rng.uniform(5, 8)

    def cycle():
        dur = rng.uniform(0.6, 1.3)
        m = _n(dur)
        t = _time(m)
        contour = 1 + rng.uniform(0.05, 0.2) * np.sin(np.pi * t / dur)  # wail rises then falls
        f = f0 * contour * (1 + 0.03 * np.sin(2 * np.pi * vibrato_hz * t))
        voiced = _harmonic(f, [1.0 / k for k in range(1, 13)])
        voiced += 1.5 * _bandpass(voiced, 1000, 1600) + 0.8 * _bandpass(voiced, 2500, 3500)  # formants
        cry = voiced + 0.05 * rng.standard_normal(m)  # breathiness
        return _fade(cry, 0.06), dur + rng.uniform(0.2, 0.45)  # gap: the baby draws breath

    return _repeat(n, cycle)


def _kettle_whistle(rng, n):
    # As the steam builds the whistle gets louder and its pitch rises towards a steady note.
    t = _time(n)
    f_start = rng.uniform(1400, 2000)
    f_end = f_start * rng.uniform(1.3, 1.6)
    rise = rng.uniform(0.8, 2.0)
    wander = _lowpass(rng.standard_normal(n), 30)
    jitter = 1 + 0.004 * wander / (np.std(wander) + 1e-12)  # turbulence makes the pitch waver
    f = (f_end - (f_end - f_start) * np.exp(-t / rise)) * jitter
    tone = _harmonic(f, (1.0, 0.05))
    centre = (f_start + f_end) / 2
    breath = _bandpass(rng.standard_normal(n), centre * 0.8, centre * 1.25)
    swell = 1 - 0.9 * np.exp(-t / (0.5 * rise))
    return swell * (tone + 0.15 * breath)


def _oven_beep(rng, n):
    f = rng.uniform(1000, 2000)
    count = int(rng.integers(3, 6))
    on, off = rng.uniform(0.1, 0.3), rng.uniform(0.1, 0.25)
    beep = _fade(_harmonic(f, _square_amps(5), _n(on)))

    def cycle():
        clip = np.zeros(_n(count * (on + off)))
        for i in range(count):
            _add(clip, beep, _n(i * (on + off)))
        return clip, count * (on + off) + rng.uniform(1.0, 2.0)

    return _repeat(n, cycle)


def _phone_ring(rng, n):
    # Electronic trill: two tones alternating ~20 times a second, in a ring cadence.
    f1 = rng.uniform(700, 1100)
    f2 = f1 * rng.uniform(1.15, 1.35)
    trill = rng.uniform(15, 25)
    double = rng.random() < 0.5  # UK-style "ring-ring" or US-style long ring

    def burst(seconds):
        m = _n(seconds)
        f = np.where(np.sin(2 * np.pi * trill * _time(m)) >= 0, f1, f2)
        return _fade(_harmonic(f, (1.0, 0.3, 0.15)), 0.01)

    def cycle():
        if double:
            clip = np.zeros(_n(1.0))
            _add(clip, burst(0.4), 0)
            _add(clip, burst(0.4), _n(0.6))
            return clip, 1.0 + rng.uniform(1.2, 2.0)
        on = rng.uniform(1.0, 2.0)
        return burst(on), on + rng.uniform(2.0, 3.0)

    return _repeat(n, cycle)


def _car_horn(rng, n):
    # Two horns a major third apart, buzzy (odd harmonics plus a little even for the brass).
    f1 = rng.uniform(350, 450)
    f2 = f1 * rng.uniform(1.18, 1.3)
    amps = [1.0 / k if k % 2 else 0.2 / k for k in range(1, 12)]

    def cycle():
        clip = np.zeros(_n(4.0))
        pos = 0.0
        for _ in range(rng.integers(1, 4)):
            m = _n(rng.uniform(0.25, 1.0))
            honk = _fade(_harmonic(f1, amps, m) + _harmonic(f2, amps, m, phase=0.3), 0.01)
            _add(clip, honk, _n(pos))
            pos += m / SR + rng.uniform(0.1, 0.3)
        return clip, pos + rng.uniform(0.5, 1.5)

    return _repeat(n, cycle)


_BAR_RATIOS = (1.0, 2.756, 5.404)  # partials of a free metal bar (chime tube / doorbell bar)


def _doorbell(rng, n):
    ding = rng.uniform(600, 900)
    dong = ding / 2 ** (4 / 12)  # a major third down
    tau = rng.uniform(0.6, 1.2)

    def strike(f):
        freqs = [f * r for r in _BAR_RATIOS]
        return _struck(freqs, (1.0, 0.4, 0.15), [tau / r for r in _BAR_RATIOS], 4 * tau)

    def cycle():
        gap = rng.uniform(0.4, 0.7)
        clip = np.zeros(_n(gap + 4 * tau))
        _add(clip, strike(ding), 0)
        _add(clip, strike(dong), _n(gap))
        return clip, gap + rng.uniform(1.5, 2.5)

    return _repeat(n, cycle, start_s=0.01)


# ---------------------------------------------------------------------------------------------
# ignore events (harmless sounds, several chosen to resemble a respond event of the same domain)


def _clock_tick(rng, n):
    f = rng.uniform(2000, 4000)
    period = rng.uniform(0.5, 1.0)

    def click(freq):
        return _struck([freq], [1.0], [0.004], 0.03, attack=0.0005) + 0.3 * _noise_burst(rng, 0.03, 0.002)

    def cycle():  # tick ... tock, the tock a little lower
        clip = np.zeros(_n(period + 0.03))
        _add(clip, click(f), 0)
        _add(clip, 0.8 * click(f * rng.uniform(0.8, 0.9)), _n(period))
        return clip, 2 * period

    return _repeat(n, cycle, start_s=0.01)


def _notification_chime(rng, n):
    base = rng.uniform(700, 1100)
    out = np.zeros(n)
    pos = 0.02
    for _ in range(rng.integers(1, 4)):  # 1-3 soft pentatonic notes
        f = base * 2 ** (rng.choice((0, 2, 4, 7, 9, 12)) / 12)
        tau = rng.uniform(0.3, 0.6)
        note = _struck([f, 2 * f, 3 * f], (1.0, 0.2, 0.05), [tau, tau / 2, tau / 3], 4 * tau, attack=0.008)
        _add(out, note, _n(pos))
        pos += rng.uniform(0.12, 0.2)
    return out


def _door_knock(rng, n):
    f = rng.uniform(80, 180)  # the door's resonance, same for every knock
    brightness = rng.uniform(1000, 2000)

    def knock():
        body = _struck([f, 2.3 * f], (1.0, 0.3), [rng.uniform(0.03, 0.06)] * 2, 0.25, attack=0.001)
        _add(body, 0.5 * _lowpass(_noise_burst(rng, 0.03, 0.005), brightness), 0)  # knuckle rap
        return body

    def cycle():
        clip = np.zeros(_n(2.0))
        pos, interval = 0.0, rng.uniform(0.12, 0.25)
        for _ in range(rng.integers(2, 6)):
            _add(clip, rng.uniform(0.7, 1.0) * knock(), _n(pos))
            pos += interval * rng.uniform(0.8, 1.2)
        return clip, pos + rng.uniform(0.8, 2.0)

    return _repeat(n, cycle, start_s=0.01)


def _dish_clink(rng, n):
    def ping():
        f = rng.uniform(2000, 4500)
        ratios = (1.0, rng.uniform(1.5, 1.7), rng.uniform(2.3, 2.8))  # inharmonic: thin ceramic/metal
        tau = rng.uniform(0.05, 0.2)
        freqs = [f * r for r in ratios]
        return _struck(freqs, (1.0, 0.5, 0.3), [tau, tau / 1.5, tau / 2], 4 * tau, attack=0.0005)

    def cycle():
        clip = np.zeros(_n(2.5))
        pos = 0.0
        for _ in range(rng.integers(1, 5)):
            _add(clip, rng.uniform(0.5, 1.0) * ping(), _n(pos))
            pos += rng.uniform(0.05, 0.4)
        return clip, pos + rng.uniform(0.5, 1.5)

    return _repeat(n, cycle, start_s=0.01)


def _single_cough(rng, n):
    out = np.zeros(n)
    _add(out, _cough(rng, _cough_voice(rng)), _n(0.05))
    return out


def _fan_hum(rng, n):
    # Motor hum with a few harmonics, slow blade wobble, and low-passed air noise.
    f = rng.uniform(50, 120)
    hum = _harmonic(f, [1.0 / k**1.5 for k in range(1, 7)], n, phase=rng.uniform(0, 1))
    air = _lowpass(rng.standard_normal(n), rng.uniform(200, 400), order=4)
    air *= 0.5 * np.std(hum) / (np.std(air) + 1e-12)
    hiss = 0.03 * np.std(hum) * _bandpass(rng.standard_normal(n), 500, 3000)
    wobble = 1 + 0.05 * np.sin(2 * np.pi * rng.uniform(0.5, 2.0) * _time(n))
    return wobble * (hum + air) + hiss


def _typing(rng, n):
    out = np.zeros(n)
    centre = rng.uniform(2000, 4000)  # the keyboard's click colour
    pos = rng.uniform(0.0, 0.1)
    while pos < n / SR:
        space = rng.random() < 0.15  # the space bar: louder and duller
        c = centre * rng.uniform(0.8, 1.2) * (0.6 if space else 1.0)
        key = _struck([rng.uniform(150, 300)], [0.3], [0.01], 0.05, attack=0.0005)  # key bottoming out
        _add(key, _bandpass(_noise_burst(rng, 0.02, 0.003), c * 0.6, c * 1.5), 0)  # plastic click
        _add(out, rng.uniform(0.5, 1.0) * (1.5 if space else 1.0) * key, _n(pos))
        pos += rng.uniform(0.06, 0.12) + rng.exponential(0.08)
        if rng.random() < 0.08:  # the typist stops to think
            pos += rng.uniform(0.3, 0.8)
    return out


def _water_drip(rng, n):
    f0 = rng.uniform(700, 1600)
    period = rng.uniform(0.35, 1.0)

    def drop():
        # A drop traps a bubble whose ring rises quickly in pitch: the "plink".
        m = _n(0.2)
        f = f0 * rng.uniform(0.9, 1.1)
        glide = f * (1 + rng.uniform(0.3, 0.8) * (1 - np.exp(-_time(m) / 0.015)))
        ring = _harmonic(glide, (1.0,)) * np.exp(-_time(m) / rng.uniform(0.02, 0.06))
        return _fade(ring + 0.2 * _noise_burst(rng, 0.2, 0.001), 0.002)

    return _repeat(n, lambda: (drop(), period * rng.uniform(0.9, 1.1)), start_s=0.01)


def _rain(rng, n):
    hiss = 0.5 * colored_noise("pink", n, rng) + 0.5 * rng.standard_normal(n)
    hiss = _bandpass(hiss, 300, 7500)
    # Individual drops: impulses at a Poisson rate, each ringing briefly, brighter than the hiss.
    rate = rng.uniform(30, 100)
    hits = np.zeros(n)
    where = rng.integers(0, n, rng.poisson(rate * n / SR))
    hits[where] = rng.uniform(0.2, 1.0, len(where))
    drops = _bandpass(np.convolve(hits, _noise_burst(rng, 0.01, 0.002))[:n], 1000, 7000)
    drops *= rng.uniform(0.3, 0.6) * np.std(hiss) / (np.std(drops) + 1e-12)
    gain = _smooth_envelope(rng, n, 1.0, 0.8, 1.0)
    return gain * (hiss + drops)


def _wind(rng, n):
    # Gusts: low-passed noise under a slowly moving gain, plus a faint whistle in strong gusts.
    roar = _lowpass(colored_noise("pink", n, rng), rng.uniform(300, 900), order=4)
    gust = _smooth_envelope(rng, n, rng.uniform(0.3, 0.7), 0.2, 1.0)
    fw = rng.uniform(300, 800)
    whistle = _bandpass(rng.standard_normal(n), fw * 0.95, fw * 1.05)
    whistle *= np.std(roar) / (np.std(whistle) + 1e-12)
    return gust * roar + 0.3 * gust**3 * whistle


def _birdsong(rng, n):
    base = rng.uniform(2500, 5000)  # one bird, one voice

    def chirp():
        m = _n(rng.uniform(0.03, 0.15))
        t = _time(m)
        sweep = np.linspace(base * rng.uniform(0.8, 1.2), base * rng.uniform(0.7, 1.3), m)
        trill = rng.uniform(0, 300) * np.sin(2 * np.pi * rng.uniform(20, 60) * t)
        f = np.clip(sweep + trill, 500, 7000)
        return _harmonic(f, (1.0, 0.1)) * np.hanning(m)

    def cycle():
        clip = np.zeros(_n(2.5))
        pos = 0.0
        for _ in range(rng.integers(3, 11)):
            c = chirp()
            _add(clip, c, _n(pos))
            pos += len(c) / SR + rng.uniform(0.02, 0.1)
        return clip, pos + rng.uniform(0.3, 1.0)

    return _repeat(n, cycle, start_s=0.01)


def _dog_bark(rng, n):
    f0 = rng.uniform(200, 550)  # big dog ... small dog
    f1, f2 = rng.uniform(600, 1200), rng.uniform(1500, 2500)

    def bark():
        dur = rng.uniform(0.1, 0.25)
        m = _n(dur)
        f = np.linspace(1.2, 0.8, m) * f0 * rng.uniform(0.95, 1.05)
        rough = 0.5 * _lowpass(rng.standard_normal(m), 3000)  # barks are half voice, half noise
        source = _harmonic(f, [1.0 / k for k in range(1, 16)]) + rough
        formants = 2.0 * _bandpass(source, f1 * 0.8, f1 * 1.2) + _bandpass(source, f2 * 0.85, f2 * 1.15)
        shaped = source + formants
        env = np.minimum(1.0, _time(m) / 0.01) * np.exp(-_time(m) / (dur / 3))
        return _fade(shaped * env, 0.005)

    def cycle():
        clip = np.zeros(_n(2.0))
        pos = 0.0
        for _ in range(rng.integers(1, 5)):
            b = bark()
            _add(clip, b, _n(pos))
            pos += len(b) / SR + rng.uniform(0.15, 0.4)
        return clip, pos + rng.uniform(0.5, 1.5)

    return _repeat(n, cycle, start_s=0.01)


def _footsteps(rng, n):
    period = rng.uniform(0.45, 0.65)
    f = rng.uniform(60, 120)
    surface = rng.uniform(800, 3000)  # carpet is dull, wood and tiles are bright
    feet = itertools.cycle((1.0, 0.8))  # left and right feet land differently

    def step():
        thud = _struck([f], [1.0], [0.04], 0.2, attack=0.002)
        _add(thud, 0.6 * _lowpass(_noise_burst(rng, 0.06, 0.015), surface), 0)  # shoe scuff
        return next(feet) * thud, period * rng.uniform(0.95, 1.05)

    return _repeat(n, step, start_s=0.01)


# Church-bell partials relative to the prime: hum, prime, tierce, quint, nominal, ...
_BELL_RATIOS = (0.5, 1.0, 1.183, 1.506, 2.0, 2.514, 2.662, 3.011, 4.166)
_BELL_AMPS = (0.6, 0.8, 0.7, 0.3, 1.0, 0.3, 0.3, 0.2, 0.1)


def _bell(rng, n):
    prime = rng.uniform(250, 700)
    ratios = [r * rng.uniform(0.99, 1.01) for r in _BELL_RATIOS]
    tau = rng.uniform(1.5, 3.0)  # the hum rings longest, higher partials die away faster
    taus = [tau / (2 * r) ** 0.7 for r in ratios]
    ring = _struck([prime * r for r in ratios], _BELL_AMPS, taus, min(4 * tau, 8.0))
    return _repeat(n, lambda: (rng.uniform(0.7, 1.0) * ring, rng.uniform(1.0, 2.5)), start_s=0.01)


def _music(rng, n):
    return synth_music(
        rng,
        str(rng.choice(MUSIC_TEMPOS)),
        str(rng.choice(MUSIC_DIRECTIONS)),
        str(rng.choice(MUSIC_TIMBRES)),
        duration_s=n / SR,
    )


# name -> (synthesizer(rng, n_samples), default duration range in seconds)
_SYNTHS: dict[str, tuple[Callable, tuple[float, float]]] = {
    "smoke_alarm": (_smoke_alarm, (2.5, 4.0)),
    "co_alarm": (_co_alarm, (1.5, 4.0)),
    "siren": (_siren, (2.5, 4.0)),
    "glass_break": (_glass_break, (1.0, 2.5)),
    "crash": (_crash, (1.5, 3.0)),
    "coughing_fit": (_coughing_fit, (2.0, 4.0)),
    "baby_cry": (_baby_cry, (2.0, 4.0)),
    "kettle_whistle": (_kettle_whistle, (2.0, 4.0)),
    "oven_beep": (_oven_beep, (1.5, 3.5)),
    "phone_ring": (_phone_ring, (2.0, 4.0)),
    "car_horn": (_car_horn, (1.0, 3.0)),
    "doorbell": (_doorbell, (1.5, 3.0)),
    "clock_tick": (_clock_tick, (2.0, 4.0)),
    "notification_chime": (_notification_chime, (1.0, 2.0)),
    "door_knock": (_door_knock, (1.0, 2.5)),
    "dish_clink": (_dish_clink, (1.0, 2.5)),
    "single_cough": (_single_cough, (1.0, 1.5)),
    "fan_hum": (_fan_hum, (2.0, 4.0)),
    "typing": (_typing, (2.0, 4.0)),
    "water_drip": (_water_drip, (2.0, 4.0)),
    "rain": (_rain, (2.0, 4.0)),
    "wind": (_wind, (2.0, 4.0)),
    "birdsong": (_birdsong, (2.0, 4.0)),
    "dog_bark": (_dog_bark, (1.0, 3.0)),
    "footsteps": (_footsteps, (2.0, 4.0)),
    "bell": (_bell, (2.0, 4.0)),
    "music": (_music, (2.0, 4.0)),
}
assert _SYNTHS.keys() == EVENT_TYPES.keys()


# ---------------------------------------------------------------------------------------------
# public API


def _check_rng(rng) -> None:
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"rng must be a numpy.random.Generator, got {type(rng).__name__}")


def _check_duration(duration_s: float) -> int:
    if not np.isfinite(duration_s) or duration_s < _MIN_DURATION_S:
        raise ValueError(f"duration_s must be at least {_MIN_DURATION_S} s, got {duration_s!r}")
    return _n(duration_s)


def _finish(audio: np.ndarray) -> np.ndarray:
    """Fade the edges and peak-normalise to -3 dBFS as float32."""
    audio = _fade(np.asarray(audio, dtype=np.float64).copy())
    peak = float(np.max(np.abs(audio)))
    if peak > 0:
        audio *= _PEAK / peak
    return audio.astype(np.float32)


def _known_event(name: str) -> EventType:
    if name not in EVENT_TYPES:
        raise KeyError(f"unknown event type {name!r}; known: {', '.join(sorted(EVENT_TYPES))}")
    return EVENT_TYPES[name]


def synth_event(name: str, rng: np.random.Generator, duration_s: float | None = None) -> np.ndarray:
    """Synthesize one `name` event. Sustained types fill `duration_s`; pattern types repeat;
    one-shot types (glass_break, crash, single_cough, notification_chime) end in silence."""
    _known_event(name)
    _check_rng(rng)
    synth, (lo, hi) = _SYNTHS[name]
    n = _n(rng.uniform(lo, hi)) if duration_s is None else _check_duration(duration_s)
    return _finish(synth(rng, n))


def _check_choice(arg: str, value, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ValueError(f"{arg} must be one of {', '.join(allowed)}; got {value!r}")


def _melody_degrees(rng, direction: str, count: int) -> np.ndarray:
    """Scale degrees of `count` notes: monotone runs of 1-2 steps, or wandering around one note."""
    if direction == "steady":
        return 7 + rng.choice((-1, 0, 0, 1), count)
    steps = rng.choice((1, 2), count - 1, p=(0.7, 0.3))
    rising = np.concatenate(([0], np.cumsum(steps))) % (_MAX_MELODY_SPAN + 1)
    return rising if direction == "rising" else rising[::-1]


def _karplus_strong(f: float, m: int, rng) -> np.ndarray:
    """Plucked string: a noise burst circulating in a delay line with a damping average."""
    p = max(2, int(round(SR / f - 0.5)))  # the two-point average adds half a sample of delay
    y = np.zeros(max(m, p + 1))
    # Excitation: one period of the fundamental plus noise for the pluck's bite; pure noise would
    # often leave an overtone louder than the note itself.
    burst = np.sin(2 * np.pi * np.arange(p + 1) / p) + 0.5 * rng.uniform(-1, 1, p + 1)
    y[: p + 1] = burst - burst.mean()  # the loop keeps DC forever, so start without any
    pos = p + 1
    while pos < len(y):  # block-wise: each block only reads samples at least p back
        end = min(pos + p, len(y))
        y[pos:end] = 0.498 * (y[pos - p : end - p] + y[pos - p - 1 : end - p - 1])
        pos = end
    return y[:m]


def _note(timbre: str, f: float, seconds: float, rng) -> np.ndarray:
    m = _n(seconds)
    if timbre == "plucked":
        return _fade(_karplus_strong(f, m, rng), 0.01)
    amps = {
        "sine": (1.0,),
        "square": _square_amps(15),
        "sawtooth": _saw_amps(20),
        "organ": (1.0, 0.5, 0.3, 0.2, 0.0, 0.1, 0.0, 0.08),  # drawbar-like sine harmonics
    }[timbre]
    tone = _harmonic(f, amps, m)
    attack = 0.03 if timbre == "organ" else 0.01
    env = np.minimum(1.0, _time(m) / attack) * np.minimum(1.0, (m - np.arange(m)) / _n(0.04))
    return tone * env


def synth_music(
    rng: np.random.Generator, tempo: str, direction: str, timbre: str, duration_s: float = 4.0
) -> np.ndarray:
    """A melody in a major scale, one note per beat, with the given tempo, pitch trend and timbre."""
    _check_choice("tempo", tempo, MUSIC_TEMPOS)
    _check_choice("direction", direction, MUSIC_DIRECTIONS)
    _check_choice("timbre", timbre, MUSIC_TIMBRES)
    _check_rng(rng)
    n = _check_duration(duration_s)
    beat = 60.0 / (_BPM[tempo] * rng.uniform(0.95, 1.05))
    degrees = _melody_degrees(rng, direction, int(np.ceil(n / SR / beat)))
    root = int(rng.integers(55, 63))  # G3 .. D4
    out = np.zeros(n)
    for i, d in enumerate(degrees):
        midi = root + 12 * (d // 7) + _MAJOR_SCALE[d % 7]
        f = 440.0 * 2 ** ((midi - 69) / 12)
        _add(out, _note(timbre, f, 0.85 * beat, rng), _n(i * beat))  # gap so each onset is clear
    return _finish(out)


def colored_noise(color: str, n: int, rng: np.random.Generator) -> np.ndarray:
    """White, pink (-3 dB/octave) or brown (-6 dB/octave) noise with unit RMS.

    Shaped in the frequency domain; content below 20 Hz is removed because it is inaudible and
    would otherwise dominate brown noise.
    """
    _check_choice("color", color, tuple(_NOISE_EXPONENTS))
    _check_rng(rng)
    if int(n) != n or n < 2:
        raise ValueError(f"n must be an integer of at least 2 samples, got {n!r}")
    n = int(n)
    freqs = np.fft.rfftfreq(n, 1 / SR)
    spectrum = rng.standard_normal(len(freqs)) + 1j * rng.standard_normal(len(freqs))
    gain = np.zeros(len(freqs))
    audible = freqs >= 20.0
    gain[audible] = freqs[audible] ** (-_NOISE_EXPONENTS[color] / 2)
    noise = np.fft.irfft(spectrum * gain, n)
    rms = np.sqrt(np.mean(noise**2))
    if rms == 0:  # too short to hold any frequency above 20 Hz
        raise ValueError(f"n={n} is too short for {color} noise")
    return (noise / rms).astype(np.float32)


def freedesktop_clips() -> dict[str, list[Path]]:
    """Event name -> real recordings from Debian's sound-theme-freedesktop that fit it."""
    if not FREEDESKTOP_DIR.is_dir():
        raise FileNotFoundError(
            f"{FREEDESKTOP_DIR} missing: sound-theme-freedesktop is not installed: "
            "apt-get install sound-theme-freedesktop"
        )
    clips = {}
    for name, stems in _FREEDESKTOP_FILES.items():
        paths = [FREEDESKTOP_DIR / f"{stem}.oga" for stem in stems]
        paths = [p for p in paths if p.is_file()]
        if paths:
            clips[name] = paths
    return clips


def _pick_freedesktop(name: str, rng) -> Path:
    clips = freedesktop_clips()
    if name not in clips:
        raise KeyError(f"no freedesktop recording for {name!r}; available: {', '.join(sorted(clips))}")
    return clips[name][int(rng.integers(len(clips[name])))]


def load_freedesktop(name: str, rng: np.random.Generator) -> np.ndarray:
    """One real recording for event `name`, 16 kHz mono float32, peak-normalised like the synths."""
    _check_rng(rng)
    return _finish(read_audio(_pick_freedesktop(name, rng), SR))


def event_clip(name: str, rng: np.random.Generator, p_real: float = 0.3) -> tuple[np.ndarray, str]:
    """Audio for one `name` event and its source: "procedural" or "freedesktop:<file>".

    A real recording is used with probability p_real when one exists for the event.
    """
    _known_event(name)
    _check_rng(rng)
    if not 0.0 <= p_real <= 1.0:
        raise ValueError(f"p_real must be in [0, 1], got {p_real!r}")
    if name in _FREEDESKTOP_FILES and rng.random() < p_real:
        path = _pick_freedesktop(name, rng)
        return _finish(read_audio(path, SR)), f"freedesktop:{path.name}"
    return synth_event(name, rng), "procedural"
