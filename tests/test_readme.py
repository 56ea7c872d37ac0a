"""CI must run exactly the commands the README gives its users."""

from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def ci_commands():
    lines = (REPO / ".ci" / "run").read_text().splitlines()
    return [after for before, after in zip(lines, lines[1:]) if before.startswith("# README command")]


def test_ci_runs_the_readme_commands_verbatim():
    readme = (REPO / "README.md").read_text()
    commands = ci_commands()
    assert len(commands) == 2
    for command in commands:
        assert command in readme, command
    assert "--no-build-isolation" in commands[0]
