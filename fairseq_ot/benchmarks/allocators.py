"""The allocator comparison behind `fairseq-ot-bench-allocators`
(fairseq_ot/cli/bench_allocators.py, whose docstring says what is compared):
each allocator runs the criterion benchmark in a fresh process; per allocator
the medians of its timings, its page faults and peak RSS, and whether its
losses are bit-identical to glibc's."""

import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from fairseq_ot.compat.glibc_malloc import OPT_OUT, USER_CHOICES

LIBRARIES = Path("/usr/lib/x86_64-linux-gnu")
ALLOCATORS = {
    "glibc": {OPT_OUT: "glibc"},
    "plugin": {},
    "env": {"MALLOC_TRIM_THRESHOLD_": str(2**34), "MALLOC_TOP_PAD_": str(2**30)},
    "jemalloc": {"LD_PRELOAD": str(LIBRARIES / "libjemalloc.so.2")},
    "tcmalloc": {"LD_PRELOAD": str(LIBRARIES / "libtcmalloc_minimal.so.4")},
}


def available(name):
    preload = ALLOCATORS[name].get("LD_PRELOAD")
    return preload is None or Path(preload).exists()


def run_bench(name, bench_args, out):
    """One bench_criterions process under allocator `name`: its JSON results
    and the process's resource usage (os.wait4)."""
    env = {key: value for key, value in os.environ.items() if key not in USER_CHOICES}
    env.pop(OPT_OUT, None)
    env.update(ALLOCATORS[name], OMP_NUM_THREADS="1")
    command = [sys.executable, "-m", "fairseq_ot.cli.bench_criterions", "--ipot-repeats", "0",
               "--json", str(out), *bench_args]
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL)
    _, status, usage = os.wait4(process.pid, 0)
    if status != 0:
        raise SystemExit(f"bench_criterions failed under {name}: {' '.join(command)}")
    return json.loads(out.read_text())["criteria"], {
        "minor_faults": usage.ru_minflt, "max_rss_mb": usage.ru_maxrss / 1024}


def summarize(runs):
    """Per allocator: medians over repeats of each criterion's ms per step and
    ratio, the resource usage, and the last losses (equal over repeats)."""
    summary = {}
    for name, repeats in runs.items():
        criteria = repeats[0][0]
        summary[name] = {
            "ms_per_step": {label: statistics.median(r[0][label]["ms_per_step"] for r in repeats)
                            for label in criteria},
            "time_ratio": {label: statistics.median(r[0][label]["time_ratio"] for r in repeats)
                           for label in criteria},
            "minor_faults": statistics.median(r[1]["minor_faults"] for r in repeats),
            "max_rss_mb": statistics.median(r[1]["max_rss_mb"] for r in repeats),
            "last_loss": {label: [r[0][label]["last_loss"] for r in repeats] for label in criteria},
        }
    reference = summary.get("glibc", next(iter(summary.values())))["last_loss"]
    for row in summary.values():
        row["losses_identical"] = row["last_loss"] == reference
    return summary


def print_table(summary):
    labels = list(next(iter(summary.values()))["ms_per_step"])
    header = "".join(f"{label + ' ms':>22}" for label in labels)
    ratios = "".join(f"{label + ' x':>16}" for label in labels[1:])
    print(f"{'allocator':<10}{header}{ratios}{'minor faults':>14}{'peak RSS MB':>13}  losses = glibc's")
    for name, row in summary.items():
        times = "".join(f"{row['ms_per_step'][label]:22.1f}" for label in labels)
        factors = "".join(f"{row['time_ratio'][label]:16.2f}" for label in labels[1:])
        print(f"{name:<10}{times}{factors}{row['minor_faults']:14.0f}{row['max_rss_mb']:13.0f}"
              f"  {'yes' if row['losses_identical'] else 'NO'}")


def compare_allocators(allocators, repeats, bench_args, json_path=None):
    """`repeats` rounds over the installed ones of `allocators`, each a
    bench_criterions process with `bench_args`; prints the table and, with
    `json_path`, writes the summary there."""
    names = [name for name in allocators if available(name)]
    for name in set(allocators) - set(names):
        print(f"skipped {name}: {ALLOCATORS[name]['LD_PRELOAD']} is not installed")
    runs = {name: [] for name in names}
    with tempfile.TemporaryDirectory() as tmp:
        for repeat in range(repeats):
            for name in names:
                print(f"round {repeat + 1}/{repeats}: {name}", file=sys.stderr, flush=True)
                runs[name].append(run_bench(name, bench_args, Path(tmp) / f"{name}.json"))
    summary = summarize(runs)
    print_table(summary)
    if json_path:
        json_path.write_text(json.dumps({"bench_args": bench_args, "allocators": summary}, indent=2))
    return summary
