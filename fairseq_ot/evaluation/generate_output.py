"""Hypotheses from fairseq-generate's output, checked one per reference.

fairseq-generate drops the last sentences of a test set when the batch size
is forced to a multiple of 8 (only a "Translated N sentences" line tells), so
every score is computed from a list whose ids were checked to be exactly
0..n-1 for n references."""

import re

LINE = re.compile(r"^(?P<kind>[HD])-(?P<id>\d+)\t(?P<score>[^\t]*)\t?(?P<text>.*)$")


class HypothesisCountError(ValueError):
    """fairseq-generate's output does not hold one hypothesis per reference."""


def read_hypotheses(path, n_references, kind="D"):
    """The best hypothesis of each sentence, ordered by sentence id.

    ``kind`` "D" takes the detokenized line (after --post-process and
    --tokenizer), "H" the line in the model's own tokens."""
    best = {}
    with open(path, encoding="utf-8") as lines:
        for line in lines:
            match = LINE.match(line.rstrip("\n"))
            if match and match["kind"] == kind:
                # with --nbest > 1 the first line of an id is the best hypothesis
                best.setdefault(int(match["id"]), match["text"])
    missing = sorted(set(range(n_references)) - best.keys())
    extra = sorted(best.keys() - set(range(n_references)))
    if missing or extra:
        raise HypothesisCountError(
            f"{path}: {len(best)} hypotheses for {n_references} references "
            f"(missing ids {missing[:10]}{'...' if len(missing) > 10 else ''}, "
            f"unexpected ids {extra[:10]}); run fairseq-generate with "
            f"--required-batch-size-multiple 1 on the whole subset"
        )
    return [best[i] for i in range(n_references)]
