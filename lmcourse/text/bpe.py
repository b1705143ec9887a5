"""Byte Pair Encoding (BPE, 字节对编码): learn subword units by merging frequent pairs.

Taught in chapter 6 (Transformer). The notes' recipe, in code:

1. start with a vocabulary of characters (or of the 256 bytes, ``byte_level=True``);
2. count every pair of adjacent symbols in the corpus, merge the most frequent pair
   into a new symbol, add it to the vocabulary;
3. repeat ``num_merges`` times.

A word never seen in training is still encoded, as a sequence of known subwords:
with the classic toy corpus, "lowest" becomes "low" + "est".

Pre-tokenisation splits text into words before BPE runs (merges never cross a word
boundary). ``pretokenize`` keeps the leading space with the word, as GPT-2 does, so
the pieces concatenate back to the text exactly and ``decode(encode(text)) == text``.

Counting all pairs again after every merge (``learn_merges_naive``) costs a pass
over the whole corpus per merge. ``learn_merges`` counts once, then after each merge
updates only the counts of the words that contained the merged pair, and keeps the
counts in a heap to find the next best pair: same merges, far less work.
"""
from __future__ import annotations

import heapq
import json
import re
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Mapping
from functools import lru_cache
from pathlib import Path

from lmcourse.errors import LMCourseError

#: Pre-tokenisation (GPT-2's idea, in Python's ``re``): an optional space followed by
#: letters, or digits, or other symbols; or a run of whitespace. Every character of any
#: text is matched by exactly one piece, so ``"".join(pretokenize(t)) == t``.
PATTERN = r" ?[^\W\d_]+| ?\d+| ?(?:[^\s\w]|_)+|\s+(?!\S)|\s+"
_PIECE = re.compile(PATTERN)

UNK = "<unk>"

Pair = tuple[str, str]


class BPEError(LMCourseError, ValueError):
    """Bad input to the BPE learner or encoder."""


def pretokenize(text: str) -> list[str]:
    """Split text into words, keeping each word's leading space: ``"a big cat" -> ["a", " big", " cat"]``.

    Taught in chapter 6 (Transformer).
    """
    if not isinstance(text, str):
        raise BPEError(f"pretokenize() takes a string, not {type(text).__name__}")
    return _PIECE.findall(text)


@lru_cache(maxsize=1)
def bytes_to_unicode() -> dict[int, str]:
    """GPT-2's map from the 256 byte values to printable characters (one character per byte).

    Byte-level BPE works on these characters, so every byte string is a string of
    known symbols and nothing is ever out of vocabulary. Taught in chapter 6 (Transformer).
    """
    keep = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    chars, extra = {}, 0
    for b in range(256):
        if b in keep:
            chars[b] = chr(b)
        else:
            chars[b] = chr(256 + extra)
            extra += 1
    return chars


def to_byte_chars(word: str) -> str:
    """A word's UTF-8 bytes, each written as its ``bytes_to_unicode`` character."""
    table = bytes_to_unicode()
    return "".join(table[b] for b in word.encode("utf-8"))


def from_byte_chars(symbols: str) -> str:
    """Inverse of ``to_byte_chars`` (invalid UTF-8 becomes U+FFFD)."""
    inverse = {c: b for b, c in bytes_to_unicode().items()}
    return bytes(inverse[c] for c in symbols).decode("utf-8", errors="replace")


def word_counts(text: str | Iterable[str], byte_level: bool = False) -> Counter[str]:
    """How often each pre-tokenised word occurs in ``text`` (a string or an iterable of lines).

    Taught in chapter 6 (Transformer).
    """
    lines = [text] if isinstance(text, str) else text
    counts: Counter[str] = Counter()
    for line in lines:
        counts.update(pretokenize(line))
    if byte_level:
        counts = Counter({to_byte_chars(w): c for w, c in counts.items()})
    return counts


def merge_symbols(symbols: list[str], pair: Pair) -> list[str]:
    """Replace every occurrence of ``pair`` in ``symbols`` (left to right) by the merged symbol.

    Taught in chapter 6 (Transformer).
    """
    a, b = pair
    out, i = [], 0
    while i < len(symbols):
        if i + 1 < len(symbols) and symbols[i] == a and symbols[i + 1] == b:
            out.append(a + b)
            i += 2
        else:
            out.append(symbols[i])
            i += 1
    return out


