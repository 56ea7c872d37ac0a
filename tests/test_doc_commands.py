"""Every command block of the documentation is checked, without running it.

The ```bash, ```sh, ```shell and ```console blocks of docs/**/*.md, README.md
and user_dir_examples/**/README.md are read line by line (backslash
continuations joined; in a console block only the `$ ` lines are commands).
Each command is checked by the parser of the program it names:

- `python scripts/NAME.py ...`, `python -m fairseq_ot.cli.NAME ...` and the
  `fairseq-ot-*` console scripts that are not fairseq's own mains: the
  script's argparse parser, built by its main (parsing stops there, nothing
  runs);
- `fairseq-train`, `fairseq-generate`, `fairseq-interactive`,
  `fairseq-validate`, `fairseq-preprocess` and their `fairseq-ot-*`
  counterparts: fairseq's own parser (`parse_args_and_arch`), which also
  reads the flags of the task, model and criterion named; a plugin
  component named without `--user-dir` is an error for fairseq's commands;
- `python -m fairseq_ot.recipes RECIPE CRITERION` and the recipes' `run.sh`
  and `scripts/cluster/launch.sh`, `train.sbatch`: the recipe's flag files
  exist, and the recipe's flags with the extra flags pass fairseq's parser;
- `fairseq-ot-hydra-train`: the config folder and YAML exist;
- `torchrun` and `sbatch`: the command they start is checked.

Shell variables set in a block (`R=...`, `X=(...)`, `export`) are expanded
in the lines after; `eval "flags=($(python -m fairseq_ot.recipes ...))"`
sets the recipe's flags. `pip install`, `cd`, `git clone`, `export`, `.`,
`source`, `mkdir`, `python -m venv`, `python -m pytest` and comments pass
as they are; any other command fails, so that no page carries an unchecked
command. Placeholder words (DATA, RUN_DIR, CKPT) are fine as paths: parsing
does no I/O. A literal `...` stands for more flags and is dropped."""

import argparse
import contextlib
import io
import os
import re
import runpy
import shlex
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
BLOCK = re.compile(r"^(?P<indent>[ \t]*)```(?P<lang>bash|sh|shell|console)[ \t]*\n(?P<body>.*?)^(?P=indent)```",
                   re.MULTILINE | re.DOTALL)
ALLOWED = {"cd", "export", ".", "source", "mkdir"}
FAIRSEQ_PARSERS = {
    "fairseq-train": "training", "fairseq-ot-train": "training",
    "fairseq-generate": "generation", "fairseq-ot-generate": "generation",
    "fairseq-interactive": "interactive", "fairseq-ot-interactive": "interactive",
    "fairseq-validate": "validation", "fairseq-ot-validate": "validation",
    "fairseq-preprocess": "preprocessing",
}
SEPARATORS = {"&&", "||", ";", "|", "&"}


def documentation_pages():
    pages = sorted((REPO / "docs").glob("**/*.md")) + [REPO / "README.md"]
    pages += sorted((REPO / "user_dir_examples").glob("**/README.md"))
    return [page for page in pages if "_build" not in page.parts and page.is_file()]


def console_scripts():
    """name -> "module:function" of setup.py's console_scripts."""
    text = (REPO / "setup.py").read_text()
    return dict(re.findall(r'"([\w-]+)\s*=\s*([\w.]+:\w+)"', text))


def unbalanced(text):
    """Whether `text` leaves a parenthesis or a quote open (an array
    assignment may run over several lines without backslashes)."""
    lexer = shlex.shlex(text, posix=True, punctuation_chars="()")
    lexer.whitespace_split = True
    lexer.commenters = "#"
    try:
        tokens = list(lexer)
    except ValueError:
        return True
    return tokens.count("(") > tokens.count(")")


def command_lines(page):
    """(line number, logical line) of every command line in the page's blocks."""
    text = page.read_text()
    for block in BLOCK.finditer(text):
        first = text.count("\n", 0, block.start("body")) + 1
        indent = len(block.group("indent"))
        raw = [line[indent:] for line in block.group("body").splitlines()]
        if block.group("lang") == "console":
            raw = [line[2:] if line.startswith("$ ") else "" for line in raw]
        pending, start = "", None
        for offset, line in enumerate(raw):
            if start is None:
                start = first + offset
            pending += line
            if pending.endswith("\\"):
                pending = pending[:-1] + " "
                continue
            if unbalanced(pending):
                pending += " "
                continue
            if pending.strip():
                yield start, pending.strip()
            pending, start = "", None
        if pending.strip():
            yield start, pending.strip()


