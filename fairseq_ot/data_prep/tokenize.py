"""Moses tokenization through the sacremoses Python API.

Escaping is off: the ``sacremoses tokenize`` command line turns ``'`` into
``&apos;`` by default, which would then be scored as text."""

from functools import lru_cache

from sacremoses import MosesDetokenizer, MosesTokenizer


@lru_cache(maxsize=None)
def _tokenizer(lang):
    return MosesTokenizer(lang=lang)


@lru_cache(maxsize=None)
def _detokenizer(lang):
    return MosesDetokenizer(lang=lang)


def tokenize(line, lang):
    """``line`` Moses-tokenized for language ``lang``, tokens joined by spaces."""
    return _tokenizer(lang).tokenize(line, escape=False, return_str=True)


def detokenize(line, lang):
    """The inverse of ``tokenize`` up to whitespace: a space-separated token
    line back to running text."""
    return _detokenizer(lang).detokenize(line.split(), unescape=False)
