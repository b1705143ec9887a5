"""Data: corpora, evaluation sets and synthetic tasks from offline, checksummed assets."""
from lmcourse.data.assets import ASSETS, asset_files, asset_path, cache_dir
from lmcourse.data.corpora import CORPORA, Corpus, Document, load_corpus
from lmcourse.data.wordsets import (Analogy, Coverage, WordPair, analogies, in_vocabulary, load_word_set, simlex999,
                                    wordsim353)

__all__ = ["ASSETS", "CORPORA", "Analogy", "Corpus", "Coverage", "Document", "WordPair", "analogies", "asset_files",
           "asset_path", "cache_dir", "in_vocabulary", "load_corpus", "load_word_set", "simlex999", "wordsim353"]
