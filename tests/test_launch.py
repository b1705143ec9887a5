"""lmcourse.systems.launch: workers start, talk, return results; failures end the group fast."""
import os
import time

import psutil
import pytest
import torch
import torch.distributed as dist

from lmcourse.systems import LaunchError, launch


def sum_of_ranks(rank, world):
    t = torch.tensor([float(rank)])
    dist.all_reduce(t)
    return t.item(), dist.get_world_size(), os.getpid()


def fail_on_rank_one(rank, world):
    if rank == 1:
        raise ValueError("rank 1 breaks on purpose")
    t = torch.zeros(1)
    dist.all_reduce(t)  # the others wait here for rank 1, forever
    return rank


def sleep_forever(rank, world):
    time.sleep(3600)


def test_workers_all_reduce_and_return_by_rank():
    out = launch(sum_of_ranks, 3)
    assert [o[0] for o in out] == [3.0, 3.0, 3.0] and all(o[1] == 3 for o in out)
    assert not any(psutil.pid_exists(o[2]) and psutil.Process(o[2]).status() != psutil.STATUS_ZOMBIE
                   for o in out)


def test_a_failing_worker_ends_the_group_within_seconds():
    start = time.monotonic()
    with pytest.raises(LaunchError, match="worker 1 of 3 failed: ValueError: rank 1 breaks on purpose"):
        launch(fail_on_rank_one, 3, timeout=120)
    assert time.monotonic() - start < 30
    assert not live_workers()


def live_workers():
    """Child processes still running, but for multiprocessing's own resource tracker."""
    out = []
    for c in psutil.Process().children(recursive=True):
        try:
            if c.status() != psutil.STATUS_ZOMBIE and "resource_tracker" not in " ".join(c.cmdline()):
                out.append(c)
        except psutil.NoSuchProcess:
            pass
    return out


def test_a_hanging_group_is_stopped_at_the_timeout():
    start = time.monotonic()
    with pytest.raises(LaunchError, match="did not finish within 3 s"):
        launch(sleep_forever, 2, timeout=3)
    assert time.monotonic() - start < 20
    assert not live_workers()


def test_functions_from_a_notebook_are_refused():
    def local(rank, world):
        return rank

    with pytest.raises(LaunchError, match="live in a module"):
        launch(local, 2)
    with pytest.raises(LaunchError, match="world_size"):
        launch(sum_of_ranks, 0)
