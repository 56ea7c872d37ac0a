"""BLEU, Self-BLEU and distinct-n of generations
(fairseq_ot/evaluation/generation_metrics.py) against nltk's sentence_bleu
as the oracle, and the fairseq-ot-score-generations command line: its
tokenizer applied to every file alike, its warnings (files that look
differently tokenized, empty generations), a byte-order mark, a closed pipe."""

import json
import math
import os
import random
import subprocess
import sys

import pytest
from nltk.translate.bleu_score import SmoothingFunction, sentence_bleu

from fairseq_ot.cli.score_generations import main
from fairseq_ot.data_prep.flickr8k import tokenize_caption
from fairseq_ot.evaluation.generation_metrics import (
    BLEU_ORDERS,
    SMOOTHING,
    ReferenceLengths,
    UndefinedScoreError,
    bleu,
    distinct_n,
    generation_scores,
    real_data_scores,
    self_bleu,
)

TOLERANCE = 1e-9


def nltk_bleu(references, hypothesis, order):
    return sentence_bleu(references, hypothesis, weights=(1 / order,) * order,
                         smoothing_function=SmoothingFunction().method1)


def nltk_mean_bleu(hypotheses, references, order):
    return sum(nltk_bleu(references, hypothesis, order) for hypothesis in hypotheses) / len(hypotheses)


def nltk_mean_self_bleu(sentences, order):
    return sum(nltk_bleu(sentences[:i] + sentences[i + 1:], sentence, order)
               for i, sentence in enumerate(sentences)) / len(sentences)


def random_sentences(rng, count, vocabulary, min_len, max_len):
    return [[f"w{rng.randrange(vocabulary)}" for _ in range(rng.randint(min_len, max_len))]
            for _ in range(count)]


# a small vocabulary so that n-grams match; the second is short sentences of
# two words, full of duplicates and of sentences shorter than N
RANDOM_SETS = [
    pytest.param(dict(vocabulary=6, max_len=15, n_hyp=80, n_ref=120), id="lengths-0-15"),
    pytest.param(dict(vocabulary=2, max_len=4, n_hyp=60, n_ref=60), id="duplicates"),
]


@pytest.mark.parametrize("spec", RANDOM_SETS)
def test_bleu_and_self_bleu_match_nltk(spec):
    rng = random.Random(7)
    hypotheses = random_sentences(rng, spec["n_hyp"], spec["vocabulary"], 0, spec["max_len"])
    references = random_sentences(rng, spec["n_ref"], spec["vocabulary"], 1, spec["max_len"])
    ours, ours_self = bleu(hypotheses, references), self_bleu(hypotheses)
    for order in BLEU_ORDERS:
        assert abs(ours[order] - nltk_mean_bleu(hypotheses, references, order)) <= TOLERANCE
        assert abs(ours_self[order] - nltk_mean_self_bleu(hypotheses, order)) <= TOLERANCE


def test_identical_generations_have_self_bleu_1():
    sentence = "the cat sat on the mat".split()
    assert self_bleu([sentence] * 3) == dict.fromkeys(BLEU_ORDERS, 1.0)


def test_a_generation_is_never_its_own_reference():
    # each would score 1 against itself, but they share no word
    sentences = ["a b c d e".split(), "f g h i j".split()]
    assert bleu(sentences[:1], sentences[:1]) == dict.fromkeys(BLEU_ORDERS, 1.0)
    assert self_bleu(sentences) == dict.fromkeys(BLEU_ORDERS, 0.0)
    # its own length is no reference length either: the other sentence's 7
    # words give the 5-word one a brevity penalty exp(1 - 7/5)
    sentences = ["a b c d e".split(), "a b c d e f g".split()]
    ours = self_bleu(sentences)
    for order in BLEU_ORDERS:
        assert abs(ours[order] - nltk_mean_self_bleu(sentences, order)) <= TOLERANCE
    assert nltk_bleu(sentences[1:], sentences[0], 2) == pytest.approx(math.exp(1 - 7 / 5))


@pytest.mark.parametrize("references", [["a b c d", "a b c d e f"], ["a b c d e f", "a b c d"]])
def test_reference_length_ties_go_to_the_shorter(references):
    # 5 words between references of 4 and 6: r = 4 gives no brevity penalty,
    # r = 6 would give exp(1 - 6/5), whichever reference comes first
    hypothesis = "a b c d e".split()
    references = [reference.split() for reference in references]
    ours = bleu([hypothesis], references)
    for order in BLEU_ORDERS:
        assert ours[order] == 1.0
        assert abs(ours[order] - nltk_bleu(references, hypothesis, order)) <= TOLERANCE
    generations = [hypothesis] + references
    ours_self = self_bleu(generations)
    for order in BLEU_ORDERS:
        assert abs(ours_self[order] - nltk_mean_self_bleu(generations, order)) <= TOLERANCE


