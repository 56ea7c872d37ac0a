"""Joint BPE with subword-nmt: merges learned on the training lines of both
languages together, applied to every split."""

import io

from subword_nmt.apply_bpe import BPE
from subword_nmt.learn_bpe import learn_bpe


def learn_joint_bpe_codes(training_lines, num_merges):
    """The BPE codes file text learned from tokenized ``training_lines``
    (source and target training lines together; never validation or test)."""
    codes = io.StringIO()
    learn_bpe(iter(training_lines), codes, num_merges, min_frequency=2)
    return codes.getvalue()


class BpeApplier:
    """Segments tokenized lines with the codes from learn_joint_bpe_codes,
    marking word-internal splits with ``@@ `` (removed by fairseq's
    ``--post-process subword_nmt``)."""

    def __init__(self, codes_text):
        self._bpe = BPE(io.StringIO(codes_text))

    def __call__(self, line):
        return self._bpe.process_line(line)
