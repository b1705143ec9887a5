"""lmcourse.systems.collectives: ring collectives built from send/recv equal torch.distributed's."""
import pytest
import torch
import torch.distributed as dist

from lmcourse.systems import LaunchError, launch
from lmcourse.systems.collectives import (primitives_demo, ring_all_gather, ring_all_reduce,
                                          ring_all_reduce_cost, ring_reduce_scatter)

LENGTHS = [1, 2, 3, 7, 64, 1001]  # shorter than the world, not divisible by it, ...


def compare_with_torch(rank, world):
    """Max abs differences of ring vs torch collectives on random tensors (same seed on all ranks)."""
    diffs = []
    for n in LENGTHS:
        g = torch.Generator().manual_seed(1000 * n + rank)
        x = torch.randn(n, generator=g, dtype=torch.float64)
        a, b = x.clone(), x.clone()
        ring_all_reduce(a)
        dist.all_reduce(b)
        diffs.append(("all_reduce", n, (a - b).abs().max().item()))
        m = torch.randn(3, 5, generator=g).t()  # not contiguous, 2-d
        a, b = m.clone().t().contiguous().t(), m.contiguous()
        ring_all_reduce(a)
        dist.all_reduce(b)
        diffs.append(("all_reduce_2d", n, (a - b).abs().max().item()))
        ins = [torch.randn(n, generator=g) for _ in range(world)]
        out = torch.zeros(n)
        ring_reduce_scatter(out, ins)
        ref = torch.zeros(n)
        dist.reduce_scatter(ref, [t.clone() for t in ins])  # gloo has it in torch 2.13 (not in all versions)
        diffs.append(("reduce_scatter", n, (out - ref).abs().max().item()))
        mine = torch.randn(n, generator=g)
        outs, ref = [torch.zeros(n) for _ in range(world)], [torch.zeros(n) for _ in range(world)]
        ring_all_gather(outs, mine)
        dist.all_gather(ref, mine)
        diffs.append(("all_gather", n, max((o - r).abs().max().item() for o, r in zip(outs, ref))))
    return diffs


def wrong_count(rank, world):
    ring_reduce_scatter(torch.zeros(2), [torch.zeros(2)])


@pytest.mark.golden
def test_ring_collectives_equal_torch_three_workers():
    for diffs in launch(compare_with_torch, 3):
        for name, n, d in diffs:
            assert d < 1e-5, (name, n, d)


@pytest.mark.golden
def test_ring_all_reduce_four_workers():
    for diffs in launch(compare_with_torch, 4):
        assert max(d for _, _, d in diffs) < 1e-5


def test_primitives_demo_on_three_workers():
    out = launch(primitives_demo, 3)
    assert [o["broadcast"][1] for o in out] == [[1.0, 2.0, 3.0]] * 3
    assert out[0]["reduce"][1] == [33.0, 36.0, 39.0]
    assert all(o["all-reduce"][1] == [33.0, 36.0, 39.0] for o in out)
    assert [o["reduce-scatter"][1] for o in out] == [[33.0], [36.0], [39.0]]
    assert all(o["all-gather"][1] == [1.0, 12.0, 23.0] for o in out)


def test_wrong_input_count_is_a_clear_error():
    with pytest.raises(LaunchError, match="one input per worker: got 1 for 2 workers"):
        launch(wrong_count, 2)


def test_cost_model():
    assert ring_all_reduce_cost(1e6, 1, 1e-5, 1e9) == 0
    assert ring_all_reduce_cost(1e6, 4, 0.0, 1e9) == pytest.approx(2 * 3 / 4 * 1e-3)