class Parsed(Exception):
    """Raised by the patched argparse once a script's own parser has parsed."""


@contextlib.contextmanager
def stop_at_first_parse():
    """argparse's parse_args/parse_known_args raise Parsed after parsing (an
    argparse error stays SystemExit with its message)."""
    original_known = argparse.ArgumentParser.parse_known_args
    depth = {"inside": 0}

    def parse_known_args(self, args=None, namespace=None):
        result = original_known(self, args, namespace)
        if depth["inside"] == 0:
            raise Parsed(result)
        return result

    original_args = argparse.ArgumentParser.parse_args

    def parse_args(self, args=None, namespace=None):
        depth["inside"] += 1
        try:
            result = original_args(self, args, namespace)
        finally:
            depth["inside"] -= 1
        raise Parsed(result)

    argparse.ArgumentParser.parse_known_args = parse_known_args
    argparse.ArgumentParser.parse_args = parse_args
    try:
        yield
    finally:
        argparse.ArgumentParser.parse_known_args = original_known
        argparse.ArgumentParser.parse_args = original_args


def run_until_parsed(program, args, call):
    """Run `call()` with sys.argv = [program, *args] until its first argparse
    parse; '' when the arguments parse, else the parser's message."""
    argv, stderr = sys.argv, io.StringIO()
    sys.argv = [program, *args]
    try:
        with stop_at_first_parse(), contextlib.redirect_stderr(stderr), contextlib.redirect_stdout(io.StringIO()):
            call()
    except Parsed:
        return ""
    except SystemExit as exit_:
        return (stderr.getvalue().strip().splitlines() or [str(exit_)])[-1] or f"exit {exit_.code}"
    finally:
        sys.argv = argv
    return f"{program} finished without parsing arguments with argparse: cannot check it"


def check_script(path, args):
    script = REPO / path
    if not script.is_file() or script.suffix != ".py":
        return f"no script {path}"
    return run_until_parsed(path, args, lambda: runpy.run_path(str(script), run_name="__main__"))


def check_cli_module(module, args):
    path = REPO / module.replace(".", "/")
    if not (path.with_suffix(".py").is_file() or (path / "__main__.py").is_file()):
        return f"no module {module}"
    return run_until_parsed(module, args, lambda: runpy.run_module(module, run_name="__main__"))


def check_fairseq(program, args):
    from fairseq import options

    import fairseq_ot  # noqa: F401
    from fairseq.criterions import CRITERION_REGISTRY
    from fairseq.models import ARCH_MODEL_REGISTRY
    from fairseq.tasks import TASK_REGISTRY

    kind = FAIRSEQ_PARSERS[program]
    stderr = io.StringIO()
    try:
        with contextlib.redirect_stderr(stderr), contextlib.redirect_stdout(io.StringIO()):
            if kind == "preprocessing":
                options.get_preprocessing_parser().parse_args(args)
                return ""
            parser = {"training": options.get_training_parser, "generation": options.get_generation_parser,
                      "interactive": options.get_interactive_generation_parser,
                      "validation": options.get_validation_parser}[kind]()
            namespace = options.parse_args_and_arch(parser, input_args=args)
    except SystemExit as exit_:
        return (stderr.getvalue().strip().splitlines() or [str(exit_)])[-1]
    except RuntimeError:  # fairseq's parse_args_and_arch on an --arch it has not registered
        return f"{program} without a registered --arch (fairseq fails then with a bare RuntimeError)"
    if program.startswith("fairseq-ot-"):
        return ""
    plugin = [value for value, registry in ((getattr(namespace, "criterion", None), CRITERION_REGISTRY),
                                            (getattr(namespace, "task", None), TASK_REGISTRY),
                                            (getattr(namespace, "arch", None), ARCH_MODEL_REGISTRY))
              if value in registry and registry[value].__module__.startswith("fairseq_ot")]
    if plugin and not getattr(namespace, "user_dir", None):
        return f"{program} names {', '.join(plugin)} of the plugin without --user-dir"
    return ""


def recipe_flags(recipe, criterion):
    from fairseq_ot.recipes import recipe_args

    return recipe_args(recipe, criterion)


