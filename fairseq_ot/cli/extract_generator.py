"""Write the generator of a mediator-task checkpoint (cot, gjs) as a plain
fairseq checkpoint of the task the mediator task extends (translation,
language_modeling, captioning), for tools that know nothing of the mediator
task (`fairseq-ot-generate --task translation`; stock fairseq on torch >= 2.6
still needs the plugin's weights-only allow-list).

    python scripts/extract_generator.py checkpoint_best.pt generator.pt

The destination is never the source, and an existing file is replaced only
with --force.
"""

import argparse

from fairseq_ot.checkpoints.surgery import CheckpointError, extract_generator
from fairseq_ot.errors import print_one_line


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source")
    parser.add_argument("destination")
    parser.add_argument("--force", action="store_true", help="replace the destination if it exists")
    args = parser.parse_args(argv)
    try:
        task = extract_generator(args.source, args.destination, args.force)
    except CheckpointError as error:
        print_one_line(error)
        raise SystemExit(2) from None
    print(f"wrote the generator of {args.source} to {args.destination} (task {task})")
