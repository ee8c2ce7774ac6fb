"""Files in the spill directory: names, private modes, locks and delivery ledgers.

Format: JSON lines, one already-mapped PostHog event per line, exactly as it
goes on the wire (``event``, ``distinct_id``, ``properties``, ``timestamp``,
``uuid``).  Keeping the mapped event (not the span record) means a later
process needs no trace state and re-sends the same ``uuid``, which PostHog
de-duplicates on.

The library writes two kinds of file there, and ``replay`` and the journal's
resume treat only these as their own (they may delete them once delivered):

* ``journal-<ms>-<random>.jsonl``: the write-ahead journal's segments
  (:mod:`.journal`);
* ``spill-<pid>-<ms>-<random>.jsonl`` (and ``.jsonl.part``): spill files of
  earlier versions.

Ownership is an advisory lock (``flock``) on the open file: the process that
writes a segment holds it until the segment is released or the process ends
(the kernel drops the lock of a killed process), and whoever sends a file
(replay, resume) holds it while it does.  A file whose lock nobody holds is
free to send, whatever pid its name carries: a restarted container is PID 1
again.

Each file's delivered lines are kept in a *ledger* beside it
(``<file>.sent``): lines of ``"<first line> <count>"``, appended as batches
are accepted (a ledger of earlier versions holds one number: that many lines
from the start).  Files that are not the library's own (a
``SpanJsonFormatter`` log replayed by hand) are never changed, and their
ledger lives in the user's state directory instead.

Everything here is created private: directories ``0700``, files ``0600``
(the events hold prompts and responses).
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
from collections.abc import Iterable
from pathlib import Path

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: files are sent without the lock
    fcntl = None  # type: ignore[assignment]

JOURNAL_PREFIX = "journal-"
SPILL_PREFIX = "spill-"
COMPLETE_SUFFIX = ".jsonl"
PARTIAL_SUFFIX = ".jsonl.part"
LEDGER_SUFFIX = ".sent"
#: A ledger's first line (an earlier version's progress note is one bare number).
LEDGER_HEADER = b"# posthog-logging ledger: first line, line count\n"
PRIVATE_FILE_MODE = 0o600
PRIVATE_DIRECTORY_MODE = 0o700


def private_directory(directory: Path) -> None:
    """Create ``directory`` (and its parents) readable by this user only, if missing."""
    if not directory.is_dir():
        directory.mkdir(mode=PRIVATE_DIRECTORY_MODE, parents=True, exist_ok=True)


def open_private(path: Path, flags: int) -> int:
    """``os.open`` a file created ``0600`` whatever the umask; returns the descriptor."""
    return os.open(path, flags | os.O_CLOEXEC, PRIVATE_FILE_MODE)


def write_private_atomically(path: Path, text: str) -> None:
    """Replace ``path`` with ``text`` at once (a reader never sees half), ``0600``."""
    private_directory(path.parent)
    temporary = path.with_name(path.name + ".tmp")
    descriptor = open_private(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    try:
        data = text.encode()
        while data:
            data = data[os.write(descriptor, data) :]
    finally:
        os.close(descriptor)
    os.replace(temporary, path)


def try_lock(descriptor: int) -> bool:
    """Take a file's lock for this open file alone; False when someone else holds it."""
    if fcntl is None:
        return True
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def is_own_file(path: Path) -> bool:
    """Whether ``path`` is a journal segment or spill file the library wrote."""
    name = path.name
    return name.startswith((JOURNAL_PREFIX, SPILL_PREFIX)) and name.endswith(
        (COMPLETE_SUFFIX, PARTIAL_SUFFIX)
    )


def own_files(directory: Path) -> list[Path]:
    """The journal segments and spill files in ``directory``, oldest first."""
    found = []
    for path in directory.iterdir():
        if is_own_file(path):
            with contextlib.suppress(FileNotFoundError):
                found.append((path.stat().st_mtime, path.name, path))
    return [path for _, _, path in sorted(found)]


