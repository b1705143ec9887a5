"""Language models from counts: n-gram models, smoothing, perplexity, ARPA export.

Taught in chapter 2 (N-gram language models).
"""
from lmcourse.lm.arpa import to_arpa
from lmcourse.lm.counts import NGramCounts
from lmcourse.lm.ngram import MLE, AddK, KneserNey, Laplace, NGramLM, ZeroProbabilityError

__all__ = ["MLE", "AddK", "KneserNey", "Laplace", "NGramCounts", "NGramLM", "ZeroProbabilityError", "to_arpa"]
