"""Instruction tuning: many small tasks phrased as instructions, trained together, tested zero-shot on a held-out one.

Taught in chapter 11 (Verbalizers and prompt tuning), after FLAN (Wei et al. 2022) and
T0 (Sanh et al. 2022): multi-task training on tasks *described in words* should help a
model follow the description of a task it never saw.

Every task here is built offline from the course's shipped data, deterministically
from a seed, and answered by choosing one of a few option words (rank
classification, as T0 evaluates):

======================  ===========  =====================================================
task                    cluster      built from
======================  ===========  =====================================================
``tweet_sentiment``     sentiment    CrowdFlower tweets (negative / neutral / positive)
``movie_review``        sentiment    Pang & Lee polarity sentences (negative / positive)
``text_source``         source       a line of a Shakespeare play vs a Wikipedia line
``digits_sorted``       arithmetic   random digit lists, sorted or not (yes / no)
``number_parity``       arithmetic   random integers (even / odd)
``date_before_2000``    dates        ``lmcourse.data.dates`` strings in ten formats (yes / no)
======================  ===========  =====================================================

``held_out_split`` removes the held-out task's whole cluster from training, as FLAN
holds out task clusters (training on tweet sentiment and testing on movie-review
sentiment would test a seen task on a new dataset, not a new task).

``TopLayers`` makes multi-task tuning affordable on a CPU: only the top ``n_top``
blocks of a Llama-style Hugging Face causal LM train; the inputs to those blocks are
computed once by the frozen lower blocks and cached.
"""
from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from lmcourse.errors import LMCourseError


class InstructError(LMCourseError, ValueError):
    """Bad input to the instruction-tuning tools (unknown task, multi-token option word, ...)."""


@dataclass(frozen=True)
class Task:
    """A classification task phrased as an instruction; ``train``/``test`` are disjoint (text, label) lists."""

    name: str
    cluster: str
    instruction: str
    options: tuple[str, ...]
    train: tuple[tuple[str, int], ...]
    test: tuple[tuple[str, int], ...]

    def prompt(self, text: str, instruction: bool = True) -> str:
        """The prompt; the answer (one option word) follows ``Answer:`` after a space."""
        body = f"Input: {text}\nAnswer:"
        return f"{self.instruction}\n{body}" if instruction else body

    def __repr__(self) -> str:
        return (f"Task({self.name!r}, cluster={self.cluster!r}, options={self.options}, "
                f"train={len(self.train)}, test={len(self.test)})")


def _balanced(rows: Sequence[tuple[str, int]], n_classes: int, n_per_class: int, what: str) -> list[tuple[str, int]]:
    per = [[r for r in rows if r[1] == c][:n_per_class] for c in range(n_classes)]
    short = [c for c, p in enumerate(per) if len(p) < n_per_class]
    if short:
        raise InstructError(f"{what}: not enough examples of classes {short} for {n_per_class} per class")
    return [per[c][i] for i in range(n_per_class) for c in range(n_classes)]


def _sentiment(name: str, n_train: int, n_test: int) -> tuple[list, list]:
    from lmcourse.data.sentiment import load_sentiment
    out = []
    splits = ("train", "test") if name == "tweets" else ("train", "all")
    for split, n in zip(splits, (n_train, n_test)):
        texts, labels, names = load_sentiment(name, split)
        rows = list(zip(texts, labels))
        if name == "pang_lee" and split == "all":      # 200 sentences: test = those after the train split
            train_texts = set(load_sentiment(name, "train")[0])
            rows = [r for r in rows if r[0] not in train_texts]
        out.append(_balanced(rows, len(names), n, f"{name} {split}"))
    return out[0], out[1]


def _text_source(n_train: int, n_test: int, seed: int) -> tuple[list, list]:
    from lmcourse.data import load_corpus
    out = []
    for split, n in (("train", n_train), ("test", n_test)):
        pools = []
        for name in ("shakespeare", "wiki"):
            lines = [" ".join(l.split()) for l in load_corpus(name).lines(split)]
            lines = [l for l in lines if 6 <= len(l.split()) <= 25]
            random.Random(seed).shuffle(lines)
            pools.append(lines[:n])
        out.append(_balanced([(t, c) for c, p in enumerate(pools) for t in p], 2, n, f"text_source {split}"))
    return out[0], out[1]


