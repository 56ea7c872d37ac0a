"""fairseq 0.12's data code names `np.compat.long`, which numpy 2 removed:
language modeling with `--sample-break-mode eos` (and length bucketing in
translation) then fails with AttributeError. Restore that one alias, and
only where numpy lacks it."""

import types

import numpy as np


def install() -> None:
    if not hasattr(np, "compat"):
        np.compat = types.SimpleNamespace(long=np.int64)
