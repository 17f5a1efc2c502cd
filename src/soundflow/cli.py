"""`soundflow` command line: `listen` (the always-on listener on audio files), `serve` (the same listener live,
from a browser's microphone) and `export` (the bundle)."""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from soundflow.audio import AudioError, atomic_path

DEFAULT_BUNDLE = Path("data/export/soundflow-tiny")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="soundflow", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    listen = sub.add_parser("listen", help="run the streaming model over audio files and print its timeline")
    listen.add_argument("audio", nargs="+", type=Path, help="wav, flac, ogg or mp3; any rate, any channels")
    listen.add_argument("--bundle", type=Path, default=DEFAULT_BUNDLE, help=f"exported bundle (default {DEFAULT_BUNDLE})")
    listen.add_argument("--scheduler", choices=("sync", "fifo"), default="fifo")
    listen.add_argument("--realtime", action="store_true", help="feed audio at wall-clock rate, as a microphone would")
    listen.add_argument("--instruction", help="the session's instruction (default: the bundle's)")
    listen.add_argument("--lang", choices=("en", "zh"), help="language tag (default: the bundle's)")
    listen.add_argument("--jsonl", type=Path, help="also write every event (all chunks) as JSON lines here")
    listen.add_argument("--all", action="store_true", help="print silent chunks too")
    listen.add_argument("--threads", type=int, default=1, help="torch threads (1 is fastest for one stream here)")
    serve = sub.add_parser("serve", help="listen live: a web page and a WebSocket per microphone session")
    serve.add_argument("--bundle", type=Path, default=DEFAULT_BUNDLE, help=f"exported bundle (default {DEFAULT_BUNDLE})")
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (browsers allow the microphone on "
                       "localhost or over https)")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--max-sessions", type=int, default=8, help="concurrent sessions; more are refused")
    serve.add_argument("--max-backlog", type=float, default=4.0,
                       help="seconds of audio queued ahead of the model before a session is cut as a flood")
    serve.add_argument("--threads", type=int, default=1, help="torch threads per session worker")
    export = sub.add_parser("export", help="write the self-contained bundle and register it in MLflow")
    export.add_argument("--model", type=Path, required=True, help="trained model folder (save_pretrained)")
    export.add_argument("--out", type=Path, required=True, help="bundle folder, e.g. data/export/soundflow-tiny")
    export.add_argument("--cfg", required=True, help="JSON: {runtime: params.yaml runtime, max_context_chunks: int}")
    export.add_argument("--no-registry", action="store_true", help="skip the MLflow model registry")
    args = parser.parse_args(argv)
    try:
        return {"listen": listen_cmd, "serve": serve_cmd, "export": export_cmd}[args.command](args)
    except (AudioError, FileNotFoundError, ValueError) as err:
        print(f"soundflow {args.command}: error: {err}", file=sys.stderr)
        return 2


def listen_cmd(args) -> int:
    import torch
    from transformers.utils import logging as transformers_logging

    from soundflow import layout
    from soundflow.audio import read_audio
    from soundflow.runtime import load_bundle, run_stream

    torch.set_num_threads(args.threads)
    transformers_logging.disable_progress_bar()
    # read (and so check) every file before loading the model and listening to any
    streams = [(path, read_audio(path, sr=layout.SAMPLE_RATE)) for path in args.audio]
    bundle = load_bundle(args.bundle)
    records = []
    for path, audio in streams:
        print(f"== {path} ({audio.size / bundle.settings.sample_rate:.1f} s, {args.scheduler})", flush=True)
        events = run_stream(bundle, audio, args.instruction, args.lang, args.scheduler, args.realtime,
                            on_event=lambda e: _show(e, args.all))
        records += [json.dumps({"file": str(path), **e.public()}, ensure_ascii=False) for e in events]
    if args.jsonl:  # written whole at the end: an interrupted run leaves no partial file
        tmp = atomic_path(args.jsonl)
        tmp.write_text("".join(line + "\n" for line in records))
        os.replace(tmp, args.jsonl)
    return 0


def _show(event, show_silent: bool) -> None:
    if event.action == "respond":
        print(f"{event.time_s:8.1f}s  respond  [{event.emotion}] {event.text}", flush=True)
    elif show_silent:
        print(f"{event.time_s:8.1f}s  silent", flush=True)


def serve_cmd(args) -> int:
    from transformers.utils import logging as transformers_logging

    from soundflow.runtime.serve import Limits, serve

    transformers_logging.disable_progress_bar()
    serve(args.bundle, args.host, args.port, Limits(args.max_backlog, args.max_sessions), args.threads)
    return 0


def export_cmd(args) -> int:
    from soundflow import tracking
    from soundflow.runtime.bundle import export_bundle

    cfg = json.loads(args.cfg)
    rt = cfg["runtime"]
    with tracking.stage_run("export", cfg) as run:
        out = export_bundle(args.model, args.out, max_context_chunks=cfg["max_context_chunks"],
                            keep_context_chunks=rt["keep_context_chunks"], max_reply_tokens=rt["max_reply_tokens"],
                            default_instruction=rt["default_instruction"], default_lang=rt["default_lang"])
        run.log_artifact(out / "streaming.json")
        if not args.no_registry:
            from soundflow.runtime.registry import register_bundle

            name = f"soundflow-{tracking.profile_name()}"
            version = register_bundle(out, name, rt["registry_alias"], run.run_id)
            run.set_tags({"registered_model": f"{name}@{rt['registry_alias']}", "registered_version": version})
            print(f"registered {name} version {version} as @{rt['registry_alias']}", file=sys.stderr)
    print(f"bundle written: {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
