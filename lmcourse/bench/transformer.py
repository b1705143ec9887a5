"""``lmcourse bench transformer``: the encoder block and the teaching BPE against their references.

Rows
----
encoder layer fwd+bwd (fast path)  lmcourse ``EncoderBlock`` vs ``torch.nn.TransformerEncoderLayer``,
                                   same sizes, post-LN; ratio = lmcourse time / torch time (target <= 1.2x)
encoder layer fwd+bwd (plain path) the explicit masked softmax, for reference (no target)
BPE training vs tokenizers          ``BPE.train`` vs ``tokenizers`` ``BpeTrainer`` on the same text and the
                                   same pre-tokenisation; ratio = lmcourse time / tokenizers time (reported)
BPE training vs naive               incremental ``learn_merges`` vs ``learn_merges_naive`` (recounts all
                                   pairs after each merge) on the same word counts;
                                   ratio = naive time / lmcourse time (target >= 10x)

Taught in chapter 6 (Transformer); results in the Performance appendix.
"""
from __future__ import annotations

import torch
from torch import nn

from lmcourse.bench import Row
from lmcourse.bench.timing import alternated

SIZES = {
    "smoke": {"batch": 8, "seq": 128, "d_model": 256, "heads": 8, "d_ff": 1024, "repeats": 7,
              "corpus": "lee", "merges": 300, "naive_merges": 300},
    "full": {"batch": 32, "seq": 512, "d_model": 512, "heads": 8, "d_ff": 2048, "repeats": 15,
             "corpus": "shakespeare", "merges": 2000, "naive_merges": 300},
}


def encoder_rows(s: dict, device: torch.device) -> list[Row]:
    from lmcourse.nn import EncoderBlock

    torch.manual_seed(0)
    x = torch.randn(s["batch"], s["seq"], s["d_model"], device=device, requires_grad=True)
    ref = nn.TransformerEncoderLayer(s["d_model"], s["heads"], s["d_ff"], dropout=0.0, batch_first=True).to(device)
    fast = EncoderBlock(s["d_model"], s["heads"], s["d_ff"]).to(device)
    plain = EncoderBlock(s["d_model"], s["heads"], s["d_ff"], fast=False).to(device)

    def step(layer):
        return lambda: layer(x).sum().backward()

    t = alternated({"fast": step(fast), "ref": step(ref), "plain": step(plain)}, s["repeats"], device=device)
    t_fast, t_ref, t_plain = t["fast"], t["ref"], t["plain"]
    shape = f"B={s['batch']} T={s['seq']} C={s['d_model']} H={s['heads']}"
    return [
        Row("transformer", "encoder layer fwd+bwd (fast path)", t_fast * 1e3, t_ref * 1e3, "ms",
            t_fast / t_ref, "<= 1.2x", t_fast / t_ref <= 1.2, f"vs torch.nn.TransformerEncoderLayer, {shape}"),
        Row("transformer", "encoder layer fwd+bwd (plain path)", t_plain * 1e3, t_ref * 1e3, "ms",
            t_plain / t_ref, "", None, "explicit masked softmax; ratio = lmcourse / torch"),
    ]


def bpe_rows(s: dict) -> list[Row]:
    from tokenizers import Regex, Tokenizer, models, pre_tokenizers, trainers

    from lmcourse.data import load_corpus
    from lmcourse.text.bpe import BPE, PATTERN, learn_merges, learn_merges_naive, word_counts

    lines = load_corpus(s["corpus"]).lines("train")
    n = s["merges"]
    ours = BPE.train(lines, n)  # to learn the alphabet size, so both sides get the same vocabulary size
    vocab_size = len(ours)

    def ours_train():
        BPE.train(lines, n)

    def hf_train():
        tok = Tokenizer(models.BPE(unk_token="<unk>"))
        tok.pre_tokenizer = pre_tokenizers.Split(Regex(PATTERN), behavior="isolated")
        trainer = trainers.BpeTrainer(vocab_size=vocab_size, min_frequency=2, special_tokens=["<unk>"],
                                      show_progress=False)
        tok.train_from_iterator(lines, trainer=trainer)

    t = alternated({"ours": ours_train, "hf": hf_train}, 3)
    t_ours, t_hf = t["ours"], t["hf"]

    counts = word_counts(lines)
    m = s["naive_merges"]
    t_inc = alternated({"incremental": lambda: learn_merges(counts, m)}, 3)["incremental"]
    t_naive = alternated({"naive": lambda: learn_merges_naive(counts, m)}, 1)["naive"]  # slow: one timed run
    return [
        Row("transformer", "BPE training vs tokenizers", t_ours, t_hf, "s", t_ours / t_hf, "report", None,
            f"{s['corpus']} train, {n} merges; ratio = lmcourse / tokenizers (Rust, multi-threaded)"),
        Row("transformer", "BPE training vs naive learner", t_inc, t_naive, "s", t_naive / t_inc, ">= 10x",
            t_naive / t_inc >= 10, f"{s['corpus']} train, {m} merges; ratio = naive / lmcourse"),
    ]


def run(profile: str = "smoke") -> list[Row]:
    if profile not in SIZES:
        raise ValueError(f"unknown profile {profile!r}: choose smoke or full")
    s = SIZES[profile]
    device = torch.device("cuda" if profile == "full" and torch.cuda.is_available() else "cpu")
    return encoder_rows(s, device) + bpe_rows(s)
