"""Count the aten operators a block of code runs: on a GPU each one that is
not a view is a kernel launch, and a small model's step is launch-bound."""

from collections import Counter

from torch.utils._python_dispatch import TorchDispatchMode


class OpCounter(TorchDispatchMode):
    """`counts`: operator name -> calls while the mode is active (below
    autograd, so composite operators count as the ones they run)."""

    def __init__(self):
        super().__init__()
        self.counts = Counter()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.counts[func.overloadpacket.__name__] += 1
        return func(*args, **(kwargs or {}))


def ops_per_step(run, steps: int) -> Counter:
    """Operators of one step of a loop: those of run(steps + 1) less those of
    run(steps), so that set-up and clean-up drop out. The two runs must take
    the same path (seeded, no early stop)."""
    counts = []
    for n in (steps, steps + 1):
        with OpCounter() as counter:
            run(n)
        counts.append(counter.counts)
    step = Counter(counts[1])
    step.subtract(counts[0])
    return step
