"""lmcourse.systems.tensor_parallel: the Megatron MLP and head-split attention equal one process
and torch.distributed.tensor.parallel."""
import pytest

from lmcourse.systems import launch
from lmcourse.systems.workers_ch16_18 import tp_all

WORLD = 2


@pytest.fixture(scope="module")
def runs():
    return launch(tp_all, WORLD, args=(4,), timeout=240)


@pytest.mark.golden
def test_megatron_mlp_trains_like_one_process_and_torch_tp(runs):
    for out in runs:
        assert out["mlp"]["max_diff"] < 1e-5
        assert out["torch_tp"] < 1e-5
        assert out["mlp"]["shard_shapes"] == [(16, 10), (10, 16)]      # 32 hidden units, 16 per rank


@pytest.mark.golden
def test_head_split_attention_equals_multihead_attention(runs):
    for out in runs:
        assert max(out["attention"].values()) < 1e-5, out["attention"]


def test_world_size_that_does_not_divide_the_layer(runs):
    assert runs[0]["bad_world"] == ("world size 2 does not divide the 33 output features of the layer: "
                                    "each rank must get an equal slice")
