"""Lines read continuously from a pipe or a growing file, until EOF or a stop signal.

``posthog-logging send`` reads JSON lines as a log shipper hands them over
(a pipe from Vector, ``kcat``, Fluent Bit) or as an application appends them
to a file (``tail -F`` semantics: a rotated or truncated file is followed to
its successor).  Reading never blocks a stop: SIGTERM and SIGINT only set a
flag, and the signal wakes the wait through a self-pipe
(``signal.set_wakeup_fd``), so a line already read is handed on before the
reader returns and nothing after it is read.

POSIX only (``select`` on pipes).
"""

from __future__ import annotations

import contextlib
import io
import os
import select
import signal
from collections.abc import Iterator
from dataclasses import dataclass
from types import FrameType
from typing import Any

#: Longest line kept; a longer one is skipped up to its newline and reported.
MAX_LINE_BYTES = 64 * 1024 * 1024
#: How often a followed file is checked for growth, rotation and truncation.
FOLLOW_POLL_SECONDS = 0.2
#: At a stop signal, at most this much of what is already in the pipe is still read.
STOP_DRAIN_BYTES = 16 * 1024 * 1024
_CHUNK = 1 << 16


class TooLong:
    """Marks a line that was skipped because it exceeded :data:`MAX_LINE_BYTES`."""


#: A complete line (without its newline), or :data:`TOO_LONG`.
TOO_LONG = TooLong()


class StopSignals:
    """SIGTERM and SIGINT as a flag plus a wake-up, for as long as it is installed."""

    SIGNALS = (signal.SIGTERM, signal.SIGINT)

    def __init__(self) -> None:
        self.stopped = False
        self._wake_read, self._wake_write = os.pipe()
        os.set_blocking(self._wake_read, False)
        os.set_blocking(self._wake_write, False)
        self._previous: dict[int, Any] = {}
        self._previous_wakeup = -1

    def __enter__(self) -> StopSignals:
        for signum in self.SIGNALS:
            self._previous[signum] = signal.signal(signum, self._on_signal)
        self._previous_wakeup = signal.set_wakeup_fd(self._wake_write, warn_on_full_buffer=False)
        return self

    def __exit__(self, *exc_info: object) -> None:
        signal.set_wakeup_fd(self._previous_wakeup)
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        os.close(self._wake_read)
        os.close(self._wake_write)

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        self.stopped = True

    def wait(self, fd: int | None, timeout: float | None) -> bool:
        """Wait until ``fd`` is readable (True), a signal arrives or ``timeout`` passes."""
        watched = [self._wake_read] if fd is None else [fd, self._wake_read]
        readable, _, _ = select.select(watched, [], [], timeout)
        if self._wake_read in readable:
            with contextlib.suppress(BlockingIOError):
                os.read(self._wake_read, 512)
        return fd is not None and fd in readable


class _Splitter:
    """Bytes in, complete lines out; over-long lines skipped and marked."""

    def __init__(self) -> None:
        self._pending = bytearray()
        self._skipping = False
        #: Bytes of complete lines (newlines included) handed on or skipped so far.
        self.consumed = 0

    def feed(self, chunk: bytes) -> Iterator[bytes | TooLong]:
        self._pending += chunk
        while True:
            newline = self._pending.find(b"\n")
            if newline < 0:
                break
            line = bytes(self._pending[:newline])
            del self._pending[: newline + 1]
            self.consumed += newline + 1
            if self._skipping:
                self._skipping = False
            else:
                yield line
        if len(self._pending) > MAX_LINE_BYTES:
            if not self._skipping:
                yield TOO_LONG
            self._skipping = True
            self.consumed += len(self._pending)
            self._pending.clear()

    def rest(self) -> Iterator[bytes]:
        """The last line when the input ends without a newline."""
        if self._pending and not self._skipping:
            yield bytes(self._pending)
        self.discard()

    def discard(self) -> None:
        self._pending.clear()
        self._skipping = False
        self.consumed = 0


