"""Sharded corpus builds: which items a shard owns, its manifest, and the merge into the split manifests.

Shard i of n owns every n-th item of the manifest order (train, dev, test; sub-task by sub-task),
starting at item i: shards stay balanced over splits and sub-tasks, and who owns what needs no planning.
A shard plans only its own items (an item's plan depends on the config and its key alone), synthesizes
the clips they need and composes their streams into the shared corpus folder.

Two shards may need the same TTS clip and both synthesize it: the clip cache writes a uniquely named
temp file and renames it, and synthesis is deterministic, so either rename puts the same bytes in place.
"""
from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import polars as pl
from tqdm import tqdm

from soundflow.data import manifest
from soundflow.data.build import make_rows, write_splits
from soundflow.data.manifest import ManifestError
from soundflow.data.planner import SPLITS, item_id, item_keys, plan_item

META_KEY = "soundflow.corpus_shard"
# Keys that say how the corpus is built or reported, not what it holds: shards stay valid when they change.
EXECUTION_KEYS = ("workers", "shards", "examples")


def corpus_digest(cfg: dict) -> str:
    """Digest of the config keys that decide the items, so a shard of another corpus is never merged."""
    content = {k: v for k, v in cfg.items() if k not in EXECUTION_KEYS}
    return hashlib.sha1(json.dumps(content, sort_keys=True).encode()).hexdigest()[:16]


def all_keys(cfg: dict) -> list[tuple[str, str, int, str]]:
    return [key for split in SPLITS for key in item_keys(cfg, split)]


def shard_keys(cfg: dict, index: int, count: int) -> list[tuple[str, str, int, str]]:
    if count < 1 or not 0 <= index < count:
        raise ValueError(f"shard index {index} is out of range for {count} shards (0 <= index < count)")
    return all_keys(cfg)[index::count]


def build_shard(cfg: dict, out_dir: Path, index: int, count: int, path: Path, workers: int = 2,
                progress: bool = True) -> pl.DataFrame:
    """Build shard `index` of `count`: its streams under out_dir, its rows in the shard manifest `path`."""
    keys = shard_keys(cfg, index, count)
    label = f" (shard {index + 1}/{count})"
    plans = [plan_item(cfg, *key) for key in tqdm(keys, desc=f"plan items{label}", disable=not progress)]
    frame = manifest.to_frame(make_rows(plans, cfg, Path(out_dir), workers=workers, progress=progress,
                                        label=label))
    meta = {"index": index, "count": count, "config": corpus_digest(cfg), "items": frame.height}
    manifest.write(frame, Path(path), metadata={META_KEY: json.dumps(meta, sort_keys=True)})
    return frame


def merge(cfg: dict, out_dir: Path, paths: list[Path], progress: bool = True) -> dict[str, pl.DataFrame]:
    """Check that `paths` are exactly this config's shards, then write the split manifests from them.

    The rows come out in the order of the unsharded build, so the split manifests are byte-identical.
    """
    out_dir, count = Path(out_dir), len(paths)
    if not count:
        raise ManifestError("no shard manifests to merge")
    keys, digest = all_keys(cfg), corpus_digest(cfg)
    parts: dict[int, tuple[Path, pl.DataFrame]] = {}
    for path in map(Path, paths):
        meta = _shard_meta(path)
        index = meta["index"]
        if meta["config"] != digest:
            raise ManifestError(f"shard manifest {path} was built from another data config "
                                f"(digest {meta['config']}, this config's is {digest}): rebuild it")
        if meta["count"] != count or not 0 <= index < count:
            raise ManifestError(f"shard manifest {path} is shard {index + 1} of {meta['count']}, "
                                f"but {count} shard manifests were given")
        if index in parts:
            raise ManifestError(f"shard manifests {parts[index][0]} and {path} are both shard {index + 1}/{count}")
        frame = manifest.read(path)
        if frame.schema != manifest.SCHEMA:
            raise ManifestError(f"shard manifest {path} has another column layout than soundflow.data.manifest")
        expected = [item_id(*key) for key in keys[index::count]]
        if frame["id"].to_list() != expected:
            raise ManifestError(f"shard manifest {path} does not hold the items of shard {index + 1}/{count} "
                                f"({frame.height} rows, {len(expected)} expected): rebuild it")
        missing = [a for a in frame["audio"] if not (out_dir / a).is_file()]
        if missing:
            raise ManifestError(f"shard {index + 1}/{count} names {len(missing)} stream(s) that are not in "
                                f"{out_dir}, e.g. {missing[0]}: rebuild that shard")
        parts[index] = (path, frame)
        if progress:
            print(f"merge: shard {index + 1}/{count}: {frame.height} items ({path})", file=sys.stderr)
    # Shard i holds the items at positions i, i + count, ...: sorting by position restores manifest order.
    position = pl.concat([pl.int_range(i, len(keys), count, eager=True) for i in range(count)])
    items = (pl.concat([parts[i][1] for i in range(count)]).with_columns(position.alias("_position"))
             .sort("_position").drop("_position"))
    return write_splits(items, out_dir)


def _shard_meta(path: Path) -> dict:
    raw = manifest.read_metadata(path).get(META_KEY)
    if raw is None:
        raise ManifestError(f"{path} is not a shard manifest (no '{META_KEY}' metadata): "
                            "merge takes the files written by `python -m soundflow.data shard`")
    return json.loads(raw)
