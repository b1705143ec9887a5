"""Prompt learning: templates, the three model kinds behind one scorer, verbalizers, few-shot runs.

Taught in Part II (chapters 9-11). This package re-exports the core objects; the soft-prompt,
search, knowledge and prototype modules are imported as submodules
(``from lmcourse.prompt.soft import PromptTuning``).
"""
from lmcourse.prompt.fewshot import (FewShotError, accuracy, fewshot_eval, fewshot_train, kshot_split, over_seeds,
                                     prompt_loss)
from lmcourse.prompt.scoring import (LabelWordError, Scorer, causal_scorer, load_scorer, masked_scorer, seq2seq_scorer,
                                     word_ids)
from lmcourse.prompt.templates import Template, TemplateError, key_value_template
from lmcourse.prompt.verbalizers import PromptClassifier, Verbalizer, VerbalizerError

__all__ = ["FewShotError", "LabelWordError", "PromptClassifier", "Scorer", "Template", "TemplateError", "Verbalizer",
           "VerbalizerError", "accuracy", "causal_scorer", "fewshot_eval", "fewshot_train", "key_value_template",
           "kshot_split", "load_scorer", "masked_scorer", "over_seeds", "prompt_loss", "seq2seq_scorer", "word_ids"]