def _check_merge_args(counts: Mapping[str, int], num_merges: int) -> None:
    if not isinstance(num_merges, int) or num_merges < 1:
        raise BPEError(f"num_merges must be a positive int, not {num_merges!r}: BPE with zero merges learns nothing")
    if not counts or not any(counts.values()):
        raise BPEError("cannot learn BPE merges from an empty corpus: no words were given")


def learn_merges_naive(counts: Mapping[str, int], num_merges: int, min_frequency: int = 2) -> list[Pair]:
    """The notes' recipe, literally: recount every pair after every merge (slow; the reference).

    Taught in chapter 6 (Transformer).
    """
    _check_merge_args(counts, num_merges)
    words = {w: list(w) for w in counts}
    merges: list[Pair] = []
    for _ in range(num_merges):
        pairs: Counter[Pair] = Counter()
        for w, symbols in words.items():
            for pair in zip(symbols, symbols[1:]):
                pairs[pair] += counts[w]
        if not pairs:
            break
        best, count = min(pairs.items(), key=lambda kv: (-kv[1], kv[0]))  # most frequent; ties: smallest pair
        if count < min_frequency:
            break
        merges.append(best)
        words = {w: merge_symbols(s, best) for w, s in words.items()}
    return merges


def learn_merges(counts: Mapping[str, int], num_merges: int, min_frequency: int = 2,
                 on_merge: Callable[[int, Pair, int], None] | None = None) -> list[Pair]:
    """Learn up to ``num_merges`` merges from word counts, updating pair counts incrementally.

    Gives exactly the merges of ``learn_merges_naive`` (most frequent pair first, ties
    broken by the smallest pair). ``on_merge(step, pair, count)`` is called after each merge.
    Stops early when no pair occurs ``min_frequency`` times.

    Taught in chapter 6 (Transformer).
    """
    _check_merge_args(counts, num_merges)
    words = [list(w) for w in counts]            # the current symbols of each word type
    freq = [int(c) for c in counts.values()]     # how often each word type occurs
    pair_count: Counter[Pair] = Counter()        # pair -> occurrences in the corpus
    where: defaultdict[Pair, set[int]] = defaultdict(set)  # pair -> word types containing it
    for i, symbols in enumerate(words):
        for pair in zip(symbols, symbols[1:]):
            pair_count[pair] += freq[i]
            where[pair].add(i)
    heap = [(-c, p) for p, c in pair_count.items()]  # max-heap by count; stale entries skipped
    heapq.heapify(heap)

    merges: list[Pair] = []
    while len(merges) < num_merges and heap:
        neg, best = heapq.heappop(heap)
        if pair_count.get(best, 0) != -neg:
            continue                               # stale: this pair's count has changed since
        if -neg < min_frequency:
            break
        merges.append(best)
        changed: set[Pair] = set()
        for i in sorted(where.pop(best)):
            old = words[i]
            new = merge_symbols(old, best)
            if len(new) == len(old):
                continue                           # the pair no longer occurs in this word
            for pair in zip(old, old[1:]):         # take the word's old pairs out ...
                pair_count[pair] -= freq[i]
                changed.add(pair)
            for pair in zip(new, new[1:]):         # ... and put its new pairs in
                pair_count[pair] += freq[i]
                where[pair].add(i)
                changed.add(pair)
            words[i] = new
        for pair in changed:
            c = pair_count[pair]
            if c > 0:
                heapq.heappush(heap, (-c, pair))
            else:
                del pair_count[pair]
        if on_merge is not None:
            on_merge(len(merges), best, -neg)
    return merges


