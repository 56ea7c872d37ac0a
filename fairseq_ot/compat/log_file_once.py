"""`--log-file` written once per line.

What it patches: `fairseq.logging.progress_bar.progress_bar` (fairseq 0.12.x),
which fairseq's command-line mains call once per epoch and per validation.

Why: every call adds a new `logging.FileHandler` for `--log-file` to the
progress-bar logger and never removes it, so by epoch N each line is written
N times (the Multi30k recipe's train.log held each record five times by
epoch 5). The patch adds the handler only when the logger has none for
that file.

No longer needed when: fairseq adds the handler once (not in 0.12.x)."""

import functools
import logging
import os

from fairseq.logging import progress_bar as progress_bar_module


def install() -> None:
    original = progress_bar_module.progress_bar
    if getattr(original, "_fairseq_ot_log_file_once", False):
        return

    @functools.wraps(original)
    def progress_bar(*args, **kwargs):
        log_file = kwargs.get("log_file")
        if log_file is not None:
            path = os.path.abspath(log_file)
            if any(isinstance(handler, logging.FileHandler) and handler.baseFilename == path
                   for handler in progress_bar_module.logger.handlers):
                kwargs["log_file"] = None
        return original(*args, **kwargs)

    progress_bar._fairseq_ot_log_file_once = True
    progress_bar_module.progress_bar = progress_bar
