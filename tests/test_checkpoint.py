"""Chapter 19: activation checkpointing gives exactly the plain gradients and saves activation memory."""
import pytest
import torch

from lmcourse.errors import LMCourseError
from lmcourse.models import GPT, GPTConfig
from lmcourse.systems.checkpoint import activation_memory, best_segments, checkpointed_forward, segment_bounds


def _setup(n_layer=5, T=16):
    torch.manual_seed(0)
    m = GPT(GPTConfig(vocab_size=50, block_size=16, n_layer=n_layer, n_head=2, n_embd=16))
    idx = torch.randint(0, 50, (3, T))
    return m, idx, torch.roll(idx, -1, 1)


def _grads(m, idx, tgt, seg, use_torch=False):
    m.zero_grad(set_to_none=True)
    checkpointed_forward(m, idx, tgt, seg, use_torch=use_torch).backward()
    return [p.grad.clone() for p in m.parameters()]


@pytest.mark.golden
@pytest.mark.parametrize("T", [1, 16])
def test_gradients_exact(T):
    m, idx, tgt = _setup(T=T)
    m.zero_grad()
    m(idx, tgt)[1].backward()
    plain = [p.grad.clone() for p in m.parameters()]
    for seg in (1, 2, 5):
        for a, b, c in zip(plain, _grads(m, idx, tgt, seg), _grads(m, idx, tgt, seg, use_torch=True)):
            assert torch.equal(a, b) and torch.equal(a, c)


def test_memory_falls_with_checkpointing():
    m, idx, tgt = _setup(n_layer=6)
    mem = [activation_memory(m, idx, tgt, k) for k in range(7)]
    assert mem[0]["recompute"] == 0
    assert all(x["peak"] < mem[0]["peak"] for x in mem[2:])
    assert all(a["kept"] < b["kept"] for a, b in zip(mem[1:], mem[2:]))          # more segments, more inputs kept


def test_bounds_and_errors():
    assert segment_bounds(5, 2) == [(0, 2), (2, 5)] and segment_bounds(4, 0) == []
    assert best_segments(9) == 3 and best_segments(1) == 1
    with pytest.raises(LMCourseError, match="segments"):
        segment_bounds(4, 5)
