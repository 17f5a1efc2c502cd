"""95 % bootstrap intervals of the benchmark numbers (soundflow.bench.bootstrap) and how the summary prints them."""
import numpy as np
import pytest
import sacrebleu

from soundflow.bench import bootstrap
from soundflow.bench import proactive as P
from soundflow.bench.asr_metrics import pair_counts, wer, wer_counts, wer_interval
from soundflow.bench.st import corpus_interval
from soundflow.bench.summary import cell, interval_of


def test_interval_of_a_share_is_seeded_and_brackets_the_value():
    hits = [True] * 30 + [False] * 10
    low, high = bootstrap.share_interval(hits)
    assert low < 0.75 < high and 0.5 < low and high < 0.95
    assert bootstrap.share_interval(hits) == [low, high]  # fixed seed: the same interval every run
    assert bootstrap.share_interval([True] * 8) == [1.0, 1.0]


def test_interval_needs_two_items_and_a_defined_score():
    assert bootstrap.share_interval([True]) is None
    assert bootstrap.mean_interval([None, None, 3.0]) is None
    assert bootstrap.interval([(0, 0), (0, 0), (0, 0)], bootstrap.ratio) is None  # 0/0 in every resample


def test_interval_narrows_with_more_items():
    rng = np.random.default_rng(1)
    small = bootstrap.share_interval(rng.random(20) < 0.5)
    large = bootstrap.share_interval(rng.random(2000) < 0.5)
    assert large[1] - large[0] < (small[1] - small[0]) / 4


def test_wer_interval_resamples_pairs_whose_counts_sum_to_the_corpus_wer():
    refs = ["the cat sat on the mat", "a dog barks", "it is three pm", "hello there"]
    hyps = ["the cat sat on a mat", "a dog", "", "hello there"]
    counts = [pair_counts(r, h) for r, h in zip(refs, hyps)]
    errors = sum(c["substitutions"] + c["deletions"] + c["insertions"] for c in counts)
    assert errors / sum(c["ref_words"] for c in counts) == pytest.approx(wer(refs, hyps))
    assert sum(c["ref_words"] for c in counts) == wer_counts(refs, hyps)["ref_words"]
    low, high = wer_interval(refs, hyps)
    assert low <= wer(refs, hyps) <= high and low >= 0.0


def test_sacrebleu_interval_brackets_the_corpus_score():
    refs = ["the kettle is boiling", "please turn it off", "we are having salad", "the train leaves at noon"] * 3
    hyps = ["the kettle is boiling", "please turn off", "we have salad", "a train leaves at noon"] * 3
    for metric in (sacrebleu.metrics.BLEU(), sacrebleu.metrics.CHRF()):
        low, high = corpus_interval(metric, hyps, refs)
        assert low <= metric.corpus_score(hyps, [refs]).score <= high and low < high


def test_proactive_score_intervals_resample_streams():
    events = [{"start_s": 1.0, "end_s": 2.0, "action": "respond"}, {"start_s": 5.0, "end_s": 6.0, "action": "ignore"}]
    right = [False] * 20
    right[3] = True  # responds inside the respond event's window only
    wrong = [False] * 20
    streams = [(events, right)] * 3 + [(events, wrong)] * 2
    s = P.score(streams)
    assert s["accuracy"] == pytest.approx(0.8)
    low, high = s["ci95"]["accuracy"]
    assert low <= 0.8 <= high and high <= 1.0 and low >= 0.5
    assert set(s["ci95"]) == {"accuracy", "precision", "recall", "f1", "latency_mean_s", "false_alarms_per_hour"}
    assert s["ci95"]["false_alarms_per_hour"] is None  # no must-ignore stream
    assert "ci95" not in P.score(streams, ci=False)


def test_summary_cell_prints_the_interval_of_a_top_level_or_nested_key():
    data = {"wer": 0.5, "ci95": {"wer": [0.4, 0.61]}, "sync": {"resume_ms": 12.0, "ci95": {"resume_ms": [10.0, 14.5]}},
            "rtf": 0.1}
    assert cell(data, "wer") == "0.500 [0.400, 0.610]"
    assert cell(data, "sync.resume_ms") == "12.000 [10.000, 14.500]"
    assert cell(data, "rtf") == "0.100" and interval_of(data, "rtf") is None
    assert interval_of({"wer": 0.5, "ci95": {"wer": None}}, "wer") is None
