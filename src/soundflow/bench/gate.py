"""Quality gate: the tiny profile's metrics in reports/metrics/ against the floors in workflow/floors.yaml.

floors.yaml maps a metrics file to dotted keys with a `min` (higher is better) or a `max` (lower is better)
and the measured value it was set from. A missing file or key fails the gate like a value past its floor.
"""
from __future__ import annotations

import json
from pathlib import Path

import yaml

FLOORS = Path(__file__).resolve().parents[3] / "workflow" / "floors.yaml"


def lookup(data: dict, dotted: str):
    node = data
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            raise KeyError(dotted)
        node = node[part]
    return node


def check(floors: dict, metrics_dir: Path) -> list[str]:
    """Every violation as one line: file, key, value and the bound it broke."""
    problems = []
    for file, keys in floors.items():
        path = Path(metrics_dir) / file
        if not path.is_file():
            problems.append(f"{path}: missing (did the pipeline run?)")
            continue
        data = json.loads(path.read_text())
        for key, bound in keys.items():
            try:
                value = lookup(data, key)
            except KeyError:
                problems.append(f"{path}: key '{key}' missing")
                continue
            if not isinstance(value, (int, float)) or isinstance(value, bool):
                problems.append(f"{path}: '{key}' is {value!r}, not a number")
            elif "min" in bound and value < bound["min"]:
                problems.append(f"{path}: {key} = {value:.4g} is below its floor {bound['min']}")
            elif "max" in bound and value > bound["max"]:
                problems.append(f"{path}: {key} = {value:.4g} is above its ceiling {bound['max']}")
    return problems


def load_floors(path: Path = FLOORS) -> dict:
    floors = yaml.safe_load(Path(path).read_text()) or {}
    for file, keys in floors.items():
        for key, bound in (keys or {}).items():
            if not isinstance(bound, dict) or not ({"min", "max"} & bound.keys()):
                raise ValueError(f"{path}: {file} {key}: needs a 'min' or a 'max'")
    return floors
