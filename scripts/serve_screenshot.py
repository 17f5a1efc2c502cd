"""Drive `soundflow serve`'s page in headless Chromium with a WAV as the microphone; screenshot the result.

    python scripts/serve_screenshot.py --bundle data/export/soundflow-tiny --wav clip.wav \
        --out reports/figures/serve.png

Starts the server on a free loopback port, opens the page in the system's Chromium (Debian `chromium`,
driven by Playwright; no browser download) with Chromium's fake capture flags feeding the WAV once
(16-bit PCM), presses Start, waits until the timeline holds every chunk of the file, presses Stop, and
prints what the page shows as JSON. The end-to-end test (tests/test_serve.py) uses `served` and `listen_page`.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import soundfile as sf


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def served(bundle: Path, *extra: str, timeout_s: float = 60.0):
    """`soundflow serve` in a subprocess on a free loopback port; yields its URL."""
    port = free_port()
    log = tempfile.TemporaryFile(mode="w+")  # a file, not a pipe: a long run's output never blocks the server
    proc = subprocess.Popen([sys.executable, "-m", "soundflow.cli", "serve", "--bundle", str(bundle),
                             "--port", str(port), *extra], stdout=log, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + timeout_s
        while True:  # up when the port takes connections
            if proc.poll() is not None:
                log.seek(0)
                raise RuntimeError(f"soundflow serve exited ({proc.returncode}):\n{log.read()[-3000:]}")
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.2):
                break
            if time.monotonic() > deadline:
                raise TimeoutError(f"soundflow serve did not listen on port {port} within {timeout_s:g} s")
            time.sleep(0.1)
        yield f"http://127.0.0.1:{port}/"
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        log.close()


def chromium_path() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


def listen_page(url: str, wav: Path, screenshot: Path | None = None, instruction: str = "", lang: str = "en",
                timeout_s: float = 60.0) -> dict:
    """Play `wav` (16-bit PCM) once as the microphone into the page; returns what the page shows."""
    from playwright.sync_api import sync_playwright

    info = sf.info(str(wav))
    if info.subtype != "PCM_16":
        raise ValueError(f"{wav}: Chromium's fake microphone reads 16-bit PCM WAV, this is {info.subtype}")
    chunks = math.ceil(info.duration / 0.4)
    flags = ["--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
             f"--use-file-for-fake-audio-capture={Path(wav).resolve()}%noloop",
             "--autoplay-policy=no-user-gesture-required"]
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium_path(), headless=True, args=flags)
        try:
            page = browser.new_page(viewport={"width": 1100, "height": 900})
            page.goto(url)
            page.fill("#instruction", instruction)
            page.select_option("#lang", lang)
            page.click("#start")
            page.wait_for_function("document.getElementById('status').textContent !== 'connecting'",
                                   timeout=timeout_s * 1000)
            # every chunk of the file decided (a little silence follows it: the fake device goes on)
            page.wait_for_function(f"document.querySelectorAll('#timeline .chunk').length >= {chunks} || "
                                   "document.getElementById('status').className === 'error'",
                                   timeout=(timeout_s + info.duration) * 1000)
            page.click("#stop")
            page.wait_for_function("!['listening', 'finishing'].includes(document.getElementById('status').textContent)",
                                   timeout=timeout_s * 1000)
            shown = page.evaluate("""() => ({
                status: document.getElementById('status').textContent,
                actions: [...document.querySelectorAll('#timeline .chunk')].map(b => b.dataset.action),
                replies: [...document.querySelectorAll('#replies li')].map(li => ({
                    text: li.querySelector('.text').textContent,
                    emotion: li.querySelector('.emo') ? li.querySelector('.emo').textContent : ''})),
                transcript: document.getElementById('transcript').textContent,
                stats: document.getElementById('stats').textContent})""")
            if screenshot:
                Path(screenshot).parent.mkdir(parents=True, exist_ok=True)
                page.screenshot(path=str(screenshot), full_page=True)
            return shown
        finally:
            browser.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bundle", type=Path, default=Path("data/export/soundflow-tiny"))
    parser.add_argument("--wav", type=Path, required=True, help="16-bit PCM WAV played as the microphone")
    parser.add_argument("--out", type=Path, default=Path("reports/figures/serve.png"))
    parser.add_argument("--instruction", default="")
    parser.add_argument("--lang", default="en", choices=("en", "zh"))
    args = parser.parse_args()
    if chromium_path() is None:
        print("serve_screenshot: error: no chromium on PATH (Debian package `chromium`, envs/apt.txt)", file=sys.stderr)
        return 2
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    with served(args.bundle) as url:
        shown = listen_page(url, args.wav, args.out, args.instruction, args.lang)
    print(json.dumps(shown, indent=1, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
