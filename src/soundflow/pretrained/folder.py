"""Writing an imported model folder, and the imports' log and error lines: shared by the Whisper tower (ct2.py),
the thinker (thinker.py) and the Qwen2.5-Omni (qwen_omni.py) imports."""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
from pathlib import Path


def log(msg: str) -> None:
    print(f"pretrained: {msg}", file=sys.stderr, flush=True)


def first_line(exc: BaseException) -> str:
    """An exception as one line (library errors can span many)."""
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0]


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 22), b""):
            digest.update(block)
    return digest.hexdigest()


def save_atomically(out_dir: Path, model, tokenizer, record: dict) -> None:
    """save_pretrained of model and tokenizer (None: a model without one, an audio tower) plus source.json (where
    the weights came from), built in a temp sibling and renamed at the end: out_dir is either the old folder or
    the complete new one."""
    tmp = out_dir.with_name(f".{out_dir.name}.tmp{os.getpid()}")
    old = out_dir.with_name(f".{out_dir.name}.old{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        model.save_pretrained(tmp)
        if tokenizer is not None:
            tokenizer.save_pretrained(tmp)
        (tmp / "source.json").write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
        for path in tmp.iterdir():  # the safetensors writer makes its file private (0600); the umask decides
            path.chmod((tmp / "source.json").stat().st_mode)
        if out_dir.exists():
            out_dir.rename(old)
        tmp.rename(out_dir)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.rmtree(old, ignore_errors=True)
