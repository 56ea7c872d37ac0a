"""`--ddp-backend pytorch_ddp` refused in one line where it cannot work.

What it patches: `fairseq.models.DistributedFairseqModel` (fairseq 0.12.x), the
wrapper the trainer builds at its first use of the model with several
processes.

Why: fairseq hands PyTorch's DistributedDataParallel `device_ids=[device_id]`
whatever the device, which DDP refuses for a CPU module (a ValueError from
every rank, about 290 lines under torchrun); and a model that declares
`pytorch_ddp_refusal` (the generator and mediator of cot and gjs, whose
several forwards per update DDP refuses) can never train under it. Both are
known before the wrapper is built: each rank raises the plugin's one-line
FlagError there, as for any other bad flag.

No longer needed when: fairseq passes no device ids for CPU modules (not in
0.12.x); the models' refusal stays a flag check."""

import functools

from fairseq import models

from fairseq_ot.errors import FlagError

PYTORCH_DDP = ("c10d", "pytorch_ddp")


def install() -> None:
    """Idempotent."""
    if not getattr(models.DistributedFairseqModel, "_fairseq_ot_checked", False):
        models.DistributedFairseqModel = _refusing_what_cannot_work(models.DistributedFairseqModel)


def _refusing_what_cannot_work(wrap):
    @functools.wraps(wrap)
    def checked_wrap(args, model, process_group, device):
        if getattr(args, "ddp_backend", None) in PYTORCH_DDP:
            refusal = getattr(model, "pytorch_ddp_refusal", None)
            if refusal is not None:
                raise FlagError(refusal)
            if getattr(device, "type", None) == "cpu":
                raise FlagError(f"--ddp-backend {args.ddp_backend} needs GPUs (fairseq hands PyTorch's DDP a "
                                f"CUDA device id): on CPU use --ddp-backend legacy_ddp")
        return wrap(args, model, process_group, device)

    checked_wrap._fairseq_ot_checked = True
    return checked_wrap