def check_recipe_training(recipe, criterion, data, extra):
    """The recipe's flags exist and, with `extra` after them, pass fairseq-train."""
    try:
        flags = recipe_flags(recipe, criterion)
    except ValueError as error:
        return str(error)
    return check_fairseq("fairseq-train", [data, "--user-dir", "fairseq_ot", *flags, *extra])


def check_recipes_module(args):
    error = check_cli_module("fairseq_ot.recipes", args)
    if error:
        return error
    try:
        recipe_flags(*[word for word in args if not word.startswith("-")][:2])
    except (ValueError, TypeError) as error:
        return str(error)
    return ""


def split_options(args, with_value):
    """(options, the rest) of a shell script's `--opt [value]` prefix."""
    options, rest = [], list(args)
    while rest and rest[0].startswith("--"):
        option = rest.pop(0)
        options.append(option)
        if option in with_value and rest:
            options.append(rest.pop(0))
    return options, rest


def check_launch(args, with_value=("--nproc-per-node", "--nnodes", "--node-rank", "--master-addr",
                                   "--master-port", "--save-interval-updates", "--launcher")):
    """scripts/cluster/launch.sh [options] RECIPE CRITERION DATA RUN_DIR [flags]."""
    _, rest = split_options(args, with_value)
    if len(rest) < 4:
        return "launch.sh needs RECIPE CRITERION DATA RUN_DIR"
    recipe, criterion, data, _run_dir, *extra = rest
    return check_recipe_training(recipe, criterion, data, extra)


def check_run_sh(path, args):
    """fairseq_ot/recipes/RECIPE/run.sh RUN_DIR [CRITERION] [flags]."""
    if not (REPO / path).is_file():
        return f"no script {path}"
    recipe = Path(path).parent.name
    criterion = args[1] if len(args) > 1 else "label_smoothed_cross_entropy"
    return check_recipe_training(recipe, criterion, "DATA", args[2:])


def check_sbatch(args):
    script = next((i for i, word in enumerate(args) if not word.startswith("-")), None)
    if script is None:
        return "sbatch without a script"
    path = args[script]
    if path != "scripts/cluster/train.sbatch":
        return f"sbatch of {path}: only scripts/cluster/train.sbatch is checked"
    return check_launch(args[script + 1:], with_value=("--launcher",))


def check_torchrun(args):
    from torch.distributed.run import get_args_parser

    stderr = io.StringIO()
    try:
        with contextlib.redirect_stderr(stderr):
            parsed = get_args_parser().parse_args(args)
    except SystemExit:
        return stderr.getvalue().strip().splitlines()[-1]
    return check_command([parsed.training_script, *parsed.training_script_args], {})


def check_hydra(args):
    config_dir = args[args.index("--config-dir") + 1] if "--config-dir" in args else None
    name = args[args.index("--config-name") + 1] if "--config-name" in args else None
    if not config_dir or not name:
        return "fairseq-ot-hydra-train needs --config-dir and --config-name"
    if not (REPO / config_dir / f"{name}.yaml").is_file():
        return f"no hydra config {config_dir}/{name}.yaml"
    bad = [word for word in args if not word.startswith("--") and "=" not in word
           and word not in (config_dir, name)]
    return f"not a hydra override: {bad}" if bad else ""


def check_command(words, variables):
    """'' when `words` (one simple command, variables expanded) is of a
    known form and its program accepts its arguments, else why not."""
    words = [word for word in words if word != "..."]
    while words and re.fullmatch(r"\w+=.*", words[0]):
        name, value = words.pop(0).split("=", 1)
        variables[name] = value
    if not words:
        return ""
    program, args = words[0], words[1:]
    scripts = console_scripts()
    if program in ALLOWED:
        if program == "export":
            for word in args:
                if "=" in word:
                    name, value = word.split("=", 1)
                    variables[name] = value
        return ""
    if program == "pip" and args[:1] == ["install"]:
        return ""
    if program == "git" and args[:1] == ["clone"]:
        return ""
    if program in ("python", "python3"):
        if args[:2] in (["-m", "venv"], ["-m", "pytest"]):
            return ""
        if args[:2] == ["-m", "fairseq_ot.recipes"]:
            return check_recipes_module(args[2:])
        if args[:1] == ["-m"] and len(args) > 1 and args[1].startswith("fairseq_ot.cli."):
            return check_cli_module(args[1], args[2:])
        if args and args[0].endswith(".py"):
            return check_script(args[0], args[1:])
        return f"python {' '.join(args[:2])}: not a checked form"
    if program in FAIRSEQ_PARSERS:
        return check_fairseq(program, args)
    if program == "fairseq-ot-hydra-train":
        return check_hydra(args)
    if program in scripts:
        module = scripts[program].split(":")[0]
        return check_cli_module(module, args)
    if program == "torchrun":
        return check_torchrun(args)
    if program == "sbatch":
        return check_sbatch(args)
    if program == "scripts/cluster/launch.sh":
        return check_launch(args)
    if re.fullmatch(r"fairseq_ot/recipes/\w+/run\.sh", program):
        return check_run_sh(program, args)
    return f"{program}: a command of no checked form"


