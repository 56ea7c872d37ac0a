"""Statistics from the log file of ``fairseq-train --log-format json --log-file``.

fairseq writes into that file one bare JSON object per statistics line, next
to plain text (the configuration, the model, "begin validation ..."), and
without the tag (train_inner / train / valid) that its console shows. The
kind of a line is therefore told by its keys:

- training stats every --log-interval updates: ``num_updates`` unprefixed;
- end-of-epoch training stats: every key prefixed ``train_``;
- validation stats: every key prefixed with the validated subset (``valid_``).

Two fairseq behaviours shape the parsing. Each epoch adds one more handler on
the log file, so epoch k's lines appear k times. A run restarted from a
checkpoint appends to the same file and logs again the updates (and epochs)
after that checkpoint; the restart replaces everything the earlier attempt
logged from that point on, so each series keeps the values logged last.

Each attempt also writes its configuration first, as a printed Python dict
(``{'_name': None, 'common': {... 'seed': 1, ...}, ...}``), where the seed
of the run is read.
"""

import json
import re
from dataclasses import dataclass, field

from fairseq_ot.evaluation.files import UnreadableFileError

NUM_UPDATES = "num_updates"
EPOCH_PREFIX = "train"
# the order in which fairseq logs the kinds of line at one update
TRAIN_INNER, VALIDATION, EPOCH = range(3)
CONFIGURATION = "{'_name': "
# the first 'seed' of the configuration is that of its first section, 'common'
CONFIGURED_SEED = re.compile(r"'common': \{.*?'seed': (\d+)")


@dataclass
class TrainLog:
    """Each series maps its key (update number, or epoch for ``epochs``) to
    the statistics logged there, in increasing key order."""

    train_inner: dict = field(default_factory=dict)
    epochs: dict = field(default_factory=dict)
    validation: dict = field(default_factory=dict)  # subset -> series
    seed: object = None  # int from the last configuration line, or None without one

    @property
    def num_updates(self):
        """The last update reached, or None before the first statistics."""
        reached = [_last(self.train_inner)[NUM_UPDATES]] if self.train_inner else []
        reached += [_last(self.epochs)[NUM_UPDATES]] if self.epochs else []
        return int(max(reached)) if reached else None

    @property
    def train_seconds(self):
        """Seconds spent in training steps: fairseq's end-of-epoch ``train_wall``
        summed over epochs. It excludes validation and checkpoint saving and,
        unlike ``wall`` (which restarts from 0 and stays there once a run
        resumes from a checkpoint), it survives a restart. None without an
        end-of-epoch line."""
        if not self.epochs:
            return None
        return sum(stats["train_wall"] for stats in self.epochs.values())

    def forget_after(self, update, kind):
        """Drop what an earlier attempt logged after this point of the run,
        which a restarted attempt logs again: anything beyond ``update``, and
        at ``update`` the kinds of line fairseq writes after one of ``kind``
        (training stats, then validation, then end of epoch)."""
        ranked = [(TRAIN_INNER, self.train_inner), (EPOCH, self.epochs)]
        ranked += [(VALIDATION, series) for series in self.validation.values()]
        for rank, series in ranked:
            while series and (_last(series)[NUM_UPDATES], rank) > (update, kind):
                series.popitem()


def _last(series):
    return series[next(reversed(series))]


def _numbers(record):
    """fairseq writes its statistics as strings; keep those that are numbers."""
    numbers = {}
    for name, value in record.items():
        try:
            numbers[name] = float(value)
        except (TypeError, ValueError):
            continue
    return numbers


def _subset_of(stats):
    """The prefix of a ``SUBSET_num_updates`` key, or None."""
    for name in stats:
        if name.endswith("_" + NUM_UPDATES):
            return name[: -len(NUM_UPDATES) - 1]
    return None


def _unprefixed(stats, prefix):
    start = len(prefix) + 1
    return {name[start:]: value for name, value in stats.items() if name.startswith(prefix + "_")}


def _configured_seed(line):
    """The seed of a configuration line, or None for any other line."""
    match = CONFIGURED_SEED.search(line) if line.startswith(CONFIGURATION) else None
    return int(match[1]) if match else None


def _statistics(line):
    """The numeric content of a JSON object line, or None for another line."""
    if not line.startswith("{"):
        return None
    try:
        record = json.loads(line)
    except json.JSONDecodeError:
        return None  # a Python dict printed by fairseq, e.g. the configuration
    return _numbers(record) if isinstance(record, dict) else None


def _add(log, stats):
    """Put the statistics of one line into their series of ``log``."""
    if NUM_UPDATES in stats:
        kind, key, series = TRAIN_INNER, int(stats[NUM_UPDATES]), log.train_inner
    else:
        subset = _subset_of(stats)
        if subset is None:
            return
        epoch = stats.get("epoch")
        stats = _unprefixed(stats, subset)
        if subset == EPOCH_PREFIX:
            kind, key, series = EPOCH, int(epoch), log.epochs
        else:
            kind, key, series = VALIDATION, int(stats[NUM_UPDATES]), log.validation.setdefault(subset, {})
    log.forget_after(stats[NUM_UPDATES], kind)
    series.pop(key, None)  # a repeated line, or the same key logged again after a restart
    series[key] = stats


def parse_train_log(lines):
    log = TrainLog()
    for line in lines:
        seed = _configured_seed(line)
        if seed is not None:
            log.seed = seed
        stats = _statistics(line)
        if stats is not None:
            _add(log, stats)
    return log


def read_train_log(path):
    """The TrainLog of the file ``path``; UnreadableFileError naming it when
    it cannot be opened. Bytes that are not UTF-8 (a line cut by a killed
    job) are replaced: the statistics lines are ASCII."""
    try:
        with open(path, encoding="utf-8", errors="replace") as lines:
            return parse_train_log(lines)
    except OSError as error:
        raise UnreadableFileError(f"{path}: cannot read the training log: {error}") from None


def curve(series, name):
    """Update numbers and values of statistic ``name`` where ``series`` has it."""
    points = [(update, stats[name]) for update, stats in series.items() if name in stats]
    return [update for update, _ in points], [value for _, value in points]
