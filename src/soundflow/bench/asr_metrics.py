"""Scoring for benchmark 1 (real-time ASR): text normalisation, WER and streaming latency/stability.

Pure functions, no model. Definitions (reference/peers.md section 3.1, DESIGN section 8):

Normalisation (`normalize`): lower case, NFKC; numbers spelled out as English words the way the
corpus references spell them ("22" -> "twenty two", "305" -> "three hundred five", "7th" ->
"seventh", "$58" -> "fifty eight dollars", "10:15" / "10.15" -> "ten fifteen", "11:00" ->
"eleven o clock", "3.5" -> "three point five", "40%" -> "forty percent", "1,000" -> "one
thousand"); "&" -> "and"; "o'clock" -> "o clock", other apostrophes dropped ("don't" -> "dont");
every other character that is not a letter or digit becomes a space (hyphens included, so
"twenty-two" -> "twenty two"); runs of spaces collapse. A number with two digits after "." or ":"
and an hour part <= 24 is read as a clock time, so "3.14" reads "three fourteen" (the corpus has
no decimals with two places). The corpus references are already in this form (soundflow.data.text),
so normalising them is the identity.

WER (`wer`) = (S + D + I) / N summed over the corpus (not a mean of per-utterance WERs), after
normalising both sides, with jiwer's word alignment. An empty hypothesis counts as all deletions;
an empty reference with a non-empty hypothesis counts all hypothesis words as insertions; at
least one reference word is needed in the corpus.

Streaming metrics take `partials`: a list of (t, text) for ONE utterance, where t is the time in
seconds in the stream (stream start = 0) at which `text`, the full current hypothesis for that
utterance, became available, in non-decreasing t; the last entry is the final transcript.
Texts are compared after `normalize`, as word lists, so a change in case or punctuation alone is
no revision. For a computation-aware simulation (peers.md: processing time counts) the caller
puts the time the hypothesis was actually ready into t (audio time + compute), see
soundflow.bench.peers.PocketsphinxPeer.stream(compute_aware=True).

- time to first partial (TTFT) = t of the first partial with at least one word - speech start
  (the utterance's reference start_s). None when no partial has a word.
- finalization latency = t at which the hypothesis reaches its final value - speech end (end_s),
  where that t is the earliest partial from which every later partial equals the final one.
  NOT clamped: a negative value means the final transcript was out before the labelled end of
  speech (an append-only system that already emitted the last word; labels include some
  trailing silence). Clamping at 0 would bias the mean upwards. None when the final is empty.
- flicker = Normalized Erasure (peers.md, simulstream/LiveLingo) in words:
  sum over consecutive partials (prev, new) of (len(prev) - len(LCP(prev, new))) divided by the
  number of words in the final transcript (divided by 1 when the final is empty). LCP is the
  longest common word prefix, so it counts the already-displayed words that had to be erased.
  0 for append-only output; `erased_words` gives the raw count.
  Example: "a" -> "a b" -> "a c d" -> "a c d e": erased 0 + 1 + 0 = 1, final 4 words, flicker 0.25.
"""
from __future__ import annotations

import math
import re
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass

import jiwer

from soundflow.bench import bootstrap
from soundflow.data.text import number_words
from soundflow.layout import CHUNK_SECONDS

Partials = Sequence[tuple[float, str]]

# ---------------------------------------------------------------------------
# normalisation

_SCALES = ((10**12, "trillion"), (10**9, "billion"), (10**6, "million"), (1000, "thousand"))
_ORDINAL_IRREGULAR = {"one": "first", "two": "second", "three": "third", "five": "fifth",
                      "eight": "eighth", "nine": "ninth", "twelve": "twelfth"}
_CURRENCY = {"$": ("dollars", "cents"), "£": ("pounds", "pence"), "€": ("euros", "cents")}


