"""fairseq-ot: training objectives beyond token-level maximum likelihood.

Importing the package (directly or through `--user-dir`) registers its
criterions and allow-lists the classes of fairseq checkpoints for torch's
weights-only loading."""

from fairseq_ot import checkpoint_safety
from fairseq_ot import criterions  # noqa: F401  (registers the criterions)

checkpoint_safety.install()