def _synthetic(kind: str, n: int, rng: random.Random) -> list[tuple[str, int]]:
    rows: list[tuple[str, int]] = []
    for i in range(2 * n):
        label = i % 2
        if kind == "digits_sorted":
            digits = [rng.randint(0, 9) for _ in range(rng.randint(4, 7))]
            while (digits == sorted(digits)) != bool(label):
                digits = sorted(digits) if label else rng.sample(digits, len(digits))
            text = " ".join(map(str, digits))
        elif kind == "number_parity":
            text = str(rng.randrange(0, 5000) * 2 + label)
        else:
            raise InstructError(f"unknown synthetic task {kind!r}")
        rows.append((text, label))
    return rows


def _dates(n: int, seed: int) -> list[tuple[str, int]]:
    from lmcourse.data.dates import make_pairs
    pairs = make_pairs(8 * n + 50, seed=seed)
    rows = [(p.source, int(int(p.target[:4]) < 2000)) for p in pairs]
    return _balanced(rows, 2, n, "date_before_2000")


def build_tasks(n_train: int = 32, n_test: int = 32, seed: int = 0) -> dict[str, Task]:
    """Every task with ``n_train`` / ``n_test`` examples PER CLASS, train and test disjoint.

    Deterministic in ``seed`` (the sentiment tasks use the fixed splits of
    ``lmcourse.data.sentiment``). Taught in chapter 11.
    """
    if n_train < 1 or n_test < 1:
        raise InstructError(f"need at least one train and one test example per class (got {n_train}, {n_test})")
    rng = random.Random(seed)
    tasks = []
    tr, te = _sentiment("tweets", n_train, n_test)
    tasks.append(Task("tweet_sentiment", "sentiment", "Is the sentiment of this tweet negative, neutral or positive?",
                      ("negative", "neutral", "positive"), tuple(tr), tuple(te)))
    tr, te = _sentiment("pang_lee", n_train, n_test)
    tasks.append(Task("movie_review", "sentiment", "Is this movie review negative or positive?",
                      ("negative", "positive"), tuple(tr), tuple(te)))
    tr, te = _text_source(n_train, n_test, seed)
    tasks.append(Task("text_source", "source", "Is this line from a play or from an encyclopedia?",
                      ("play", "encyclopedia"), tuple(tr), tuple(te)))
    for kind, instruction, options in (
            ("digits_sorted", "Are these digits in increasing order? Answer yes or no.", ("no", "yes")),
            ("number_parity", "Is this number even or odd?", ("even", "odd"))):
        rows = _synthetic(kind, n_train + n_test, rng)
        rows = _dedupe_split(rows, n_train, kind)
        tasks.append(Task(kind, "arithmetic", instruction, options, *rows))
    rows = _dedupe_split(_dates(n_train + n_test, seed), n_train, "date_before_2000")
    tasks.append(Task("date_before_2000", "dates", "Is this date before the year 2000? Answer yes or no.",
                      ("no", "yes"), *rows))
    return {t.name: t for t in tasks}


def _dedupe_split(rows: list[tuple[str, int]], n_train: int, what: str) -> tuple[tuple, tuple]:
    """Rows are interleaved by class; the first n_train per class train, the rest test, no text in both."""
    n_classes = len({y for _, y in rows})
    train = rows[:n_train * n_classes]
    seen = {t for t, _ in train}
    test = [r for r in rows[n_train * n_classes:] if r[0] not in seen]
    if not test:
        raise InstructError(f"{what}: no test examples left after removing texts seen in training")
    return tuple(train), tuple(test)


def held_out_split(tasks: dict[str, Task], held_out: str, whole_cluster: bool = True) -> tuple[list[Task], Task]:
    """(training tasks, held-out task): without the held-out task, and without its cluster if ``whole_cluster``.

    Taught in chapter 11.
    """
    if held_out not in tasks:
        raise InstructError(f"unknown task {held_out!r}; known: {', '.join(tasks)}")
    test = tasks[held_out]
    train = [t for t in tasks.values() if t.name != held_out and not (whole_cluster and t.cluster == test.cluster)]
    if not train:
        raise InstructError(f"holding out {held_out!r} (cluster {test.cluster!r}) leaves no training task")
    return train, test


