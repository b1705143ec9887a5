"""The teaching BPE: the notes' example, incremental == naive, golden vs Hugging Face tokenizers, round trips."""
from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lmcourse.text.bpe import (BPE, BPEError, learn_merges, learn_merges_naive, pretokenize, word_counts)

TOY = {"low": 5, "lower": 2, "newest": 6, "widest": 3}  # Sennrich et al. (2016)'s example


@pytest.fixture(scope="module")
def lee():
    from lmcourse.data import load_corpus

    return load_corpus("lee")


def test_notes_example_lowest_is_low_est():
    bpe = BPE.train(TOY, 10)
    assert bpe.merges[:4] == [("e", "s"), ("es", "t"), ("l", "o"), ("lo", "w")]
    assert bpe.segment("lowest") == ["low", "est"]  # "lowest" never occurs in the corpus
    assert bpe.decode(bpe.encode("lowest")) == "lowest"


def test_pretokenize_covers_the_text():
    text = "Hello,  world!\n\tIt's 2024 — ok_ay?  "
    assert "".join(pretokenize(text)) == text
    assert pretokenize("a big cat") == ["a", " big", " cat"]


def test_incremental_equals_naive(lee):
    counts = word_counts(lee.lines("train")[:300])
    assert learn_merges(counts, 60) == learn_merges_naive(counts, 60)
    byte_counts = word_counts(lee.lines("train")[:100], byte_level=True)
    assert learn_merges(byte_counts, 40) == learn_merges_naive(byte_counts, 40)


def test_vocabulary_grows_by_one_per_merge():
    bpe = BPE.train("the cat sat on the mat with the hat", 3)
    assert len(bpe.merges) == 3 and len(bpe) == 1 + len(bpe.alphabet) + 3
    few = BPE.train("the cat sat on the mat with the hat", 50)  # stops when no pair occurs twice
    assert len(few.merges) < 50
    seen = []
    BPE.train("the cat sat on the mat", 3, on_merge=lambda step, pair, count: seen.append((step, count)))
    assert [s for s, _ in seen] == [1, 2, 3] and all(c >= 2 for _, c in seen)


@pytest.mark.golden
@pytest.mark.parametrize("byte_level", [False, True])
def test_merges_loaded_into_tokenizers_give_same_encodings(lee, byte_level, tmp_path):
    from tokenizers import Tokenizer

    from lmcourse.text.bpe import to_byte_chars

    bpe = BPE.train(lee.lines("train"), 300, byte_level=byte_level)
    hf = Tokenizer(bpe.to_tokenizers_model())
    held_out = lee.lines("valid")[:200] + ["naïve café 東京 🙂 lowest"]
    for line in held_out:
        words = pretokenize(line)
        if not words:
            continue
        pieces = [to_byte_chars(w) for w in words] if byte_level else words
        assert hf.encode(pieces, is_pretokenized=True).ids == bpe.encode(line), line
    # save / load keeps the encoder
    bpe.save(tmp_path / "bpe.json")
    again = BPE.load(tmp_path / "bpe.json")
    assert again.merges == bpe.merges and again.encode(held_out[0]) == bpe.encode(held_out[0])


@pytest.fixture(scope="module")
def byte_bpe(lee):
    return BPE.train(lee.lines("train")[:500], 200, byte_level=True)


@settings(max_examples=200, deadline=None)
@given(st.text() | st.sampled_from(["", "🙂🙃 emoji", "東京は晴れ 中文字符", "e\u0301 combining",
                                    "\x00\n\t  "]))
def test_byte_level_round_trip_on_any_unicode(byte_bpe, text):
    assert byte_bpe.decode(byte_bpe.encode(text)) == text


@settings(max_examples=100, deadline=None)
@given(st.text(alphabet=st.characters(codec="ascii")))
def test_char_level_round_trip_on_seen_characters(text):
    bpe = BPE.train("".join(chr(i) for i in range(128)) + " the then there", 5)
    assert bpe.decode(bpe.encode(text)) == text


def test_char_level_unknown_character_is_unk():
    bpe = BPE.train("abc abc", 2)
    assert bpe.tokenize("abz") == ["ab", "z"]
    assert bpe.decode(bpe.encode("abz")) == "ab<unk>"


def test_bad_input_is_named():
    with pytest.raises(BPEError, match="empty"):
        BPE.train("", 10)
    with pytest.raises(BPEError, match="empty"):
        BPE.train({}, 10)
    with pytest.raises(BPEError, match="zero merges|positive"):
        BPE.train("some text", 0)
    with pytest.raises(BPEError, match="alphabet is empty"):
        BPE([], [])
    with pytest.raises(BPEError, match="outside the vocabulary"):
        BPE.train("abc abc", 1).decode([999])
