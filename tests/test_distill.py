import pytest
import torch
import torch.nn.functional as F

from lmcourse.compress import TinyBertLoss, bert_internals, kd_loss, pkd_layer_map, pkd_loss, soft_targets
from lmcourse.models import BERT, BertClassifier, BertConfig


def tiny_clf(layers=2, d=32, seed=0):
    torch.manual_seed(seed)
    cfg = BertConfig(vocab_size=50, hidden_size=d, num_hidden_layers=layers, num_attention_heads=4,
                     intermediate_size=64, max_position_embeddings=16, dropout=0.0)
    return BertClassifier(BERT(cfg), 3, dropout=0.0).eval()


@pytest.mark.golden
@pytest.mark.parametrize("t", [1.0, 2.0, 7.5])
def test_kd_loss_equals_formula(t):
    g = torch.Generator().manual_seed(0)
    s, te = torch.randn(5, 4, generator=g) * 3, torch.randn(5, 4, generator=g) * 3
    y = torch.tensor([0, 3, 1, 2, 2])
    pt = torch.softmax(te / t, -1)
    ps = torch.softmax(s / t, -1)
    kl = (pt * (pt.log() - ps.log())).sum(-1).mean()
    assert torch.allclose(kd_loss(s, te, t), t * t * kl, atol=1e-6)
    mixed = 0.3 * t * t * kl + 0.7 * F.cross_entropy(s, y)
    assert torch.allclose(kd_loss(s, te, t, labels=y, alpha=0.3), mixed, atol=1e-6)
    assert torch.allclose(soft_targets(te, t), pt)


def test_kd_loss_zero_when_equal_and_batch_of_one():
    z = torch.randn(1, 3)
    assert kd_loss(z, z.clone(), 4.0).abs() < 1e-5


def test_kd_bad_input():
    with pytest.raises(ValueError, match="same shape"):
        kd_loss(torch.randn(2, 3), torch.randn(2, 4))
    with pytest.raises(ValueError, match="temperature"):
        kd_loss(torch.randn(2, 3), torch.randn(2, 3), 0.0)
    with pytest.raises(ValueError, match="labels"):
        kd_loss(torch.randn(2, 3), torch.randn(2, 3), 2.0, alpha=0.5)


def test_internals_match_classifier():
    clf = tiny_clf(3)
    ids = torch.randint(1, 50, (2, 7))
    mask = torch.ones_like(ids)
    mask[1, 5:] = 0
    out = bert_internals(clf, ids, None, mask)
    assert torch.allclose(out["logits"], clf(ids, None, mask), atol=1e-5)
    assert len(out["hidden"]) == 3 and out["attention"][0].shape == (2, 4, 7, 7)
    h, _ = clf.bert(ids, None, mask)
    assert torch.allclose(out["hidden"][-1], h, atol=1e-5)


def test_pkd_maps_and_loss():
    assert pkd_layer_map(12, 6, "skip") == [(1, 2), (2, 4), (3, 6), (4, 8), (5, 10)]
    assert pkd_layer_map(12, 6, "last") == [(1, 7), (2, 8), (3, 9), (4, 10), (5, 11)]
    h = [torch.randn(2, 5, 8) for _ in range(3)]
    assert pkd_loss(h, [x * 3 for x in h], [(1, 1), (2, 2)]) < 1e-6   # scale-free: states are normalised
    with pytest.raises(ValueError):
        pkd_layer_map(2, 4)


def test_tinybert_loss_trains_projection_and_is_zero_for_self():
    t = tiny_clf(4)
    ids = torch.randint(1, 50, (2, 6))
    out_t = bert_internals(t, ids)
    loss = TinyBertLoss(4, 4, 32, 32)
    assert loss(out_t, out_t)["total"] < 1e-8
    s = tiny_clf(2, d=16, seed=1)
    lw = TinyBertLoss(4, 2, 16, 32)
    assert lw.layer_map == [(1, 2), (2, 4)]
    parts = lw(bert_internals(s, ids), out_t)
    parts["total"].backward()
    assert lw.w_h.weight.grad is not None and s.bert.embeddings.word_embeddings.weight.grad is not None
