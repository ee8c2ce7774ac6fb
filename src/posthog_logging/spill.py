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

import contextlib
import json
import os
import secrets
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from .transport import EncodedEvent, PostResult, RetryPolicy, Transport

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


# ------------------------------------------------------------------ replay


@dataclass
class FileReport:
    """What replay did with one file."""

    path: Path
    delivered: int = 0
    already_sent: int = 0
    malformed: int = 0
    error: str | None = None
    skipped: str | None = None


@dataclass
class ReplayReport:
    files: list[FileReport] = field(default_factory=list)

    @property
    def delivered(self) -> int:
        return sum(report.delivered for report in self.files)

    @property
    def failed(self) -> bool:
        return any(report.error for report in self.files)


#: Turns one parsed line that is a span/feedback record into events (None: not a record).
RecordMapper = Callable[[dict[str, Any]], list[dict[str, Any]] | None]


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


class Replayer:
    """Sends spill (and ``SpanJsonFormatter``) files once each, resumably."""

    def __init__(
        self,
        transport: Transport,
        map_record: RecordMapper,
        *,
        batch_size: int = 100,
        retry: RetryPolicy | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.transport = transport
        self.map_record = map_record
        self.batch_size = batch_size
        self.retry = retry or RetryPolicy()
        self.sleep = sleep

    def replay(self, paths: Iterable[str | os.PathLike[str]]) -> ReplayReport:
        report = ReplayReport()
        for path in spill_files(paths):
            report.files.append(self.replay_file(path))
        return report

    def replay_file(self, path: Path) -> FileReport:
        report = FileReport(path)
        try:
            with open(path, encoding="utf-8", errors="replace") as handle:
                if not _try_lock(handle):
                    report.skipped = "another replay holds it"
                    return report
                self._send_file(handle, path, report)
        except FileNotFoundError:
            report.skipped = "gone (replayed by another process)"
        except OSError as error:
            report.error = f"{type(error).__name__}: {error}"
        return report

    def _send_file(self, handle: IO[str], path: Path, report: FileReport) -> None:
        progress = path.with_name(path.name + PROGRESS_SUFFIX)
        done = _read_progress(progress)
        report.already_sent = done
        lines = iter(handle)
        for _ in range(done):
            next(lines, None)
        batch: list[EncodedEvent] = []
        batch_lines = 0
        for line in lines:
            batch_lines += 1
            events = self._events(line, report)
            batch.extend(events)
            if len(batch) >= self.batch_size:
                if not self._deliver(batch, report):
                    return
                done += batch_lines
                _write_progress(progress, done)
                batch, batch_lines = [], 0
        if batch and not self._deliver(batch, report):
            return
        # Everything is out: the file and its progress note go.
        path.unlink()
        with contextlib.suppress(FileNotFoundError):
            progress.unlink()

    def _events(self, line: str, report: FileReport) -> list[EncodedEvent]:
        line = line.strip()
        if not line:
            return []
        try:
            parsed = json.loads(line)
        except ValueError:
            report.malformed += 1
            return []
        if not isinstance(parsed, dict):
            report.malformed += 1
            return []
        if "event" in parsed and "properties" in parsed:
            return [json.dumps(parsed, separators=(",", ":"))]
        mapped = self.map_record(parsed)
        if mapped is None:
            report.malformed += 1
            return []
        return [json.dumps(event, separators=(",", ":"), default=str) for event in mapped]

    def _deliver(self, batch: list[EncodedEvent], report: FileReport) -> bool:
        failures = 0
        while True:
            result: PostResult = self.transport.post(batch)
            if result.ok:
                report.delivered += len(batch)
                return True
            failures += 1
            if not result.retryable or failures >= self.retry.max_attempts:
                report.error = result.describe()
                return False
            self.sleep(self.retry.delay(failures, result.retry_after))


def _try_lock(handle: IO[str]) -> bool:
    if fcntl is None:
        return True
    try:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def _read_progress(progress: Path) -> int:
    try:
        return int(progress.read_text().strip() or 0)
    except (FileNotFoundError, ValueError):
        return 0


def _write_progress(progress: Path, done: int) -> None:
    temporary = progress.with_name(progress.name + ".tmp")
    temporary.write_text(str(done))
    os.replace(temporary, progress)
