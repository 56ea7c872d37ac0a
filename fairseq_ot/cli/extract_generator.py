"""Write the generator of a mediator-task checkpoint (cot, gjs) as a plain
fairseq checkpoint of the task the mediator task extends (translation,
language_modeling, captioning), for tools that know nothing of the mediator
task (`fairseq-ot-generate --task translation`; stock fairseq on torch >= 2.6
still needs the plugin's weights-only allow-list).

    python scripts/extract_generator.py checkpoint_best.pt generator.pt
"""

import argparse
import sys

from fairseq_ot.checkpoints.surgery import CheckpointError, extract_generator


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source")
    parser.add_argument("destination")
    args = parser.parse_args(argv)
    try:
        task = extract_generator(args.source, args.destination)
    except CheckpointError as error:
        sys.exit(f"error: {error}")
    print(f"wrote the generator of {args.source} to {args.destination} (task {task})")