def ledger_path(path: Path, state_directory: Path) -> Path:
    """Where the delivered lines of ``path`` are recorded: beside it for the
    library's own files, else in ``state_directory`` (named after the file's path
    and inode, so a new file under the same name starts afresh)."""
    if is_own_file(path):
        return path.with_name(path.name + LEDGER_SUFFIX)
    resolved = str(path.resolve())
    digest = hashlib.sha256(resolved.encode()).hexdigest()[:24]
    return state_directory / f"{path.name}-{digest}-{path.stat().st_ino}{LEDGER_SUFFIX}"


def default_state_directory() -> Path:
    """``$XDG_STATE_HOME/posthog-logging`` (``~/.local/state`` by default)."""
    base = os.environ.get("XDG_STATE_HOME") or os.path.join("~", ".local", "state")
    return Path(os.path.expanduser(base)) / "posthog-logging"


class SettledLines:
    """Line numbers of a file that need not be sent again, as merged ranges."""

    def __init__(self, ranges: Iterable[tuple[int, int]] = ()) -> None:
        self._ranges: list[tuple[int, int]] = []  # (start, end), sorted, disjoint
        for start, count in ranges:
            self.add(start, count)

    def add(self, start: int, count: int) -> None:
        if count <= 0:
            return
        end = start + count
        merged = []
        for low, high in self._ranges:
            if high < start or low > end:
                merged.append((low, high))
            else:
                start, end = min(start, low), max(end, high)
        merged.append((start, end))
        self._ranges = sorted(merged)

    def __contains__(self, line: object) -> bool:
        return isinstance(line, int) and any(low <= line < high for low, high in self._ranges)

    def __len__(self) -> int:
        return sum(high - low for low, high in self._ranges)


def read_ledger(path: Path) -> SettledLines:
    """The lines a ledger records as settled; none when it is missing.  A line
    torn by a crash or a full disk is ignored (its batch is sent again)."""
    try:
        text = path.read_text(encoding="ascii", errors="replace")
    except FileNotFoundError:
        return SettledLines()
    if text.strip().isdigit():
        return SettledLines([(0, int(text))])  # an earlier version's progress note
    if not text.startswith(LEDGER_HEADER.decode()):
        return SettledLines()  # torn in its first write
    ranges = []
    for line in text.split("\n")[:-1]:  # the part after the last newline may be torn
        fields = line.split()
        if len(fields) == 2 and all(field.isdigit() for field in fields):
            ranges.append((int(fields[0]), int(fields[1])))
    return SettledLines(ranges)


def runs(lines: list[int]) -> list[tuple[int, int]]:
    """Ascending line numbers as ``(start, count)`` runs: the ledger's entries."""
    found: list[tuple[int, int]] = []
    for line in lines:
        if found and found[-1][0] + found[-1][1] == line:
            found[-1] = (found[-1][0], found[-1][1] + 1)
        else:
            found.append((line, 1))
    return found


def ledger_entry(start: int, count: int, *, first: bool = False) -> bytes:
    """One ledger line: ``count`` lines from ``start`` were settled."""
    entry = f"{start} {count}\n".encode()
    return LEDGER_HEADER + entry if first else entry


class LedgerWriter:
    """Appends settled line ranges to one file's ledger (opened on first use).

    A failed write is returned as a message naming the path, never raised: the
    caller keeps the lines in memory and goes on (a line not recorded is sent
    again by a later process, and PostHog counts it once by its ``uuid``).
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._descriptor: int | None = None

    def append(self, start: int, count: int) -> str | None:
        try:
            if self._descriptor is None:
                private_directory(self.path.parent)
                self._descriptor = open_private(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
            size = os.fstat(self._descriptor).st_size
            entry = ledger_entry(start, count, first=size == 0)
            if os.write(self._descriptor, entry) != len(entry):
                os.ftruncate(self._descriptor, size)  # a torn entry must not join the next
                raise OSError(errno.ENOSPC, "No space left on device")
        except OSError as error:
            return f"cannot record delivered lines in {self.path}: {error.strerror or error}"
        return None

    def close(self) -> None:
        descriptor, self._descriptor = self._descriptor, None
        if descriptor is not None:
            with contextlib.suppress(OSError):
                os.close(descriptor)

    def remove(self) -> None:
        self.close()
        with contextlib.suppress(OSError):  # a ledger left behind only lists settled lines
            self.path.unlink()
