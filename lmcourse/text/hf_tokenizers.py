"""Hugging Face ``tokenizers`` in practice: train, post-process, measure.

Taught in chapter 21 (Tokenizers in practice). The notes' recipe, as functions:

    files = corpus_files("wiki", folder)                       # wiki.{test,train,valid}.raw
    tok = train_tokenizer(files, kind="bpe")                   # BPE + [UNK], Whitespace, 5 specials at ids 0..4
    tok.post_processor = template_processor(tok)               # [CLS] $A [SEP]  /  [CLS] $A [SEP] $B:1 [SEP]:1
    tokens_per_word(tok, lines), unknown_rate(tok, lines)      # compare BPE / WordPiece / Unigram on held-out text
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterable, Sequence

from tokenizers import Tokenizer
from tokenizers.models import BPE, Unigram, WordPiece
from tokenizers.pre_tokenizers import Whitespace
from tokenizers.processors import TemplateProcessing
from tokenizers.trainers import BpeTrainer, UnigramTrainer, WordPieceTrainer

SPECIAL_TOKENS = ("[UNK]", "[CLS]", "[SEP]", "[PAD]", "[MASK]")   # the notes' list: ids 0, 1, 2, 3, 4
UNK = SPECIAL_TOKENS[0]
KINDS = ("bpe", "wordpiece", "unigram")


def corpus_files(name: str, folder: str | Path, splits: Sequence[str] = ("test", "train", "valid")) -> list[Path]:
    """Write a shipped corpus (``lmcourse.data.load_corpus(name)``) as ``wiki.<split>.raw`` text files.

    The names copy WikiText-103's raw files, so the notes' file list works unchanged.
    Taught in chapter 21 (Tokenizers in practice).
    """
    from lmcourse.data import load_corpus
    corpus = load_corpus(name)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    files = []
    for split in splits:
        path = folder / f"wiki.{split}.raw"
        path.write_text(corpus.text(split), encoding="utf-8")
        files.append(path)
    return files


def train_tokenizer(files: Iterable[str | Path], kind: str = "bpe", vocab_size: int = 30000,
                    special_tokens: Sequence[str] = SPECIAL_TOKENS, show_progress: bool = False) -> Tokenizer:
    """Train a ``tokenizers.Tokenizer`` of one model kind the notes' way.

    ``kind`` is "bpe", "wordpiece" or "unigram"; the unknown token is ``special_tokens[0]``,
    the special tokens get ids 0, 1, ... in order, and the pre-tokenizer is ``Whitespace``.
    Taught in chapter 21 (Tokenizers in practice).
    """
    files = [str(f) for f in files]
    if kind not in KINDS:
        raise ValueError(f"unknown tokenizer kind {kind!r}; choose one of {', '.join(KINDS)}")
    if not files:
        raise ValueError("train_tokenizer needs at least one text file")
    missing = [f for f in files if not Path(f).is_file()]
    if missing:
        raise ValueError(f"training files not found: {', '.join(missing)}")
    special_tokens = list(special_tokens)
    if not special_tokens:
        raise ValueError("special_tokens must start with the unknown token, e.g. [UNK]")
    unk = special_tokens[0]
    common = dict(vocab_size=vocab_size, special_tokens=special_tokens, show_progress=show_progress)
    if kind == "bpe":
        tok, trainer = Tokenizer(BPE(unk_token=unk)), BpeTrainer(**common)
    elif kind == "wordpiece":
        tok, trainer = Tokenizer(WordPiece(unk_token=unk)), WordPieceTrainer(**common)
    else:
        tok, trainer = Tokenizer(Unigram()), UnigramTrainer(unk_token=unk, **common)
    tok.pre_tokenizer = Whitespace()
    tok.train(files, trainer)
    for i, t in enumerate(special_tokens):
        assert tok.token_to_id(t) == i, (t, tok.token_to_id(t), i)
    return tok


def template_processor(tokenizer: Tokenizer, single: str = "[CLS] $A [SEP]",
                       pair: str = "[CLS] $A [SEP] $B:1 [SEP]:1",
                       special_tokens: Sequence[str] = ("[CLS]", "[SEP]")) -> TemplateProcessing:
    """The notes' ``TemplateProcessing``, with each special token's id looked up in ``tokenizer``.

    A special token that is not in the vocabulary raises a ValueError naming it (``token_to_id``
    would return None and ``tokenizers`` would fail with a less helpful message).
    Taught in chapter 21 (Tokenizers in practice).
    """
    ids = {t: tokenizer.token_to_id(t) for t in special_tokens}
    missing = [t for t, i in ids.items() if i is None]
    if missing:
        raise ValueError(f"special token(s) {', '.join(missing)} not in the tokenizer's vocabulary "
                         f"(size {tokenizer.get_vocab_size()}); add them as special_tokens when training")
    return TemplateProcessing(single=single, pair=pair, special_tokens=[(t, i) for t, i in ids.items()])


def _encodings(tokenizer: Tokenizer, lines: Iterable[str]):
    lines = [ln for ln in lines if ln.strip()]
    if not lines:
        raise ValueError("need at least one non-empty line of text")
    return tokenizer.encode_batch(lines, add_special_tokens=False)


def tokens_per_word(tokenizer: Tokenizer, lines: Iterable[str]) -> float:
    """Mean number of tokens per pre-tokenized word (a word = one ``Whitespace`` piece) over ``lines``.

    Taught in chapter 21 (Tokenizers in practice).
    """
    n_tokens = n_words = 0
    for enc in _encodings(tokenizer, lines):
        n_tokens += len(enc.ids)
        n_words += len({w for w in enc.word_ids if w is not None})
    return n_tokens / n_words


def unknown_rate(tokenizer: Tokenizer, lines: Iterable[str], unk_token: str = UNK) -> float:
    """Fraction of pre-tokenized words that contain at least one unknown token (the OOV rate).

    Taught in chapter 21 (Tokenizers in practice).
    """
    unk_id = tokenizer.token_to_id(unk_token)
    if unk_id is None:
        raise ValueError(f"unknown token {unk_token!r} is not in the tokenizer's vocabulary")
    n_words = n_unk = 0
    for enc in _encodings(tokenizer, lines):
        words = {w for w in enc.word_ids if w is not None}
        bad = {w for w, i in zip(enc.word_ids, enc.ids) if i == unk_id and w is not None}
        n_words += len(words)
        n_unk += len(bad)
    return n_unk / n_words
