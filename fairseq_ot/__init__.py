"""fairseq-ot: training objectives beyond token-level maximum likelihood.

Importing the package (directly or through `--user-dir`) registers its
criterions and tasks, allow-lists the classes of fairseq checkpoints for
torch's weights-only loading, restores the numpy alias fairseq's data code
still uses, and makes flag errors and refused checkpoints one-line errors of
the command lines."""

from fairseq_ot import checkpoint_safety, numpy_compat
from fairseq_ot import criterions  # noqa: F401  (registers the criterions)
from fairseq_ot.criterions.flag_checks import FlagError, install_one_line_errors
from fairseq_ot.tasks import mediator  # noqa: F401  (registers the mediator tasks)

checkpoint_safety.install()
numpy_compat.install()
# errors whose message says all: the command lines print them as one line
ONE_LINE_ERRORS = (FlagError, checkpoint_safety.UnsafeCheckpointError)
install_one_line_errors(*ONE_LINE_ERRORS)
