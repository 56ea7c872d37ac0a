"""Several fairseq-train command lines in one process, one after the other.

`import fairseq` and torch's optimizer set-up cost seconds per process, a
tiny test run a fraction of one. Usage: python fairseq_train_several.py
RUNS.json, a JSON list of {"args": [fairseq-train arguments], "log": path};
each run's log records go to its own file ("{rank}" in the path is the
process's rank). Under torchrun every rank runs the same list, in one process
group, as fairseq keeps the group it initialized first."""

import json
import logging
import os
import sys

from fairseq import options
from fairseq.dataclass.utils import convert_namespace_to_omegaconf
from fairseq.distributed import utils as distributed_utils
from fairseq_cli.train import main


def train(args, log_path):
    handler = logging.FileHandler(log_path.format(rank=os.environ.get("RANK", "0")))
    handler.setFormatter(logging.Formatter("%(asctime)s | %(levelname)s | %(name)s | %(message)s"))
    logging.getLogger().addHandler(handler)
    try:
        parsed = options.parse_args_and_arch(options.get_training_parser(), args)
        distributed_utils.call_main(convert_namespace_to_omegaconf(parsed), main)
    finally:
        logging.getLogger().removeHandler(handler)
        handler.close()


if __name__ == "__main__":
    with open(sys.argv[1]) as runs:
        for run in json.load(runs):
            train([str(arg) for arg in run["args"]], run["log"])