def test_closest_length_with_one_sentence_left_out():
    assert ReferenceLengths([3, 5, 5, 8]).closest(5, excluding_one=5) == 5  # a duplicate stays
    assert ReferenceLengths([3, 5, 7]).closest(5, excluding_one=5) == 3  # then the tie, to the shorter
    assert ReferenceLengths([4, 5, 9]).closest(5, excluding_one=5) == 4
    assert ReferenceLengths([2, 9]).closest(20) == 9


def test_hypotheses_shorter_than_n_and_empty_ones():
    # nltk: p_n = 0/1 for orders above the length, smoothed to 0.1, no re-weighting
    references = ["a b".split()]
    for order in BLEU_ORDERS:
        expected = math.exp(1 - 2 / 1) * 0.1 ** ((order - 1) / order)
        assert bleu([["a"]], references)[order] == pytest.approx(expected, abs=1e-15)
        assert abs(nltk_bleu(references, ["a"], order) - expected) <= TOLERANCE
    # no unigram match, an empty hypothesis included: 0, epsilon notwithstanding
    assert bleu([[], ["z"]], references) == dict.fromkeys(BLEU_ORDERS, 0.0)


def test_undefined_scores_raise():
    with pytest.raises(UndefinedScoreError, match="at least 2 sentences, got 1"):
        self_bleu([["a"]])
    with pytest.raises(UndefinedScoreError):
        bleu([["a"]], [])


def test_distinct_n_by_hand():
    sentences = ["a b a b".split(), "a b c".split()]
    # unigrams a b a b a b c; bigrams ab ba ab ab bc; trigrams aba bab abc; 4-gram abab
    assert distinct_n(sentences, 1) == 3 / 7
    assert distinct_n(sentences, 2) == 3 / 5
    assert distinct_n(sentences, 3) == 1.0
    assert distinct_n(sentences, 4) == 1.0
    assert distinct_n([["a"], []], 2) == 0.0


def write(path, lines):
    path.write_text("".join(line + "\n" for line in lines))
    return str(path)


def test_command_line_end_to_end(tmp_path, capsys):
    hypothesis_lines = ["a b c d", "", "b c d e f", "a a b"]
    reference_lines = ["a b c d e", "c d e f", "a b"]
    train_lines = ["a b c", "d e f g", "b c d e"]
    hyps = write(tmp_path / "hyps.txt", hypothesis_lines)
    refs = write(tmp_path / "refs.txt", reference_lines)
    train = write(tmp_path / "train.txt", train_lines)

    main([hyps, refs])
    stdout = capsys.readouterr().out
    assert len(stdout.strip().splitlines()) == 1
    record = json.loads(stdout)
    hypotheses = [line.split() for line in hypothesis_lines]
    references = [line.split() for line in reference_lines]
    assert record == {"n_hyp": 4, "n_empty_hyp": 1, "n_ref": 3, **generation_scores(hypotheses, references),
                      "tokenizer": "whitespace", "smoothing": SMOOTHING, "temperature": None}
    assert sorted(record) == sorted(
        ["n_hyp", "n_empty_hyp", "n_ref", "tokenizer", "smoothing", "temperature"]
        + [f"{kind}{order}" for kind in ("bleu", "self_bleu") for order in (2, 3, 4, 5)]
        + [f"distinct{order}" for order in (1, 2, 3, 4)]
    )
    assert SMOOTHING == "nltk SmoothingFunction().method1, epsilon 0.1"

    # Moses leaves these one-letter words as they are
    main([hyps, refs, "--train-refs", train, "--temperature", "0.7", "--tokenizer", "moses-en"])
    record = json.loads(capsys.readouterr().out)
    assert (record["tokenizer"], record["temperature"], record["n_train_ref"]) == ("moses-en", 0.7, 3)
    real = real_data_scores(references, [line.split() for line in train_lines])
    assert {name: record[name] for name in real} == real
    assert sorted(real) == sorted(f"real_{name}" for name in generation_scores(hypotheses, references))


@pytest.mark.parametrize("bad", ["empty hypothesis file", "blank hypotheses only", "empty reference line",
                                 "temperature 0", "negative temperature", "single hypothesis", "unknown tokenizer"])
def test_command_line_bad_input_is_one_line_and_status_2(bad, tmp_path, capsys):
    hyps = write(tmp_path / "hyps.txt", ["a b", "b c"])
    refs = write(tmp_path / "refs.txt", ["a b c", "b c d"])
    argv, named = {
        "empty hypothesis file": ([write(tmp_path / "empty.txt", []), refs], "empty.txt"),
        "blank hypotheses only": ([write(tmp_path / "blank.txt", ["", " ", ""]), refs],
                                  "blank.txt: only empty lines, no sentences"),
        "empty reference line": ([hyps, write(tmp_path / "holey.txt", ["a b", " ", "c"])], "holey.txt:2"),
        "temperature 0": ([hyps, refs, "--temperature", "0"], "--temperature"),
        "negative temperature": ([hyps, refs, "--temperature", "-1.5"], "--temperature"),
        "single hypothesis": ([write(tmp_path / "one.txt", ["a b"]), refs], "one.txt"),
        "unknown tokenizer": ([hyps, refs, "--tokenizer", "moses"], "--tokenizer"),
    }[bad]
    with pytest.raises(SystemExit) as leaving:
        main(argv)
    assert leaving.value.code == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert len(err.strip().splitlines()) == 1 and named in err