def spell_number(n: int) -> str:
    """English words for a non-negative integer, corpus style (no "and"): 1205 -> "one thousand two
    hundred five", 2000000 -> "two million"."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 0:
        raise ValueError(f"spell_number needs a non-negative int, got {n!r}")
    if n < 10000:
        return number_words(n)
    for scale, name in _SCALES:
        if n >= scale:
            head = f"{spell_number(n // scale)} {name}"
            return head if n % scale == 0 else f"{head} {spell_number(n % scale)}"
    raise AssertionError("unreachable")  # n >= 10000 always meets the thousand scale


def ordinal_words(n: int) -> str:
    """Ordinal in words: 1 -> "first", 22 -> "twenty second", 30 -> "thirtieth", 100 -> "one hundredth"."""
    *head, last = spell_number(n).split()
    if last in _ORDINAL_IRREGULAR:
        last = _ORDINAL_IRREGULAR[last]
    elif last.endswith("y"):
        last = last[:-1] + "ieth"
    else:
        last += "th"
    return " ".join([*head, last])


def _digits(s: str) -> str:
    return " ".join(number_words(int(d)) for d in s)


def _clock(m: re.Match) -> str:
    hour, minute = int(m.group(1)), int(m.group(2))
    if hour > 24 or minute > 59:
        return f" {spell_number(hour)} point {_digits(m.group(2))} "
    if minute == 0:
        return f" {spell_number(hour)} o clock "
    return f" {spell_number(hour)} {'oh ' if minute < 10 else ''}{spell_number(minute)} "


def _money(m: re.Match) -> str:
    major, minor = _CURRENCY[m.group(1)]
    out = f" {spell_number(int(m.group(2)))} {major}"
    if m.group(3) and int(m.group(3)):
        out += f" {spell_number(int(m.group(3)))} {minor}"
    return out + " "


def normalize(text: str) -> str:
    """Lower case, digits spelled out, punctuation stripped, single spaces (see module docstring)."""
    if not isinstance(text, str):
        raise TypeError(f"normalize needs a str, got {type(text).__name__}")
    s = unicodedata.normalize("NFKC", text).lower()
    s = s.replace("’", "'").replace("&", " and ")
    s = re.sub(r"\bo'\s*clock\b", "o clock", s)
    s = s.replace("'", "")
    s = re.sub(r"(?<=\d),(?=\d{3}\b)", "", s)  # thousands separators
    s = re.sub(r"([$£€])\s*(\d+)(?:\.(\d{2}))?\b", _money, s)
    s = re.sub(r"(\d+(?:\.\d+)?)\s*%", r"\1 percent", s)
    s = re.sub(r"\b(\d{1,2})[:.](\d{2})\b(?:\s*o clock\b)?", _clock, s)
    s = re.sub(r"\b(\d+)(?:st|nd|rd|th)\b", lambda m: f" {ordinal_words(int(m.group(1)))} ", s)
    s = re.sub(r"(\d+)\.(\d+)", lambda m: f" {spell_number(int(m.group(1)))} point {_digits(m.group(2))} ", s)
    s = re.sub(r"\d+", lambda m: f" {spell_number(int(m.group()))} ", s)
    s = re.sub(r"[^\w\s]|_", " ", s)
    return " ".join(s.split())


# ---------------------------------------------------------------------------
# WER


def _as_list(x, name: str) -> list[str]:
    items = [x] if isinstance(x, str) else list(x)
    for item in items:
        if not isinstance(item, str):
            raise TypeError(f"{name} must be str or a sequence of str, got an item of type {type(item).__name__}")
    return items


def wer_counts(refs: str | Sequence[str], hyps: str | Sequence[str]) -> dict:
    """Corpus totals after normalisation: substitutions, deletions, insertions, hits, ref_words, wer; and ci95, the
    95 % bootstrap interval of the wer resampling the pairs (None for a single pair)."""
    refs, hyps = _as_list(refs, "refs"), _as_list(hyps, "hyps")
    if len(refs) != len(hyps):
        raise ValueError(f"wer: {len(refs)} references but {len(hyps)} hypotheses")
    pairs = [pair_counts(ref, hyp) for ref, hyp in zip(refs, hyps)]  # one alignment per pair, for both
    tot = {key: sum(c[key] for c in pairs) for key in ("substitutions", "deletions", "insertions", "hits", "ref_words")}
    if tot["ref_words"] == 0:
        raise ValueError("wer: every reference is empty after normalisation (no words to score)")
    tot["wer"] = _errors(tot) / tot["ref_words"]
    tot["ci95"] = bootstrap.interval([(_errors(c), c["ref_words"]) for c in pairs], bootstrap.ratio)
    return tot


def _errors(counts: dict) -> int:
    return counts["substitutions"] + counts["deletions"] + counts["insertions"]


def pair_counts(ref: str, hyp: str) -> dict:
    """Substitutions, deletions, insertions, hits and ref_words of one normalised reference/hypothesis pair."""
    r, h = normalize(ref).split(), normalize(hyp).split()
    if not r or not h:  # jiwer refuses empty strings in some versions: count by hand
        return dict(substitutions=0, deletions=len(r), insertions=len(h), hits=0, ref_words=len(r))
    out = jiwer.process_words(" ".join(r), " ".join(h))
    return {key: getattr(out, key) for key in ("substitutions", "deletions", "insertions", "hits")} | {"ref_words": len(r)}


def wer_interval(refs: Sequence[str], hyps: Sequence[str]) -> list[float] | None:
    """95 % bootstrap interval of the corpus WER, resampling the reference/hypothesis pairs."""
    return wer_counts(list(refs), list(hyps))["ci95"]


def wer(refs: str | Sequence[str], hyps: str | Sequence[str]) -> float:
    """Corpus-level WER (S + D + I) / N over normalised words (see module docstring)."""
    return float(wer_counts(refs, hyps)["wer"])


# ---------------------------------------------------------------------------
# streaming latency and stability


def _words(partials: Partials) -> list[tuple[float, list[str]]]:
    out, last = [], -math.inf
    for i, item in enumerate(partials):
        try:
            t, text = item
            t = float(t)
        except (TypeError, ValueError):
            raise ValueError(f"partials[{i}] must be (time_s, text), got {item!r}") from None
        if not math.isfinite(t):
            raise ValueError(f"partials[{i}]: time {t} is not finite")
        if t < last:
            raise ValueError(f"partials[{i}]: time {t} is before the previous partial's {last}")
        last = t
        out.append((t, normalize(text).split()))
    return out


def time_to_first_partial(partials: Partials, start_s: float) -> float | None:
    """t of the first partial with a word - speech start; None if no partial has a word."""
    for t, words in _words(partials):
        if words:
            return t - float(start_s)
    return None


def finalization_time(partials: Partials) -> float | None:
    """Earliest t from which every partial equals the final; None if none or the final is empty."""
    seq = _words(partials)
    if not seq or not seq[-1][1]:
        return None
    final = seq[-1][1]
    i = len(seq) - 1
    while i > 0 and seq[i - 1][1] == final:
        i -= 1
    return seq[i][0]


def finalization_latency(partials: Partials, end_s: float) -> float | None:
    """finalization_time - speech end, signed (not clamped); None if there is no final text."""
    t = finalization_time(partials)
    return None if t is None else t - float(end_s)


def _lcp(a: list[str], b: list[str]) -> int:
    n = 0
    for x, y in zip(a, b):
        if x != y:
            break
        n += 1
    return n


def erased_words(partials: Partials) -> int:
    """Sum over consecutive partials of words of the previous one beyond their common prefix."""
    seq = [w for _, w in _words(partials)]
    return sum(len(prev) - _lcp(prev, new) for prev, new in zip(seq, seq[1:]))


def flicker(partials: Partials) -> float:
    """Normalized Erasure in words: erased_words / words in the final (1 if the final is empty)."""
    seq = _words(partials)
    if not seq:
        return 0.0
    return erased_words(partials) / max(len(seq[-1][1]), 1)


def append_only_partials(chunk_texts: Sequence[str] | Mapping[int, str], chunk_s: float = CHUNK_SECONDS,
                         offset_s: float = 0.0) -> list[tuple[float, str]]:
    """Cumulative partials of a system that appends one text piece per chunk.

    chunk_texts[i] (a sequence, "" for a silent chunk, or a mapping chunk index -> piece) is the piece
    emitted at the end of chunk i, i.e. at offset_s + (i + 1) * chunk_s; the partial at that time is
    the concatenation of all pieces so far. One partial per chunk that emitted a piece (all chunks
    for a sequence), so flicker is 0 by construction.
    """
    if not chunk_s > 0:
        raise ValueError(f"chunk_s must be > 0, got {chunk_s}")
    if isinstance(chunk_texts, Mapping):
        items = sorted(chunk_texts.items())
        if items and (not isinstance(items[0][0], int) or items[0][0] < 0):
            raise ValueError(f"chunk indexes must be non-negative ints, got {items[0][0]!r}")
    else:
        items = list(enumerate(chunk_texts))
    out, pieces = [], []
    for i, piece in items:
        if not isinstance(piece, str):
            raise TypeError(f"chunk {i}: piece must be str, got {type(piece).__name__}")
        if piece.strip():
            pieces.append(piece.strip())
        out.append((round(offset_s + (i + 1) * chunk_s, 6), " ".join(pieces)))
    return out


@dataclass(frozen=True)
class StreamScores:
    """Streaming metrics of one utterance (seconds; None where undefined, see module docstring)."""

    first_partial_s: float | None
    finalization_s: float | None
    flicker: float
    erased_words: int
    final_words: int
    final_text: str

    def as_dict(self) -> dict:
        return asdict(self)


def stream_scores(partials: Partials, start_s: float, end_s: float) -> StreamScores:
    """All streaming metrics of one utterance whose reference speech spans [start_s, end_s]."""
    if not end_s >= start_s:
        raise ValueError(f"speech end {end_s} is before its start {start_s}")
    final = normalize(partials[-1][1]) if len(partials) else ""
    return StreamScores(
        first_partial_s=time_to_first_partial(partials, start_s),
        finalization_s=finalization_latency(partials, end_s),
        flicker=flicker(partials),
        erased_words=erased_words(partials),
        final_words=len(final.split()),
        final_text=final,
    )


def summarize_streams(scores: Sequence[StreamScores]) -> dict:
    """Corpus summary: mean TTFT / finalization over utterances where defined (with the count of
    undefined ones) and corpus flicker = total erased words / total final words."""
    def mean(values):
        values = [v for v in values if v is not None]
        return sum(values) / len(values) if values else None

    final = sum(s.final_words for s in scores)
    return {
        "utterances": len(scores),
        "first_partial_s": mean(s.first_partial_s for s in scores),
        "finalization_s": mean(s.finalization_s for s in scores),
        "no_partial": sum(s.first_partial_s is None for s in scores),
        "no_final": sum(s.finalization_s is None for s in scores),
        "flicker": sum(s.erased_words for s in scores) / max(final, 1),
        "ci95": {  # resampling utterances
            "first_partial_s": bootstrap.mean_interval([s.first_partial_s for s in scores]),
            "finalization_s": bootstrap.mean_interval([s.finalization_s for s in scores]),
            "flicker": bootstrap.interval([(s.erased_words, s.final_words) for s in scores],
                                          lambda sums: sums[0] / max(sums[1], 1)),
        },
    }
