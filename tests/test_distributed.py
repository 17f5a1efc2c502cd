"""Data-parallel training: the stage CLI under torchrun with 2 CPU processes (gloo, ZeRO-2), the code path
of a multi-GPU job, against the same stage in one process; and a world-size-2 run killed mid-stage."""
import json
import shutil

import pytest
import torch
from safetensors.torch import load_file

from tests.conftest import run, run_side_by_side
from soundflow.train import loop
from tests.test_train import FLOAT_NOISE, differing, stage_cmd

TORCHRUN = ["python", "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2"]
# s3 (projector + LM + the CTC head's auxiliary loss): every kind of batch row and loss term is split
STEPS = dict(max_steps=4, minutes=5.0, checkpoint_every=2, eval_every_s=1000, log_every=1, precision="fp32")


def dropout_free_init(work, root):
    """The smoke run's untrained model with frame dropout off: dropout draws per rank, so only dropout-free
    runs of world size 1 and 2 can match to float noise."""
    model = root / "plain"
    shutil.copytree(work / "data/models/init/model", model)
    model_cfg = json.loads((model / "config.json").read_text())
    model_cfg["frame_dropout"] = 0.0
    (model / "config.json").write_text(json.dumps(model_cfg))
    return model


def stage(work, init, out, **extra) -> list[str]:
    cmd, _ = stage_cmd(work, "s3", "init", out, **STEPS, **extra)
    cmd[cmd.index("--init") + 1] = str(init)
    return cmd


def dp_cmd(cmd: list[str]) -> list[str]:
    return TORCHRUN + cmd[1:]  # `python -m soundflow.train ...` -> `torchrun ... -m soundflow.train ...`


def test_world_size_2_matches_world_size_1_and_resumes_after_a_kill(smoke_run, tmp_path):
    """s3 for 4 steps in one process and in two (torchrun, gloo, ZeRO-2, each rank its rows of every batch):
    the same logged losses and final weights up to float noise; two processes killed after step 3 resume
    (every rank from the checkpoint of step 2) to the same weights."""
    work, _ = smoke_run
    init = dropout_free_init(work, tmp_path)
    # gradient checkpointing (the paper profile's) beside the plain run: the LM's activations recomputed in
    # backward must give the same weights
    run_side_by_side([(stage(work, init, tmp_path / "ws1"), None),
                      (stage(work, init, tmp_path / "gc", gradient_checkpointing=True), None)], work)
    out = run(dp_cmd(stage(work, init, tmp_path / "ws2")), work)
    m1, m2 = (json.loads((tmp_path / d / "metrics.json").read_text()) for d in ("ws1", "ws2"))
    assert (m1["world_size"], m2["world_size"], m1["steps"], m2["steps"]) == (1, 2, 4, 4)
    assert out.stderr.count("train s3: 4 steps") == 1  # rank 0 alone reports (and logs, and writes)
    # the logged losses are the whole batch's on both (each rank holds its share; they are summed)
    for a, b in zip(m1["curve"], m2["curve"], strict=True):
        for key in ("loss", "loss_lm", "loss_stream", "loss_ctc"):
            assert b[key] == pytest.approx(a[key], rel=1e-4), (a["step"], key)
    w1, w2 = (load_file(tmp_path / d / "model" / "model.safetensors") for d in ("ws1", "ws2"))
    start = load_file(init / "model.safetensors")
    trained = [k for k in w1 if not torch.equal(w1[k], start[k])]
    assert any(k.startswith("lm.") for k in trained) and any(k.startswith("ctc_head.") for k in trained)
    worst = max(float((w1[k] - w2[k]).abs().max()) for k in w1)
    print(f"world size 2 vs 1: max abs weight difference {worst:.3g} after 4 steps")
    assert differing(w1, w2) == [], f"world size 2 differs from 1 by more than {FLOAT_NOISE} (max abs {worst:.3g})"

    assert differing(w1, load_file(tmp_path / "gc" / "model" / "model.safetensors")) == []

    # killed after step 3 (both ranks): the rerun resumes every rank from step 2 and ends at ws2's weights
    killed_dir = tmp_path / "killed"
    killed_cmd = stage(work, init, killed_dir)
    killed = run(dp_cmd(killed_cmd), work, check=False, env_extra={loop.FAULT_ENV: "3"})
    assert killed.returncode != 0 and not (killed_dir / "model").exists()
    ckpt = killed_dir / "checkpoints"
    assert (ckpt / "latest").read_text().strip() == "step0000002"
    assert sorted(p.name for p in (ckpt / "step0000002").glob("rng-rank*.pt")) == ["rng-rank0.pt", "rng-rank1.pt"]
    resumed = run(dp_cmd(killed_cmd), work)
    assert (resumed.stdout + resumed.stderr).count("at step 2") == 1
    metrics = json.loads((killed_dir / "metrics.json").read_text())
    assert metrics["steps"] == 4 and [c["step"] for c in metrics["curve"]] == [1, 2, 3, 4]
    assert differing(w2, load_file(killed_dir / "model" / "model.safetensors")) == []
