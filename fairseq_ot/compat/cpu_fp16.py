"""fairseq's float16 training (`--fp16`, `--memory-efficient-fp16`) without CUDA.

What it patches: two lines of fairseq 0.12.x, each method rebuilt from
fairseq's own source with that one line changed (compiled under fairseq's
file name and line numbers, so tracebacks still point at fairseq's source):

- `Trainer.train_step`, on a gradient overflow: the zero gradient norm of
  the skipped update, `torch.tensor(0.0).cuda()`, is made on the trainer's
  device (`self.device`, the same CUDA device on a GPU);
- `FP16Optimizer.build_fp32_params` (`--fp16`): the flat float32 copy of the
  weights is keyed by the device index of the weights
  (`params[0].device.index`) instead of `torch.cuda.current_device()`; the
  optimizer's other methods look it up by `p.device.index`, which is the
  current device on a GPU and None on CPU.

Why: on a torch built without CUDA both calls fail with "Torch not compiled
with CUDA enabled". `--fp16` failed when its optimizer was built, and
`--memory-efficient-fp16` at its first overflow: the dynamic loss scaler had
already halved the scale and raised OverflowError to skip the update, and
the trainer crashed while skipping it. Now a CPU run skips the update,
halves the scale and goes on as on a GPU.

No longer needed when: fairseq's trainer.py and fp16_optimizer.py no longer
contain these lines (the patch then leaves the methods as they are)."""

import inspect
import sys
import textwrap

from fairseq.optim.fp16_optimizer import _FP16OptimizerMixin
from fairseq.trainer import Trainer

PATCHES = (
    (Trainer, "train_step",
     "grad_norm = torch.tensor(0.0).cuda()",
     "grad_norm = torch.tensor(0.0, device=self.device)"),
    (_FP16OptimizerMixin, "build_fp32_params",
     "devices = [torch.cuda.current_device()]",
     "devices = [params[0].device.index]"),
)


def install() -> None:
    for owner, name, old, new in PATCHES:
        replace_line(owner, name, old, new)


def replace_line(owner, name, old, new) -> None:
    """Rebuild `owner.name` from its module's source with the line `old`
    replaced by `new`; nothing when `old` is not there once (another fairseq
    version) or when it is rebuilt already."""
    if getattr(vars(owner)[name], "_fairseq_ot_rebuilt", False):
        return
    module = sys.modules[owner.__module__]
    lines, first_line = inspect.getsourcelines(getattr(owner, name))
    source = textwrap.dedent("".join(lines))
    if source.count(old) != 1:
        return
    # blank lines before it keep fairseq's line numbers in tracebacks
    code = compile("\n" * (first_line - 1) + source.replace(old, new), module.__file__, "exec")
    # fairseq's module globals: the method's names (torch, metrics, ...) resolve as before
    namespace = {}
    exec(code, vars(module), namespace)
    namespace[name]._fairseq_ot_rebuilt = True
    setattr(owner, name, namespace[name])