class BPE:
    """A trained BPE tokenizer: base symbols plus an ordered list of merges.

    ``BPE.train(text, num_merges)`` learns it; ``encode`` / ``decode`` map text to ids
    and back; ``save`` / ``load`` keep it as JSON. With ``byte_level=True`` the base
    symbols are the 256 bytes, so any Unicode text round-trips exactly.

    Taught in chapter 6 (Transformer).
    """

    def __init__(self, alphabet: Iterable[str], merges: Iterable[Pair], byte_level: bool = False):
        self.byte_level = bool(byte_level)
        self.alphabet = list(alphabet)
        self.merges: list[Pair] = [tuple(m) for m in merges]  # type: ignore[misc]
        if not self.alphabet:
            raise BPEError("a BPE vocabulary needs at least one base symbol; the alphabet is empty")
        self.specials = [] if self.byte_level else [UNK]
        self.itos: list[str] = self.specials + self.alphabet + [a + b for a, b in self.merges]
        self.stoi: dict[str, int] = {}
        for i, tok in enumerate(self.itos):      # a merge may rebuild an existing token: keep the first id
            self.stoi.setdefault(tok, i)
        self.ranks: dict[Pair, int] = {m: r for r, m in enumerate(self.merges)}
        self._cache: dict[str, list[str]] = {}

    # --- learning ----------------------------------------------------------------------
    @classmethod
    def train(cls, text: str | Iterable[str] | Mapping[str, int], num_merges: int, *, byte_level: bool = False,
              min_frequency: int = 2, on_merge: Callable[[int, Pair, int], None] | None = None) -> "BPE":
        """Learn ``num_merges`` merges from text (a string or lines) or from ready word counts."""
        if isinstance(text, Mapping):
            counts = Counter({(to_byte_chars(w) if byte_level else w): int(c) for w, c in text.items()})
        else:
            counts = word_counts(text, byte_level=byte_level)
        _check_merge_args(counts, num_merges)
        if byte_level:
            alphabet = [bytes_to_unicode()[b] for b in range(256)]
        else:
            alphabet = sorted({ch for w in counts for ch in w})
        merges = learn_merges(counts, num_merges, min_frequency=min_frequency, on_merge=on_merge)
        return cls(alphabet, merges, byte_level=byte_level)

    # --- encoding ------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.itos)

    def __repr__(self) -> str:
        kind = "byte-level" if self.byte_level else "character-level"
        return f"BPE({kind}, {len(self.alphabet)} base symbols, {len(self.merges)} merges, vocabulary {len(self)})"

    def segment(self, word: str) -> list[str]:
        """Subwords of one pre-tokenised word: apply the learned merges, earliest-learned first."""
        if word in self._cache:
            return self._cache[word]
        symbols = list(to_byte_chars(word) if self.byte_level else word)
        while len(symbols) > 1:
            ranked = [(self.ranks.get(p, len(self.ranks)), p) for p in zip(symbols, symbols[1:])]
            rank, pair = min(ranked)
            if rank == len(self.ranks):
                break                               # no known merge left in this word
            symbols = merge_symbols(symbols, pair)
        if len(self._cache) < 100_000:
            self._cache[word] = symbols
        return symbols

    def tokenize(self, text: str) -> list[str]:
        """Subword strings of ``text`` (byte-level: in ``bytes_to_unicode`` characters)."""
        return [s for word in pretokenize(text) for s in self.segment(word)]

    def encode(self, text: str) -> list[int]:
        """Token ids; a character never seen in training becomes ``<unk>`` (character-level only)."""
        unk = self.stoi.get(UNK, 0)
        return [self.stoi.get(s, unk) for s in self.tokenize(text)]

    def decode(self, ids: Iterable[int]) -> str:
        """Text from token ids: the subwords, concatenated (and turned back into bytes when byte-level)."""
        tokens = []
        for i in ids:
            i = int(i)
            if not 0 <= i < len(self.itos):
                raise BPEError(f"token id {i} is outside the vocabulary (0..{len(self.itos) - 1})")
            tokens.append(self.itos[i])
        text = "".join(tokens)
        return from_byte_chars(text) if self.byte_level else text

    def vocab(self) -> dict[str, int]:
        """Token -> id (the form ``tokenizers.models.BPE`` takes)."""
        return dict(self.stoi)

    # --- save / load ---------------------------------------------------------------------
    def to_dict(self) -> dict:
        return {"format": "lmcourse-bpe", "version": 1, "byte_level": self.byte_level,
                "alphabet": self.alphabet, "merges": [list(m) for m in self.merges]}

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), ensure_ascii=False, indent=0) + "\n", encoding="utf-8")

    @classmethod
    def load(cls, path: str | Path) -> "BPE":
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        if data.get("format") != "lmcourse-bpe":
            raise BPEError(f"{path} is not an lmcourse BPE file (no 'format': 'lmcourse-bpe')")
        return cls(data["alphabet"], [tuple(m) for m in data["merges"]], byte_level=data["byte_level"])

    def to_tokenizers_model(self):
        """The same vocabulary and merges as a Hugging Face ``tokenizers.models.BPE`` model."""
        from tokenizers.models import BPE as HFBPE

        return HFBPE(vocab=self.vocab(), merges=list(self.merges), unk_token=None if self.byte_level else UNK)


__all__ = ["BPE", "BPEError", "PATTERN", "UNK", "bytes_to_unicode", "learn_merges", "learn_merges_naive",
           "merge_symbols", "pretokenize", "word_counts"]
