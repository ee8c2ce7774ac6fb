"""The write-ahead journal: with ``spill_dir`` set, every event is on disk before it is sent.

The sender appends each encoded event it buffers to the journal's current
segment (``journal-<ms>-<random>.jsonl`` in ``spill_dir``, one event per
line) before any sender thread can take it; each write goes to the operating
system at once, so a process killed at any moment (``kill -9``, the OOM
killer, an evicted pod) loses only what it had not yet appended, and
``fsync`` every ``fsync_interval`` seconds bounds what a power loss can take.
Events are numbered as the sender buffers them; as they are accepted (or
given up on, counted) the journal records their lines in the segment's ledger
(:mod:`.spill`), and a segment whose every line is settled is deleted once
the journal moved on to the next one.

What this process cannot deliver stays in its segments (``keep``): at
``close()`` the segments are closed and their locks released, and the next
process with the same ``spill_dir`` (or ``posthog-logging replay``) sends
the lines the ledgers do not list, with their ``uuid`` unchanged, so PostHog
counts each event once.

Each segment is locked (``flock``) from before it gets its name until it is
deleted or the journal closes: the lock, not a pid, tells another process
that the segment is in use.  A forked child closes its copies of the parent's
descriptors (:func:`_forget_in_child`) and starts segments of its own.

Nothing here raises into the sender: a failed write (a full disk, a missing
directory) is reported once with the path, the event stays in memory, and the
journal tries again a second later.  A write the disk cut short is truncated
away, so a torn line never joins the next one.
"""

from __future__ import annotations

import bisect
import contextlib
import errno
import os
import secrets
import threading
import time
import weakref
from collections.abc import Callable
from pathlib import Path

from .encoding import EncodedEvent
from .losses import Kept
from .spill import (
    COMPLETE_SUFFIX,
    JOURNAL_PREFIX,
    LEDGER_SUFFIX,
    LedgerWriter,
    open_private,
    private_directory,
    runs,
    try_lock,
)

#: A segment is closed to new events once it holds this many bytes.
DEFAULT_SEGMENT_BYTES = 4 * 1024 * 1024
#: Seconds between ``fsync`` calls on the current segment (what a power loss may take).
DEFAULT_FSYNC_INTERVAL = 1.0
#: After a failed write, the journal waits this long before writing again.
WRITE_RETRY_SECONDS = 1.0


class Segment:
    """One journal file: its lines, which events they hold and which are settled."""

    def __init__(self, path: Path, descriptor: int) -> None:
        self.path = path
        self.descriptor: int | None = descriptor
        self.ledger = LedgerWriter(path.with_name(path.name + LEDGER_SUFFIX))
        self.size = 0
        self.lines = 0
        #: Sequence numbers of the numbered events written here, ascending, and their lines.
        self.numbers: list[int] = []
        self.line_of: list[int] = []
        #: Numbered events settled, and lines kept for a later process.
        self.settled = 0
        self.kept = 0

    def line(self, number: int) -> int | None:
        """The line of the event numbered ``number``, None when it is not here."""
        index = bisect.bisect_left(self.numbers, number)
        if index < len(self.numbers) and self.numbers[index] == number:
            return self.line_of[index]
        return None

    @property
    def done(self) -> bool:
        """Every line is settled: nothing here needs sending again."""
        return self.kept == 0 and self.settled == self.lines


