"""Stop fairseq's background batch loader before Python exits.

What it patches: `fairseq.data.iterators.BackgroundConsumer.run` (fairseq
0.12.x), plus an exit handler.

Why: fairseq's BufferedIterator (`--data-buffer-size`, default 10) fills its
queue from a daemon thread that collates batches with torch operations. When
training stops inside an epoch (`--max-update`), that thread is still
collating the next batches while Python shuts down. Python 3.11 ends a
daemon thread that wakes up during finalization with `pthread_exit`, whose
forced unwinding through torch's C++ frames (torch 2.13, taking the GIL to
hand a tensor back) calls `std::terminate`: a run that trained and saved
correctly ends with "terminate called without an active exception" and exit
status 134 (SIGABRT). Each consumer now checks a stop event between batches;
at exit the event is set and every consumer's queue drained until its thread
has ended.

No longer needed when: a fairseq-train run that stops at `--max-update`
inside an epoch exits with status 0 without this patch
(`tests/test_installation.py` runs one)."""

import atexit
import queue
import threading
import weakref

from fairseq.data import iterators

_STOPPING = threading.Event()
_CONSUMERS = weakref.WeakSet()


def install() -> None:
    run = iterators.BackgroundConsumer.run
    if getattr(run, "_fairseq_ot_stoppable", False):
        return

    def stoppable_run(consumer):
        _CONSUMERS.add(consumer)
        consumer._source = _until_stopped(consumer._source)
        run(consumer)

    stoppable_run._fairseq_ot_stoppable = True
    iterators.BackgroundConsumer.run = stoppable_run
    atexit.register(stop_consumers)


def _until_stopped(batches):
    for batch in batches:
        if _STOPPING.is_set():
            return
        yield batch


def stop_consumers() -> None:
    """End every background consumer: it finishes the batch at hand, finds
    the stop event and puts its end marker; draining its queue lets a put
    that waits for room return."""
    _STOPPING.set()
    for consumer in list(_CONSUMERS):
        while consumer.is_alive():
            try:
                while True:
                    consumer._queue.get_nowait()
            except queue.Empty:
                pass
            consumer.join(timeout=0.01)
