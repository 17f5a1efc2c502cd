"""The quality gate (run after the pipeline: `make gate`): every floor in workflow/floors.yaml holds."""
from pathlib import Path

from soundflow.bench import gate

METRICS = Path(__file__).resolve().parents[2] / "reports" / "metrics"


def test_metrics_meet_their_floors():
    problems = gate.check(gate.load_floors(), METRICS)
    assert not problems, "quality gate:\n" + "\n".join(problems)
