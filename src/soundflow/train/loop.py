"""The training loop every stage shares: bounded by steps and by minutes of training time, seeded,
resumable from its last DeepSpeed checkpoint (to the same weights as a run never stopped), with
per-step MLflow metrics and timed evaluations.

The learning rate warms up linearly over the first `warmup` share of the budget, then follows a
cosine to 1 %. A stage with `max_steps` (the tiny profile) schedules by steps and is deterministic:
the same steps, learning rates and batches on every run, so its numbers do not move with the
machine's speed; its `minutes` are only a cap. A stage without (`max_steps: null`, the paper
profile) spends its minutes, the schedule driven by elapsed time (feasibility.md: that makes the
most of a fixed budget). The clock counts training steps only; evaluations pause it.

Data parallel (several processes from torchrun): every rank draws the same batches and trains on its
own rows of each (the stage's loss_fn weighs each rank's share, soundflow.train.stages.shard), so a step
of world size N is the step of world size 1 on the same batch, up to float noise. Rank 0's clock decides
time-bounded schedules, evaluations and the end for all; every rank saves and loads the checkpoints
(collective), only rank 0 logs.
"""
from __future__ import annotations

import itertools
import json
import math
import os
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

import torch

from soundflow.precision import autocast, bf16_speedup
from soundflow.train import engine as ds

FAULT_ENV = "SOUNDFLOW_FAULT_AT_STEP"  # tests: die (os._exit) right after this step, as a kill would


@dataclass
class Progress:
    step: int = 0
    train_s: float = 0.0
    tokens: int = 0
    epoch: int = 0
    batch: int = 0  # batches of `epoch` already trained on
    history: list[dict] = field(default_factory=list)  # dev metrics at each evaluation
    curve: list[dict] = field(default_factory=list)  # training losses every `log_every` steps


def bf16_step_speedup(model: torch.nn.Module, params: list[torch.nn.Parameter], batch: dict,
                      loss_fn: Callable[[torch.nn.Module, dict], dict]) -> float:
    """The precision probe of a stage: its own training step (forward, loss, backward; no update, the
    gradients dropped) on `batch`, timed in fp32 and in bf16 autocast (soundflow.precision.bf16_speedup)."""
    model.train()
    batch = ds.to_device(batch, next(model.parameters()).device)

    def step() -> None:
        loss_fn(model, batch)["loss"].backward()
        for p in params:
            p.grad = None

    return bf16_speedup(step)


def budget_share(progress: Progress, max_steps: int | None, budget_s: float) -> float:
    """How far the stage is through the budget its schedule follows: steps if bounded, else time."""
    return progress.step / max_steps if max_steps else progress.train_s / budget_s


def lr_at(share: float, peak: float, warmup: float) -> float:
    if share < warmup:
        return peak * max(share / warmup, 0.01)
    t = min((share - warmup) / max(1 - warmup, 1e-9), 1.0)
    return peak * (0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * t)))


