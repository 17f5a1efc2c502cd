"""Corpus report: items and hours per split/ability/sub-task, and spectrograms with their timelines."""
from __future__ import annotations

import json
import os
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import polars as pl  # noqa: E402
from scipy.signal import spectrogram  # noqa: E402

from soundflow import CHUNK_SECONDS, SAMPLE_RATE  # noqa: E402
from soundflow.audio import atomic_path, read_audio, save_figure  # noqa: E402


def corpus_table(frames: dict[str, pl.DataFrame]) -> pl.DataFrame:
    all_items = pl.concat(list(frames.values()))
    return (
        all_items.group_by("split", "ability", "sub_task")
        .agg(pl.len().alias("items"), (pl.col("duration_s").sum() / 3600).round(4).alias("hours"))
        .with_columns(pl.col("split").replace_strict({"train": 0, "dev": 1, "test": 2}).alias("_order"))
        .sort("_order", "ability", "sub_task")
        .drop("_order")
    )


def word_timing_counts(frame: pl.DataFrame) -> dict[str, int]:
    """How many word-timed (ASR) turns got aligned word ends and how many estimated ones."""
    counts = {"aligned": 0, "estimated": 0}
    for turns in frame["turns"]:
        for turn in turns:
            timing = json.loads(turn["meta"]).get("word_timing")
            if timing:
                counts[timing] += 1
    return counts


def write_table(table: pl.DataFrame, path: Path) -> None:
    tmp = atomic_path(path)
    table.write_csv(tmp)
    os.replace(tmp, path)


def plot_example(row: dict, corpus_dir: Path, path: Path) -> None:
    """Spectrogram of a stream with its response timeline: green = answer due, grey = must stay silent."""
    audio = read_audio(corpus_dir / row["audio"])
    f, t, s = spectrogram(audio, fs=SAMPLE_RATE, nperseg=400, noverlap=240)
    fig, ax = plt.subplots(figsize=(min(4 + len(audio) / SAMPLE_RATE / 3, 24), 4.5))
    ax.pcolormesh(t, f / 1000, 10 * np.log10(s + 1e-10), shading="auto", cmap="magma")
    for e in row["timeline"]:
        if e["action"] == "respond":
            x = (e["chunk"] + 1) * CHUNK_SECONDS
            ax.axvline(x, color="lime", lw=1.2)
            ax.text(x, 7.6, e["text"][:28], color="lime", fontsize=6, rotation=90, va="top", ha="right")
        else:
            ax.axvspan(e["t_s"], e["end_s"], color="white", alpha=0.18)
    ax.set(xlabel="time (s)", ylabel="kHz", ylim=(0, 8),
           title=f"{row['id']} ({row['sub_task']}): green = response chunk, shaded = must stay silent")
    fig.tight_layout()
    save_figure(fig, path, dpi=90)


def write_examples(frame: pl.DataFrame, corpus_dir: Path, out_dir: Path, n: int) -> list[Path]:
    """A few dev streams of different abilities, shortest first so the pictures stay readable."""
    out_dir.mkdir(parents=True, exist_ok=True)
    online = frame.filter(pl.col("mode") == "online").sort("duration_s")
    picked = online.unique("ability", keep="first", maintain_order=True).head(n)
    paths = []
    for row in picked.iter_rows(named=True):
        path = out_dir / f"{row['sub_task']}.png"
        plot_example(row, corpus_dir, path)
        paths.append(path)
    return paths