def pipe_lines(fd: int, stop: StopSignals) -> Iterator[bytes | TooLong]:
    """Lines from a pipe or terminal (stdin) until EOF or a stop signal.

    At a stop signal, what the producer already wrote into the pipe is read too
    (without waiting for more, and at most :data:`STOP_DRAIN_BYTES`): those lines
    were handed over, and the shipper will not send them again.
    """
    splitter = _Splitter()
    while not stop.stopped:
        if not stop.wait(fd, None):
            continue
        chunk = os.read(fd, _CHUNK)
        if not chunk:
            break
        yield from splitter.feed(chunk)
    else:
        yield from _drain(fd, splitter)
    yield from splitter.rest()


def _drain(fd: int, splitter: _Splitter) -> Iterator[bytes | TooLong]:
    """What a pipe holds now, without blocking, up to :data:`STOP_DRAIN_BYTES`."""
    was_blocking = os.get_blocking(fd)
    os.set_blocking(fd, False)
    try:
        drained = 0
        while drained < STOP_DRAIN_BYTES:
            try:
                chunk = os.read(fd, _CHUNK)
            except BlockingIOError:
                return
            if not chunk:
                return
            drained += len(chunk)
            yield from splitter.feed(chunk)
    finally:
        os.set_blocking(fd, was_blocking)


@dataclass
class FilePosition:
    """Where the next unread line of a followed file starts: the file (device and
    inode, so a rotated file is not taken for its successor) and the byte offset.
    What ``send --state`` keeps between runs, as Fluent Bit's offset database does."""

    device: int = 0
    inode: int = 0
    offset: int = 0


def follow_lines(
    path: str,
    stop: StopSignals,
    poll: float = FOLLOW_POLL_SECONDS,
    position: FilePosition | None = None,
) -> Iterator[bytes | TooLong]:
    """Lines of a growing file from its start, like ``tail -F``, until a stop signal.

    The file may not exist yet.  When it is replaced (rotation: a new inode at
    ``path``), the old one is read to its end first; while ``path`` is missing
    (renamed away, its successor not created yet) the old one is still read, as
    its writer may not have reopened yet.  When it shrinks (truncation), reading
    starts again from its beginning.

    With ``position``, reading starts there when it names the file found at
    ``path``, and ``position`` follows each line handed on.
    """
    position = position or FilePosition()
    splitter = _Splitter()
    handle: io.FileIO | None = None
    start = 0  # the offset the splitter started at in this file

    def fed(chunk: bytes) -> Iterator[bytes | TooLong]:
        for line in splitter.feed(chunk):
            position.offset = start + splitter.consumed
            yield line

    try:
        while not stop.stopped:
            if handle is None:
                handle = _open(path)
                if handle is None:
                    stop.wait(None, poll)
                    continue
                start = _resume(handle, position)
            chunk = handle.read(_CHUNK)
            if chunk:
                yield from fed(chunk)
                continue
            current = os.fstat(handle.fileno())
            try:
                named = os.stat(path)
            except FileNotFoundError:
                named = None
            if named is not None and (
                named.st_ino != current.st_ino or named.st_dev != current.st_dev
            ):
                # Rotated: what was written to the old file until now, then the new one.
                while chunk := handle.read(_CHUNK):
                    yield from fed(chunk)
                yield from splitter.rest()
                handle.close()
                handle = None
                continue
            if named is None:
                stop.wait(None, poll)  # renamed away: its successor is not there yet
                continue
            if named.st_size < handle.tell():
                splitter.discard()  # a line cut by truncation is not a line
                handle.seek(0)
                start = position.offset = 0
                continue
            stop.wait(None, poll)
        yield from splitter.rest()
    finally:
        if handle is not None:
            handle.close()


def _resume(handle: io.FileIO, position: FilePosition) -> int:
    """Seek ``handle`` to ``position`` when that names this file; returns the offset
    reading starts at, and makes ``position`` name this file."""
    found = os.fstat(handle.fileno())
    same = (found.st_dev, found.st_ino) == (position.device, position.inode)
    offset = position.offset if same and position.offset <= found.st_size else 0
    handle.seek(offset)
    position.device, position.inode, position.offset = found.st_dev, found.st_ino, offset
    return offset


def _open(path: str) -> io.FileIO | None:
    try:
        return io.FileIO(path, "rb")
    except FileNotFoundError:
        return None
