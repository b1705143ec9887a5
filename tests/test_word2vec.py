"""Word2Vec: hand gradients vs autograd, sampling formulas, bad input, and gensim as the reference."""
import numpy as np
import pytest
import torch

from lmcourse.embeddings import (PairBatches, Word2Vec, Word2VecConfig, WordNotInVocabulary, WordVectors,
                                 discard_probability, gensim_word2vec, neg_sampling_grads, neg_sampling_loss,
                                 noise_distribution, offset_weights, prepare, similarity_score, train_word2vec,
                                 word_counts)
from lmcourse.embeddings.word2vec import noise_table
from lmcourse.errors import LMCourseError



@pytest.fixture(autouse=True)
def one_thread():
    """One thread: small sparse steps are slower with two threads on a shared CPU."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


TOY = [["the", "cat", "sat", "on", "the", "mat"], ["the", "dog", "sat"], ["a", "cat"]]


@pytest.mark.golden
@pytest.mark.parametrize("B,K,d", [(1, 1, 1), (7, 5, 16), (3, 20, 4)])
def test_negative_sampling_gradient_by_hand_equals_autograd(B, K, d):
    g = torch.Generator().manual_seed(B * K * d)
    h, u_pos, u_neg = (torch.randn(*s, generator=g, dtype=torch.float64, requires_grad=True)
                       for s in [(B, d), (B, d), (B, K, d)])
    neg_sampling_loss(h, u_pos, u_neg).sum().backward()
    d_h, d_pos, d_neg = neg_sampling_grads(h.detach(), u_pos.detach(), u_neg.detach())
    for mine, auto in [(d_h, h.grad), (d_pos, u_pos.grad), (d_neg, u_neg.grad)]:
        torch.testing.assert_close(mine, auto)


def test_subsampling_and_noise_formulas_on_toy_corpus():
    vocab, _ = prepare(TOY, min_count=1)
    counts = word_counts(vocab)
    total = 11  # tokens in TOY
    t = 0.1
    p = discard_probability(counts, t)
    for w in ["the", "cat", "sat", "a"]:
        f = vocab.counts[w] / total
        assert p[vocab.stoi[w]] == pytest.approx(max(0.0, 1 - np.sqrt(t / f)))
    assert p[vocab.stoi["the"]] == pytest.approx(1 - np.sqrt(0.1 / (3 / 11)))
    assert (p[:3] == 0).all() and (discard_probability(counts, 0) == 0).all()
    c_code = discard_probability(counts, t, formula="word2vec")  # word2vec's C code / gensim
    f_the = 3 / 11
    assert c_code[vocab.stoi["the"]] == pytest.approx(1 - (np.sqrt(f_the / t) + 1) * t / f_the)
    assert (c_code <= p + 1e-12).all()  # it keeps at least as much
    with pytest.raises(LMCourseError, match="formula"):
        discard_probability(counts, t, formula="c")
    q = noise_distribution(counts, 0.75)
    z = sum(c**0.75 for c in vocab.counts.values())
    assert q[vocab.stoi["the"]] == pytest.approx(3**0.75 / z) and q[:3].sum() == 0 and q.sum() == pytest.approx(1)
    table = noise_table(counts, 0.75, size=1 << 16).numpy()
    freq = np.bincount(table, minlength=len(q)) / len(table)
    assert np.abs(freq - q).max() < 1e-4


def test_soft_window_shrink_matches_linear_weights():
    assert offset_weights(5).tolist() == [1.0, 0.8, 0.6, 0.4, 0.2]
    sents = [["w%d" % (i % 50) for i in range(200)] for _ in range(50)]
    vocab, stream = prepare(sents, min_count=1)
    cfg = Word2VecConfig(window=4, sample=0, batch_size=1)
    pb = PairBatches(stream, word_counts(vocab), cfg)
    # with the random shrink, the number of pairs per centre is 2 * mean(b) = W + 1 in expectation
    assert len(pb.centre) / len(stream) == pytest.approx(5.0, rel=0.03)
    cbow = PairBatches(stream, word_counts(vocab), Word2VecConfig(window=4, sample=0, mode="cbow",
                                                                     window_weights="linear", batch_size=8))
    assert cbow.weight.shape[1] == 8 and np.allclose(cbow.weight[100], [0.25, 0.5, 0.75, 1, 1, 0.75, 0.5, 0.25])


@pytest.mark.parametrize("mode,loss", [("skipgram", "neg"), ("cbow", "neg"), ("skipgram", "softmax"),
                                       ("cbow", "softmax")])
def test_training_lowers_the_loss(mode, loss):
    rng = np.random.default_rng(0)
    sents = [[f"w{int(x)}" for x in rng.zipf(1.5, 30) % 40] for _ in range(300)]
    vocab, stream = prepare(sents, min_count=1)
    cfg = Word2VecConfig(mode=mode, loss=loss, dim=16, window=2, epochs=3, batch_size=64, sample=0)
    model, hist = train_word2vec(vocab, stream, cfg)
    losses = hist.values("loss")
    assert losses[-1] < losses[0]
    assert hist.last("words") == 3 * len(stream)


def test_bad_input():
    with pytest.raises(LMCourseError, match="empty"):
        prepare([], min_count=1)
    with pytest.raises(LMCourseError, match="empty"):
        prepare([[], []], min_count=1)
    vocab, stream = prepare(TOY, min_count=1)
    with pytest.raises(LMCourseError, match="negatives=20"):
        train_word2vec(vocab, stream, Word2VecConfig(negatives=20))
    with pytest.raises(LMCourseError, match="window"):
        train_word2vec(vocab, stream, Word2VecConfig(window=0))
    with pytest.raises(LMCourseError, match="batch_size"):
        train_word2vec(vocab, stream, Word2VecConfig(negatives=2, batch_size=10_000))
    model, _ = train_word2vec(vocab, stream, Word2VecConfig(negatives=2, batch_size=4, dim=4, sample=0))
    with pytest.raises(WordNotInVocabulary, match="'zebra' is not in the vocabulary"):
        model.vectors(vocab).most_similar("zebra")


@pytest.mark.golden
def test_skipgram_wordsim353_matches_gensim():
    from lmcourse.data import load_corpus
    from lmcourse.data.wordsets import wordsim353

    sents = load_corpus("wiki").sentences("all") + load_corpus("lee").sentences("all")
    cfg = Word2VecConfig(mode="skipgram", dim=50, window=5, negatives=5, epochs=3, sample=1e-3, seed=1, lr=0.05,
                         sample_formula="word2vec")
    vocab, stream = prepare(sents, min_count=5)
    model, _ = train_word2vec(vocab, stream, cfg)
    mine = similarity_score(model.vectors(vocab), wordsim353())
    ref = similarity_score(WordVectors.from_gensim(gensim_word2vec(sents, cfg, min_count=5, workers=1).wv),
                           wordsim353())
    assert mine.coverage.fraction == ref.coverage.fraction > 0.5  # same vocabulary, same pairs
    assert abs(mine.value - ref.value) < 0.05, (mine, ref)
    assert mine.value > 0.1


def test_cbow_passes_the_whole_gradient_of_h_to_each_context_word():
    """word2vec's CBOW: forward uses the mean of the context vectors, backward gives each the full dL/dh."""
    cfg = Word2VecConfig(mode="cbow", dim=4, window=2, negatives=2)
    model = Word2Vec(10, cfg)
    with torch.no_grad():
        model.out.weight.normal_()
    centre, context = torch.tensor([5]), torch.tensor([[3, 4, 6, 7]])
    weight = torch.tensor([[1.0, 1.0, 1.0, 0.0]])  # the last slot is empty
    h, _ = model.hidden(centre, context, weight)
    torch.testing.assert_close(h[0], model.inp.weight[[3, 4, 6]].mean(0))
    model.loss((centre, context, weight, torch.tensor([[8, 9]]))).backward()
    grad = model.inp.weight.grad.to_dense()
    torch.testing.assert_close(grad[3], grad[4]) and torch.testing.assert_close(grad[4], grad[6])
    assert grad[7].abs().sum() == 0 and grad[3].abs().sum() > 0
    u = model.out.weight.detach()
    h = h.detach()[0]
    d_h = (torch.sigmoid(u[5] @ h) - 1) * u[5] + torch.sigmoid(u[8] @ h) * u[8] + torch.sigmoid(u[9] @ h) * u[9]
    torch.testing.assert_close(grad[3], d_h)
