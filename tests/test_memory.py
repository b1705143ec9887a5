"""lmcourse.systems.memory: formulas for training memory agree with the tensors a real step holds."""
import pytest
import torch
from torch import nn

from lmcourse.errors import LMCourseError
from lmcourse.systems.memory import (Memory, dtype_bytes, measure_training, mlp_activation_bytes,
                                     training_memory)


def mlp(widths, dtype=torch.float32):
    layers = []
    for a, b in zip(widths, widths[1:]):
        layers += [nn.Linear(a, b), nn.Tanh()]
    return nn.Sequential(*layers[:-1]).to(dtype)


def test_dtype_bytes():
    assert [dtype_bytes(d) for d in (torch.float64, torch.float32, torch.bfloat16, torch.float16, torch.int8)] \
        == [8, 4, 2, 2, 1]


def test_adam_keeps_two_states_per_parameter():
    m = training_memory(1_000_000, torch.float32, "adam")
    assert (m.parameters, m.gradients, m.optimizer) == (4_000_000, 4_000_000, 8_000_000)
    assert training_memory(10, torch.float32, "sgd").optimizer == 0
    assert training_memory(10, torch.float32, "momentum").optimizer == 40
    # mixed precision, Adam: 2 + 2 + (4 + 4 + 4) = 16 bytes per parameter
    assert training_memory(10, torch.bfloat16, "adam", master_weights=True).total == 160


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16])
@pytest.mark.parametrize("opt", ["sgd", "momentum", "adam"])
def test_formula_equals_measured_on_an_mlp(dtype, opt):
    torch.manual_seed(0)
    widths, batch = [10, 32, 17, 3], 5
    model = mlp(widths, dtype)
    x, y = torch.randn(batch, widths[0], dtype=dtype), torch.randn(batch, widths[-1], dtype=dtype)
    optim = {"sgd": lambda p: torch.optim.SGD(p, lr=0.1), "momentum": lambda p: torch.optim.SGD(p, 0.1, 0.9),
             "adam": torch.optim.Adam}[opt](model.parameters())
    measured = measure_training(model, lambda m: nn.functional.mse_loss(m(x), y), optim)
    n = sum(p.numel() for p in model.parameters())
    formula = training_memory(n, dtype, opt)
    assert (measured.parameters, measured.gradients, measured.optimizer) == \
        (formula.parameters, formula.gradients, formula.optimizer)
    assert measured.activations == mlp_activation_bytes(batch, widths, dtype)


def test_activations_grow_with_the_batch_and_tied_weights_count_once():
    torch.manual_seed(0)
    emb = nn.Embedding(50, 8)
    head = nn.Linear(8, 50, bias=False)
    head.weight = emb.weight  # tied, like GPT-2's
    model = nn.Sequential(emb, head)
    acts = []
    for batch in (2, 4):
        ids = torch.randint(0, 50, (batch, 6))
        m = measure_training(model, lambda mod: nn.functional.cross_entropy(mod(ids).flatten(0, 1), ids.flatten()),
                             torch.optim.Adam(model.parameters()))
        assert m.parameters == 50 * 8 * 4 and m.optimizer == 2 * 50 * 8 * 4
        acts.append(m.activations)
    assert acts[1] > acts[0] > 0


def test_bad_input():
    with pytest.raises(LMCourseError, match="unknown optimizer 'adagrad'"):
        training_memory(10, optimizer="adagrad")
    with pytest.raises(LMCourseError, match="no trainable parameters"):
        measure_training(nn.ReLU(), lambda m: torch.zeros(()), None)
    assert Memory(1, 2, 3, 4).total == 10
