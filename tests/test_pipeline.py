"""lmcourse.systems.pipeline: naive and GPipe steps equal one process and torch's ScheduleGPipe;
the bubble of a schedule equals (p-1)/(m+p-1)."""
import pytest

from lmcourse.systems import launch
from lmcourse.systems.pipeline import Event, PipelineError, bubble_fraction, bubble_formula, replay, split_layers
from lmcourse.systems.workers_ch16_18 import pipeline_all

WORLD = 2


@pytest.fixture(scope="module")
def runs():
    return launch(pipeline_all, WORLD, args=(3,), timeout=240)


@pytest.mark.golden
def test_naive_and_gpipe_match_one_process_and_torch(runs):
    for out in runs:
        assert out["naive"]["max_diff"] < 1e-5
        assert out["gpipe"]["max_diff"] < 1e-5
        assert out["torch_gpipe"] < 1e-5
    assert runs[0]["naive"]["layers"] == ["0.weight", "0.bias", "2.weight", "2.bias"]
    assert runs[1]["gpipe"]["losses"] == pytest.approx(runs[1]["naive"]["losses"], rel=1e-5)


def test_more_stages_than_layers(runs):
    assert runs[0]["bad"] == "2 pipeline stages but only 1 layers: every stage needs a layer"
    with pytest.raises(PipelineError, match="5 pipeline stages but only 4 layers"):
        split_layers(4, 5)
    with pytest.raises(PipelineError, match="at least 1"):
        split_layers(4, 0)


def test_split_layers_is_balanced_and_covers_all():
    assert split_layers(7, 2) == [range(0, 4), range(4, 7)]
    assert split_layers(8, 4) == [range(0, 2), range(2, 4), range(4, 6), range(6, 8)]
    assert split_layers(1, 1) == [range(0, 1)]


def gpipe_events(p, m, f=1.0, b=2.0):
    """The order GPipe runs in, with arbitrary (overlapping) times: replay must fix the times."""
    return [Event(r, k, i, 0.0, f if k == "F" else b) for r in range(p) for k in "FB" for i in range(m)]


@pytest.mark.parametrize("p,m", [(1, 1), (2, 1), (2, 4), (4, 4), (4, 8), (3, 5)])
def test_replayed_gpipe_bubble_equals_the_formula(p, m):
    events = replay(gpipe_events(p, m), p)
    assert bubble_fraction(events, p) == pytest.approx(bubble_formula(p, m))
    span = max(e.end for e in events)
    assert span == pytest.approx(3.0 * (m + p - 1))                # (m + p - 1) slots of F + B
