"""What a user gets from installing the project: the recipes inside a plain
(non-editable) install and inside the wheel and sdist that `python -m build`
makes, a console script for every command, TensorBoard logging, and no import
of the broken torchaudio that fairseq-fixed pulls in."""

import ast
import configparser
import os
import re
import shlex
import shutil
import subprocess
import sys
import tarfile

import yaml

from fairseq_ot.recipes import recipe_args

from conftest import REPO, TINY_TRANSFORMER, USER_DIR, run_cli

# the checkout minus what a build or a run leaves in it
NOT_SOURCE = shutil.ignore_patterns(".git", ".venv", "*.egg-info", "build", "__pycache__", ".pytest_cache",
                                    "quickstart_output", "bench_output", "synthetic_output", "outputs",
                                    "prepared", "runs")


def run_outside_checkout(code, site, cwd):
    """`python -c code` that sees the installed copy in `site` first."""
    env = dict(os.environ, PYTHONPATH=str(site), OMP_NUM_THREADS="1")
    return subprocess.run([sys.executable, "-c", code], cwd=cwd, env=env, capture_output=True, text=True,
                          check=True).stdout


def test_plain_install_ships_the_recipes_and_hydra_configs(tmp_path):
    source = tmp_path / "source"
    shutil.copytree(REPO, source, ignore=NOT_SOURCE)
    site = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
                    "--target", str(site), str(source)], check=True, capture_output=True)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    located = run_outside_checkout("import fairseq_ot.recipes as r; print(r.RECIPES_DIR)", site, elsewhere)
    assert located.strip() == str(site / "fairseq_ot" / "recipes")
    env = dict(os.environ, PYTHONPATH=str(site))
    printed = subprocess.run([sys.executable, "-m", "fairseq_ot.recipes", "toy_translation", "ot_seq"],
                             cwd=elsewhere, env=env, capture_output=True, text=True, check=True).stdout
    assert printed.split()[:2] == ["--task", "translation"] and "--ot-weight 0.1" in printed
    recipes = REPO / "fairseq_ot" / "recipes"
    shipped = {path.relative_to(recipes) for path in recipes.rglob("*")
               if path.is_file() and "__pycache__" not in path.parts}
    installed = {path.relative_to(site / "fairseq_ot" / "recipes")
                 for path in (site / "fairseq_ot" / "recipes").rglob("*")
                 if path.is_file() and "__pycache__" not in path.parts}
    assert shipped <= installed, shipped - installed
    assert any(path.match("hydra/*.yaml") for path in installed)


def setup_keywords():
    """The keyword arguments of setup.py's setup() call, as Python values."""
    setup_call = next(node for node in ast.walk(ast.parse((REPO / "setup.py").read_text()))
                      if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "setup")
    return {keyword.arg: ast.literal_eval(keyword.value) for keyword in setup_call.keywords
            if keyword.arg in ("version", "entry_points", "extras_require")}


def wrapper_commands():
    """fairseq-ot-NAME -> fairseq_ot.cli.NAME:main for every scripts/NAME.py."""
    return {f"fairseq-ot-{path.stem.replace('_', '-')}": f"fairseq_ot.cli.{path.stem}:main"
            for path in sorted((REPO / "scripts").glob("*.py"))}


def test_every_script_is_a_console_script():
    """Each thin wrapper of scripts/ has its installed command, fairseq-ot-NAME
    calling the same main."""
    declared = dict(line.replace(" ", "").split("=") for line in
                    setup_keywords()["entry_points"]["console_scripts"])
    wanted = {name: target.replace(" ", "") for name, target in wrapper_commands().items()}
    assert {name: declared.get(name) for name in wanted} == wanted
    assert "build" in setup_keywords()["extras_require"]["dev"]


