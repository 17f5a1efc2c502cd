"""Tokens stage (text only): tokenizer, sample layout, timeline rebuild, CTC segments, CLI shards and the
training dataset."""
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
from soundflow.tokens import ctc, samples, shards
from soundflow.tokens import tokenizer as tk
from soundflow.tokens.__main__ import main
from soundflow.tokens.dataset import ShardDataset, TokenBatchSampler, collate
from soundflow.tokens.decode import parse_stream

CFG = {"vocab_size": 2000, "max_chunks": 60, "shard_size": 16}
N_SPECIAL = len(layout.SPECIAL_TOKENS)


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


# --------------------------------------------------------------------------- CTC segments

def speech_turn(start_s, end_s, label, voice="espeak:en-us+m1", kind="speech"):
    return {"start_s": start_s, "end_s": end_s,
            "pieces": json.dumps([{"kind": kind, "voice": voice, "label": label}])}


def test_ctc_segments_are_tower_frame_spans_with_context_and_char_targets():
    two_clips = {"start_s": 3.0, "end_s": 3.3, "pieces": json.dumps(
        [{"kind": "speech", "voice": "espeak:en-us+m1", "label": "a"}] * 2)}
    row = {"id": "toy-1", "condition": "heldout_voice", "turns": [
        speech_turn(0.05, 1.01, "hello world"),  # the 100 ms context before it is cut at the stream start
        speech_turn(2.01, 2.81, "it's seven"),
        speech_turn(2.9, 3.0, "你好", voice="espeak:cmn-latn-pinyin+m1"),  # not English
        two_clips,  # not one clip
        speech_turn(3.4, 3.7, "a dog", kind="event"),  # not speech
        speech_turn(3.5, 3.9, "Hello!"),  # outside the CTC alphabet
        speech_turn(4.41, 4.78, "end"),  # the context after it is cut at the stream end
    ]}
    segs = ctc.segments(row, n_frames=120)  # 12 chunks of 10 tower frames
    assert [(s["start"], s["end"]) for s in segs] == [(0, 28), (47, 73), (107, 120)]
    assert [s["text"] for s in segs] == ["hello world", "it's seven", "end"]
    for seg, turn in zip(segs, [row["turns"][i] for i in (0, 1, 6)]):
        assert seg["item_id"] == "toy-1" and seg["condition"] == "heldout_voice" and seg["voice"] == "espeak:en-us+m1"
        assert seg["target"].dtype == torch.int8 and ctc.ids_to_text(seg["target"].tolist()) == seg["text"]
        assert seg["start"] * ctc.FRAME_S <= turn["start_s"] and turn["end_s"] <= seg["end"] * ctc.FRAME_S
    assert ctc.char_ids("Hello") is None and ctc.char_ids("") is None and ctc.VOCAB_SIZE == len(ctc.CHARS) + 1


# --------------------------------------------------------------------------- CLI, shards, dataset

@pytest.fixture(scope="module")
def tokens_dir(smoke_corpus, tmp_path_factory):
    import os

    corpus, _ = smoke_corpus
    root = tmp_path_factory.mktemp("tokens")
    old = os.environ.get("MLFLOW_TRACKING_URI")
    os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{root / 'mlflow.db'}"
    try:
        rc = main(["build", "--cfg", json.dumps(CFG), "--corpus", str(corpus), "--out", str(root / "tokens")])
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
    assert stats["vocab_size"] == len(tok)
    assert sorted(p.name for p in tokens_dir.iterdir()) == ["dev", "stats.json", "test", "tokenizer", "train"]
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
            assert "features" not in rec  # text only: the audio's frames come from the frame cache
            assert rec["n_chunks"] == entry["n_chunks"]


def test_shard_record_matches_its_item(tokens_dir, smoke_corpus, frames):
    """A stored window names its item and chunk span (its frames' place in the frame cache) and holds the
    tokens of its decisions."""
    tok = tk.load(tokens_dir / "tokenizer")
    index = pl.read_parquet(tokens_dir / "test" / "index.parquet")
    entry = index.sort("chunk_start").row(-1, named=True)  # a later window when a stream was cut
    rec = torch.load(tokens_dir / "test" / entry["shard"], weights_only=True)[entry["position"]]
    row = frames["test"].filter(pl.col("id") == entry["item_id"]).row(0, named=True)
    assert (rec["sub_task"], rec["condition"], rec["mode"]) == (row["sub_task"], row["condition"], row["mode"])
    assert rec["chunk_start"] + rec["n_chunks"] <= samples.n_chunks(row)
    audio_slots = rec["input_ids"] == tok.convert_tokens_to_ids(layout.AUDIO)
    assert int(audio_slots.sum()) == layout.FRAMES_PER_CHUNK * rec["n_chunks"]
    got = [d for d in parse_stream(rec["input_ids"].tolist(), tok, rec["chunk_start"]) if d["action"] == "respond"]
    lo, hi = rec["chunk_start"], rec["chunk_start"] + rec["n_chunks"]
    assert [{k: d[k] for k in ("chunk", "text", "emotion")} for d in got] == \
        [e for e in respond_entries(row) if lo <= e["chunk"] < hi]


