"""Benchmark: skip-gram Word2Vec throughput, lmcourse (PyTorch) vs gensim (optimised C), same corpus and settings.

Both sides train on the same sentences with the same settings (including gensim's
sub-sampling rule, ``sample_formula="word2vec"``), one CPU thread
each (``torch.set_num_threads(1)``, gensim ``workers=1``), and are scored on
WordSim353 by the same code. Words per second counts the corpus words (after
``min_count``, before sub-sampling) times the epochs, over the wall time of training.
Target: at least 0.3x gensim's CPU throughput at an equal or better score (within
0.02). With a GPU present a third row gives lmcourse's GPU throughput.

Taught in the Performance appendix; the model is taught in chapter 3 (Word2Vec).
"""
from __future__ import annotations

import time

import torch

from lmcourse.bench import Row

TARGET = 0.3


def _corpus(profile: str):
    from lmcourse.data import load_corpus

    names = ["wiki", "lee"] if profile == "smoke" else ["shakespeare", "wiki", "lee"]
    return [s for n in names for s in load_corpus(n).sentences("all")], "+".join(names)


def run(profile: str = "smoke") -> list[Row]:
    from lmcourse.data.wordsets import wordsim353
    from lmcourse.embeddings import WordVectors, Word2VecConfig, gensim_word2vec, prepare, similarity_score, train_word2vec

    sents, name = _corpus(profile)
    cfg = Word2VecConfig(mode="skipgram", dim=50 if profile == "smoke" else 100, window=5, negatives=5,
                         epochs=3 if profile == "smoke" else 5, sample=1e-3, seed=1, lr=0.05,
                         sample_formula="word2vec")  # gensim's sub-sampling rule: the same settings
    vocab, stream = prepare(sents, min_count=5)
    words = len(stream) * cfg.epochs
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        t = time.perf_counter()
        model, _ = train_word2vec(vocab, stream, cfg)
        ours_s = time.perf_counter() - t
        ours = similarity_score(model.vectors(vocab), wordsim353())
        t = time.perf_counter()
        ref_model = gensim_word2vec(sents, cfg, min_count=5, workers=1)
        ref_s = time.perf_counter() - t
        ref = similarity_score(WordVectors.from_gensim(ref_model.wv), wordsim353())
    finally:
        torch.set_num_threads(threads)
    ratio = (words / ours_s) / (words / ref_s)
    settings = f"{name}, {len(stream)} words x {cfg.epochs} epochs, dim {cfg.dim}, window {cfg.window}, K {cfg.negatives}"
    rows = [
        Row("word2vec", "skip-gram CPU words/s (1 thread)", words / ours_s, words / ref_s, "words/s", ratio,
            f">= {TARGET}x gensim", ratio >= TARGET, settings),
        Row("word2vec", "WordSim353 Spearman", ours.value, ref.value, "rho", ours.value / ref.value if ref.value else 0.0,
            "equal or better (-0.02)", ours.value >= ref.value - 0.02,
            f"coverage {ours.coverage.fraction:.0%} (both) of 353 pairs"),
    ]
    if torch.cuda.is_available():
        gpu_cfg = Word2VecConfig(**{**cfg.__dict__, "batch_size": 4096})
        train_word2vec(vocab, stream, Word2VecConfig(**{**cfg.__dict__, "epochs": 1}), device="cuda")  # warm-up
        torch.cuda.synchronize()
        t = time.perf_counter()
        gmodel, _ = train_word2vec(vocab, stream, gpu_cfg, device="cuda")
        torch.cuda.synchronize()
        gpu_s = time.perf_counter() - t
        gscore = similarity_score(gmodel.vectors(vocab), wordsim353())
        rows.append(Row("word2vec", f"skip-gram GPU words/s ({torch.cuda.get_device_name(0)})", words / gpu_s,
                        words / ref_s, "words/s", ref_s / gpu_s, "reported", None,
                        f"WordSim353 {gscore.value:.3f}; reference is gensim on 1 CPU thread"))
    return rows
