"""Scoring files of generated sentences (`fairseq-ot-score-generations`,
fairseq_ot/cli/score_generations.py, whose docstring says what is scored):
each file read and tokenized alike, BLEU, Self-BLEU and distinct-n
(generation_metrics.py) of the hypotheses against the references, and of the
references against the training sentences when given; the warnings (empty
generations, files that look differently tokenized) returned beside."""

from fairseq_ot.data_prep.text_files import TextFileError, read_lines
from fairseq_ot.errors import FlagError
from fairseq_ot.evaluation.generation_metrics import (
    SMOOTHING,
    UndefinedScoreError,
    generation_scores,
    real_data_scores,
)
from fairseq_ot.evaluation.tokenization import WHITESPACE, tokenization_gap, tokenizer


def read_sentences(path, tokenize, allow_empty_lines):
    """The lines of ``path`` as token lists of ``tokenize``; TextFileError
    when no line has a token or, unless ``allow_empty_lines``, on a blank
    line (with its number)."""
    lines = read_lines(path, allow_empty=allow_empty_lines)
    if not lines:
        raise TextFileError(f"{path}: empty file, no sentences")
    sentences = [tokenize(line) for line in lines]
    if not any(sentences):
        raise TextFileError(f"{path}: only empty lines, no sentences")
    return sentences


def tokenization_warnings(files):
    """A warning for each pair of consecutive (path, sentences) ``files``
    that look differently tokenized."""
    warnings = []
    for (first, first_sentences), (second, second_sentences) in zip(files, files[1:]):
        gap = tokenization_gap(first_sentences, second_sentences)
        if gap is not None:
            warnings.append(
                f"{first} and {second} look differently tokenized ({gap[0]:.0%} and {gap[1]:.0%} of the "
                f"punctuation at their tokens' edges stands alone): give --tokenizer, e.g. moses-en, "
                f"to tokenize every file alike")
    return warnings


def scores_of_file(path, score, sentences, references):
    """score(sentences, references), a score undefined for the file's
    sentences (Self-BLEU of a single line) reported as the file's fault."""
    try:
        return score(sentences, references)
    except UndefinedScoreError as error:
        raise TextFileError(f"{path}: {error}") from None


def score_files(hypotheses_path, references_path, train_refs_path=None, tokenizer_name=WHITESPACE,
                temperature=None):
    """The JSON record of scoring the files, and the warnings about them
    (printed only once every score is computed, so that a refusal stays the
    one line on stderr); FlagError for a temperature that is not > 0,
    TextFileError for a file that cannot be scored."""
    # `not > 0` also refuses nan
    if temperature is not None and not temperature > 0:
        raise FlagError(f"--temperature must be > 0, got {temperature}")
    tokenize = tokenizer(tokenizer_name)
    hypotheses = read_sentences(hypotheses_path, tokenize, allow_empty_lines=True)
    references = read_sentences(references_path, tokenize, allow_empty_lines=False)
    # read before any scoring, so that a bad file fails at once
    train_references = (read_sentences(train_refs_path, tokenize, allow_empty_lines=False)
                        if train_refs_path else None)
    empty = sum(not hypothesis for hypothesis in hypotheses)
    record = {"n_hyp": len(hypotheses), "n_empty_hyp": empty, "n_ref": len(references)}
    record.update(scores_of_file(hypotheses_path, generation_scores, hypotheses, references))
    record.update(tokenizer=tokenizer_name, smoothing=SMOOTHING, temperature=temperature)
    if train_references is not None:
        record["n_train_ref"] = len(train_references)
        record.update(scores_of_file(references_path, real_data_scores, references, train_references))
    warnings = [f"{hypotheses_path}: {empty} of {len(hypotheses)} lines are empty, "
                "scored as empty generations (0)"] if empty else []
    if tokenizer_name == WHITESPACE:
        files = [(hypotheses_path, hypotheses), (references_path, references)]
        files += [(train_refs_path, train_references)] if train_references is not None else []
        warnings += tokenization_warnings(files)
    return record, warnings
