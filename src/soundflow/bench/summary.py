"""reports/summary.md: one table per benchmark, our model beside its baselines and peers and the paper's
numbers, read from reports/metrics/*.json (the same files DVC and MLflow show); plus the proactive plot.

python -m soundflow.bench.summary --metrics reports/metrics --out reports/summary.md --figures reports/figures \
                                  [--reference reports/reference] [--reference-name "reference run"]
With --reference (a frozen copy of an earlier run's metrics, or another profile's metrics: the small profile's
summary sets the tiny run beside it), each table gets a column of those numbers beside our first one, so a
change is read against the run before it.
"""
from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

from soundflow.audio import atomic_path, save_figure
from soundflow.bench.gate import lookup

PAPER_NOTE = ("Paper numbers (arXiv 2606.05121, a 3B model trained on 2.3 M items on 32 H100s, real benchmark "
              "data) are printed beside ours for orientation only: different scale, data and test sets.")

# bench -> (title, rows); a row is (label, [(column, file key or None)], paper text)
TABLES = {
    "train": ("Training (dev split, held-out voices)", ["metric", "ours", "paper"], [
        ("decision accuracy (balanced, streaming)", ["decision_accuracy_dev"], "—"),
        ("ASR WER, held-out voices", ["asr_wer_dev"], "—"),
        ("ASR WER, unseen engine", ["asr_wer_dev_unseen_engine"], "—"),
        ("CTC head's WER on the same ASR windows, held-out voices", ["ctc_wer_dev"], "—"),
        ("CTC head's WER on the same ASR windows, unseen engine", ["ctc_wer_dev_unseen_engine"], "—"),
        ("ASR reply's first token right, teacher-forced: train windows", ["asr_first_token_acc_train"], "—"),
        ("ASR reply's first token right, teacher-forced: dev windows", ["asr_first_token_acc_dev"], "—"),
        ("training minutes (all stages)", ["train_minutes"], "~10 days, 32xH100"),
    ]),
    "asr": ("1. Real-time ASR (test split)", ["metric", "ours (streaming)", "Whisper tiny.en", "pocketsphinx", "paper"], [
        ("WER, held-out voices of seen engines", ["wer_stream_heldout_voice", "whisper_wer_heldout_voice",
                                                 "pocketsphinx_wer_heldout_voice"], "3.17 (LibriSpeech clean)"),
        ("WER, unseen engine", ["wer_stream_unseen_engine", "whisper_wer_unseen_engine",
                                "pocketsphinx_wer_unseen_engine"], "6.04 (LibriSpeech other)"),
        ("WER, offline format (ours) / offline baseline", ["wer_offline", "wer_offline_baseline", None], "—"),
        ("time to first partial (s)", ["first_partial_s", None, "pocketsphinx_first_partial_s"], "—"),
        ("finalization latency (s)", ["finalization_s", None, "pocketsphinx_finalization_s"], "—"),
        ("flicker (erased words per final word)", ["flicker", None, "pocketsphinx_flicker"], "—"),
        ("real-time factor", [None, "whisper_rtf", "pocketsphinx_rtf"], "—"),
    ]),
    "st": ("2. Streaming translation (test split; BLEU and chrF 0-100)",
           ["metric", "ours (streaming)", "ours (offline format)", "offline baseline", "paper"], [
        ("BLEU en→zh", ["bleu_en2zh", "offline_bleu_en2zh", "baseline_bleu_en2zh"], "55.22 (CoVoST2)"),
        ("chrF en→zh", ["chrf_en2zh", "offline_chrf_en2zh", "baseline_chrf_en2zh"], "—"),
        ("BLEU zh→en", ["bleu_zh2en", "offline_bleu_zh2en", "baseline_bleu_zh2en"], "35.21 (CoVoST2)"),
        ("chrF zh→en", ["chrf_zh2en", "offline_chrf_zh2en", "baseline_chrf_zh2en"], "—"),
    ]),
    "audio_qa": ("3. Audio QA, MMAU-like multiple choice (test split; accuracy 0-1)",
                 ["metric", "ours", "offline baseline", "chance", "paper (%)"], [
        ("question as text (offline format)", ["text_accuracy", "baseline_text_accuracy", "chance"], "55.68 (MMAU, text)"),
        ("question spoken in the stream", ["spoken_accuracy", None, "chance"], "58.15 (MMAU, audio)"),
        ("question spoken, offline format", ["spoken_offline_accuracy", "baseline_spoken_offline_accuracy", "chance"], "—"),
    ]),
    "spoken_qa": ("4. Spoken QA (test split; accuracy 0-1)", ["metric", "ours (streaming)", "ours (offline format)",
                                                             "offline baseline", "paper (%)"], [
        ("answer contained in the reply", ["accuracy", "offline_accuracy", "baseline_accuracy"], "67.31 (Llama Q.), 54.34 (Web Q.)"),
        ("key phrase contained in the reply", ["key_accuracy", "offline_key_accuracy", "baseline_key_accuracy"], "—"),
    ]),
    "retention": ("5. Multi-turn retention: 1 vs 5 segments", ["metric", "ours (online)", "offline baseline", "paper"], [
        ("accuracy, 1 segment", ["online_acc_n1", "offline_acc_n1"], "—"),
        ("accuracy, 5 segments", ["online_acc_n5", "offline_acc_n5"], "—"),
        ("retained (acc 5 / acc 1)", ["online_retained", "offline_retained"], "> 0.91 online; offline drops 30 %+"),
    ]),
    "instruct": ("6. Streaming instruction following (test split)", ["metric", "ours", "paper"], [
        ("trigger accuracy", ["trigger_accuracy"], "96.77 % (Trig. Acc.)"),
        ("timing error, mean absolute (s)", ["timing_mae_s"], "—"),
        ("false triggers per minute", ["false_triggers_per_min"], "—"),
    ]),
    "proactive": ("7. Proactive-Sound-Bench-mini", ["metric", "ours", "always silent", "energy trigger", "paper"], [
        ("decision accuracy", ["accuracy", "always_silent.accuracy", "energy_trigger.accuracy"], "61.2 (single tier)"),
        ("respond precision", ["precision", "always_silent.precision", "energy_trigger.precision"], "—"),
        ("respond recall", ["recall", "always_silent.recall", "energy_trigger.recall"], "—"),
        ("respond F1", ["f1", "always_silent.f1", "energy_trigger.f1"], "—"),
        ("detection latency, mean (s)", ["latency_mean_s", None, "energy_trigger.latency_mean_s"], "—"),
        ("false alarms per hour (must-ignore streams)", ["false_alarms_per_hour", "always_silent.false_alarms_per_hour",
                                                         "energy_trigger.false_alarms_per_hour"], "—"),
    ]),
    "latency": ("8. Inference latency (this 2-core CPU, one torch thread per scheduler thread)",
                ["metric", "sync", "FIFO", "paper (w/o FIFO vs FIFO)"], [
        ("chunk → decision, mean (ms), real time", ["sync.first_chunk_ms", "fifo.first_chunk_ms"], "831 vs 392"),
        ("reply end → live decision, mean (ms), real time", ["sync.resume_ms", "fifo.resume_ms"], "4.5x claimed"),
        ("stall rate (listener behind the audio), real time", ["sync.stall_rate", "fifo.stall_rate"], "5.2 % vs 0.0 %"),
        ("late decisions (after the next chunk), real time", ["sync.late_rate", "fifo.late_rate"], "—"),
        ("real-time factor (as fast as possible)", ["sync.rtf", "fifo.rtf"], "—"),
    ]),
}


