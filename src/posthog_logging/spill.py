"""Spill files: where undeliverable events wait for ``posthog-logging replay``.

Format: JSON lines, one already-mapped PostHog event per line, exactly as it
would have gone on the wire (``event``, ``distinct_id``, ``properties``,
``timestamp``, ``uuid``).  Keeping the mapped event (not the span record)
means replay needs no trace state and re-sends the same ``uuid``, which
PostHog de-duplicates on.  ``replay`` also reads ``SpanJsonFormatter`` lines
(span/feedback records) and maps them first.

Concurrency: each process appends to a file of its own named
``spill-<pid>-<start>-<random>.jsonl.part`` and renames it to ``.jsonl`` when
it closes it (atomic on POSIX), so a reader never sees half a file.  A
``.part`` file whose process is gone is complete as far as it goes and is
replayed too.  Replay records its progress beside each file
(``<file>.sent``, replaced atomically after every delivered batch) and holds
an exclusive lock on the file while it works, so an interrupted replay
resumes where it stopped and two replays never send the same file.
"""

from __future__ import annotations

import os
import secrets
import time
from collections.abc import Iterable
from pathlib import Path
from typing import IO

from .transport import EncodedEvent

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: replay runs without the lock
    fcntl = None  # type: ignore[assignment]

COMPLETE_SUFFIX = ".jsonl"
PARTIAL_SUFFIX = ".jsonl.part"
PROGRESS_SUFFIX = ".sent"
DEFAULT_MAX_FILE_BYTES = 32 * 1024 * 1024


class SpillWriter:
    """Appends encoded events to this process's spill file.

    Opened lazily (most processes never spill), reopened after ``os.fork()``
    so a child never writes into its parent's file, and completed (renamed)
    on :meth:`close` or when it grows past ``max_file_bytes``.
    """

    def __init__(
        self, directory: str | os.PathLike[str], max_file_bytes: int = DEFAULT_MAX_FILE_BYTES
    ) -> None:
        self.directory = Path(directory)
        self.max_file_bytes = max_file_bytes
        self._file: IO[str] | None = None
        self._path: Path | None = None
        self._pid = os.getpid()
        self._written = 0

    def write(self, events: Iterable[EncodedEvent]) -> int:
        """Append events, one per line; returns how many were written."""
        if self._pid != os.getpid():  # forked: the open file is the parent's
            self._file, self._path, self._pid = None, None, os.getpid()
        handle = self._file or self._open()
        count = 0
        for event in events:
            handle.write(event)
            handle.write("\n")
            self._written += len(event) + 1
            count += 1
        handle.flush()
        if self._written >= self.max_file_bytes:
            self.close()
        return count

    def close(self) -> None:
        """Finish the current file: flush, fsync, rename ``.part`` to ``.jsonl``."""
        handle, path = self._file, self._path
        self._file, self._path, self._written = None, None, 0
        if handle is None or path is None or self._pid != os.getpid():
            return
        handle.flush()
        os.fsync(handle.fileno())
        handle.close()
        os.replace(path, path.with_name(path.name[: -len(".part")]))

    def _open(self) -> IO[str]:
        self.directory.mkdir(parents=True, exist_ok=True)
        name = f"spill-{os.getpid()}-{int(time.time() * 1000)}-{secrets.token_hex(4)}"
        self._path = self.directory / (name + PARTIAL_SUFFIX)
        self._file = open(self._path, "x", encoding="ascii")  # noqa: SIM115 - kept open across writes
        return self._file


def spill_files(paths: Iterable[str | os.PathLike[str]]) -> list[Path]:
    """The files replay should read: given files, and the complete or orphaned spill
    files of given directories, oldest first."""
    found: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            candidates = sorted(path.glob("*" + COMPLETE_SUFFIX)) + [
                part for part in sorted(path.glob("*" + PARTIAL_SUFFIX)) if _orphaned(part)
            ]
            found.extend(sorted(candidates, key=lambda p: p.stat().st_mtime))
        else:
            found.append(path)
    return found


def _orphaned(part: Path) -> bool:
    """A ``.part`` file whose writing process no longer exists."""
    try:
        pid = int(part.name.split("-")[1])
        os.kill(pid, 0)
    except (IndexError, ValueError, ProcessLookupError):
        return True
    except PermissionError:
        return False  # alive, someone else's
    return False


def try_lock(handle: IO[str]) -> bool:
    """Lock a spill file for this replay alone; False when another replay holds it."""
    if fcntl is None:
        return True
    try:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def read_progress(progress: Path) -> int:
    """Lines of a spill file already delivered (0 when no progress note)."""
    try:
        return int(progress.read_text().strip() or 0)
    except (FileNotFoundError, ValueError):
        return 0


def write_progress(progress: Path, done: int) -> None:
    """Record delivered lines atomically."""
    temporary = progress.with_name(progress.name + ".tmp")
    temporary.write_text(str(done))
    os.replace(temporary, progress)
