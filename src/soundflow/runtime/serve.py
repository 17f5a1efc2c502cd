"""`soundflow serve`: live listening in the browser (issue 17).

One page (web/index.html, web/capture.js) and one WebSocket per listening session at /listen:

    client -> {"type": "start", "instruction": str, "lang": "en"|"zh", "sample_rate": 16000}   (text, first)
    server -> {"type": "ready", "sample_rate": 16000, "chunk_seconds": 0.4, ...}
    client -> binary frames: mono float32 little-endian PCM at 16 kHz, 1 .. MAX_FRAME_SAMPLES samples each
    server -> {"type": "decision", "chunk", "time_s", "action", "text", "emotion", "drained",
               "latency_ms", "reply_ms"}                                                  (one per 400 ms chunk)
    client -> {"type": "stop"}  (text): the partial last chunk is padded, every decision is sent, then
    server -> {"type": "end", "chunks": n, ...} and a normal close.

Each connection gets its own StreamingSession with the FIFO scheduler (full duplex: its encoder and decoder
threads keep taking audio while a reply is written), so model compute never runs on the event loop; every
session shares the one bundle loaded at start-up and nothing else. Bad input ends that session only, with a
JSON {"type": "error", "message"} and the same message as the WebSocket close reason.
"""
from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from starlette.applications import Starlette
from starlette.responses import FileResponse
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from soundflow import layout
from soundflow.runtime.bundle import Bundle
from soundflow.runtime.session import Event, StreamingSession

WEB = Path(__file__).with_name("web")
MAX_FRAME_SAMPLES = 16000  # one frame holds at most 1 s of audio (the page sends 100 ms)
MAX_INSTRUCTION_CHARS = 500
START_TIMEOUT_S = 30.0  # a connection that sends no start message in this time is closed
POLL_S = 0.01  # how often a session's finished decisions are collected while no audio comes in

# WebSocket close codes (RFC 6455)
UNSUPPORTED, INVALID, POLICY, INTERNAL, TRY_LATER = 1003, 1007, 1008, 1011, 1013


class SessionError(Exception):
    """Ends one session: `message` goes to the client as a JSON error and as the close reason."""

    def __init__(self, message: str, code: int):
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class Limits:
    max_backlog_s: float = 4.0  # audio received but not yet decided; more than this = a flood, the session is cut
    max_sessions: int = 8  # concurrent listening sessions; more are refused (try again later)

    def __post_init__(self):
        if not self.max_backlog_s >= 2 * layout.CHUNK_SECONDS:  # room for the chunk being decided and the next
            raise ValueError(f"max backlog must be at least {2 * layout.CHUNK_SECONDS:g} s, got {self.max_backlog_s}")
        if self.max_sessions < 1:
            raise ValueError(f"max sessions must be at least 1, got {self.max_sessions}")


def create_app(bundle: Bundle, limits: Limits = Limits()) -> Starlette:
    """The ASGI app around one loaded bundle."""
    active: set[int] = set()

    async def page(request):
        return FileResponse(WEB / "index.html")

    async def worklet(request):
        return FileResponse(WEB / "capture.js", media_type="text/javascript")

    async def listen(ws: WebSocket):
        await ws.accept()
        if len(active) >= limits.max_sessions:
            await _fail(ws, SessionError(f"server full: {limits.max_sessions} sessions are listening, "
                                         "try again later", TRY_LATER))
            return
        active.add(id(ws))
        try:
            await Listener(ws, bundle, limits).run()
        finally:
            active.discard(id(ws))

    return Starlette(routes=[Route("/", page), Route("/capture.js", worklet), WebSocketRoute("/listen", listen)])


