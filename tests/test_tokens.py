"""Tokens stage: tokenizer, fbank, sample layout, timeline rebuild, CLI shards and the training dataset."""
from __future__ import annotations

import json
import re
import shutil
from functools import partial

import numpy as np
import polars as pl
import pytest
import torch
from torch.utils.data import DataLoader

from soundflow import layout
from soundflow.audio import AudioError, read_audio
from soundflow.tokens import features, samples, shards
from soundflow.tokens import tokenizer as tk
from soundflow.tokens.__main__ import main
from soundflow.tokens.dataset import ShardDataset, TokenBatchSampler, collate
from soundflow.tokens.decode import parse_stream

CFG = {"vocab_size": 2000, "max_chunks": 60, "shard_size": 16}
N_SPECIAL = len(layout.SPECIAL_TOKENS)


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    """Per-chunk fbank is small work: extra torch threads only contend for the shared cores."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def frames(smoke_corpus):
    return smoke_corpus[1]


@pytest.fixture(scope="module")
def tok(frames, tmp_path_factory):
    """Trained on the smoke train split, saved and loaded back as training and runtime will see it."""
    folder = tmp_path_factory.mktemp("tok") / "tokenizer"
    tk.train_tokenizer(tk.corpus_texts(frames["train"]), CFG["vocab_size"]).save_pretrained(str(folder))
    return tk.load(folder)


def ids_of(tok, *tokens):
    return tok.convert_tokens_to_ids(list(tokens))


def online_rows(frame):
    return list(frame.filter(pl.col("mode") == "online").iter_rows(named=True))


def respond_entries(row):
    return [{"chunk": e["chunk"], "text": e["text"], "emotion": e["emotion"]}
            for e in row["timeline"] if e["action"] == "respond"]


def rebuilt(sample_list, tok):
    out = []
    for s in sample_list:
        out += [{"chunk": d["chunk"], "text": d["text"], "emotion": d["emotion"]}
                for d in parse_stream(s.input_ids, tok, s.chunk_start) if d["action"] == "respond"]
    return out


# --------------------------------------------------------------------------- tokenizer

def test_tokenizer_round_trips_every_train_dev_test_text(frames, tok):
    texts = [t for split in ("train", "dev", "test") for t in tk.corpus_texts(frames[split])]
    assert any(re.search(r"[\u4e00-\u9fff]", t) for t in texts) and any(re.search("[a-z]", t) for t in texts)
    for text in texts:
        assert tk.decode(tok, tk.encode(tok, text)) == text
    for text in ("the alarm went off at seven", "会议八点开始", "龘 unseen 字符 mix"):  # unseen chars: bytes
        assert tk.decode(tok, tk.encode(tok, text)) == text


def test_a_word_is_the_same_tokens_first_or_mid_text(tok):
    # streaming ASR replies are one or two words: their first word must not be a token of its own
    for word in ("the", "alarm", "kitchen", "seven"):
        ids = tk.encode(tok, word)
        assert tk.encode(tok, f"open {word}")[-len(ids):] == ids
        assert tk.decode(tok, ids) == word


def test_tokenizer_special_ids_stable_and_cjk_not_merged(frames, tok):
    assert ids_of(tok, *layout.SPECIAL_TOKENS) == list(range(N_SPECIAL))
    assert tok.pad_token == layout.PAD and tok.pad_token_id == 0
    assert N_SPECIAL + 256 < len(tok) <= CFG["vocab_size"]
    # Chinese is split per character, so no token spans two characters.
    for token in tok.get_vocab():
        text = tk.decode(tok, [tok.convert_tokens_to_ids(token)])
        assert len(re.findall(r"[\u4e00-\u9fff]", text)) <= 1, text
    # Retraining on other text keeps the special ids where they are.
    other = tk.train_tokenizer(["completely different words", "别的句子"], 400)
    assert ids_of(other, *layout.SPECIAL_TOKENS) == list(range(N_SPECIAL))
    with pytest.raises(ValueError, match="vocab_size"):
        tk.train_tokenizer(["x"], 100)


# --------------------------------------------------------------------------- features

def test_fbank_is_40_frames_per_chunk_and_chunkwise(smoke_corpus, frames):
    corpus, _ = smoke_corpus
    row = frames["test"].row(0, named=True)
    audio = read_audio(corpus / row["audio"])
    n = samples.n_chunks(row)
    assert audio.size == n * features.CHUNK_SAMPLES
    feats = features.stream_fbank(audio)
    assert feats.shape == (40 * n, layout.N_MELS) and torch.isfinite(feats).all()
    assert features.fbank(audio).shape == (audio.size // 160, layout.N_MELS)
    # A runtime that sees one chunk at a time computes exactly the same frames.
    k = n // 2
    torch.testing.assert_close(feats[40 * k:40 * k + 40], features.fbank(audio[6400 * k:6400 * (k + 1)]))
    assert features.fbank(np.zeros(100, np.float32)).shape == (1, layout.N_MELS)
    with pytest.raises(ValueError, match="whole number"):
        features.stream_fbank(audio[:-1])


def test_feature_pool_matches_single_process(smoke_corpus, frames):
    corpus, _ = smoke_corpus
    paths = [corpus / a for a in frames["test"]["audio"][:3]]
    with shards.feature_map(1) as fmap:
        single = list(fmap(paths))
    with shards.feature_map(2) as fmap:
        pooled = list(fmap(paths))
    assert all(a.dtype == torch.float16 and torch.equal(a, b) for a, b in zip(single, pooled, strict=True))


# --------------------------------------------------------------------------- sample layout

def toy_row(mode="online", n=3, timeline=None, lang="en"):
    return {"id": "toy-0", "mode": mode, "lang": lang, "instruction": "say hi", "duration_s": n * 0.4,
            "timeline": timeline if timeline is not None else [
                {"chunk": 1, "action": "respond", "text": "hello world", "emotion": "happy"},
                {"chunk": 2, "action": "silent", "text": "", "emotion": "normal"}]}


def test_streaming_layout_exact_on_toy_row(tok):
    (sample,) = samples.build_streaming_sample(toy_row(), tok, max_chunks=60)
    reply = tk.encode(tok, "hello world")
    chunk = [layout.AUDIO_BEGIN, *[layout.AUDIO] * 10, layout.CHUNK_END]
    expect = (ids_of(tok, layout.ONLINE, "<lang_en>", layout.INSTR) + tk.encode(tok, "say hi")
              + ids_of(tok, *chunk, layout.SILENT)
              + ids_of(tok, *chunk, layout.RESPONSE, "<emo_happy>") + reply + ids_of(tok, layout.EOS)
              + ids_of(tok, *chunk, layout.SILENT))
    assert sample.input_ids == expect
    assert (sample.chunk_start, sample.n_chunks) == (0, 3)
    kinds = np.array(sample.label_kind)
    labelled = [i for i, k in enumerate(kinds) if k != layout.LABEL_NONE]
    stream = [i for i in labelled if kinds[i] == layout.LABEL_STREAM]
    assert [sample.input_ids[i] for i in stream] == ids_of(tok, layout.SILENT, layout.RESPONSE, layout.SILENT)
    lm = [sample.input_ids[i] for i in labelled if kinds[i] == layout.LABEL_LM]
    assert lm == ids_of(tok, "<emo_happy>") + reply + ids_of(tok, layout.EOS)
    assert all(sample.labels[i] == (sample.input_ids[i] if i in labelled else -100) for i in range(len(expect)))


def test_streaming_layout_counts_on_every_stream(frames, tok):
    audio_begin, audio, chunk_end, silent, response = ids_of(
        tok, layout.AUDIO_BEGIN, layout.AUDIO, layout.CHUNK_END, layout.SILENT, layout.RESPONSE)
    for row in online_rows(frames["train"]) + online_rows(frames["test"]):
        (s,) = samples.build_streaming_sample(row, tok, max_chunks=10_000)
        ids, kinds, labels = np.array(s.input_ids), np.array(s.label_kind), np.array(s.labels)
        n = samples.n_chunks(row)
        assert s.n_chunks == n and (ids == audio_begin).sum() == n and (ids == chunk_end).sum() == n
        assert (ids == audio).sum() == 10 * n
        assert ids[0] == tok.convert_tokens_to_ids(layout.ONLINE)
        assert ids[1] == tok.convert_tokens_to_ids(layout.lang_token(row["lang"]))
        decisions = ids[np.flatnonzero(ids == chunk_end) + 1]
        assert set(decisions) <= {silent, response} and len(decisions) == n
        assert (decisions == response).sum() == len(respond_entries(row))
        # Labels: decisions are L_stream, emotion/reply/<eos> are L_LM, nothing else is labelled.
        assert (kinds == layout.LABEL_STREAM).sum() == n
        assert set(ids[kinds == layout.LABEL_STREAM]) <= {silent, response}
        assert (labels != -100).sum() == (kinds != layout.LABEL_NONE).sum()
        assert (labels[kinds != layout.LABEL_NONE] == ids[kinds != layout.LABEL_NONE]).all()
        assert not np.isin(ids[kinds == layout.LABEL_LM], [audio_begin, audio, chunk_end, silent, response]).any()
        lm_count = sum(len(tk.encode(tok, e["text"])) + 2 for e in respond_entries(row))
        assert (kinds == layout.LABEL_LM).sum() == lm_count


def test_windows_keep_every_decision_once_and_repeat_prefix(frames, tok):
    row = max(online_rows(frames["test"]), key=lambda r: r["duration_s"])
    n = samples.n_chunks(row)
    (whole,) = samples.build_streaming_sample(row, tok, max_chunks=n)
    parts = samples.build_streaming_sample(row, tok, max_chunks=7)
    assert len(parts) == -(-n // 7) and max(p.n_chunks for p in parts) <= 7
    assert [c for p in parts for c in range(p.chunk_start, p.chunk_start + p.n_chunks)] == list(range(n))
    prefix = whole.input_ids[:whole.input_ids.index(tok.convert_tokens_to_ids(layout.AUDIO_BEGIN))]
    for p in parts:
        assert p.input_ids[:len(prefix)] == prefix
    decisions = [d for p in parts for d in parse_stream(p.input_ids, tok, p.chunk_start)]
    assert decisions == parse_stream(whole.input_ids, tok)
    assert [d["chunk"] for d in decisions] == list(range(n))
    assert sum(p.label_kind.count(layout.LABEL_STREAM) for p in parts) == n
    assert samples.windows(10, 4) == [(0, 4), (4, 3), (7, 3)]


def test_offline_layout(frames, tok):
    row = frames["train"].filter(pl.col("mode") == "offline").row(0, named=True)
    s = samples.build_offline_sample(row, tok)
    n = samples.n_chunks(row)
    (entry,) = respond_entries(row)
    expect = (ids_of(tok, layout.OFFLINE, layout.lang_token(row["lang"]), layout.AUDIO_BEGIN,
                     *[layout.AUDIO] * (10 * n), layout.CHUNK_END, layout.USER)
              + tk.encode(tok, row["instruction"])
              + ids_of(tok, layout.ASSISTANT, layout.emotion_token(entry["emotion"]))
              + tk.encode(tok, entry["text"]) + ids_of(tok, layout.EOS))
    assert s.input_ids == expect and (s.chunk_start, s.n_chunks) == (0, n)
    n_lm = len(tk.encode(tok, entry["text"])) + 2
    assert s.label_kind == [layout.LABEL_NONE] * (len(expect) - n_lm) + [layout.LABEL_LM] * n_lm
    assert s.labels[-n_lm:] == expect[-n_lm:] and set(s.labels[:-n_lm]) == {-100}


def test_bad_rows_name_the_item(tok):
    bad_chunk = toy_row(timeline=[{"chunk": 5, "action": "respond", "text": "x", "emotion": "normal"}])
    with pytest.raises(samples.SampleError, match="toy-0.*chunk 5"):
        samples.build_streaming_sample(bad_chunk, tok, 60)
    with pytest.raises(samples.SampleError, match="toy-0.*exactly one"):
        samples.build_offline_sample(toy_row(mode="offline", timeline=[]), tok)
    with pytest.raises(samples.SampleError, match="toy-0.*whole number"):
        samples.build_samples({**toy_row(), "duration_s": 1.0}, tok, 60)


# --------------------------------------------------------------------------- timeline rebuild (required)

@pytest.mark.parametrize("max_chunks", [60, 9])
def test_timeline_rebuilds_from_tokens_for_every_test_stream(frames, tok, max_chunks):
    rows = online_rows(frames["test"])
    assert rows and any(r["sub_task"] == "st_switch" for r in rows)
    for row in rows:
        assert rebuilt(samples.build_streaming_sample(row, tok, max_chunks), tok) == respond_entries(row), row["id"]


# --------------------------------------------------------------------------- CLI, shards, dataset

@pytest.fixture(scope="module")
def tokens_dir(smoke_corpus, tmp_path_factory):
    import os

    corpus, _ = smoke_corpus
    root = tmp_path_factory.mktemp("tokens")
    old = os.environ.get("MLFLOW_TRACKING_URI")
    os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{root / 'mlflow.db'}"
    try:
        rc = main(["build", "--cfg", json.dumps(CFG), "--corpus", str(corpus), "--out", str(root / "tokens"),
                   "--workers", "1"])
    finally:
        if old is None:
            os.environ.pop("MLFLOW_TRACKING_URI")
        else:
            os.environ["MLFLOW_TRACKING_URI"] = old
    assert rc == 0
    return root / "tokens"


def test_cli_writes_shards_index_stats(tokens_dir, frames):
    from mlflow.tracking import MlflowClient

    assert not [p for p in tokens_dir.parent.iterdir() if ".tmp" in p.name]  # temp folder renamed away
    stats = json.loads((tokens_dir / "stats.json").read_text())
    client = MlflowClient(f"sqlite:///{tokens_dir.parent / 'mlflow.db'}")
    (run,) = client.search_runs([e.experiment_id for e in client.search_experiments()], "tags.stage = 'tokens'")
    assert run.info.status == "FINISHED" and run.data.metrics["train_samples"] == stats["train"]["samples"]
    tok = tk.load(tokens_dir / "tokenizer")
    cmvn = features.Cmvn.load(tokens_dir / "cmvn.json")
    assert stats["vocab_size"] == len(tok)
    for split in shards.SPLITS:
        index = pl.read_parquet(tokens_dir / split / "index.parquet")
        frame = frames[split]
        assert set(index["item_id"]) == set(frame["id"])
        assert stats[split]["samples"] == index.height and stats[split]["items"] == frame.height
        assert stats[split]["tokens"] == index["n_tokens"].sum()
        assert stats[split]["hours"] == pytest.approx(frame["duration_s"].sum() / 3600)
        assert index.group_by("item_id").agg(pl.col("n_chunks").sum()).sort("item_id")["n_chunks"].to_list() == \
            [samples.n_chunks(r) for r in frame.sort("id").iter_rows(named=True)]
        assert index.filter(pl.col("mode") == "online")["n_chunks"].max() <= CFG["max_chunks"]
        loaded = {name: torch.load(tokens_dir / split / name, weights_only=True) for name in index["shard"].unique()}
        assert max(len(v) for v in loaded.values()) <= CFG["shard_size"]
        for entry in index.iter_rows(named=True):
            rec = loaded[entry["shard"]][entry["position"]]
            assert rec["item_id"] == entry["item_id"] and rec["chunk_start"] == entry["chunk_start"]
            assert rec["input_ids"].dtype == torch.int32 and rec["labels"].dtype == torch.int32
            assert rec["label_kind"].dtype == torch.int8 and len(rec["input_ids"]) == entry["n_tokens"]
            assert rec["features"].dtype == torch.float16
            assert rec["features"].shape == (40 * entry["n_chunks"], layout.N_MELS)
        if split == "train":  # normalised with the train statistics
            all_feats = torch.cat([r["features"].float() for v in loaded.values() for r in v])
            assert all_feats.mean(0).abs().max() < 0.05 and (all_feats.std(0) - 1).abs().max() < 0.05
            assert cmvn.frames == all_feats.shape[0]


def test_shard_record_matches_its_item(tokens_dir, smoke_corpus, frames):
    """A stored window holds the normalised fbank of its own chunks and the tokens of its decisions."""
    corpus, _ = smoke_corpus
    tok = tk.load(tokens_dir / "tokenizer")
    cmvn = features.Cmvn.load(tokens_dir / "cmvn.json")
    index = pl.read_parquet(tokens_dir / "test" / "index.parquet")
    entry = index.sort("chunk_start").row(-1, named=True)  # a later window when a stream was cut
    rec = torch.load(tokens_dir / "test" / entry["shard"], weights_only=True)[entry["position"]]
    row = frames["test"].filter(pl.col("id") == entry["item_id"]).row(0, named=True)
    assert (rec["sub_task"], rec["condition"], rec["mode"]) == (row["sub_task"], row["condition"], row["mode"])
    want = cmvn.apply(features.stream_fbank(read_audio(corpus / row["audio"])))
    frames_ = slice(40 * rec["chunk_start"], 40 * (rec["chunk_start"] + rec["n_chunks"]))
    torch.testing.assert_close(rec["features"].float(), want[frames_], atol=1e-2, rtol=1e-2)
    got = [d for d in parse_stream(rec["input_ids"].tolist(), tok, rec["chunk_start"]) if d["action"] == "respond"]
    lo, hi = rec["chunk_start"], rec["chunk_start"] + rec["n_chunks"]
    assert [{k: d[k] for k in ("chunk", "text", "emotion")} for d in got] == \
        [e for e in respond_entries(row) if lo <= e["chunk"] < hi]


def test_cli_bad_corpus_and_cfg_give_one_clear_error(tmp_path, capsys):
    out = tmp_path / "tokens"
    rc = main(["build", "--cfg", json.dumps(CFG), "--corpus", str(tmp_path / "nope"), "--out", str(out)])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and err == f"tokens: error: corpus manifest not found: {tmp_path / 'nope' / 'train.parquet'}"
    assert not out.exists()
    rc = main(["build", "--cfg", json.dumps({**CFG, "vocab": 3}), "--corpus", str(tmp_path), "--out", str(out)])
    assert rc == 2 and "unknown key 'vocab'" in capsys.readouterr().err
    rc = main(["build", "--cfg", json.dumps({"vocab_size": 2000, "max_chunks": 60}), "--corpus", str(tmp_path),
               "--out", str(out)])
    assert rc == 2 and "missing key 'shard_size'" in capsys.readouterr().err


def test_missing_audio_names_the_file_and_leaves_no_output(smoke_corpus, tmp_path):
    corpus, _ = smoke_corpus
    for split in shards.SPLITS:  # manifests without their audio folder
        shutil.copy(corpus / f"{split}.parquet", tmp_path / f"{split}.parquet")
    first = pl.read_parquet(tmp_path / "train.parquet")["audio"][0]
    with pytest.raises(AudioError, match=re.escape(str(tmp_path / first))):
        shards.build(CFG, tmp_path, tmp_path / "tokens", workers=1, progress=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"{s}.parquet" for s in sorted(shards.SPLITS)]


def test_dataset_batches_and_collate(tokens_dir):
    tok = tk.load(tokens_dir / "tokenizer")
    ds = ShardDataset(tokens_dir / "train", cache_shards=1)
    max_tokens = 2 * int(ds.n_tokens.max())
    sampler = TokenBatchSampler(ds.n_tokens, max_tokens=max_tokens, seed=3)
    batches = list(sampler)
    assert sorted(i for b in batches for i in b) == list(range(len(ds))) and len(sampler) == len(batches)
    assert all(len(b) * ds.n_tokens[b].max() <= max_tokens for b in batches)
    assert any(len(b) > 1 for b in batches)
    sampler.set_epoch(1)
    assert list(sampler) != batches  # reshuffled per epoch, deterministic per (seed, epoch)
    assert list(TokenBatchSampler(ds.n_tokens, max_tokens=max_tokens, seed=3)) == batches

    batch_ids = max(batches, key=len)
    recs = [ds[i] for i in batch_ids]
    out = collate(recs, pad_id=tok.pad_token_id)
    size, length = len(recs), max(len(r["input_ids"]) for r in recs)
    assert out["input_ids"].shape == out["labels"].shape == out["label_kind"].shape == (size, length)
    frames = max(r["features"].shape[0] for r in recs)
    assert out["features"].shape == (size, frames, layout.N_MELS) and out["features"].dtype == torch.float32
    assert out["feature_lens"].tolist() == [40 * r["n_chunks"] for r in recs]
    for b, rec in enumerate(recs):
        n = len(rec["input_ids"])
        assert out["input_ids"][b, :n].tolist() == rec["input_ids"].tolist()
        assert (out["input_ids"][b, n:] == tok.pad_token_id).all() and (out["labels"][b, n:] == -100).all()
        assert out["attention_mask"][b].sum() == n and (out["label_kind"][b, n:] == layout.LABEL_NONE).all()
        assert (out["features"][b, rec["features"].shape[0]:] == 0).all()
    assert out["item_id"] == [r["item_id"] for r in recs]

    loader = DataLoader(ds, batch_sampler=sampler, collate_fn=partial(collate, pad_id=tok.pad_token_id))
    assert sum(b["input_ids"].shape[0] for b in loader) == len(ds)
