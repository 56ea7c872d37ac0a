"""Lines of a text file (gzip'd when named .gz) with one-line errors naming
the file and line of bad input."""

import gzip
from pathlib import Path


class BadLineError(ValueError):
    pass


def read_lines(path, allow_empty=False):
    """The lines of ``path`` without their line ends; every line must be
    UTF-8 and, unless ``allow_empty``, hold more than white space."""
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as raw:
        data = raw.read()
    lines = data.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    decoded = []
    for number, line in enumerate(lines, 1):
        try:
            text = line.decode("utf-8").rstrip("\r")
        except UnicodeDecodeError as error:
            raise BadLineError(f"{path}:{number}: not UTF-8 ({error.reason} at byte "
                               f"{error.start} of the line)") from None
        if not allow_empty and not text.strip():
            raise BadLineError(f"{path}:{number}: empty line")
        decoded.append(text)
    return decoded