class Listener:
    """One WebSocket connection: checks the client's messages, feeds its StreamingSession, sends decisions."""

    def __init__(self, ws: WebSocket, bundle: Bundle, limits: Limits):
        self.ws, self.bundle, self.limits = ws, bundle, limits
        self.settings = bundle.settings
        self.session: StreamingSession | None = None
        self.sent = 0  # decisions sent
        self.samples = 0  # samples received

    async def run(self) -> None:
        try:
            start = await self._receive(timeout=START_TIMEOUT_S)
            if start is None:
                raise SessionError(f"no start message within {START_TIMEOUT_S:g} s", POLICY)
            await self._start(start)
            await self._listen()
        except SessionError as err:
            await _fail(self.ws, err)
        except WebSocketDisconnect:
            pass  # the client went away: nothing to tell it
        except Exception as err:  # a worker failure: this session ends, the server goes on
            await _fail(self.ws, SessionError(f"server error: {err}", INTERNAL))
        finally:
            if self.session is not None and not self.session.closed:
                await asyncio.to_thread(self.session.close)  # joins its worker threads off the loop

    async def _receive(self, timeout: float | None = None) -> dict | None:
        """The next message, or None when none came within `timeout`."""
        try:
            message = await asyncio.wait_for(self.ws.receive(), timeout)
        except TimeoutError:
            return None
        if message["type"] == "websocket.disconnect":
            raise WebSocketDisconnect(message.get("code", 1000))
        return message

    async def _start(self, message: dict) -> None:
        if message.get("text") is None:
            raise SessionError("expected a JSON start message first, got a binary frame", UNSUPPORTED)
        start = _json(message["text"])
        if start.get("type") != "start":
            raise SessionError(f"expected a start message first, got type {start.get('type')!r}", UNSUPPORTED)
        rate = start.get("sample_rate")
        if rate != self.settings.sample_rate:
            raise SessionError(f"wrong sample rate: the model listens at {self.settings.sample_rate} Hz mono, "
                               f"the client declared {rate!r}", INVALID)
        lang = start.get("lang") or self.settings.default_lang
        if lang not in layout.LANGS:
            raise SessionError(f"unknown language {lang!r} (known: {', '.join(layout.LANGS)})", INVALID)
        instruction = start.get("instruction") or self.settings.default_instruction
        if not isinstance(instruction, str) or len(instruction) > MAX_INSTRUCTION_CHARS:
            raise SessionError(f"the instruction must be a string of at most {MAX_INSTRUCTION_CHARS} characters",
                               INVALID)
        # building a session runs the model on the prefix: off the event loop
        self.session = await asyncio.to_thread(StreamingSession, self.bundle, instruction, lang, "fifo")
        self.started = time.perf_counter()
        await self.ws.send_json({"type": "ready", "sample_rate": self.settings.sample_rate,
                                 "chunk_seconds": self.settings.chunk_seconds, "instruction": instruction,
                                 "lang": lang, "max_frame_samples": MAX_FRAME_SAMPLES,
                                 "max_backlog_s": self.limits.max_backlog_s})

    async def _listen(self) -> None:
        while True:
            message = await self._receive(timeout=POLL_S)
            if message is None:  # no audio: collect what the workers decided meanwhile
                await self._send(self.session.feed(np.zeros(0, np.float32)))
                continue
            if message.get("text") is not None:
                control = _json(message["text"])
                if control.get("type") != "stop":
                    raise SessionError(f"expected binary audio frames or a stop message, got type "
                                       f"{control.get('type')!r}", UNSUPPORTED)
                await self._send(await asyncio.to_thread(self.session.close))
                await self.ws.send_json({"type": "end", "chunks": self.sent,
                                         "audio_s": round(self.samples / self.settings.sample_rate, 3),
                                         "wall_s": round(time.perf_counter() - self.started, 3)})
                await self.ws.close(1000, "stopped")
                return
            pcm = self._pcm(message.get("bytes"))
            self.samples += pcm.size
            await self._send(self.session.feed(pcm))  # FIFO: queues the chunk for the workers, returns at once
            backlog = (self.session.chunks_fed - self.sent) * self.settings.chunk_seconds
            if backlog > self.limits.max_backlog_s:
                raise SessionError(f"audio arrives faster than the model decides: {backlog:.1f} s queued "
                                   f"(limit {self.limits.max_backlog_s:g} s); send audio in real time", POLICY)

    def _pcm(self, data: bytes | None) -> np.ndarray:
        if not data:
            raise SessionError("empty audio frame", INVALID)
        if len(data) % 4:
            raise SessionError(f"audio frame of {len(data)} bytes: frames are float32 samples (a multiple "
                               "of 4 bytes)", INVALID)
        if len(data) > 4 * MAX_FRAME_SAMPLES:
            raise SessionError(f"audio frame of {len(data) // 4} samples: at most {MAX_FRAME_SAMPLES} per frame",
                               INVALID)
        pcm = np.frombuffer(data, dtype="<f4")
        if not np.isfinite(pcm).all():
            raise SessionError(f"audio frame with NaN or infinite samples (after {self.samples} good samples)",
                               INVALID)
        return pcm.astype(np.float32)

    async def _send(self, events: list[Event]) -> None:
        for e in sorted(events, key=lambda e: e.chunk):
            await self.ws.send_json({"type": "decision", **e.public(),
                                     "latency_ms": round(1000 * (e.decided - e.arrived), 1),
                                     "reply_ms": round(1000 * (e.finished - e.arrived), 1)})
        self.sent += len(events)


def _json(text: str) -> dict:
    try:
        value = json.loads(text)
    except json.JSONDecodeError:
        value = None
    if not isinstance(value, dict):
        raise SessionError(f"expected binary audio or a JSON object, got text {text[:40]!r}", UNSUPPORTED)
    return value


async def _fail(ws: WebSocket, err: SessionError) -> None:
    """Tell the client why its session ends, then close with the same reason (cut to the 123-byte limit)."""
    message = str(err)
    try:
        await ws.send_json({"type": "error", "message": message})
        await ws.close(err.code, message.encode()[:123].decode(errors="ignore"))
    except (WebSocketDisconnect, RuntimeError):
        pass  # already gone


def serve(bundle_path: Path, host: str = "127.0.0.1", port: int = 8000, limits: Limits = Limits(),
          threads: int = 1) -> None:
    """Load the bundle once and serve until interrupted."""
    import torch
    import uvicorn

    from soundflow.runtime.bundle import load_bundle

    torch.set_num_threads(threads)  # per worker thread; sessions run side by side
    bundle = load_bundle(bundle_path)
    print(f"soundflow serve: {bundle_path} loaded; open http://{host}:{port}/", flush=True)
    uvicorn.run(create_app(bundle, limits), host=host, port=port, ws="websockets", log_level="warning")
