"""Chapter 19: offloaded Adam gives the same parameters as on-device Adam; its states leave the device."""
import pytest
import torch

from lmcourse.errors import LMCourseError
from lmcourse.systems.offload import OffloadAdam, compare_offload


@pytest.mark.golden
def test_offload_equals_adam():
    idx = torch.randint(0, 30, (2, 8))

    def make():
        from lmcourse.models import GPT, GPTConfig
        return GPT(GPTConfig(vocab_size=30, block_size=8, n_layer=1, n_head=2, n_embd=16))
    r = compare_offload(make, lambda m: m(idx, idx)[1], steps=4, lr=1e-2)
    assert r["max_param_diff"] == 0
    assert r["offload"]["device_state_bytes"] == 0
    n = sum(p.numel() for p in make().parameters())
    assert r["device"]["device_state_bytes"] == 2 * 4 * n
    assert r["offload"]["cpu_state_bytes"] == 3 * 4 * n and r["offload"]["copy_bytes"] == 2 * 4 * n


def test_offload_errors():
    lin = torch.nn.Linear(2, 2)
    opt = OffloadAdam(lin.parameters())
    with pytest.raises(LMCourseError, match="gradient"):
        opt.step()
    with pytest.raises(LMCourseError, match="no trainable"):
        OffloadAdam([])