def expand(word, variables):
    """The words `word` expands to: "${X[@]}" of an array, $X and ${X} of a
    scalar (an unset variable stays its name, a placeholder)."""
    whole = re.fullmatch(r"\$\{?(\w+)(\[@\])?\}?", word)
    if whole and isinstance(variables.get(whole.group(1)), list):
        return list(variables[whole.group(1)])

    def scalar(match):
        value = variables.get(match.group(1) or match.group(2), match.group(1) or match.group(2))
        return " ".join(value) if isinstance(value, list) else value

    return [re.sub(r"\$\{(\w+)(?:\[@\])?\}|\$(\w+)", scalar, word)]


def check_line(line, variables):
    """The errors of one logical line (several commands, `&&`, `;`)."""
    line = re.sub(r"\$\(which ([\w-]+)\)", r"\1", line)
    evaluated = re.fullmatch(r'eval "(\w+)=\(\$\(python -m fairseq_ot\.recipes ([^)]*)\)\)"', line)
    if evaluated:
        args = [expand(word, variables)[0] for word in shlex.split(evaluated.group(2))]
        error = check_recipes_module(args)
        if not error:
            variables[evaluated.group(1)] = recipe_flags(*args[:2])
        return [error] if error else []
    lexer = shlex.shlex(line, posix=True, punctuation_chars=";&|()")
    lexer.whitespace_split = True
    lexer.commenters = "#"
    tokens = list(lexer)
    errors, command, index = [], [], 0
    while index < len(tokens):
        token = tokens[index]
        if token in SEPARATORS:
            if command:
                errors.append(check_command(command, variables))
            command = []
        elif token.endswith("=") and index + 1 < len(tokens) and tokens[index + 1] == "(" and not command:
            end = tokens.index(")", index)
            variables[token[:-1]] = [w for word in tokens[index + 2:end] for w in expand(word, variables)]
            index = end
        else:
            command.extend(expand(token, variables))
        index += 1
    if command:
        errors.append(check_command(command, variables))
    return [error for error in errors if error]


def page_errors(page):
    variables, errors = {}, []
    for number, line in command_lines(page):
        for error in check_line(line, variables):
            errors.append(f"{page.relative_to(REPO)}:{number}: {error}\n    {line[:160]}")
    return errors


@pytest.fixture(autouse=True)
def in_repository(monkeypatch):
    # --user-dir fairseq_ot and the scripts' paths are relative to the repository
    monkeypatch.chdir(REPO)


@pytest.mark.parametrize("page", documentation_pages(), ids=lambda page: str(page.relative_to(REPO)))
def test_every_command_block_is_checked(page):
    errors = page_errors(page)
    assert not errors, "\n".join(errors)


def test_the_checks_catch_bad_commands(tmp_path):
    page = tmp_path / "page.md"
    page.write_text(
        "```bash\n"
        "fairseq-train DATA --user-dir fairseq_ot --task translation --arch transformer \\\n"
        "    --criterion ot_seq --ot-wieght 0.1\n"
        "fairseq-train DATA --task translation --arch transformer --criterion ot_seq\n"
        "python scripts/collect_results.py --no-such-flag runs\n"
        "python scripts/no_such_script.py\n"
        "python -m fairseq_ot.recipes translation no_such_criterion\n"
        "rm -rf runs\n"
        "```\n"
        "```console\n"
        "$ fairseq-generate DATA --user-dir fairseq_ot --path CKPT --beam five\n"
        "an output line\n"
        "```\n")
    variables, found = {}, []
    for number, line in command_lines(page):
        found.extend((number, error) for error in check_line(line, variables))
    assert [number for number, _ in found] == [2, 4, 5, 6, 7, 8, 11], found
    assert "--ot-wieght" in found[0][1]
    assert "without --user-dir" in found[1][1]