def mixture(tasks: Sequence[Task], instruction: bool = True, seed: int = 0,
            split: str = "train") -> list[tuple[str, tuple[str, ...], int]]:
    """All (prompt, options, label) of the tasks' ``split``, shuffled together with ``seed``.

    ``instruction=False`` drops the task descriptions (FLAN's "no template" ablation: same
    inputs and answers, the model must guess the task from the input). Taught in chapter 11.
    """
    if split not in ("train", "test"):
        raise InstructError(f"split must be 'train' or 'test', not {split!r}")
    rows = [(t.prompt(x, instruction), t.options, y) for t in tasks for x, y in getattr(t, split)]
    random.Random(seed).shuffle(rows)
    return rows


def option_ids(tokenizer, options: Sequence[str]) -> list[int]:
    """The one token of each option word after a space (``" yes"``); ``InstructError`` if a word takes several."""
    ids = []
    for o in options:
        toks = tokenizer(" " + o, add_special_tokens=False)["input_ids"]
        if len(toks) != 1:
            raise InstructError(f"option {o!r} is {len(toks)} tokens for this tokenizer; rank classification here "
                                "reads one token per option: choose a one-token word")
        ids.append(toks[0])
    return ids


class _Stop(Exception):
    pass


class TopLayers(nn.Module):
    """The top ``n_top`` blocks of a Llama-style HF causal LM, trainable, over cached inputs. Taught in chapter 11.

    ``cache(tokenizer, prompts)`` runs the frozen lower blocks once and keeps their output
    (right-padded: with causal attention the real positions are exact). ``forward(batch)``
    runs the top blocks, the final norm and the (frozen) LM head at each prompt's last
    position: (B, V) next-token logits, equal to the full model's.
    """

    def __init__(self, model: nn.Module, n_top: int):
        super().__init__()
        inner = getattr(model, "model", None)
        layers = getattr(inner, "layers", None)
        if layers is None or not hasattr(inner, "rotary_emb") or not hasattr(inner, "norm"):
            raise InstructError("TopLayers needs a Llama-style Hugging Face causal LM (model.model.layers, "
                                ".rotary_emb, .norm)")
        if not 1 <= n_top <= len(layers):
            raise InstructError(f"n_top must be in 1..{len(layers)}, not {n_top}")
        for p in model.parameters():
            p.requires_grad_(False)
        self.top = nn.ModuleList(layers[len(layers) - n_top:])
        for p in self.top.parameters():
            p.requires_grad_(True)
        self._model = [model]                        # not a submodule: its other weights are not ours
        self.n_top = n_top

    @property
    def model(self) -> nn.Module:
        return self._model[0]

    @torch.no_grad()
    def cache(self, tokenizer, prompts: Sequence[str], batch_size: int = 16) -> list[tuple[Tensor, Tensor]]:
        """[(hidden (B, T, H) entering the top blocks, last position (B,)), ...] per batch of prompts."""
        seqs = [tokenizer(p, add_special_tokens=True)["input_ids"] for p in prompts]
        pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
        out = []
        for s in range(0, len(seqs), batch_size):
            chunk = seqs[s:s + batch_size]
            ids = torch.full((len(chunk), max(map(len, chunk))), pad, dtype=torch.long)
            for i, q in enumerate(chunk):
                ids[i, :len(q)] = torch.tensor(q)
            seen = []

            def grab(module, args, kwargs):
                seen.append(args[0] if args else kwargs["hidden_states"])
                raise _Stop
            hook = self.top[0].register_forward_pre_hook(grab, with_kwargs=True)
            try:
                self.model(input_ids=ids.to(next(self.model.parameters()).device))
            except _Stop:
                pass
            finally:
                hook.remove()
            out.append((seen[0].detach(), torch.tensor([len(q) - 1 for q in chunk])))
        return out

    def forward(self, batch: tuple[Tensor, Tensor]) -> Tensor:
        from transformers.masking_utils import create_causal_mask
        h, last = batch                                                        # (B, T, H), (B,)
        inner = self.model.model
        pos = torch.arange(h.shape[1], device=h.device)[None]
        rope = inner.rotary_emb(h, position_ids=pos)
        mask = create_causal_mask(config=self.model.config, inputs_embeds=h, attention_mask=None,
                                  cache=None, position_ids=pos)
        for layer in self.top:
            h = layer(h, attention_mask=mask, position_embeddings=rope, position_ids=pos)
            h = h[0] if isinstance(h, tuple) else h
        h = inner.norm(h[torch.arange(h.shape[0], device=h.device), last.to(h.device)])   # (B, H)
        return self.model.get_output_embeddings()(h)                         # (B, V)


__all__ = ["InstructError", "Task", "TopLayers", "build_tasks", "held_out_split", "mixture", "option_ids"]
