"""Chapter 19: prefetching gathers gives the same outputs; the timeline is well formed."""
from lmcourse.systems import launch
from lmcourse.systems.overlap import overlap_worker, total_time, wait_time


def test_overlap_two_workers():
    res = launch(overlap_worker, 2, args=({"layers": 3, "width": 64, "batch": 4, "repeats": 1, "trials": 1},))
    for r in res:
        assert r["max_diff"] < 1e-6
        for mode in ("plain", "prefetch"):
            (events,) = r[mode]
            assert [e[:2] for e in events] == [(k, i) for i in range(3) for k in ("comm-wait", "compute")]
            assert 0 <= wait_time(events) <= total_time(events)
