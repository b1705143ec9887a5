"""lmcourse.setup: profiles, devices, seeding, threads; and the plot style."""
import random

import numpy as np
import pytest
import torch

import lmcourse
from lmcourse.config import pick_device
from lmcourse.errors import ConfigError


def test_setup_seeds_everything_and_fixes_threads(monkeypatch):
    monkeypatch.delenv("LMCOURSE_THREADS", raising=False)
    P = lmcourse.setup("smoke", "cpu", seed=3)
    a = (random.random(), np.random.rand(), torch.rand(1).item())
    lmcourse.setup("smoke", "cpu", seed=3)
    b = (random.random(), np.random.rand(), torch.rand(1).item())
    assert a == b
    assert P.device == torch.device("cpu") and P.threads == 1 == torch.get_num_threads()
    assert P.is_smoke and P.pick(smoke=1, full=2) == 1 and P["batch_size"] > 0


def test_full_profile_and_thread_override(monkeypatch):
    monkeypatch.setenv("LMCOURSE_THREADS", "1")
    P = lmcourse.setup("full", "cpu")
    assert not P.is_smoke and P.pick(smoke=1, full=2) == 2 and P.threads == 1


def test_auto_device_is_cuda_only_when_present():
    assert pick_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")


@pytest.mark.parametrize("kwargs, message", [
    ({"profile": "huge"}, "unknown profile 'huge'"),
    ({"device": "tpu"}, "device"),
    ({"device": "cuda:7" if torch.cuda.is_available() else "cuda"}, "cuda"),
    ({"seed": "zero"}, "seed must be an int"),
    ({"threads": 0}, "threads must be at least 1"),
])
def test_bad_setup_names_the_problem(kwargs, message):
    if kwargs.get("device", "").startswith("cuda") and torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    with pytest.raises(ConfigError, match=message):
        lmcourse.setup(**kwargs)


def test_bad_thread_variable(monkeypatch):
    monkeypatch.setenv("LMCOURSE_THREADS", "many")
    with pytest.raises(ConfigError, match="LMCOURSE_THREADS"):
        lmcourse.setup()


def test_unknown_size_names_the_known_ones():
    P = lmcourse.setup()
    with pytest.raises(ConfigError, match="batch_size"):
        P["bach_size"]


def test_plot_style_and_finish_print_nothing(capsys):
    from lmcourse import plot

    lmcourse.setup()
    fig, ax = plot.figure(ncols=2)
    assert len(ax) == 2
    ax[0].plot([1, 2], [3, 4])
    assert plot.finish(fig) is None
    assert capsys.readouterr().out == ""


def test_future_typing_codec_hook_is_removed():
    import codecs

    with pytest.raises(LookupError):
        codecs.lookup("no-such-codec-lmcourse")