def train(
    model: torch.nn.Module,
    params: list[torch.nn.Parameter],
    batches: Callable[[int], Iterator[dict]],
    loss_fn: Callable[[torch.nn.Module, dict], dict],
    evaluate: Callable[[torch.nn.Module], dict],
    cfg: dict,
    out_dir: Path,
    job: str,
    log: Callable[[dict, int], None],
    fingerprint: str,
) -> Progress:
    """Run one stage. `batches(epoch)` yields batches; `loss_fn(engine, batch)` returns a dict with
    `loss` (and other scalars to log, plus `tokens`); `evaluate(model)` returns dev metrics.
    `fingerprint` names the job's inputs: only a checkpoint of the same job is resumed."""
    rank, world = ds.world()
    torch.manual_seed(cfg["seed"] + rank)  # rank 0 draws what a single process draws; others their own dropout
    engine, optimizer = ds.make_engine(model, params, cfg)
    ckpt_dir = out_dir / "checkpoints"
    progress = _resume(engine, ckpt_dir, fingerprint)
    budget_s = cfg["minutes"] * 60
    next_eval = (progress.train_s // cfg["eval_every_s"] + 1) * cfg["eval_every_s"]
    while not _done(progress, cfg, budget_s):
        # a resumed stage replays its epoch up to the checkpoint, so it trains on the batches it would have
        for batch in itertools.islice(batches(progress.epoch), progress.batch, None):
            if _done(progress, cfg, budget_s):
                break
            t0 = time.perf_counter()
            lr = lr_at(budget_share(progress, cfg["max_steps"], budget_s), cfg["lr"], cfg["warmup"])
            for group in optimizer.param_groups:
                group["lr"] = lr
            engine.train()
            with autocast(cfg["precision"]):
                out = loss_fn(engine, ds.to_device(batch, engine.device))
            # each rank's loss is its share of the batch mean; DeepSpeed averages gradients over ranks
            engine.backward(out["loss"] * world if world > 1 else out["loss"])
            engine.step()
            progress.step += 1
            progress.batch += 1
            progress.train_s += _rank0(time.perf_counter() - t0, world, engine.device)
            progress.tokens += int(out.get("tokens", 0))
            if progress.step % cfg["log_every"] == 0:
                scalars = _batch_means({k: v for k, v in out.items() if k != "tokens"}, world, engine.device)
                scalars.update(lr=lr, train_minutes=progress.train_s / 60,
                               tokens_per_s=progress.tokens / max(progress.train_s, 1e-9))
                log(scalars, progress.step)
                progress.curve.append({"step": progress.step, "train_minutes": progress.train_s / 60,
                                       **{k: v for k, v in scalars.items() if k.startswith("loss")}})
            if progress.train_s >= next_eval:
                _evaluate(engine.module, evaluate, progress, log, cfg["precision"])
                next_eval += cfg["eval_every_s"]
            if progress.step % cfg["checkpoint_every"] == 0:
                _checkpoint(engine, ckpt_dir, progress)
            if os.environ.get(FAULT_ENV) == str(progress.step):
                os._exit(17)
        else:
            progress.epoch, progress.batch = progress.epoch + 1, 0
    _evaluate(engine.module, evaluate, progress, log, cfg["precision"])
    _checkpoint(engine, ckpt_dir, progress)
    return progress


def _rank0(seconds: float, world: int, device: torch.device) -> float:
    """Rank 0's step time on every rank: budgets, evaluations and the end must agree across ranks."""
    if world == 1:
        return seconds
    t = torch.tensor([seconds], dtype=torch.float64, device=device)
    torch.distributed.broadcast(t, src=0)
    return float(t)


def _batch_means(out: dict, world: int, device: torch.device) -> dict[str, float]:
    """Scalars to log: with several ranks each holds its share of the batch mean, so they are summed."""
    values = {k: float(v.detach() if torch.is_tensor(v) else v) for k, v in out.items()}
    if world == 1:
        return values
    t = torch.tensor(list(values.values()), dtype=torch.float64, device=device)
    torch.distributed.all_reduce(t)
    return dict(zip(values, t.tolist()))


def _steps_done(progress: Progress, cfg: dict) -> bool:
    return bool(cfg["max_steps"]) and progress.step >= cfg["max_steps"]


def _done(progress: Progress, cfg: dict, budget_s: float) -> bool:
    return _steps_done(progress, cfg) or progress.train_s >= budget_s


def ended_by(progress: Progress, cfg: dict) -> str:
    """Which bound ended the stage: "steps" (reproducible) or "minutes" (the machine's speed decided)."""
    return "steps" if _steps_done(progress, cfg) else "minutes"


def _evaluate(model, evaluate, progress: Progress, log, precision: str) -> None:
    model.eval()
    # evaluations run on the clock, not at fixed steps: keep them off the training RNG stream
    with torch.random.fork_rng(), torch.no_grad(), autocast(precision):
        metrics = evaluate(model)
    progress.history.append({"step": progress.step, "train_minutes": progress.train_s / 60, **metrics})
    log({f"dev_{k}": v for k, v in metrics.items()}, progress.step)


def _rng_file(ckpt_dir: Path, tag: str) -> Path:
    return ckpt_dir / tag / f"rng-rank{ds.world()[0]}.pt"


def _checkpoint(engine, ckpt_dir: Path, progress: Progress) -> None:
    """Keep only the newest checkpoint: every rank writes its part and its RNG state, then DeepSpeed's
    `latest` (written last, by rank 0) points at it."""
    tag = f"step{progress.step:07d}"
    state = {"step": progress.step, "train_s": progress.train_s, "tokens": progress.tokens,
             "epoch": progress.epoch, "batch": progress.batch, "rng": torch.get_rng_state(),
             "history": json.dumps(progress.history), "curve": json.dumps(progress.curve)}
    rng = {"cpu": torch.get_rng_state(), "cuda": torch.cuda.get_rng_state() if torch.cuda.is_available() else None}
    _rng_file(ckpt_dir, tag).parent.mkdir(parents=True, exist_ok=True)
    torch.save(rng, _rng_file(ckpt_dir, tag))  # the client state is rank 0's only
    engine.save_checkpoint(str(ckpt_dir), tag=tag, client_state=state)
    ds.barrier()
    if ds.is_main():
        for old in ckpt_dir.glob("step*"):
            if old.name != tag:
                shutil.rmtree(old, ignore_errors=True)


def _resume(engine, ckpt_dir: Path, fingerprint: str) -> Progress:
    """Continue from the last checkpoint of this very job; a checkpoint of other inputs is discarded."""
    stamp = ckpt_dir / "fingerprint"
    if ds.is_main():  # one rank decides; the others wait for it
        if ckpt_dir.exists() and (not stamp.is_file() or stamp.read_text() != fingerprint):
            print(f"discarding {ckpt_dir}: it belongs to other inputs (config, data or initial model)", file=sys.stderr)
            shutil.rmtree(ckpt_dir)
        if not (ckpt_dir / "latest").is_file():
            ckpt_dir.mkdir(parents=True, exist_ok=True)
            stamp.write_text(fingerprint)
    ds.barrier()
    if not (ckpt_dir / "latest").is_file():
        return Progress()
    _, state = engine.load_checkpoint(str(ckpt_dir))  # every rank: its ZeRO partition of the optimizer
    if ds.is_main():
        print(f"resumed from {ckpt_dir} at step {state['step']}", file=sys.stderr, flush=True)
    rng_file = _rng_file(ckpt_dir, (ckpt_dir / "latest").read_text().strip())
    rng = torch.load(rng_file, weights_only=True) if rng_file.is_file() else {"cpu": state["rng"], "cuda": None}
    torch.set_rng_state(rng["cpu"])  # dropout continues as if never stopped
    if rng["cuda"] is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state(rng["cuda"])
    return Progress(step=state["step"], train_s=state["train_s"], tokens=state["tokens"], epoch=state["epoch"],
                    batch=state["batch"], history=json.loads(state["history"]), curve=json.loads(state["curve"]))
