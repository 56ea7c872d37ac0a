"""UTF-8 line files, plain or gzip'd, read with errors that name the file and
the line (bad bytes, blank lines, lines with no token once tokenized), and
parallel files checked to have one line per line; building a folder of them
under a temporary name, renamed when complete."""

import codecs
import contextlib
import glob
import gzip
import os
import shutil
from pathlib import Path


class TextFileError(ValueError):
    """A corpus file is not usable: bad encoding, empty line, misalignment."""


def read_lines(path, allow_empty=False):
    """The lines of ``path`` (``.gz`` or plain) without their line ends.

    A UTF-8 byte-order mark at the start of the file (some Windows editors
    write one) is dropped: it would become part of the first token.
    Raises TextFileError naming the file and 1-based line number on bytes
    that are not UTF-8 and, unless ``allow_empty``, on a blank line (a blank
    source or target cannot be learned from and shifts nothing visibly)."""
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as handle:
            data = handle.read()
    except (OSError, EOFError) as error:
        raise TextFileError(f"{path}: cannot read: {error}") from error
    raw_lines = data.removeprefix(codecs.BOM_UTF8).split(b"\n")
    if raw_lines and raw_lines[-1] == b"":
        raw_lines.pop()  # the final line end
    lines = []
    for number, raw in enumerate(raw_lines, start=1):
        try:
            line = raw.decode("utf-8").rstrip("\r")
        except UnicodeDecodeError as error:
            raise TextFileError(
                f"{path}:{number}: not UTF-8 (byte {raw[error.start]:#04x} at column {error.start + 1})"
            ) from None
        if not allow_empty and not line.strip():
            raise TextFileError(f"{path}:{number}: empty line")
        lines.append(line)
    return lines


def tokenized_lines(path, lines, tokenize):
    """``tokenize(line)`` for each of ``lines``, the lines of ``path`` in
    order (as read_lines returns them).

    Raises TextFileError naming the file and 1-based line number of a line
    left without a token: a line of control characters passes read_lines'
    blank-line check, but Moses deletes them, and fairseq would pair an
    EOS-only sentence with its counterpart. BPE splits tokens and never
    removes one, so this check after tokenization holds after BPE too."""
    out = []
    for number, line in enumerate(lines, start=1):
        tokens = tokenize(line)
        if not tokens.split():
            raise TextFileError(f"{path}:{number}: no token left after tokenization: {line[:80]!r}")
        out.append(tokens)
    return out


def read_aligned(paths, allow_empty=False):
    """The lines of several files that must correspond line by line, as a list
    per file; TextFileError when their line counts differ."""
    texts = [read_lines(path, allow_empty=allow_empty) for path in paths]
    counts = [len(text) for text in texts]
    if len(set(counts)) > 1:
        shortest = min(range(len(paths)), key=counts.__getitem__)
        longest = max(range(len(paths)), key=counts.__getitem__)
        raise TextFileError(
            f"misaligned files: {paths[longest]} has {counts[longest]} lines but "
            f"{paths[shortest]} has {counts[shortest]}; "
            f"{paths[longest]}:{counts[shortest] + 1} has no counterpart"
        )
    return texts


def find_raw_file(folder, name, required=True):
    """``folder/name.gz`` or ``folder/name``, whichever exists; if neither,
    TextFileError, or None when not ``required``."""
    for candidate in (Path(folder) / f"{name}.gz", Path(folder) / name):
        if candidate.is_file():
            return candidate
    if required:
        raise TextFileError(f"{Path(folder) / name}[.gz]: no such file")
    return None


def write_lines(path, lines):
    """``lines`` (without line ends) to ``path`` as UTF-8, its folder made if needed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")


@contextlib.contextmanager
def folder_built_in_place_of(out_dir):
    """A fresh work folder beside ``out_dir`` (made with the umask's
    permissions) that replaces ``out_dir`` when the block completes and is
    removed when it fails: readers never see a half-built folder. The work
    folders of earlier builds of ``out_dir`` whose process has ended (killed
    before it could remove its own) are removed first."""
    out_dir = Path(out_dir)
    partial = f".{out_dir.name}.partial-"
    for stale in out_dir.parent.glob(glob.escape(partial) + "*"):
        pid = stale.name[len(partial):]
        # a folder of a run still going (another process building the same
        # output) is left to it
        if pid.isdigit() and not _is_running(int(pid)):
            shutil.rmtree(stale, ignore_errors=True)
    work = out_dir.parent / f"{partial}{os.getpid()}"
    old = out_dir.parent / f".{out_dir.name}.old-{os.getpid()}"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    try:
        yield work
        if out_dir.exists():
            os.replace(out_dir, old)
        os.replace(work, out_dir)
    finally:
        shutil.rmtree(work, ignore_errors=True)
        shutil.rmtree(old, ignore_errors=True)


def _is_running(pid):
    """Whether process ``pid`` exists (a pid reused since errs on the side of
    keeping a folder)."""
    try:
        os.kill(pid, 0)  # signal 0: checks the process, sends nothing
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's process
    return True
