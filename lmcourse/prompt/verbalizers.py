"""Verbalizers map label words to classes; a PromptClassifier = template + scorer + verbalizer.

Taught in chapter 9 (Adapting large PLMs) and chapter 11 (Verbalizers).

    v = Verbalizer({"negative": ["bad", "terrible"], "positive": ["good", "great"]}, tokenizer)
    clf = PromptClassifier(causal_scorer(model, tok), Template("{text} It was {mask}"), v)
    clf(examples)            # (B, C) class log-scores, differentiable
    clf.predict(examples)    # (B,) class indices

Class score from the label words' log-probabilities s_w = log P(w | prompt) (``aggregate``):

* ``"mean"``:     log( (1/n) sum_w P(w | x) )   the class probability is the average of its words';
* ``"max"``:      max_w log P(w | x)            the best word speaks for the class;
* ``"weighted"``: log( sum_w a_w P(w | x) ), a = softmax(theta) over the class's words, theta
                  trainable (starts uniform, i.e. equal to "mean").

Calibration (Zhao et al. 2021, "contextual calibration"): the model's class scores for a
content-free input ("N/A", "", ...) measure its prior bias; ``calibrate`` stores
log p_cf(c) (class probabilities normalised over the classes, averaged over the content-free
inputs) and the calibrated score is score(c) - log p_cf(c), i.e. p(c|x) / p_cf(c).
"""
from __future__ import annotations

import copy
import math

import torch
from torch import Tensor, nn

from lmcourse.errors import LMCourseError
from lmcourse.prompt.scoring import LabelWordError, Scorer, TokenizerAdapter, word_ids
from lmcourse.prompt.templates import Template, TemplateError

AGGREGATES = ("mean", "max", "weighted")


class VerbalizerError(LMCourseError, ValueError):
    """A malformed verbalizer: a class with no label words, a word used twice, an unknown aggregate..."""


class Verbalizer(nn.Module):
    """Manual verbalizer: label -> several label words; ``class_scores`` turns (B, W) word log-probs into (B, C).

    ``labels``: class names in order; ``words``: all label words, flat, in class order;
    ``word_class``: (W,) class index of each word. Every word is checked with the tokenizer
    (``LabelWordError`` if it cannot be encoded). Taught in chapter 11 (Verbalizers).
    """

    def __init__(self, label_words: dict[str, list[str]], tokenizer=None, aggregate: str = "mean"):
        super().__init__()
        if aggregate not in AGGREGATES:
            raise VerbalizerError(f"aggregate must be one of {AGGREGATES}, not {aggregate!r}")
        if not isinstance(label_words, dict) or len(label_words) < 2:
            raise VerbalizerError(f"a verbalizer maps at least two classes to label words, got {label_words!r}")
        words, cls = [], []
        for c, (label, ws) in enumerate(label_words.items()):
            ws = [ws] if isinstance(ws, str) else list(ws)
            if not ws:
                raise VerbalizerError(f"the class {label!r} has no label words")
            for w in ws:
                if w in words:
                    raise VerbalizerError(f"the label word {w!r} is given twice (classes must not share words)")
                if tokenizer is not None:
                    word_ids(tokenizer if isinstance(tokenizer, TokenizerAdapter) else TokenizerAdapter(tokenizer), w)
                elif not isinstance(w, str) or not w.strip():
                    raise LabelWordError(f"a label word must be a non-empty string, not {w!r}")
                words.append(w)
                cls.append(c)
        self.label_words = {k: ([v] if isinstance(v, str) else list(v)) for k, v in label_words.items()}
        self.labels: list[str] = list(label_words)
        self.words: list[str] = words
        self.aggregate = aggregate
        self.register_buffer("word_class", torch.tensor(cls, dtype=torch.long), persistent=False)
        # trainable word weights (used by "weighted"); zeros = uniform = "mean"
        self.word_weight = nn.Parameter(torch.zeros(len(words)), requires_grad=aggregate == "weighted")
        self.register_buffer("prior", torch.zeros(len(self.labels)), persistent=False)
        self.calibrated = False

    @property
    def n_classes(self) -> int:
        return len(self.labels)

    def _per_class(self, values: Tensor, c: int) -> Tensor:
        return values[..., self.word_class == c]

    def raw_class_scores(self, word_logprobs: Tensor) -> Tensor:
        """(B, W) -> (B, C) before calibration."""
        if word_logprobs.dim() != 2 or word_logprobs.shape[1] != len(self.words):
            raise VerbalizerError(f"expected word log-probs of shape (B, {len(self.words)}), got "
                                  f"{tuple(word_logprobs.shape)}")
        out = []
        for c in range(self.n_classes):
            s = self._per_class(word_logprobs, c)                                  # (B, n_c)
            if self.aggregate == "mean":
                out.append(torch.logsumexp(s, -1) - math.log(s.shape[-1]))
            elif self.aggregate == "max":
                out.append(s.max(-1).values)
            else:
                logw = torch.log_softmax(self._per_class(self.word_weight, c), -1)  # (n_c,)
                out.append(torch.logsumexp(s + logw.to(s.dtype), -1))
        return torch.stack(out, -1)                                                 # (B, C)

    def class_scores(self, word_logprobs: Tensor) -> Tensor:
        """(B, W) word log-probs -> (B, C) class log-scores (minus the content-free prior if calibrated)."""
        scores = self.raw_class_scores(word_logprobs)
        return scores - self.prior.to(scores.dtype) if self.calibrated else scores

    def calibrate(self, content_free_word_logprobs: Tensor) -> "Verbalizer":
        """A calibrated copy: its scores are divided (in log space: minus) by the content-free class prior.

        ``content_free_word_logprobs``: (N, W) word log-probs for N content-free prompts (the
        template filled with "N/A", "", ...). Zhao et al. (2021). Taught in chapter 11.
        """
        with torch.no_grad():
            p = torch.softmax(self.raw_class_scores(content_free_word_logprobs), -1).mean(0)   # (C,)
        new = copy.deepcopy(self)
        new.prior = torch.log(p).to(self.prior.device)
        new.calibrated = True
        return new

    def extra_repr(self) -> str:
        return f"{self.label_words}, aggregate={self.aggregate!r}" + (", calibrated" if self.calibrated else "")


