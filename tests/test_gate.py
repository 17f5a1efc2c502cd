"""The gate logic on made-up metrics (the gate itself, tests/gate/, runs after the pipeline)."""
import json

import pytest

from soundflow.bench import gate


@pytest.fixture
def metrics(tmp_path):
    (tmp_path / "train.json").write_text(json.dumps({"acc": 0.9, "nested": {"wer": 0.5}, "none": None}))
    return tmp_path


def test_values_inside_their_bounds_pass(metrics):
    assert gate.check({"train.json": {"acc": {"min": 0.85}, "nested.wer": {"max": 0.6}}}, metrics) == []


def test_a_value_past_a_floor_or_ceiling_fails_with_its_name(metrics):
    problems = gate.check({"train.json": {"acc": {"min": 0.95}, "nested.wer": {"max": 0.4}}}, metrics)
    assert len(problems) == 2
    assert "acc = 0.9 is below its floor 0.95" in problems[0]
    assert "nested.wer = 0.5 is above its ceiling 0.4" in problems[1]


def test_missing_files_keys_and_non_numbers_fail(metrics):
    problems = gate.check({"train.json": {"gone": {"min": 0}, "none": {"min": 0}}, "asr.json": {"x": {"max": 1}}},
                          metrics)
    assert [p.split(": ", 1)[1] for p in problems] == ["key 'gone' missing", "'none' is None, not a number",
                                                         "missing (did the pipeline run?)"]


def test_the_repo_floors_file_is_well_formed():
    floors = gate.load_floors()
    assert "train.json" in floors and "latency.json" in floors
    assert all(("min" in b) != ("max" in b) for keys in floors.values() for b in keys.values())
