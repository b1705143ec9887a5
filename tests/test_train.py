"""The one training loop: it trains, logs, evaluates, and stops on divergence."""
import pytest
import torch

from lmcourse.train import History, TrainingDiverged, train


def regression_batches(n=8):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, 16, 3, generator=g)
    return [(xb, xb @ torch.tensor([1.0, -2.0, 0.5])) for xb in x]


def mse(model, batch):
    x, y = batch
    return torch.nn.functional.mse_loss(model(x).squeeze(-1), y)


def test_train_reduces_the_loss_and_logs_everything():
    torch.manual_seed(0)
    model = torch.nn.Linear(3, 1)
    batches = regression_batches()
    h = train(model, batches, mse, torch.optim.SGD(model.parameters(), lr=0.1), steps=50,
              eval_fn=lambda m: {"val_loss": mse(m, batches[0]).item()}, eval_every=10)
    assert h.steps("loss") == list(range(1, 51))
    assert h.steps("val_loss") == [10, 20, 30, 40, 50]
    assert h.last("loss") < h.values("loss")[0] / 10
    assert h.last("lr") == pytest.approx(0.1)
    with pytest.raises(KeyError, match="no metric 'acc'"):
        h["acc"]
    h2 = train(model, batches, mse, torch.optim.SGD(model.parameters(), lr=0.1), steps=5, history=h)
    assert h2 is h and h.steps("loss")[-1] == 55  # resumes the step count


def test_divergence_is_reported():
    model = torch.nn.Linear(3, 1)
    with pytest.raises(TrainingDiverged, match="lower the learning rate"):
        train(model, regression_batches(), mse, torch.optim.SGD(model.parameters(), lr=1e6), steps=200)


def test_steps_must_be_positive():
    model = torch.nn.Linear(3, 1)
    with pytest.raises(ValueError, match="steps"):
        train(model, regression_batches(), mse, torch.optim.SGD(model.parameters(), lr=0.1), steps=0)


def test_history_logs_and_reads_back():
    h = History()
    h.log(1, a=1.0)
    h.log(2, a=0.5)
    assert "a" in h and h.values("a") == [1.0, 0.5]
