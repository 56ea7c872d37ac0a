"""Scoring of text recipes (fairseq_ot/evaluation/text_scoring.py) against
hand-computed values, and a tiny train + generate + score run of each recipe
on generated data (scripts/run_text_recipe.py)."""

import json
import math

import pytest

from fairseq_ot.data_prep.text_files import read_lines
from fairseq_ot.data_prep.tokenize import detokenize
from fairseq_ot.evaluation.generate_output import HypothesisCountError
from fairseq_ot.evaluation.text_scoring import corpus_bleu, rouge_f1, score

from conftest import TINY_TRANSFORMER, load_script
from text_corpora import prepare_generated_multi30k, script_main, write_generated_aeslc


def test_bleu_of_hand_counted_ngrams():
    # n-gram precisions 5/6, 4/5, 3/4, 2/3, same length: BLEU = (1/3) ** (1/4)
    assert corpus_bleu(["a b c d e f"], ["a b c d e g"]) == pytest.approx(100 * (1 / 3) ** 0.25)
    # all n-grams right, 5 words for 6: brevity penalty exp(1 - 6/5)
    assert corpus_bleu(["a b c d e"], ["a b c d e f"]) == pytest.approx(100 * math.exp(1 - 6 / 5))


def test_rouge_of_hand_counted_overlaps():
    hypothesis = "the cat sat on the mat"
    scores = rouge_f1([hypothesis], [["the cat is on the mat"]])
    # 5 of 6 words, 3 of 5 bigrams, a longest common subsequence of 5 words
    assert scores == pytest.approx({"rouge1": 500 / 6, "rouge2": 60.0, "rougeL": 500 / 6})
    # each type takes its best reference; the mean runs over hypotheses
    scores = rouge_f1([hypothesis, "dogs run"], [["the cat is on the mat", "a cat sat"], ["dogs run"]])
    best_rouge1 = max(5 / 6, 2 * (2 / 6) * (2 / 3) / (2 / 6 + 2 / 3))
    best_rouge2 = max(3 / 5, 2 * (1 / 5) * (1 / 2) / (1 / 5 + 1 / 2))
    assert scores == pytest.approx({"rouge1": 50 * (best_rouge1 + 1), "rouge2": 50 * (best_rouge2 + 1),
                                    "rougeL": 50 * (best_rouge1 + 1)})


@pytest.fixture(scope="module")
def prepared_multi30k(tmp_path_factory):
    return prepare_generated_multi30k(tmp_path_factory.mktemp("score_multi30k"))


def write_generate_output(path, hypotheses, ids):
    path.write_text("".join(f"S-{i}\tsource\nD-{i}\t-0.5\t{hypotheses[i]}\n" for i in ids))


def test_detokenized_references_score_100_and_a_missing_hypothesis_fails(prepared_multi30k, tmp_path):
    tokenized = (prepared_multi30k / "tok" / "test.de").read_text().splitlines()
    output = tmp_path / "generate-test.txt"
    write_generate_output(output, tokenized, reversed(range(len(tokenized))))
    metrics, count = score("bleu", output, prepared_multi30k, "test")
    assert metrics == {"sacrebleu": pytest.approx(100.0)} and count == 37
    write_generate_output(output, tokenized, range(36))
    with pytest.raises(HypothesisCountError, match="36 hypotheses for 37 references"):
        score("bleu", output, prepared_multi30k, "test")


def tiny_run(recipe, prepared, run_dir, criterion):
    script_main("run_text_recipe")([
        recipe, str(prepared), str(run_dir), criterion, "--",
        *TINY_TRANSFORMER, "--max-update", "4", "--max-tokens", "1000", "--warmup-updates", "2",
    ])
    return json.loads((run_dir / "scores_test.json").read_text())


def test_recipe_runner_options_go_anywhere_and_flags_after_the_separator_are_fairseqs():
    parse_args = load_script("run_text_recipe").parse_args
    args, extra = parse_args(["translation", "P", "R", "ot_seq", "--skip-train", "--",
                              "--split", "x", "--lr", "1"])
    assert args.skip_train and args.split == "test" and extra == ["--split", "x", "--lr", "1"]
    args, extra = parse_args(["--skip-train", "translation", "P", "R", "ot_seq"])
    assert args.skip_train and args.criterion == "ot_seq" and extra == []
    with pytest.raises(SystemExit):  # a fairseq flag without the separator
        parse_args(["translation", "P", "R", "ot_seq", "--max-update", "4"])


def hypotheses_of(generate_output):
    lines = generate_output.read_text().splitlines()
    return dict(line.split("\t")[0::2] for line in lines if line.startswith("D-"))


def test_translation_recipe_end_to_end(prepared_multi30k, tmp_path):
    record = tiny_run("translation", prepared_multi30k, tmp_path, "label_smoothed_cross_entropy")
    # 37 test pairs: not a multiple of 8, all scored
    assert record["hypotheses"] == 37
    updates = [json.loads(line) for line in (tmp_path / "train.log").read_text().splitlines()
               if line.startswith("{") and "train_num_updates" in line]
    assert updates[-1]["train_num_updates"] == "4"
    # an independent pass over the generate output: ids 0..36, Moses-detokenized
    by_id = hypotheses_of(tmp_path / "generate-test.txt")
    hypotheses = [detokenize(by_id[f"D-{i}"], "de") for i in range(37)]
    references = read_lines(prepared_multi30k / "references" / "test.de")
    assert record["metrics"]["sacrebleu"] == pytest.approx(corpus_bleu(hypotheses, references))


def test_summarization_recipe_with_copy_term_end_to_end(tmp_path):
    raw = write_generated_aeslc(tmp_path / "raw")
    prepared = tmp_path / "prepared"
    script_main("prepare_aeslc")(["--raw-dir", str(raw), "--out-dir", str(prepared), "--bpe-merges", "200"])
    record = tiny_run("summarization", prepared, tmp_path / "run", "ot_seq")
    assert record["hypotheses"] == 29
    train_log = (tmp_path / "run" / "train.log").read_text()
    assert '"train_ot_copy_loss"' in train_log
    by_id = hypotheses_of(tmp_path / "run" / "generate-test.txt")
    hypotheses = [detokenize(by_id[f"D-{i}"], "en") for i in range(29)]
    subjects = read_lines(raw / "test.subject.gz")
    extra = [read_lines(raw / f"test.ann{k}.gz") for k in range(3)]
    single = rouge_f1(hypotheses, [[s] for s in subjects])
    multi = rouge_f1(hypotheses, [list(refs) for refs in zip(subjects, *extra)])
    assert record["metrics"] == pytest.approx(
        {**{f"{k}_f1": v for k, v in single.items()}, **{f"{k}_f1_multiref": v for k, v in multi.items()}})
