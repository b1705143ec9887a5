"""Data: corpora, evaluation sets and synthetic tasks from offline, checksummed assets."""
from lmcourse.data.assets import ASSETS, asset_files, asset_path, cache_dir
from lmcourse.data.corpora import CORPORA, Corpus, Document, load_corpus

__all__ = ["ASSETS", "CORPORA", "Corpus", "Document", "asset_files", "asset_path", "cache_dir", "load_corpus"]
