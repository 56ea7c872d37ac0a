"""`np.compat.long` for fairseq's data code on numpy 2.

What it patches: adds the module attribute `numpy.compat` with one alias,
`long = numpy.int64`, only where numpy lacks `compat` (numpy >= 2.0).

Why: fairseq 0.12's data code names `np.compat.long`, which numpy 2 removed:
language modeling with `--sample-break-mode eos` (and length bucketing in
translation) then fails with AttributeError.

No longer needed when: fairseq's `data_utils` stops naming `np.compat`, or
numpy < 2 is installed (the patch then does nothing)."""

import types

import numpy as np


def install() -> None:
    if not hasattr(np, "compat"):
        np.compat = types.SimpleNamespace(long=np.int64)
