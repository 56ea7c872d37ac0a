#!/usr/bin/env python
"""Write the generator of a mediator-task checkpoint (cot, gjs) as a plain
fairseq checkpoint of task translation (or language_modeling), for tools that
know nothing of the mediator task (`fairseq-ot-generate --task translation`;
stock fairseq on torch >= 2.6 still needs the plugin's weights-only allow-list).

    python scripts/extract_generator.py checkpoint_best.pt generator.pt
"""

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import fairseq_ot  # noqa: E402,F401  (allow-lists fairseq's checkpoint classes)

PLAIN_TASKS = {"mediator_translation": "translation",
               "mediator_language_modeling": "language_modeling"}


def extract_generator(source, destination):
    state = torch.load(source, map_location="cpu", weights_only=True)
    task_cfg = state["cfg"]["task"]
    if task_cfg.get("_name") not in PLAIN_TASKS:
        sys.exit(f"{source} is not a mediator-task checkpoint (task {task_cfg.get('_name')!r})")
    task_cfg["_name"] = PLAIN_TASKS[task_cfg["_name"]]
    for key in [key for key in task_cfg if key.startswith("mediator_")]:
        del task_cfg[key]
    prefix = "generator."
    state["model"] = {key[len(prefix):]: value for key, value in state["model"].items()
                      if key.startswith(prefix)}
    # the optimizer state covers both networks: it cannot resume the generator alone
    state["last_optimizer_state"] = None
    state["criterion"] = None
    tmp = Path(str(destination) + ".tmp")
    torch.save(state, tmp)
    tmp.replace(destination)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source")
    parser.add_argument("destination")
    args = parser.parse_args()
    extract_generator(args.source, args.destination)
    print(f"wrote the generator of {args.source} to {args.destination}")


if __name__ == "__main__":
    main()