def test_ctc_segments_of_every_split_lie_inside_their_items(tokens_dir, frames):
    stats = json.loads((tokens_dir / "stats.json").read_text())
    for split in shards.SPLITS:
        segs = torch.load(tokens_dir / split / "ctc.pt", weights_only=True)
        rows = {r["id"]: r for r in online_rows(frames[split])}
        assert stats[split]["ctc_segments"] == len(segs) and (split == "test" or segs)
        assert stats[split]["ctc_hours"] == pytest.approx(sum(s["end"] - s["start"] for s in segs) * 0.04 / 3600)
        for seg in segs:
            row = rows[seg["item_id"]]
            assert 0 <= seg["start"] < seg["end"] <= samples.n_chunks(row) * layout.FRAMES_PER_CHUNK
            assert seg["target"].tolist() == ctc.char_ids(seg["text"]) and seg["condition"] == row["condition"]
            turns = [t for t in row["turns"] if json.loads(t["pieces"])[0].get("label") == seg["text"]]
            assert any(seg["start"] * ctc.FRAME_S <= max(t["start_s"] - ctc.CONTEXT_S, 0) + 1e-9
                       and t["end_s"] <= seg["end"] * ctc.FRAME_S for t in turns)


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


def test_tokens_need_only_the_manifests_and_a_failed_build_leaves_no_output(smoke_corpus, tokens_dir, tmp_path):
    """The stage reads no audio (manifests alone give the same shards); a bad item stops it with the item's
    name and leaves neither the output nor its temp folder behind."""
    corpus, _ = smoke_corpus
    for split in shards.SPLITS:  # manifests without their audio folder
        shutil.copy(corpus / f"{split}.parquet", tmp_path / f"{split}.parquet")
    stats = shards.build(CFG, tmp_path, tmp_path / "tokens")
    assert stats == json.loads((tokens_dir / "stats.json").read_text())
    for split in shards.SPLITS:
        assert (pl.read_parquet(tmp_path / "tokens" / split / "index.parquet")
                .equals(pl.read_parquet(tokens_dir / split / "index.parquet")))
    frame = pl.read_parquet(tmp_path / "dev.parquet")
    bad_id = frame["id"][0]
    frame.with_columns(pl.when(pl.col("id") == bad_id).then(pl.col("duration_s") + 0.1)
                       .otherwise(pl.col("duration_s")).alias("duration_s")).write_parquet(tmp_path / "dev.parquet")
    before = (tmp_path / "tokens" / "stats.json").read_text()
    with pytest.raises(samples.SampleError, match=re.escape(bad_id)):
        shards.build(CFG, tmp_path, tmp_path / "tokens")
    assert (tmp_path / "tokens" / "stats.json").read_text() == before  # the earlier output is untouched
    assert not [p for p in tmp_path.iterdir() if ".tmp" in p.name]


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
    assert "features" not in out and "feature_lens" not in out
    assert out["n_chunks"].tolist() == [r["n_chunks"] for r in recs]
    assert out["chunk_start"].tolist() == [r["chunk_start"] for r in recs]
    for b, rec in enumerate(recs):
        n = len(rec["input_ids"])
        assert out["input_ids"][b, :n].tolist() == rec["input_ids"].tolist()
        assert (out["input_ids"][b, n:] == tok.pad_token_id).all() and (out["labels"][b, n:] == -100).all()
        assert out["attention_mask"][b].sum() == n and (out["label_kind"][b, n:] == layout.LABEL_NONE).all()
    assert out["item_id"] == [r["item_id"] for r in recs]

    loader = DataLoader(ds, batch_sampler=sampler, collate_fn=partial(collate, pad_id=tok.pad_token_id))
    assert sum(b["input_ids"].shape[0] for b in loader) == len(ds)
