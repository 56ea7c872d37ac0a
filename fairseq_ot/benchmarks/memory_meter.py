"""Peak tensor memory of a block of code, on any device.

CUDA has an allocator counter (`torch.cuda.max_memory_allocated`); the CPU
allocator has none, so `StorageMeter` counts storages itself: a
TorchDispatchMode sees the outputs of every op, registers each storage the
first time it appears and drops it when the storage is freed. Both meters
report bytes allocated inside the block on top of what was live when it
began, so long-lived state (parameters, optimizer moments) drops out and
what remains is the block's own activations, gradients and temporaries."""

import weakref
from collections import Counter

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

MB = 2**20


class StorageMeter(TorchDispatchMode):
    """Live bytes of the storages created while the mode is active.

    Storages that existed on entry are never counted, also not when an op
    writes into them or returns a view of them, so `peak` is the high-water
    mark above the live bytes at entry, as long as no storage from before is
    freed inside (its bytes are not subtracted). Views count once: a storage is keyed
    by its Python object, which torch keeps unique and alive exactly as long
    as the storage itself. `at_peak` names the storages live at the peak."""

    def __init__(self):
        super().__init__()
        self.live = {}  # id(storage) -> (nbytes, name of the op that made it)
        self.current = 0
        self.peak = 0
        self.at_peak = {}

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        outputs = func(*args, **(kwargs or {}))
        input_storages = {id(s) for s in _storages((args, kwargs))}
        for storage in _storages(outputs):
            key = id(storage)
            if key in self.live:
                self._resize(key, storage.nbytes())  # resize_ keeps the storage object
            elif key not in input_storages and storage.nbytes() > 0:
                self._register(storage, str(func.overloadpacket.__name__))
        return outputs

    def _register(self, storage, op_name):
        key = id(storage)
        self.live[key] = (storage.nbytes(), op_name)
        self.current += storage.nbytes()
        # Fires when the storage is freed, before its id can be reused.
        weakref.finalize(storage, self._free, key)
        self._update_peak()

    def _resize(self, key, nbytes):
        old_nbytes, op_name = self.live[key]
        self.live[key] = (nbytes, op_name)
        self.current += nbytes - old_nbytes
        self._update_peak()

    def _free(self, key):
        nbytes, _ = self.live.pop(key)
        self.current -= nbytes

    def _update_peak(self):
        if self.current > self.peak:
            self.peak = self.current
            self.at_peak = dict(self.live)

    def largest_at_peak(self, count):
        """The `count` largest (op name, MB, number of storages) at the peak,
        storages of one op and one size grouped."""
        groups = Counter(self.at_peak.values())
        ranked = sorted(groups.items(), key=lambda item: -item[0][0] * item[1])
        return [(op_name, nbytes / MB, n) for (nbytes, op_name), n in ranked[:count]]


def _storages(tree):
    leaves, _ = tree_flatten(tree)
    return [leaf.untyped_storage() for leaf in leaves if isinstance(leaf, torch.Tensor)]


class CudaMeter:
    """The same measure from the CUDA caching allocator's counters."""

    def __init__(self, device):
        self.device = device
        self.peak = 0

    def __enter__(self):
        torch.cuda.synchronize(self.device)
        torch.cuda.reset_peak_memory_stats(self.device)
        self.start = torch.cuda.memory_allocated(self.device)
        return self

    def __exit__(self, *exc_info):
        torch.cuda.synchronize(self.device)
        self.peak = torch.cuda.max_memory_allocated(self.device) - self.start

    def largest_at_peak(self, count):
        return []  # the allocator does not say which tensors were live


def memory_meter(device):
    """A fresh context manager whose `.peak` (bytes) is set on exit."""
    if device.type == "cuda":
        return CudaMeter(device)
    return StorageMeter()


def check_storage_meter():
    """Raise unless StorageMeter counts a known sequence of allocations exactly:
    new tensors, a free, views and in-place writes (no new storage), and a
    gradient that autograd allocates during backward."""
    floats_per_mib = MB // 4
    existing = torch.zeros(floats_per_mib)
    with StorageMeter() as meter:
        one, two, three = (torch.ones(k * floats_per_mib) for k in (1, 2, 3))
        del two
        view = three[10:].view(-1, 2)
        three.mul_(2.0)
        existing.add_(1.0)
        _expect(meter, "after 1+2+3 MiB, freeing 2", current=4 * MB, peak=6 * MB)
        del one, three, view
        weight = torch.ones(floats_per_mib, requires_grad=True)
        (weight * 2.0).sum().backward()
        _expect(meter, "after a backward", current=2 * MB, peak=6 * MB)
    del weight  # takes its gradient along
    _expect(meter, "after freeing everything", current=0, peak=6 * MB)


def _expect(meter, when, current, peak):
    if (meter.current, meter.peak) != (current, peak):
        raise RuntimeError(
            f"StorageMeter self-check failed {when}: current {meter.current} B, "
            f"peak {meter.peak} B; expected {current} B and {peak} B"
        )
