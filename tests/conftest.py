"""Shared fixtures: one smoke corpus built once per session (tests read it, never change it)."""
import hashlib
from pathlib import Path

import pytest

from soundflow import config


def smoke_data_cfg() -> dict:
    return config.load(profile="smoke")["data"]


def tree_digest(root: Path, patterns=("*.parquet", "audio/**/*.wav")) -> dict[str, str]:
    """sha1 of every manifest and stream file under a corpus folder, by relative path."""
    out = {}
    for pattern in patterns:
        for path in sorted(Path(root).glob(pattern)):
            out[str(path.relative_to(root))] = hashlib.sha1(path.read_bytes()).hexdigest()
    return out


@pytest.fixture(scope="session")
def smoke_corpus(tmp_path_factory):
    from soundflow.data.build import build

    out = tmp_path_factory.mktemp("smoke") / "corpus"
    frames = build(smoke_data_cfg(), out, workers=2, progress=False)
    return out, frames
