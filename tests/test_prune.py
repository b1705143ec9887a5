import pytest
import torch
import torch.nn.functional as F

from lmcourse.compress import (drop_layers, head_importance, least_important_heads, magnitude_prune, prune_heads,
                               sparsity)
from lmcourse.compress.prune import attention_layers
from tests.test_distill import tiny_clf


def test_magnitude_prune_sparsity_and_keeps_largest():
    clf = tiny_clf()
    p = magnitude_prune(clf, 0.5)
    assert abs(sparsity(p) - 0.5) < 0.01 and sparsity(clf) == 0.0
    w, wp = clf.bert.encoder.layers[0].ffn.fc1.weight, p.bert.encoder.layers[0].ffn.fc1.weight
    assert w.abs()[wp != 0].min() >= w.abs()[wp == 0].max()
    assert torch.equal(p.head.weight, clf.head.weight)
    with pytest.raises(ValueError, match="sparsity"):
        magnitude_prune(clf, 1.0)


def test_pruned_head_equals_gated_head_and_importance_shape():
    clf = tiny_clf()
    ids = torch.randint(1, 50, (3, 6))
    y = torch.tensor([0, 1, 2])
    imp = head_importance(clf, lambda m, b: F.cross_entropy(m(b[0]), b[1]), [(ids, y)])
    assert imp.shape == (2, 4) and (imp >= 0).all()
    heads = least_important_heads(imp, 0.25)
    assert sum(len(v) for v in heads.values()) == 2
    pruned = prune_heads(clf, {0: [1]})
    a = attention_layers(clf)[0]
    h = a.out_proj.register_forward_pre_hook(
        lambda m, args: (args[0].view(*args[0].shape[:2], 4, 8) * torch.tensor([1., 0, 1, 1])[:, None]).flatten(2))
    try:
        assert torch.allclose(pruned(ids), clf(ids), atol=1e-5)
    finally:
        h.remove()
    with pytest.raises(ValueError, match="head 9"):
        prune_heads(clf, {0: [9]})


def test_drop_layers():
    clf = tiny_clf(3)
    d = drop_layers(clf, [0, 1])
    assert len(d.bert.encoder.layers) == 2 and len(clf.bert.encoder.layers) == 3
    ids = torch.randint(1, 50, (1, 1))
    assert d(ids).shape == (1, 3)
    with pytest.raises(ValueError):
        drop_layers(clf, [3])
