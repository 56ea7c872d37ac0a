"""Scores of fairseq-generate output on a prepared text corpus
(fairseq_ot/data_prep/pipeline.py): corpus BLEU (sacrebleu) for translation,
ROUGE-1/2/L F1 (rouge-score) for summarization.

Hypotheses are read with exactly one per reference, BPE removed by
``fairseq-generate --post-process subword_nmt``, then Moses-detokenized
(unless the corpus came pretokenized) and compared with the raw references.

    python -m fairseq_ot.evaluation.text_scoring {bleu,rouge} GENERATE_OUTPUT PREPARED_DIR \\
        [--split test] [--run-dir RUN_DIR --recipe NAME --criterion NAME]
"""

import argparse
import shlex
import sys
from pathlib import Path

import sacrebleu
from rouge_score import rouge_scorer

from fairseq_ot.data_prep.pipeline import read_prepared
from fairseq_ot.data_prep.text_files import read_lines
from fairseq_ot.data_prep.tokenize import detokenize
from fairseq_ot.evaluation.generate_output import read_hypotheses
from fairseq_ot.evaluation.scores import add_record_arguments, write_scores

ROUGE_TYPES = ("rouge1", "rouge2", "rougeL")


def corpus_bleu(hypotheses, references):
    """sacrebleu corpus BLEU (13a tokenization, one reference per sentence)."""
    if len(hypotheses) != len(references):
        raise ValueError(f"{len(hypotheses)} hypotheses for {len(references)} references")
    return sacrebleu.corpus_bleu(hypotheses, [references]).score


def rouge_f1(hypotheses, reference_sets):
    """Mean ROUGE-1/2/L F1 x 100 (Porter stemming); ``reference_sets[i]`` lists
    the references of hypothesis i, and each hypothesis is scored against the
    reference it matches best, separately per ROUGE type."""
    if len(hypotheses) != len(reference_sets):
        raise ValueError(f"{len(hypotheses)} hypotheses for {len(reference_sets)} references")
    scorer = rouge_scorer.RougeScorer(list(ROUGE_TYPES), use_stemmer=True)
    totals = dict.fromkeys(ROUGE_TYPES, 0.0)
    for hypothesis, references in zip(hypotheses, reference_sets):
        scores = [scorer.score(reference, hypothesis) for reference in references]
        for name in ROUGE_TYPES:
            totals[name] += max(score[name].fmeasure for score in scores)
    return {name: 100 * total / max(len(hypotheses), 1) for name, total in totals.items()}


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
    metrics = {f"{name}_f1": value for name, value in rouge_f1(hypotheses, [[r] for r in references[0]]).items()}
    if len(references) > 1:
        multi = rouge_f1(hypotheses, [list(refs) for refs in zip(*references)])
        metrics.update({f"{name}_f1_multiref": value for name, value in multi.items()})
    return metrics, len(hypotheses)


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
