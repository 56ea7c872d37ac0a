"""fairseq-ot: training objectives beyond token-level maximum likelihood.

Importing the package (directly or through `--user-dir`) registers its
models, tasks and criterions, and applies its patches of fairseq, torch,
numpy and Python (`fairseq_ot.compat`: weights-only checkpoint loading, a
numpy alias, one-line flag errors).

Layers, each importing only those before it: `errors`, `compat` <- `modules`
(shared math and sampling) <- `models`, `data`, `data_prep` <- `tasks` <-
`criterions` <- everything else (`evaluation`, `checkpoints`, `recipes`,
`cli`, ...); `tests/test_layers.py` enforces it."""

from fairseq_ot import compat

compat.install()

from fairseq_ot.models import captioning_transformer, fused_lstm_lm  # noqa: E402,F401  (registers the models)
from fairseq_ot.tasks import captioning, mediator  # noqa: E402,F401  (registers the tasks)
from fairseq_ot import criterions  # noqa: E402,F401  (registers the criterions)
