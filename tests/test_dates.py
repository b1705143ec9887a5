"""lmcourse.data.dates: the date-normalisation task of chapter 5."""
from __future__ import annotations

import datetime as dt

import pytest

from lmcourse.data import dates


def test_deterministic_given_seed():
    assert dates.make_pairs(50, seed=3, max_filler=5) == dates.make_pairs(50, seed=3, max_filler=5)
    assert dates.make_pairs(50, seed=3) != dates.make_pairs(50, seed=4)


def test_every_format_round_trips_to_iso():
    d = dt.date(2024, 3, 7)
    for name, fmt in dates.FORMATS.items():
        text = fmt(d)
        assert "7" in text and ("2024" in text or "24" in text), name
    pairs = dates.make_pairs(500, seed=0, max_filler=6, max_len=60)
    assert {p.format for p in pairs} == set(dates.FORMATS)
    for p in pairs:
        assert len(p.source) <= 60
        assert dt.date.fromisoformat(p.target).isoformat() == p.target
        assert dates.FORMATS[p.format](dt.date.fromisoformat(p.target)) in p.source


def test_encode_pairs_shapes_and_special_ids():
    pairs = dates.make_pairs(4, seed=1, max_filler=3)
    b = dates.encode_pairs(pairs)
    assert b["source"].shape == (4, max(len(p.source) for p in pairs))
    assert b["target_in"].shape == b["target_out"].shape == (4, 11)
    assert (b["target_in"][:, 0] == dates.BOS).all() and (b["target_out"][:, -1] == dates.EOS).all()
    for row, p in zip(b["source"], pairs):
        assert dates.SOURCE_VOCAB.decode(row) == p.source
    assert dates.TARGET_VOCAB.decode(b["target_out"][0]) == pairs[0].target


def test_batches_cycle_and_bad_input():
    it = dates.batches(dates.make_pairs(10, seed=0), batch_size=4)
    assert [next(it)["source"].shape[0] for _ in range(5)] == [4] * 5
    with pytest.raises(ValueError, match="unknown formats"):
        dates.make_pairs(3, formats=["klingon"])
    with pytest.raises(ValueError, match="max_len"):
        dates.make_pairs(3, max_len=10)
    with pytest.raises(ValueError, match="not in the vocabulary"):
        dates.SOURCE_VOCAB.encode("2024#03")
    with pytest.raises(ValueError, match="no pairs"):
        dates.encode_pairs([])