def fmt(value) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:.3f}" if abs(value) < 100 else f"{value:.1f}"
    return str(value)


def interval_of(data: dict, key: str) -> list[float] | None:
    """The 95 % bootstrap interval a benchmark wrote for `key` (soundflow.bench.bootstrap): under "ci95" of the
    file, or for a dotted key "block.name" under "ci95" of that block; None where there is none."""
    head, _, name = key.rpartition(".")
    try:
        block = lookup(data, head) if head else data
        return block["ci95"][name]
    except (KeyError, TypeError):
        return None


def cell(data: dict, key: str) -> str:
    """A number, with its 95 % interval in brackets where the benchmark wrote one."""
    value, ci = lookup(data, key), interval_of(data, key)
    if ci is None or value is None:
        return fmt(value)
    return f"{fmt(value)} [{fmt(float(ci[0]))}, {fmt(float(ci[1]))}]"


def table(title: str, columns: list[str], rows: list, data: dict, reference: dict | None = None,
          reference_name: str = "reference run") -> list[str]:
    """A markdown table; with `reference`, a column of its numbers after the first value column."""
    if reference is not None:
        columns = [columns[0], columns[1], reference_name, *columns[2:]]
    lines = [f"### {title}", "", "| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for label, keys, paper in rows:
        if reference is not None:
            keys = [keys[0], ("reference", keys[0]), *keys[1:]]
        cells = []
        for key in keys + [None] * (len(columns) - 2 - len(keys)):
            source, key = (reference, key[1]) if isinstance(key, tuple) else (data, key)
            try:
                cells.append(cell(source, key) if key else "—")
            except KeyError:
                cells.append("n/a")
        lines.append("| " + " | ".join([label, *cells, paper]) + " |")
    return lines + [""]


# the per-repeat table's columns: the keys bench.latency.REPEATED repeats, by their titles (summary.py imports no torch)
REPEAT_TITLES = {"first_chunk_ms": "chunk → decision (ms)", "resume_ms": "resume (ms)", "stall_rate": "stall rate",
                 "late_rate": "late decisions"}


def latency_notes(latency: dict) -> list[str]:
    lines = []
    repeats = {name: latency.get(name, {}).get("repeats") or {} for name in ("sync", "fifo")}
    if len(repeats["sync"].get("resume_ms") or []) > 1:
        keys = [k for k in REPEAT_TITLES if k in repeats["sync"]]
        lines += ["Real-time rows: the median over repeated runs (alternating schedulers); each repeat:", "",
                  "| scheduler | " + " | ".join(REPEAT_TITLES[k] for k in keys) + " |",
                  "|---" * (len(keys) + 1) + "|"]
        for name, rep in repeats.items():
            lines.append(f"| {name} | " + " | ".join(", ".join(fmt(v) for v in rep.get(key, [])) for key in keys) + " |")
        lines.append("")
    lines += ["Time-scaled runs (the regime of a model slow enough that replies outlast chunks): the same audio fed "
             "faster than real time, calibrated on this machine so that sync's listening cost fills the given load "
             "of each chunk interval; replies come on top:", "",
             "| load | speed (x real time) | reply (chunks) | sync resume (ms) | FIFO resume (ms) | FIFO speedup | "
             "stall rate, sync / FIFO | late decisions, sync / FIFO |", "|---|---|---|---|---|---|---|---|"]
    for runs in latency.get("time_scaled", {}).values():
        sync, fifo = runs["sync"], runs["fifo"]
        lines.append("| " + " | ".join(fmt(v) for v in (
            runs["load"], runs["speed"], runs["reply_chunks"], sync["resume_ms"], fifo["resume_ms"],
            runs["resume_speedup_fifo"])) + " | " + " | ".join(
            f"{fmt(sync.get(key))} / {fmt(fifo.get(key))}" for key in ("stall_rate", "late_rate")) + " |")
    lines += ["", "Chunk-size sweep (sync, as fast as possible; the model is trained on 0.4 s, other sizes measure "
              "cost only; paper latency 258/392/674/786 ms):", "",
              "| chunk (s) | ms per chunk | RTF |", "|---|---|---|"]
    lines += [f"| {r['chunk_s']} | {r['ms_per_chunk']:.1f} | {r['rtf']:.3f} |" for r in latency.get("chunk_sweep", [])]
    long = latency.get("long_stream")
    if long:
        lines += ["", f"Long stream: {long['minutes']:g} min in {long['chunks']} chunks, RTF {long['rtf']:.3f}, "
                      f"LM cache at most {long['max_cache_tokens']} tokens ({long['context_rebuilds']} context restarts), "
                      f"resident memory {long['rss_mb_first']:.0f} → {long['rss_mb_last']:.0f} MB."]
    return lines + [""]


def plot_proactive(data: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    systems = [("ours", data.get("ours", {})), ("always silent", data.get("always_silent", {})),
               ("energy trigger", data.get("energy_trigger", {}))]
    metrics = ["accuracy", "precision", "recall", "f1"]
    fig, ax = plt.subplots(figsize=(7, 3.8))
    x = np.arange(len(metrics))
    for i, (name, scores) in enumerate(systems):
        ax.bar(x + (i - 1) * 0.27, [scores.get(m) or 0 for m in metrics], 0.27, label=name)
    ax.axhline(0.612, color="grey", ls="--", lw=1, label="paper accuracy 0.612")
    ax.set_xticks(x, metrics)
    ax.set_ylim(0, 1)
    ax.set_title("Proactive-Sound-Bench-mini")
    ax.legend(fontsize=8)
    fig.tight_layout()
    save_figure(fig, path)


def build(metrics_dir: Path, out: Path, figures: Path, reference_dir: Path | None = None,
          reference_name: str = "reference run") -> None:
    lines = ["# SoundFlow-mini results", "",
             f"Regenerated by the pipeline (rule `summary`) from `{metrics_dir}/*.json`; every number comes from "
             "this run. " + PAPER_NOTE, "",
             "Brackets hold 95 % bootstrap intervals over the benchmark's items (streams, questions, segments, "
             "turns; 1,000 resamples, `soundflow.bench.bootstrap`): differences inside them are noise of the "
             "small test sets.", ""]
    if reference_dir is not None:
        readme = " (see its README.md)" if (Path(reference_dir) / "README.md").is_file() else ""
        lines += [f"The column \"{reference_name}\" holds the metrics in `{reference_dir}`{readme}.", ""]
    for name, (title, columns, rows) in TABLES.items():
        path = Path(metrics_dir) / f"{name}.json"
        if not path.is_file():
            raise FileNotFoundError(f"summary: metrics file missing: {path}")
        data = json.loads(path.read_text())
        reference = None  # no column; {} when the reference run lacks this benchmark (its cells say n/a)
        if reference_dir is not None:
            ref_path = Path(reference_dir) / f"{name}.json"
            reference = json.loads(ref_path.read_text()) if ref_path.is_file() else {}
        lines += table(title, columns, rows, data, reference, reference_name)
        if name == "train":
            lines += ["![training curves](figures/training.png)", ""]
        if name == "latency":
            lines += latency_notes(data)
            lines += ["![latency](figures/latency.png)", ""]
        if name == "proactive":
            figures.mkdir(parents=True, exist_ok=True)
            plot_proactive(data, figures / "proactive.png")
            lines += ["![proactive](figures/proactive.png)", ""]
    tmp = atomic_path(out)
    tmp.write_text("\n".join(lines))
    os.replace(tmp, out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m soundflow.bench.summary", description=__doc__)
    parser.add_argument("--metrics", type=Path, default=Path("reports/metrics"))
    parser.add_argument("--out", type=Path, default=Path("reports/summary.md"))
    parser.add_argument("--figures", type=Path, default=Path("reports/figures"))
    parser.add_argument("--reference", type=Path, help="frozen metrics of an earlier run, printed beside ours")
    parser.add_argument("--reference-name", default="reference run", help="that column's header")
    args = parser.parse_args(argv)
    build(args.metrics, args.out, args.figures, args.reference, args.reference_name)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
