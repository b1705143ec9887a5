"""Few-shot evaluation: k-shot splits with fixed seeds, accuracy, a short prompt-based fine-tuning run, mean and spread.

Taught in chapter 9 (Adapting large PLMs); used by chapters 10-12.

Few-shot numbers move a lot with the k examples drawn, so every result is reported over
several seeds as mean +- standard deviation (``over_seeds``), never from one draw.
"""
from __future__ import annotations

import random
import statistics
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F

from lmcourse.errors import LMCourseError
from lmcourse.train import History, train


class FewShotError(LMCourseError, ValueError):
    """Impossible few-shot request: more shots than examples, mismatched lengths, nothing to train."""


def kshot_split(examples: Sequence, labels: Sequence[int], k: int, seed: int) -> tuple[list[int], list[int]]:
    """(train_idx, test_idx): ``k`` examples per class drawn with ``random.Random(seed)``; the rest is the test set.

    The same seed gives the same split on every machine. ``FewShotError`` if a class has fewer
    than ``k + 1`` examples (k to train on and at least one to test). Taught in chapter 9.
    """
    if len(examples) != len(labels):
        raise FewShotError(f"{len(examples)} examples but {len(labels)} labels")
    if not isinstance(k, int) or k < 0:
        raise FewShotError(f"k (shots per class) must be a non-negative integer, not {k!r}")
    by_class: dict[int, list[int]] = {}
    for i, y in enumerate(labels):
        by_class.setdefault(int(y), []).append(i)
    rng = random.Random(seed)
    train_idx = []
    for c in sorted(by_class):
        idx = by_class[c]
        if k >= len(idx):
            raise FewShotError(f"asked for {k} shots of class {c}, but it has only {len(idx)} examples "
                               f"(k must leave at least one to test)")
        train_idx += rng.sample(idx, k)
    chosen = set(train_idx)
    return train_idx, [i for i in range(len(labels)) if i not in chosen]


def accuracy(pred, gold) -> float:
    """Fraction of predictions equal to the gold labels. Taught in chapter 9."""
    pred, gold = torch.as_tensor(pred).flatten(), torch.as_tensor(gold).flatten()
    if pred.shape != gold.shape or pred.numel() == 0:
        raise ValueError(f"need as many predictions as gold labels (> 0), got {pred.numel()} and {gold.numel()}")
    return (pred == gold).float().mean().item()


def over_seeds(fn: Callable[[int], float], seeds: Sequence[int]) -> dict:
    """Run ``fn(seed) -> float`` for each seed: {"mean", "std" (sample std; 0 for one seed), "values"}.

    Taught in chapter 9 (Adapting large PLMs).
    """
    seeds = list(seeds)
    if not seeds:
        raise FewShotError("over_seeds needs at least one seed")
    values = [float(fn(s)) for s in seeds]
    std = statistics.stdev(values) if len(values) > 1 else 0.0
    return {"mean": statistics.fmean(values), "std": std, "values": values, "seeds": seeds}


def prompt_loss(classifier, batch) -> torch.Tensor:
    """Cross-entropy of the class log-scores: ``batch`` = (examples, labels). A ``loss_fn`` for ``lmcourse.train``."""
    examples, labels = batch
    scores = classifier(examples)                                                 # (B, C)
    return F.cross_entropy(scores, torch.as_tensor(labels, device=scores.device))


def fewshot_train(classifier, examples: list[dict], labels: list[int], steps: int, lr: float = 1e-3,
                  batch_size: int = 8, seed: int = 0, weight_decay: float = 0.0) -> History:
    """Fine-tune the classifier's trainable parameters (those with requires_grad) on a few examples.

    Batches are drawn by a seeded shuffle (the same on every machine); the loop is
    ``lmcourse.train.train`` with AdamW. What trains is decided by the caller: freeze the model
    for prompt tuning, leave it unfrozen for prompt-based fine-tuning. Taught in chapter 9.
    """
    params = [p for p in classifier.parameters() if p.requires_grad]
    if not params:
        raise FewShotError("the classifier has no trainable parameters (everything is frozen)")
    if len(examples) != len(labels) or not examples:
        raise FewShotError(f"need as many labels as examples (> 0), got {len(examples)} and {len(labels)}")
    rng = random.Random(seed)
    order = list(range(len(examples)))
    batches = []
    for _ in range(max(1, -(-steps * batch_size // len(examples)))):
        rng.shuffle(order)
        batches += [([examples[i] for i in order[s:s + batch_size]], [labels[i] for i in order[s:s + batch_size]])
                    for s in range(0, len(order), batch_size)]
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
    return train(classifier, batches[:steps], prompt_loss, opt, steps)


def fewshot_eval(make_classifier: Callable[[], torch.nn.Module], examples: list[dict], labels: list[int], k: int,
                 seeds: Sequence[int], steps: int = 0, lr: float = 1e-3, batch_size: int = 8,
                 test_limit: int | None = None) -> dict:
    """Accuracy over seeds: for each seed draw a k-shot split, build a fresh classifier, train ``steps`` steps on
    the k shots per class (0 = zero-shot), test on the rest (first ``test_limit``). Returns ``over_seeds``' dict.

    Taught in chapter 9 (Adapting large PLMs).
    """
    def one(seed: int) -> float:
        tr, te = kshot_split(examples, labels, k, seed)
        te = te[:test_limit] if test_limit else te
        torch.manual_seed(seed)
        clf = make_classifier()
        if steps > 0:
            fewshot_train(clf, [examples[i] for i in tr], [labels[i] for i in tr], steps, lr, batch_size, seed)
        pred = clf.predict([examples[i] for i in te], batch_size=batch_size)
        return accuracy(pred, [labels[i] for i in te])

    return over_seeds(one, seeds)


__all__ = ["FewShotError", "accuracy", "fewshot_eval", "fewshot_train", "kshot_split", "over_seeds", "prompt_loss"]
