"""Mixture of Experts: top-k routing, the balance loss formula (and Mixtral's), capacity."""
import pytest
import torch

from lmcourse.models.gpt import GPTConfig
from lmcourse.models.moe import MoEFeedForward, load_balancing_loss, moe_balance_loss, moe_gpt


@pytest.mark.parametrize("k", [1, 2, 3])
def test_each_token_goes_to_exactly_k_experts(k):
    torch.manual_seed(0)
    moe = MoEFeedForward(16, 32, n_experts=5, top_k=k)
    r = moe.route(torch.randn(50, 16))
    assert r.experts.shape == (50, k)
    assert all(len(set(row)) == k for row in r.experts.tolist())        # k distinct experts per token
    torch.testing.assert_close(r.weights.sum(-1), torch.ones(50))


def test_forward_equals_weighted_sum_of_chosen_experts():
    torch.manual_seed(0)
    moe = MoEFeedForward(8, 16, n_experts=4, top_k=2)
    x = torch.randn(2, 3, 8)
    y = moe(x)
    r, flat = moe.last, x.reshape(-1, 8)
    manual = torch.stack([sum(r.weights[n, j] * moe.experts[int(r.experts[n, j])](flat[n]) for j in range(2))
                          for n in range(6)])
    torch.testing.assert_close(y.reshape(-1, 8), manual)


def test_balance_loss_equals_formula():
    torch.manual_seed(0)
    probs = torch.softmax(torch.randn(40, 4), -1)
    experts = probs.topk(2, -1).indices
    f = torch.zeros(4)
    for row in experts.tolist():
        for e in row:
            f[e] += 1 / 40
    torch.testing.assert_close(load_balancing_loss(probs, experts, 4), 4 * (f * probs.mean(0)).sum())
    uniform = torch.full((4, 4), 0.25)                                 # perfectly balanced: loss = k
    torch.testing.assert_close(load_balancing_loss(uniform, torch.tensor([[0, 1], [2, 3], [0, 1], [2, 3]]), 4),
                               torch.tensor(2.0))


@pytest.mark.golden
def test_balance_loss_matches_mixtral():
    mixtral = pytest.importorskip("transformers.models.mixtral.modeling_mixtral")
    torch.manual_seed(0)
    logits = torch.randn(30, 8)
    probs = torch.softmax(logits, -1)
    ours = load_balancing_loss(probs, probs.topk(2, -1).indices, 8)
    torch.testing.assert_close(ours, mixtral.load_balancing_loss_func((logits,), 8, 2))


def test_capacity_drops_overflow():
    moe = MoEFeedForward(4, 8, n_experts=2, top_k=1, capacity_factor=1.0)
    with torch.no_grad():
        moe.router.weight.zero_()
        moe.router.weight[0, 0] = 10.0                                  # every token prefers expert 0
    r = moe.route(torch.ones(10, 4))
    assert moe.capacity(10) == 5
    assert r.kept.sum().item() == 5 and (r.experts == 0).all()


def test_moe_gpt_trains_and_counts():
    torch.manual_seed(0)
    cfg = GPTConfig(vocab_size=30, block_size=8, n_layer=2, n_head=2, n_embd=16)
    m = moe_gpt(cfg, n_experts=4, top_k=1)
    x = torch.randint(0, 30, (2, 8))
    _, loss = m(x, x)
    total = loss + 0.01 * moe_balance_loss(m)
    total.backward()
    assert m.blocks[0].ffn.router.weight.grad is not None
    ffn = m.blocks[0].ffn
    assert ffn.active_params() < sum(p.numel() for p in ffn.parameters())


def test_bad_config():
    with pytest.raises(ValueError, match="top_k"):
        MoEFeedForward(4, 8, n_experts=2, top_k=3)
