"""What training reads: the samples of one split's shards, token-budget batches and padding.

    ds = ShardDataset("data/tokens/train")
    sampler = TokenBatchSampler(ds.n_tokens, max_tokens=4096, shuffle=True, seed=0)
    loader = DataLoader(ds, batch_sampler=sampler, collate_fn=partial(collate, pad_id=special_id(tok, layout.PAD)))
"""
from __future__ import annotations

from collections import OrderedDict
from pathlib import Path

import numpy as np
import polars as pl
import torch
from torch.utils.data import Dataset, Sampler

from soundflow import layout
from soundflow.tokens.samples import IGNORE


class ShardDataset(Dataset):
    """Samples of `{tokens}/{split}` by index; shards load on first use and stay cached.

    `cache_shards` bounds how many shards stay in memory (None: all, fine at this project's scale).
    """

    def __init__(self, split_dir: str | Path, cache_shards: int | None = None):
        self.folder = Path(split_dir)
        index_path = self.folder / "index.parquet"
        if not index_path.is_file():
            raise FileNotFoundError(f"token index not found: {index_path}")
        self.index = pl.read_parquet(index_path)
        self._where = list(zip(self.index["shard"], self.index["position"]))
        self.n_tokens = self.index["n_tokens"].to_numpy()
        self.cache_shards = cache_shards
        self._cache: OrderedDict[str, list[dict]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._where)

    def _shard(self, name: str) -> list[dict]:
        if name in self._cache:
            self._cache.move_to_end(name)
            return self._cache[name]
        path = self.folder / name
        if not path.is_file():
            raise FileNotFoundError(f"token shard not found: {path}")
        self._cache[name] = torch.load(path, weights_only=True)
        if self.cache_shards is not None and len(self._cache) > self.cache_shards:
            self._cache.popitem(last=False)
        return self._cache[name]

    def __getitem__(self, i: int) -> dict:
        shard, position = self._where[i]
        return self._shard(shard)[position]


def token_batches(n_tokens: np.ndarray, max_tokens: int, rng: np.random.Generator | None = None) -> list[list[int]]:
    """Group samples of similar length so each batch's padded size (count x longest) <= max_tokens.

    Sorting by length keeps padding low; `rng` shuffles ties and the batch order. A sample longer
    than max_tokens gets a batch of its own rather than being dropped.
    """
    n_tokens = np.asarray(n_tokens)
    tie = rng.random(len(n_tokens)) if rng is not None else np.arange(len(n_tokens))
    order = np.lexsort((tie, n_tokens))
    batches: list[list[int]] = []
    current: list[int] = []
    for i in order:
        # Ascending order: the newcomer is the longest, so it sets the padded length.
        if current and (len(current) + 1) * n_tokens[i] > max_tokens:
            batches.append(current)
            current = []
        current.append(int(i))
    if current:
        batches.append(current)
    if rng is not None:
        batches = [batches[j] for j in rng.permutation(len(batches))]
    return batches


class TokenBatchSampler(Sampler[list[int]]):
    """Length-bucketed batches under a token budget, reshuffled each epoch (call set_epoch)."""

    def __init__(self, n_tokens: np.ndarray, max_tokens: int, shuffle: bool = True, seed: int = 0):
        if max_tokens < 1:
            raise ValueError(f"max_tokens must be >= 1, got {max_tokens}")
        self.n_tokens, self.max_tokens, self.shuffle, self.seed = np.asarray(n_tokens), max_tokens, shuffle, seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def _batches(self) -> list[list[int]]:
        rng = np.random.default_rng([self.seed, self.epoch]) if self.shuffle else None
        return token_batches(self.n_tokens, self.max_tokens, rng)

    def __iter__(self):
        return iter(self._batches())

    def __len__(self) -> int:
        return len(self._batches())


def collate(batch: list[dict], pad_id: int) -> dict:
    """Right-pad a list of shard records into a training batch.

    Returns input_ids / labels / label_kind / attention_mask [B, L] (int64; labels padded with
    -100), and the records' item_id / sub_task / mode / condition lists and chunk_start / n_chunks tensors.
    """
    size = len(batch)
    length = max(len(r["input_ids"]) for r in batch)
    out = {
        "input_ids": torch.full((size, length), pad_id, dtype=torch.long),
        "labels": torch.full((size, length), IGNORE, dtype=torch.long),
        "label_kind": torch.full((size, length), layout.LABEL_NONE, dtype=torch.long),
        "attention_mask": torch.zeros((size, length), dtype=torch.long),
    }
    for b, rec in enumerate(batch):
        n = len(rec["input_ids"])
        out["input_ids"][b, :n] = rec["input_ids"]
        out["labels"][b, :n] = rec["labels"]
        out["label_kind"][b, :n] = rec["label_kind"]
        out["attention_mask"][b, :n] = 1
    for key in ("chunk_start", "n_chunks"):
        out[key] = torch.tensor([r[key] for r in batch], dtype=torch.long)
    for key in ("item_id", "sub_task", "mode", "condition"):
        out[key] = [r[key] for r in batch]
    return out
