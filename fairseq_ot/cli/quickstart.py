"""Quickstart: train a small transformer with `--criterion ot_seq` on the
embedded toy corpus, translate the test set with `fairseq-generate`, and
score it with sacrebleu. A few minutes on 2 CPU cores, no download.

    python scripts/quickstart.py [--out quickstart_output] [--criterion ot_seq]
"""

import argparse
import re
import subprocess
import sys
import time
from pathlib import Path

from fairseq_ot.evaluation.generate_output import HypothesisCountError, read_hypotheses
from fairseq_ot.paths import USER_DIR
from fairseq_ot.recipes import add_threads_argument, environment_with_threads, recipe_args
from fairseq_ot.toy_corpus import write_toy_corpus


def run(command, env, log_path=None):
    print("+ " + " ".join(command), flush=True)
    if log_path is None:
        subprocess.run(command, check=True, env=env)
        return
    with open(log_path, "w") as log:
        subprocess.run(command, check=True, stdout=log, stderr=subprocess.STDOUT, env=env)


def preprocess(raw, data_bin, env):
    if (data_bin / "dict.src.txt").exists():
        print(f"binarized data already in {data_bin}")
        return
    run([
        "fairseq-preprocess", "--source-lang", "src", "--target-lang", "tgt",
        "--trainpref", str(raw / "train"), "--validpref", str(raw / "valid"),
        "--testpref", str(raw / "test"), "--destdir", str(data_bin),
        "--joined-dictionary", "--workers", "1",
    ], env, data_bin.parent / "preprocess.log")


def train(data_bin, save_dir, log_file, criterion, max_update, extra, env):
    run([
        "fairseq-train", str(data_bin), "--user-dir", str(USER_DIR),
        "--cpu", *recipe_args("toy_translation", criterion), "--max-update", str(max_update),
        "--save-dir", str(save_dir), "--no-epoch-checkpoints",
        "--log-format", "simple", "--log-interval", "50", "--log-file", str(log_file),
        *extra,
    ], env)


def generate_and_score(data_bin, checkpoint, out_dir, n_references, env):
    output = out_dir / "generate-test.txt"
    run([
        "fairseq-generate", str(data_bin), "--user-dir", str(USER_DIR),
        "--cpu", "--path", str(checkpoint), "--gen-subset", "test", "--beam", "5",
        "--batch-size", "128", "--required-batch-size-multiple", "1",
        "--scoring", "sacrebleu",
    ], env, output)
    try:
        read_hypotheses(output, n_references)
    except HypothesisCountError as error:
        sys.exit(str(error))
    text = output.read_text()
    bleu = re.search(r"BLEU = ([\d.]+)", text)
    if bleu is None:
        sys.exit(f"no BLEU line in {output}")
    return float(bleu.group(1)), output


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("quickstart_output"))
    parser.add_argument("--criterion", default="ot_seq")
    parser.add_argument("--max-update", type=int, default=400)
    add_threads_argument(parser)
    args, extra = parser.parse_known_args()
    try:
        env = environment_with_threads(args.threads)
    except ValueError as error:
        parser.error(str(error))
    out = args.out.resolve()
    start = time.time()
    raw = write_toy_corpus(out / "raw")
    n_test = len((raw / "test.tgt").read_text().splitlines())
    data_bin = out / "data-bin"
    preprocess(raw, data_bin, env)
    save_dir = out / f"checkpoints_{args.criterion}"
    log_file = out / f"train_{args.criterion}.log"
    train(data_bin, save_dir, log_file, args.criterion, args.max_update, extra, env)
    bleu, generated = generate_and_score(data_bin, save_dir / "checkpoint_best.pt", out, n_test, env)
    print(f"\ncriterion   {args.criterion}")
    print(f"data        {data_bin} (fairseq binarized, joined dictionary)")
    print(f"checkpoint  {save_dir / 'checkpoint_best.pt'}")
    print(f"train log   {log_file}")
    print(f"generations {generated}")
    print(f"test BLEU   {bleu:.2f} (sacrebleu, {n_test} sentences), {time.time() - start:.0f} s in all, "
          f"{args.threads} torch thread(s) per process")


if __name__ == "__main__":
    main()
