"""Load test of `soundflow serve`: N concurrent WebSocket sessions on loopback, each fed in real time.

    python scripts/serve_load.py --bundle data/export/soundflow-tiny --sessions 1 2 4 6 --seconds 15 \
        --out reports/metrics/serve_load.json

For each N, one server (a subprocess, as a user starts it) takes N sessions at once; each sends a test-split
WAV (or noise bursts, without --wav) in 100 ms frames on the sample clock, as the page does, then stops.
Per session it records:
- decision latency: server-side, from the chunk's last sample arriving to its decision (mean, p95, max);
- client latency: from sending a chunk's last frame to receiving its decision (what a user sees);
- rtf: (time of the last decision - time of the first frame) / audio seconds: ~1 when the session keeps up;
- drained: chunks the FIFO scheduler flushed with an implied <silent> because the decoder was behind.
N is held at real time when every session got every decision, none was cut, nothing was drained, and every
session's p95 client latency is under one chunk (400 ms): decisions keep pace with the audio.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from serve_screenshot import served  # noqa: E402

CHUNK_S, FRAME = 0.4, 1600


async def session(url: str, audio: np.ndarray, instruction: str) -> dict:
    import websockets

    n_chunks = -(-audio.size // int(16000 * CHUNK_S))
    sent_at, got, error = {}, [], None
    async with websockets.connect(url, max_size=2**20) as ws:
        await ws.send(json.dumps({"type": "start", "instruction": instruction, "lang": "en", "sample_rate": 16000}))
        assert json.loads(await ws.recv())["type"] == "ready"

        async def receive():
            nonlocal error
            try:
                async for raw in ws:
                    m = json.loads(raw)
                    if m["type"] == "decision":
                        now = time.perf_counter()
                        got.append({**m, "at": now, "client_ms": 1000 * (now - sent_at.get(m["chunk"], now))})
                    elif m["type"] == "error":
                        error = m["message"]
            except websockets.ConnectionClosed as closed:  # cut by the server (flood, full): a result, not a crash
                error = error or f"closed {closed.rcvd.code if closed.rcvd else ''}: {closed}"

        reader = asyncio.create_task(receive())
        start = time.perf_counter()
        try:
            for begin in range(0, audio.size, FRAME):
                await asyncio.sleep(max(0.0, start + (begin + FRAME) / 16000 - time.perf_counter()))  # sample clock
                await ws.send(audio[begin:begin + FRAME].astype("<f4").tobytes())
                end = begin + FRAME
                if end % int(16000 * CHUNK_S) == 0 or end >= audio.size:
                    sent_at[(end - 1) // int(16000 * CHUNK_S)] = time.perf_counter()
            await ws.send(json.dumps({"type": "stop"}))
        except websockets.ConnectionClosed:
            pass  # the server ended this session: the reader records why
        await reader
    last = max((g["at"] for g in got), default=None)
    lat = np.array([g["latency_ms"] for g in got] or [np.nan])
    client = np.array([g["client_ms"] for g in got] or [np.nan])
    audio_s = audio.size / 16000
    return {"chunks": n_chunks, "decided": len(got), "error": error, "audio_s": round(audio_s, 2),
            "rtf": round((last - start) / audio_s, 3) if last else None,
            "latency_ms": {"mean": round(float(lat.mean()), 1), "p95": round(float(np.percentile(lat, 95)), 1),
                           "max": round(float(lat.max()), 1)},
            "client_latency_ms": {"mean": round(float(client.mean()), 1),
                                  "p95": round(float(np.percentile(client, 95)), 1)},
            "drained": sum(g["drained"] for g in got), "replies": sum(g["action"] == "respond" for g in got)}


async def run_load(url: str, streams: list[tuple[np.ndarray, str]]) -> list[dict]:
    ws_url = url.replace("http://", "ws://") + "listen"
    return await asyncio.gather(*(session(ws_url, audio, instruction) for audio, instruction in streams))


def held(sessions: list[dict]) -> bool:
    return all(s["error"] is None and s["decided"] == s["chunks"] and s["drained"] == 0
               and s["client_latency_ms"]["p95"] < 1000 * CHUNK_S for s in sessions)


def test_streams(corpus: Path | None, seconds: float, n: int) -> list[tuple[np.ndarray, str, str]]:
    """n streams of `seconds`: online test-split items of different sub-tasks (with their instruction), or noise."""
    if corpus is None:
        rng = np.random.default_rng(0)
        levels = np.repeat(rng.choice([0.003, 0.2], size=int(seconds / CHUNK_S)), int(16000 * CHUNK_S))
        return [((rng.normal(0, 1, levels.size) * levels).astype(np.float32), "", "noise bursts")] * n
    import polars as pl

    from soundflow.audio import read_audio

    items = (pl.read_parquet(corpus / "test.parquet").filter(pl.col("mode") == "online")
             .filter(pl.col("duration_s") >= seconds).unique("sub_task", keep="first").sort("sub_task"))
    rows = items.rows(named=True)
    out = []
    for i in range(n):
        row = rows[i % len(rows)]
        audio = read_audio(corpus / row["audio"])[: int(seconds * 16000)]
        out.append((audio, row["instruction"], row["audio"]))
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bundle", type=Path, default=Path("data/export/soundflow-tiny"))
    parser.add_argument("--corpus", type=Path, default=Path("data/corpus"), help="corpus whose test split is streamed")
    parser.add_argument("--noise", action="store_true", help="stream noise bursts instead of the test split")
    parser.add_argument("--sessions", type=int, nargs="+", default=[1, 2, 4, 6])
    parser.add_argument("--seconds", type=float, default=15.0, help="audio per session")
    parser.add_argument("--out", type=Path, help="JSON report (written whole at the end)")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    corpus = None if args.noise else args.corpus
    if corpus is not None and not (corpus / "test.parquet").is_file():
        print(f"serve_load: error: no test split at {corpus / 'test.parquet'} (or pass --noise)", file=sys.stderr)
        return 2
    report = {"bundle": str(args.bundle), "seconds_per_session": args.seconds, "cpus": os.cpu_count(),
              "frame_ms": 100, "criterion": "every decision, none cut, none drained, p95 client latency < 400 ms",
              "runs": []}
    with served(args.bundle, "--max-sessions", str(max(args.sessions))) as url:
        for n in args.sessions:
            streams = test_streams(corpus, args.seconds, n)
            t0 = time.perf_counter()
            sessions = asyncio.run(run_load(url, [(a, i) for a, i, _ in streams]))
            for s, (_, _, name) in zip(sessions, streams):
                s["stream"] = name
            run = {"sessions": n, "held_real_time": held(sessions), "wall_s": round(time.perf_counter() - t0, 1),
                   "worst_rtf": max(s["rtf"] or float("inf") for s in sessions),
                   "worst_p95_latency_ms": max(s["latency_ms"]["p95"] for s in sessions),
                   "worst_p95_client_latency_ms": max(s["client_latency_ms"]["p95"] for s in sessions),
                   "per_session": sessions}
            report["runs"].append(run)
            print(f"N={n}: held={run['held_real_time']} worst rtf {run['worst_rtf']} worst p95 decision latency "
                  f"{run['worst_p95_latency_ms']} ms, client {run['worst_p95_client_latency_ms']} ms", flush=True)
    held_ns = [r["sessions"] for r in report["runs"] if r["held_real_time"]]
    report["max_sessions_held"] = max(held_ns, default=0)
    text = json.dumps(report, indent=1, ensure_ascii=False) + "\n"
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        tmp = args.out.with_name(f".{args.out.name}.tmp")
        tmp.write_text(text)
        os.replace(tmp, args.out)
    print(f"max sessions held at real time: {report['max_sessions_held']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