def test_wheel_and_sdist_ship_the_recipes_and_the_licence(tmp_path):
    """`python -m build` on a copy of the checkout makes a wheel and an sdist;
    the wheel, installed with `pip install --target`, prints a recipe's flag
    file and runs a console script with the checkout nowhere on the path; the
    sdist holds every recipe file and the licence."""
    source = tmp_path / "source"
    shutil.copytree(REPO, source, ignore=NOT_SOURCE)
    dist = tmp_path / "dist"
    subprocess.run([sys.executable, "-m", "build", "--no-isolation", "--outdir", str(dist), str(source)],
                   check=True, capture_output=True)
    [wheel], [sdist] = list(dist.glob("*.whl")), list(dist.glob("*.tar.gz"))
    site = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target", str(site),
                    str(wheel)], check=True, capture_output=True)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = dict(os.environ, PYTHONPATH=str(site), OMP_NUM_THREADS="1")
    code = ("import runpy, sys, fairseq_ot.recipes as r; print(r.RECIPES_DIR); sys.argv = ['recipes', "
            "'toy_translation', 'ot_seq']; runpy.run_module('fairseq_ot.recipes', run_name='__main__')")
    located, printed = subprocess.run([sys.executable, "-c", code], cwd=elsewhere, env=env, capture_output=True,
                                      text=True, check=True).stdout.split("\n", 1)
    assert located == str(site / "fairseq_ot" / "recipes")
    # the flag files of the checkout, as the checkout reads them
    assert shlex.split(printed) == recipe_args("toy_translation", "ot_seq")
    assert printed.split()[:2] == ["--task", "translation"] and "--ot-weight 0.1" in printed

    # a console script of the install: its entry point, run as pip wrote it
    [info] = site.glob("fairseq_ot-*.dist-info")
    entry_points = configparser.ConfigParser(delimiters=("=",))
    entry_points.read(info / "entry_points.txt")
    assert wrapper_commands().items() <= dict(entry_points["console_scripts"]).items()
    sentences = tmp_path / "sentences.txt"
    sentences.write_text("a small dog runs .\nthe old man sits .\n")
    scored = subprocess.run([str(site / "bin" / "fairseq-ot-score-generations"), str(sentences), str(sentences)],
                            cwd=elsewhere, env=env, capture_output=True, text=True, check=True).stdout
    assert '"n_hyp": 2' in scored

    recipes = REPO / "fairseq_ot" / "recipes"
    with tarfile.open(sdist) as archive:
        members = {name.split("/", 1)[1] for name in archive.getnames() if "/" in name}
    shipped = {str(path.relative_to(REPO)) for path in recipes.rglob("*")
               if path.is_file() and "__pycache__" not in path.parts}
    assert shipped <= members, shipped - members
    assert "LICENSE" in members and "setup.py" in members


def test_tensorboard_logdir_writes_event_files(toy_data_bin, tmp_path):
    logdir = tmp_path / "tensorboard"
    _, output = run_cli(
        "fairseq-train", toy_data_bin, "--user-dir", USER_DIR, "--cpu", *TINY_TRANSFORMER,
        "--criterion", "ot_seq", "--optimizer", "adam", "--lr", "0.001", "--max-tokens", "500",
        "--max-update", "2", "--no-save", "--tensorboard-logdir", logdir, "--log-interval", "1",
    )
    assert "Please install tensorboardX" not in output
    events = list(logdir.rglob("events.out.tfevents.*"))
    assert events and all(path.stat().st_size > 0 for path in events)
    assert {path.parent.name for path in events} >= {"train_inner", "valid"}


def test_nothing_the_project_runs_imports_torchaudio(tmp_path):
    """fairseq-fixed requires torchaudio, and the registry's only builds for
    torch 2.13's era are CUDA builds whose import fails on a CPU machine:
    importing the plugin, fairseq's command lines and all of fairseq's
    tasks, models and criterions must not import it."""
    code = ("import sys, fairseq_ot, fairseq_ot.cli, fairseq_cli.train, fairseq_cli.generate, "
            "fairseq.tasks, fairseq.models, fairseq.criterions; "
            "print('torchaudio' in sys.modules)")
    assert run_outside_checkout(code, REPO, tmp_path).strip() == "False"


def test_a_run_stopped_inside_an_epoch_exits_cleanly(toy_data_bin, tmp_path):
    """fairseq's background batch loader is still collating when training stops
    at --max-update; without `compat.background_loader` Python 3.11 ends that
    thread inside torch's C++ code at exit and the process aborts (status
    134) after a correct run. Several runs, since the abort depends on timing."""
    for run in range(3):
        code, output = run_cli(
            "fairseq-train", toy_data_bin, "--user-dir", USER_DIR, "--cpu", *TINY_TRANSFORMER,
            "--criterion", "label_smoothed_cross_entropy", "--optimizer", "adam", "--lr", "0.001",
            "--max-tokens", "300", "--max-update", "2", "--disable-validation", "--log-format", "json",
            "--num-workers", str(run % 2), "--save-dir", tmp_path / f"run{run}", check=False,
        )
        assert code == 0, output[-2000:]
        assert "terminate called" not in output


def test_version_citation_and_changelog_agree():
    """One version: setup.py's, CITATION.cff's, and the newest CHANGELOG entry's;
    the licence is the one CITATION.cff names."""
    setup_call = next(node for node in ast.walk(ast.parse((REPO / "setup.py").read_text()))
                      if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "setup")
    version = next(keyword.value.value for keyword in setup_call.keywords if keyword.arg == "version")
    citation = yaml.safe_load((REPO / "CITATION.cff").read_text())
    assert str(citation["version"]) == version
    newest = re.search(r"^## (\S+) - (\d{4}-\d{2}-\d{2})$", (REPO / "CHANGELOG.md").read_text(), re.M)
    assert newest.group(1) == version and newest.group(2) == str(citation["date-released"])
    assert citation["license"] == "MIT" and (REPO / "LICENSE").read_text().startswith("MIT License")