class Journal:
    """Appends numbered events to segment files and releases them once settled."""

    def __init__(
        self,
        directory: str | os.PathLike[str],
        *,
        segment_bytes: int = DEFAULT_SEGMENT_BYTES,
        fsync_interval: float | None = DEFAULT_FSYNC_INTERVAL,
        report: Callable[[str], None] = lambda message: None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.directory = Path(directory)
        self.segment_bytes = segment_bytes
        self.fsync_interval = fsync_interval
        #: Where failures are reported (the sender routes them to its warnings).
        self.report = report
        self._clock = clock
        self._lock = threading.Lock()
        self._segments: list[Segment] = []
        self._current: Segment | None = None
        self._last_sync = clock()
        self._write_again_at = float("-inf")
        self._reported_errors: set[str] = set()
        #: Set when a write failed and none succeeded since: the journal may not hold
        #: everything buffered.
        self.failing = False
        self.closed = False
        _open_journals.add(self)

    def __repr__(self) -> str:
        return f"<Journal {self.directory}>"

    # ------------------------------------------------------------ the sender's calls
    def append(self, number: int, event: EncodedEvent) -> bool:
        """Write the event numbered ``number``; False when it could not be written."""
        with self._lock:
            return self._write(event, number)

    def settle(self, first: int, count: int) -> None:
        """The events numbered ``first`` to ``first + count - 1`` need not be sent again."""
        with self._lock:
            for segment, lines in self._lines(first, count):
                segment.settled += len(lines)
                for start, length in runs(sorted(lines)):
                    error = segment.ledger.append(start, length)
                    if error is not None:
                        self._report_once(error)
                if segment.done and segment is not self._current:
                    self._release(segment)

    def keep(self, first: int | None, events: list[EncodedEvent]) -> Kept:
        """Leave ``events`` (numbered from ``first``; None: never numbered) to a later
        process: written now if they were not, kept until the journal closes."""
        with self._lock:
            if self.closed:
                return Kept(0, f"the journal in {self.directory} is closed")
            kept = 0
            written = {} if first is None else self._written(first, len(events))
            for offset, event in enumerate(events):
                segment = written.get(offset)
                if segment is None:
                    if not self._write(event, None):
                        return Kept(kept, self._last_error)
                    segment = self._segments[-1]  # the newest segment is the one written
                segment.kept += 1
                kept += 1
            return Kept(kept)

    def close(self) -> int:
        """Close every segment: settled ones are deleted, the others left (and
        unlocked) for a later process.  Returns how many lines were left."""
        with self._lock:
            self.closed = True
            left = 0
            for segment in self._segments:
                if segment.done:
                    self._delete(segment)
                    continue
                left += segment.lines - segment.settled
                self._close_descriptor(segment, sync=True)
            self._segments.clear()
            self._current = None
            return left

    # -------------------------------------------------------------- inside
    _last_error = "the journal could not be written"

    def _write(self, event: EncodedEvent, number: int | None) -> bool:
        if self.closed or self._clock() < self._write_again_at:
            return False
        data = (event + "\n").encode("ascii")
        segment = self._current
        try:
            if segment is None:
                segment = self._current = self._open_segment()
            written = os.write(segment.descriptor or -1, data)
            if written != len(data):
                os.ftruncate(segment.descriptor or -1, segment.size)  # no torn line
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        except OSError as error:
            where = segment.path if segment is not None else self.directory
            self._last_error = f"cannot write the journal {where}: {error.strerror or error}"
            self._report_once(self._last_error)
            self._write_again_at = self._clock() + WRITE_RETRY_SECONDS
            self.failing = True
            return False
        self.failing = False
        if number is not None:
            segment.numbers.append(number)
            segment.line_of.append(segment.lines)
        segment.lines += 1
        segment.size += len(data)
        if segment.size >= self.segment_bytes:
            self._current = None  # the next event starts a new segment
        return True

    def _open_segment(self) -> Segment:
        """A new segment, locked before it gets the name others look for."""
        private_directory(self.directory)
        name = f"{JOURNAL_PREFIX}{int(time.time() * 1000)}-{secrets.token_hex(4)}"
        temporary = self.directory / f".{name}.new"
        descriptor = open_private(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND)
        try:
            try_lock(descriptor)
            path = self.directory / (name + COMPLETE_SUFFIX)
            os.rename(temporary, path)
        except OSError:
            os.close(descriptor)
            with contextlib.suppress(OSError):
                temporary.unlink()
            raise
        segment = Segment(path, descriptor)
        self._segments.append(segment)
        return segment

    def sync_now_and_then(self) -> None:
        """``fsync`` the current segment when ``fsync_interval`` passed since the last.

        Called by the sender once it released its lock, and outside the journal's:
        an ``fsync`` may take a while on a busy disk, and nothing waits for it.
        """
        with self._lock:
            segment, now = self._current, self._clock()
            if (
                self.fsync_interval is None
                or segment is None
                or segment.descriptor is None
                or now - self._last_sync < self.fsync_interval
            ):
                return
            self._last_sync = now
            try:
                descriptor = os.dup(segment.descriptor)  # it may be released meanwhile
            except OSError as error:
                self._report_once(f"cannot fsync the journal {segment.path}: {error.strerror}")
                return
        try:
            os.fsync(descriptor)
        except OSError as error:
            self._report_once(f"cannot fsync the journal {segment.path}: {error.strerror}")
        finally:
            os.close(descriptor)

    def _lines(self, first: int, count: int) -> list[tuple[Segment, list[int]]]:
        """The lines of the events numbered ``first`` onwards, by segment."""
        found: dict[int, tuple[Segment, list[int]]] = {}
        for offset, segment in self._written(first, count).items():
            line = segment.line(first + offset)
            if line is not None:
                found.setdefault(id(segment), (segment, []))[1].append(line)
        return list(found.values())

    def _written(self, first: int, count: int) -> dict[int, Segment]:
        """Offsets (from ``first``) of the events written, and their segments."""
        found: dict[int, Segment] = {}
        last = first + count - 1
        for segment in self._segments:
            numbers = segment.numbers
            if not numbers or numbers[-1] < first or numbers[0] > last:
                continue
            start = bisect.bisect_left(numbers, first)
            for number in numbers[start:]:
                if number > last:
                    break
                found[number - first] = segment
        return found

    def _release(self, segment: Segment) -> None:
        self._delete(segment)
        self._segments.remove(segment)

    def _delete(self, segment: Segment) -> None:
        """Unlink first, unlock after: nobody else may take a settled segment."""
        try:
            segment.path.unlink(missing_ok=True)
        except OSError as error:
            self._report_once(f"cannot delete the journal {segment.path}: {error.strerror}")
        segment.ledger.remove()
        self._close_descriptor(segment, sync=False)

    def _close_descriptor(self, segment: Segment, *, sync: bool) -> None:
        descriptor, segment.descriptor = segment.descriptor, None
        segment.ledger.close()
        if descriptor is None:
            return
        try:
            if sync:
                os.fsync(descriptor)
        except OSError as error:
            self._report_once(f"cannot fsync the journal {segment.path}: {error.strerror}")
        finally:
            with contextlib.suppress(OSError):  # closed all the same
                os.close(descriptor)

    def _report_once(self, message: str) -> None:
        if message not in self._reported_errors:
            self._reported_errors.add(message)
            self.report(message)

    def forget_in_child(self) -> None:
        """In a forked child: the segments (and their locks) are the parent's."""
        self._lock = threading.Lock()
        for segment in self._segments:
            descriptor, segment.descriptor = segment.descriptor, None
            segment.ledger.close()
            if descriptor is not None:
                os.close(descriptor)
        self._segments.clear()
        self._current = None
        self.closed = True


_open_journals: weakref.WeakSet[Journal] = weakref.WeakSet()


def _forget_in_child() -> None:
    """A forked child closes its copies of the parent's segments: a descriptor it
    kept would keep the parent's locks alive after the parent ended."""
    for journal in list(_open_journals):
        journal.forget_in_child()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_in_child)
