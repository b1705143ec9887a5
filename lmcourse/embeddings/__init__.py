"""Word embeddings: context (co-occurrence) vectors, Word2Vec, and word-vector evaluation.

Taught in chapter 1 (Word representations) and chapter 3 (Word2Vec).
"""
from lmcourse.embeddings.corpus import ALL_CORPORA, is_word, word_sentences
from lmcourse.embeddings.cooccurrence import cooccurrence_matrix, ppmi, svd_vectors
from lmcourse.embeddings.evaluate import (Score, WordNotInVocabulary, WordVectors, analogy_answers, analogy_score,
                                          evaluate, score_table, similarity_score)
from lmcourse.embeddings.word2vec import (PairBatches, Stream, Word2Vec, Word2VecConfig, discard_probability,
                                          gensim_word2vec, neg_sampling_grads, neg_sampling_loss, noise_distribution,
                                          offset_weights, prepare, train_word2vec, word_counts)

__all__ = ["ALL_CORPORA", "is_word", "word_sentences", "PairBatches", "Score", "Stream", "Word2Vec", "Word2VecConfig", "WordNotInVocabulary", "WordVectors",
           "analogy_answers", "analogy_score", "cooccurrence_matrix", "discard_probability", "evaluate",
           "gensim_word2vec", "neg_sampling_grads", "neg_sampling_loss", "noise_distribution", "offset_weights",
           "ppmi", "prepare", "score_table", "similarity_score", "svd_vectors", "train_word2vec", "word_counts"]