# running text, and the same captions as the caption_lm recipe writes them:
# tokenized, lower-cased, a word outside the vocabulary as fairseq's <unk>
CAPTIONS = ["A dog runs on the grass.", "The brown dog is running, fast.", "Children swim in the sea!",
            "Two kids are playing in a pool.", "A man rides a bike (a red one)."]
RUNNING_TEXT = [line.replace("dog", "<unk>") for line in CAPTIONS]
TOKENIZED = [" ".join("<unk>" if word == "dog" else word for word in tokenize_caption(line).split())
             for line in CAPTIONS]


def test_told_the_tokenizer_every_file_is_tokenized_alike(tmp_path, capsys):
    hyps, refs = write(tmp_path / "hyps.txt", RUNNING_TEXT), write(tmp_path / "refs.txt", TOKENIZED)
    main([hyps, refs, "--tokenizer", "moses-en-lowercase"])
    out, err = capsys.readouterr()
    record = json.loads(out)
    tokens = [line.split() for line in TOKENIZED]
    for order in BLEU_ORDERS:
        assert abs(record[f"bleu{order}"] - nltk_mean_bleu(tokens, tokens, order)) <= TOLERANCE
        assert abs(record[f"self_bleu{order}"] - nltk_mean_self_bleu(tokens, order)) <= TOLERANCE
    assert record["bleu4"] == 1.0 and record["tokenizer"] == "moses-en-lowercase" and err == ""


def test_differently_tokenized_files_split_on_whitespace_get_a_warning(tmp_path, capsys):
    hyps, refs = write(tmp_path / "hyps.txt", RUNNING_TEXT), write(tmp_path / "refs.txt", TOKENIZED)
    main([hyps, refs])
    out, err = capsys.readouterr()
    record = json.loads(out)
    hypotheses, references = [line.split() for line in RUNNING_TEXT], [line.split() for line in TOKENIZED]
    assert abs(record["bleu4"] - nltk_mean_bleu(hypotheses, references, 4)) <= TOLERANCE
    assert record["bleu4"] < 0.5 and record["tokenizer"] == "whitespace"  # the tokenizer applied
    assert len(err.splitlines()) == 1
    assert f"warning: {hyps} and {refs} look differently tokenized (0% and 100% " in err
    # files tokenized alike, and files with too few marks to tell, pass in silence
    main([write(tmp_path / "tokenized.txt", TOKENIZED[::-1]), refs])
    main([write(tmp_path / "few.txt", ["a dog runs.", "a cat runs."]), refs])
    assert capsys.readouterr().err == ""


def test_empty_generations_are_counted_and_said(tmp_path, capsys):
    hypothesis_lines = ["a b c", "", "b c d", "  "]
    reference_lines = ["a b c d", "b c d e"]
    hyps = write(tmp_path / "hyps.txt", hypothesis_lines)
    main([hyps, write(tmp_path / "refs.txt", reference_lines)])
    out, err = capsys.readouterr()
    record = json.loads(out)
    hypotheses, references = [line.split() for line in hypothesis_lines], [line.split() for line in reference_lines]
    assert record["n_hyp"] == 4 and record["n_empty_hyp"] == 2
    for order in BLEU_ORDERS:  # an empty generation scores 0 and counts in the mean
        assert abs(record[f"bleu{order}"] - nltk_mean_bleu(hypotheses, references, order)) <= TOLERANCE
        assert abs(record[f"self_bleu{order}"] - nltk_mean_self_bleu(hypotheses, order)) <= TOLERANCE
    assert err.splitlines() == [f"{os.path.basename(sys.argv[0])}: warning: {hyps}: 2 of 4 lines are empty, "
                                "scored as empty generations (0)"]


def test_a_byte_order_mark_is_not_part_of_the_first_token(tmp_path, capsys):
    lines = ["a b c d", "b c d e"]
    refs = write(tmp_path / "refs.txt", lines)
    plain = tmp_path / "plain.txt"
    plain.write_bytes("".join(line + "\n" for line in lines).encode("utf-8"))
    marked = tmp_path / "marked.txt"
    marked.write_bytes(b"\xef\xbb\xbf" + plain.read_bytes())
    main([str(plain), refs])
    without = json.loads(capsys.readouterr().out)
    main([str(marked), refs])
    assert json.loads(capsys.readouterr().out) == without and without["bleu4"] == 1.0


def test_a_closed_pipe_ends_the_command_quietly(tmp_path):
    hyps = write(tmp_path / "hyps.txt", ["a b c", "b c d"])
    process = subprocess.Popen([sys.executable, "-m", "fairseq_ot.cli.score_generations", hyps, hyps],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               env=dict(os.environ, OMP_NUM_THREADS="1"))
    process.stdout.close()  # the reader gone before the record is written, as `| head -0` leaves it
    err = process.stderr.read().decode()
    assert process.wait() == 1
    assert "Traceback" not in err and "BrokenPipeError" not in err
