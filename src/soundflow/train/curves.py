"""Learning curves of the staged training, drawn from the stages' metrics.json (the same losses and dev
metrics each stage logs to its MLflow run): s1-s4 one after the other on a shared clock, with L_LM,
L_stream and the dev decision accuracy on the left; the CTC head's loss and dev CER on the right."""
from __future__ import annotations

from pathlib import Path

from soundflow.audio import save_figure


def plot(stage_metrics: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_lm, ax_ctc) = plt.subplots(1, 2, figsize=(14, 4.5))
    _lm_panel(ax_lm, stage_metrics)
    _ctc_panel(ax_ctc, stage_metrics)
    fig.tight_layout()
    save_figure(fig, path)


def _ctc_panel(ax, stages: list[dict]) -> None:
    """The CTC head on the projected frames, over the stages that train it, on the same shared clock."""
    dev = ax.twinx()
    offset = 0.0
    for i, m in enumerate(stages):
        curve = [c for c in m["curve"] if c.get("loss_ctc") is not None]
        ax.plot([offset + c["train_minutes"] for c in curve], [c["loss_ctc"] for c in curve], color="C0",
                label="CTC loss" if i == 0 else None)
        for key, style in (("ctc_cer_heldout_voice", "o"), ("ctc_cer_unseen_engine", "s")):
            points = [h for h in m["history"] if key in h]
            dev.plot([offset + h["train_minutes"] for h in points], [h[key] for h in points], style, color="C3",
                     label=f"dev {key[4:].replace('_', ' ')}" if i == 0 else None)
        ax.axvline(offset, color="grey", lw=0.6)
        offset += m["train_minutes"]
    ax.set_xlabel("training minutes, s1-s4 in sequence")
    ax.set_ylabel("CTC loss (train batches)")
    ax.set_title("CTC head on the projected tower frames")
    dev.set_ylabel("dev CER")
    dev.set_ylim(0, 1)
    _legend(ax, dev, loc="upper right")


def _lm_panel(ax, stages: list[dict]) -> None:
    """Stages one after the other: each starts where the previous one's training minutes ended."""
    dev = ax.twinx()
    offset = 0.0
    for i, m in enumerate(stages):
        x = [offset + c["train_minutes"] for c in m["curve"]]
        for key, color in (("loss_lm", "C0"), ("loss_stream", "C2")):
            # a batch with no labels of this kind (offline samples have no decisions) logs 0: leave a gap
            ax.plot(x, [c.get(key) or float("nan") for c in m["curve"]], color=color, label=key if i == 0 else None)
        points = [h for h in m["history"] if "decision_accuracy" in h]
        dev.plot([offset + h["train_minutes"] for h in points], [h["decision_accuracy"] for h in points], "o",
                 color="C3", label="dev decision accuracy (teacher-forced)" if i == 0 else None)
        ax.axvline(offset, color="grey", lw=0.6)
        ax.text(offset, 0.99 - 0.05 * (i % 2), f" {m['stage']}", transform=ax.get_xaxis_transform(), va="top",
                fontsize=8)  # staggered: the short stages s1 and s2 sit close together
        offset += m["train_minutes"]
    ax.set_yscale("log")
    ax.set_xlabel("training minutes, s1-s4 in sequence")
    ax.set_ylabel("loss (train batches)")
    ax.set_title("LM stages: L_LM and L_stream")
    dev.set_ylabel("dev decision accuracy")
    dev.set_ylim(0.4, 1)
    _legend(ax, dev, loc="center right")


def _legend(ax, twin, loc: str) -> None:
    handles, labels = ax.get_legend_handles_labels()
    more, more_labels = twin.get_legend_handles_labels()
    ax.legend(handles + more, labels + more_labels, fontsize=8, loc=loc)
