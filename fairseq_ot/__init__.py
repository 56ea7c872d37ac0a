"""fairseq-ot: training objectives beyond token-level maximum likelihood.

Importing the package (directly or through `--user-dir`) registers its
criterions and tasks, allow-lists the classes of fairseq checkpoints for
torch's weights-only loading, and restores the numpy alias fairseq's data code
still uses."""

from fairseq_ot import checkpoint_safety, numpy_compat
from fairseq_ot import criterions  # noqa: F401  (registers the criterions)
from fairseq_ot.tasks import mediator  # noqa: F401  (registers the mediator tasks)
from fairseq_ot.tasks import captioning  # noqa: F401  (registers the captioning tasks)
from fairseq_ot.models import captioning_transformer  # noqa: F401  (registers the captioning model)

checkpoint_safety.install()
numpy_compat.install()
