"""Tokenization of generated sentences and their references before they are
scored (fairseq-ot-score-generations): one tokenizer applied to every file
alike, and a check that files split on whitespace only look tokenized alike.

A tokenizer, by the name ``--tokenizer`` takes and the scores record:

- ``whitespace``: each line split on whitespace, nothing else (for files
  tokenized alike beforehand);
- ``moses-LANG``: Moses for language LANG, no escaping
  (fairseq_ot/data_prep/tokenize.py), after Moses detokenization: Moses is
  not idempotent (it splits the "'t" of an already tokenized "don 't"
  again), so running text and tokenized text are both brought back to
  running text first, and end up the same tokens;
- ``moses-LANG-lowercase``: the same, lower-cased (``moses-en-lowercase``
  is how the caption_lm recipe tokenizes its references).

Moses leaves fairseq's ``<unk>`` one token (it would cut it into "< unk >"):
the caption_lm references and the samples of its models hold it as a word.

The check compares how two files treat the punctuation at the edges of
their tokens: a token made of punctuation only (Unicode category P) counts
as a split mark, a token with some other character that begins or ends with
punctuation as an attached one ("runs ." against "runs."); marks inside a
token ("don't", "3.5") count for neither. Tokenized text splits nearly all
of its marks, running text nearly none. Two files whose shares of split
marks differ by more than MAX_SHARE_GAP, each with at least MIN_MARKS marks,
look differently tokenized: their n-grams would not match where the words do.
"""

import re
import unicodedata

from fairseq_ot.data_prep.caption_lm import UNK
from fairseq_ot.data_prep.tokenize import detokenize, tokenize
from fairseq_ot.errors import FlagError

WHITESPACE = "whitespace"
MOSES = re.compile(r"moses-([a-z]{2,3})(-lowercase)?")
# fewer marks say nothing about a file's tokenization
MIN_MARKS = 5
MAX_SHARE_GAP = 0.5


def tokenizer(name):
    """The function line -> token list of the tokenizer called ``name``;
    FlagError for a name of none."""
    if name == WHITESPACE:
        return str.split
    match = MOSES.fullmatch(name)
    if match is None:
        raise FlagError(f"--tokenizer must be {WHITESPACE}, moses-LANG or moses-LANG-lowercase, got {name!r}")
    lang, lowercase = match[1], match[2] is not None

    def moses(line):
        tokens = f" {UNK} ".join(tokenize(detokenize(piece, lang), lang) for piece in line.split(UNK))
        return (tokens.lower() if lowercase else tokens).split()

    return moses


def is_punctuation(character):
    return unicodedata.category(character).startswith("P")


def split_mark_share(sentences):
    """(the share of split marks among the edge punctuation marks of the
    token lists ``sentences``, or None without any; the number of marks)."""
    split = attached = 0
    for tokens in sentences:
        for token in tokens:
            if all(map(is_punctuation, token)):
                split += 1
            elif is_punctuation(token[0]) or is_punctuation(token[-1]):
                attached += 1
    marks = split + attached
    return (split / marks if marks else None), marks


def tokenization_gap(first, second):
    """(share of split marks of ``first``, of ``second``) when the two lists
    of token lists look differently tokenized, else None."""
    (first_share, first_marks), (second_share, second_marks) = split_mark_share(first), split_mark_share(second)
    if min(first_marks, second_marks) < MIN_MARKS or abs(first_share - second_share) <= MAX_SHARE_GAP:
        return None
    return first_share, second_share
