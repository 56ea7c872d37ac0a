"""Scores of fairseq-generate output on a prepared text corpus
(fairseq_ot/data_prep/pipeline.py): corpus BLEU (sacrebleu) for translation,
ROUGE-1/2/L F1 (rouge-score) for summarization.

Hypotheses are read with exactly one per reference, BPE removed by
``fairseq-generate --post-process subword_nmt``, then Moses-detokenized
(unless the corpus came pretokenized) and compared with the raw references.
``paired_bootstraps`` compares two runs' outputs on the same references with
95% paired bootstrap intervals (fairseq_ot/evaluation/bootstrap.py): BLEU's
as sacrebleu --paired-bs draws them, ROUGE's by resampling the per-item F1
that the score averages.

    python -m fairseq_ot.evaluation.text_scoring {bleu,rouge} GENERATE_OUTPUT PREPARED_DIR \\
        [--split test] [--run-dir RUN_DIR --recipe NAME --criterion NAME]
"""

import argparse
import shlex
import sys
from pathlib import Path

import numpy as np
import sacrebleu
from rouge_score import rouge_scorer

from fairseq_ot.data_prep.pipeline import read_prepared
from fairseq_ot.data_prep.text_files import read_lines
from fairseq_ot.data_prep.tokenize import detokenize
from fairseq_ot.evaluation.bootstrap import (
    DEFAULT_RESAMPLES,
    DEFAULT_SEED,
    mean_over_items,
    paired_bootstrap,
    paired_bootstrap_bleu,
)
from fairseq_ot.evaluation.generate_output import read_hypotheses
from fairseq_ot.evaluation.scores import add_record_arguments, write_scores

ROUGE_TYPES = ("rouge1", "rouge2", "rougeL")


def corpus_bleu(hypotheses, references):
    """sacrebleu corpus BLEU (13a tokenization, one reference per sentence)."""
    if len(hypotheses) != len(references):
        raise ValueError(f"{len(hypotheses)} hypotheses for {len(references)} references")
    return sacrebleu.corpus_bleu(hypotheses, [references]).score


def rouge_item_f1(hypotheses, reference_sets):
    """{ROUGE type: [F1 of each hypothesis]} (Porter stemming, on a 0-1
    scale); ``reference_sets[i]`` lists the references of hypothesis i, and
    each hypothesis is scored against the reference it matches best,
    separately per ROUGE type."""
    if len(hypotheses) != len(reference_sets):
        raise ValueError(f"{len(hypotheses)} hypotheses for {len(reference_sets)} references")
    scorer = rouge_scorer.RougeScorer(list(ROUGE_TYPES), use_stemmer=True)
    f1 = {name: [] for name in ROUGE_TYPES}
    for hypothesis, references in zip(hypotheses, reference_sets):
        scores = [scorer.score(reference, hypothesis) for reference in references]
        for name in ROUGE_TYPES:
            f1[name].append(max(score[name].fmeasure for score in scores))
    return f1


def rouge_f1(hypotheses, reference_sets):
    """Mean ROUGE-1/2/L F1 x 100 of ``rouge_item_f1``."""
    item_f1 = rouge_item_f1(hypotheses, reference_sets)
    return {name: 100 * sum(values) / max(len(hypotheses), 1) for name, values in item_f1.items()}


def rouge_reference_sets(references):
    """{metric-name suffix: the reference list of each hypothesis}: the
    original reference alone, and with extra references all of them
    ("_multiref"); ``references`` as ``prepared_hypotheses`` returns them."""
    sets = {"": [[reference] for reference in references[0]]}
    if len(references) > 1:
        sets["_multiref"] = [list(refs) for refs in zip(*references)]
    return sets


def prepared_hypotheses(generate_output, prepared_dir, split):
    """The detokenized hypotheses of ``split`` and its reference lists
    (the original reference first, then any extra ones)."""
    options, splits = read_prepared(prepared_dir)
    target = options["target_lang"]
    reference_dir = Path(prepared_dir) / "references"
    references = [read_lines(reference_dir / f"{split}.{target}", allow_empty=True)]
    references += [
        read_lines(reference_dir / f"{split}.{target}.{k}", allow_empty=True)
        for k in range(1, splits[split]["extra_references"] + 1)
    ]
    hypotheses = read_hypotheses(generate_output, len(references[0]), kind="D")
    if not options["pretokenized"]:
        hypotheses = [detokenize(line, options["moses_target"]) for line in hypotheses]
    return hypotheses, references


def score(metric, generate_output, prepared_dir, split):
    """{metric name: value} of ``generate_output`` against the prepared references."""
    hypotheses, references = prepared_hypotheses(generate_output, prepared_dir, split)
    if metric == "bleu":
        return {"sacrebleu": corpus_bleu(hypotheses, references[0])}, len(hypotheses)
    metrics = {
        f"{name}_f1{suffix}": value
        for suffix, reference_sets in rouge_reference_sets(references).items()
        for name, value in rouge_f1(hypotheses, reference_sets).items()
    }
    return metrics, len(hypotheses)


def paired_bootstraps(metric, system_output, control_output, prepared_dir, split,
                      n_resamples=DEFAULT_RESAMPLES, seed=DEFAULT_SEED):
    """{metric name: PairedBootstrap} of the system's minus the control's
    score, each output read as ``score`` reads it: sacrebleu's BLEU (the
    interval of ``sacrebleu REF -i CONTROL SYSTEM --paired-bs``'s draws), or
    ROUGE F1 x 100 as the mean over test items of per-item F1."""
    system, references = prepared_hypotheses(system_output, prepared_dir, split)
    control, _ = prepared_hypotheses(control_output, prepared_dir, split)
    if metric == "bleu":
        return {"sacrebleu": paired_bootstrap_bleu(system, control, references[0], n_resamples, seed)}
    intervals = {}
    for suffix, reference_sets in rouge_reference_sets(references).items():
        system_f1, control_f1 = rouge_item_f1(system, reference_sets), rouge_item_f1(control, reference_sets)
        for name in ROUGE_TYPES:
            intervals[f"{name}_f1{suffix}"] = paired_bootstrap(
                mean_over_items, 100 * np.array(system_f1[name]), 100 * np.array(control_f1[name]),
                n_resamples, seed)
    return intervals


def main(argv=None):
    parser = argparse.ArgumentParser(description="Score fairseq-generate output on a prepared text corpus.")
    parser.add_argument("metric", choices=["bleu", "rouge"])
    parser.add_argument("generate_output", help="fairseq-generate's stdout, run with --post-process subword_nmt")
    parser.add_argument("prepared_dir", help="folder made by scripts/prepare_*.py")
    parser.add_argument("--split", default="test")
    add_record_arguments(parser)
    args = parser.parse_args(argv)
    try:
        metrics, count = score(args.metric, args.generate_output, args.prepared_dir, args.split)
    except ValueError as error:  # includes HypothesisCountError and TextFileError
        sys.exit(f"error: {error}")
    print(" ".join(f"{name}={value:.2f}" for name, value in metrics.items()) + f" ({count} hypotheses)")
    if args.run_dir:
        task = "translation" if args.metric == "bleu" else "summarization"
        write_scores(args.run_dir, args.split, task=task, recipe=args.recipe, criterion=args.criterion,
                     metrics=metrics, hypotheses=count, command=shlex.join(sys.argv))


if __name__ == "__main__":
    main()
