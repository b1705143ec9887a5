"""Offline assets and corpora: checksums, splits, and clear errors."""
import pytest

from lmcourse.data import ASSETS, asset_files, asset_path, load_corpus
from lmcourse.data import assets as assets_module
from lmcourse.errors import AssetError


def test_every_asset_is_present_and_matches_its_checksum():
    for name in ASSETS:
        assert asset_files(name)


def test_unknown_corpus_and_asset_name_the_choices():
    with pytest.raises(AssetError, match="unknown corpus 'klingon'.*shakespeare"):
        load_corpus("klingon")
    with pytest.raises(AssetError, match="unknown asset"):
        asset_path("nope")


def test_missing_package_says_what_to_install(monkeypatch):
    fake = assets_module.Asset("ghost", "no_such_package_lmc", "no-such-package==1.0", "x.txt", "0" * 64, "test")
    monkeypatch.setitem(assets_module.ASSETS, "ghost", fake)
    with pytest.raises(AssetError, match="pip install 'no-such-package==1.0'"):
        asset_path("ghost")


def test_checksum_mismatch_is_refused(monkeypatch):
    real = ASSETS["lee"]
    monkeypatch.setitem(assets_module.ASSETS, "lee", assets_module.Asset(
        "lee", real.package, real.pip_name, real.pattern, "f" * 64, real.about))
    monkeypatch.setattr(assets_module, "_VERIFIED", {})
    with pytest.raises(AssetError, match="do not match the expected sha256"):
        asset_path("lee")


def test_splits_are_by_document_and_deterministic():
    c = load_corpus("shakespeare")
    titles = {s: {d.title for d in c.docs(s)} for s in ("train", "valid", "test")}
    assert not titles["train"] & titles["test"] and not titles["valid"] & titles["test"]
    assert len(c.docs("train")) + len(c.docs("valid")) + len(c.docs("test")) == 38
    assert c.sentences("test")[:3] == load_corpus("shakespeare").sentences("test")[:3]
    assert sum(map(len, c.sentences("train", max_tokens=1000))) <= 1000
    with pytest.raises(ValueError, match="unknown split"):
        c.lines("dev")


def test_stage_directions_are_not_text():
    text = load_corpus("shakespeare").text()
    assert "_Enter" not in text and "**" not in text and "[Within]" not in text


def test_wiki_is_cached_and_a_corrupt_cache_is_rebuilt(tmp_path, monkeypatch):
    monkeypatch.setenv("LMCOURSE_CACHE", str(tmp_path))
    load_corpus.cache_clear()
    first = load_corpus("wiki")
    cached = list(tmp_path.glob("wiki-articles-*.json"))
    assert len(cached) == 1
    cached[0].write_text('{"sha256": "bad", "data": []}')
    load_corpus.cache_clear()
    again = load_corpus("wiki")
    assert again.lines("test") == first.lines("test") and len(first.documents) > 100
    load_corpus.cache_clear()