class PromptClassifier(nn.Module):
    """Template + scorer + verbalizer: classification cast as filling the answer slot.

    ``forward(examples)`` -> (B, C) class log-scores (differentiable: train it with cross-entropy);
    ``predict(examples)`` -> (N,) class indices. Examples are dicts of the template's fields.
    Taught in chapter 9 (Adapting large PLMs).
    """

    def __init__(self, scorer: Scorer, template: Template, verbalizer: Verbalizer):
        super().__init__()
        if scorer.kind == "causal" and not template.mask_at_end:
            raise TemplateError(f"a causal LM can only fill an answer slot at the end of the prompt; {template!r} "
                                "has text after {mask}")
        self.scorer, self.template, self.verbalizer = scorer, template, verbalizer
        for w in verbalizer.words:                       # the scorer's tokenizer must encode every word
            scorer.ids_of(w)

    def prompts(self, examples: list[dict]) -> list[str]:
        return [self.template.render(ex, self.scorer.mask_token, self.scorer.soft_token) for ex in examples]

    def word_logprobs(self, examples: list[dict]) -> Tensor:
        return self.scorer.word_logprobs(self.prompts(examples), self.verbalizer.words)   # (B, W)

    def forward(self, examples: list[dict]) -> Tensor:
        return self.verbalizer.class_scores(self.word_logprobs(examples))                 # (B, C)

    @torch.no_grad()
    def scores(self, examples: list[dict], batch_size: int = 16) -> Tensor:
        """(N, C) class log-scores in eval mode, no gradients, in batches."""
        if not examples:
            raise ValueError("no examples to score")
        was = self.training
        self.eval()
        try:
            return torch.cat([self(examples[i:i + batch_size]) for i in range(0, len(examples), batch_size)])
        finally:
            self.train(was)

    def predict(self, examples: list[dict], batch_size: int = 16) -> Tensor:
        return self.scores(examples, batch_size).argmax(-1)

    def calibrate(self, content_free: tuple[str, ...] = ("N/A", "", "null")) -> "PromptClassifier":
        """Calibrate the verbalizer in place with content-free inputs put in every field (Zhao et al. 2021)."""
        with torch.no_grad():
            was = self.training
            self.eval()
            exs = [{f: text for f in self.template.fields} for text in content_free]
            lp = self.word_logprobs(exs)
            self.train(was)
        self.verbalizer = self.verbalizer.calibrate(lp)
        return self


__all__ = ["AGGREGATES", "PromptClassifier", "Verbalizer", "VerbalizerError"]
