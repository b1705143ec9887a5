"""Text processing: word tokenizers, vocabularies, and (later chapters) teaching BPE."""
from lmcourse.text.tokenize import sentences, words
from lmcourse.text.vocab import Vocabulary

__all__ = ["Vocabulary", "sentences", "words"]
