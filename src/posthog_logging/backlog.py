"""Sending a file of events once: what ``replay`` and the journal's resume share.

:class:`FileSender` takes a file's lock (a file in use by a running handler,
``send`` or another replay is left alone), reads the file's ledger (the lines
already delivered, :mod:`.spill`), and sends the other lines in order, one
batch at a time through an :class:`~.exporter.Exporter`, retrying as the
:class:`~.congestion.RetryPolicy` says; after each accepted batch its lines go
into the ledger.  A ledger write that fails is reported with the path and the
lines are kept in memory, so a full disk neither stops the file nor sends a
batch twice within a run.

A file the library wrote (a journal segment or spill file, :func:`.spill.is_own_file`)
is deleted with its ledger once every line in it is settled; any other file
(a ``SpanJsonFormatter`` log) is never changed, and its ledger lives in the
state directory.  A last line without its newline was cut short (by a kill or
a full disk): it is skipped and counted as torn, never sent.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from .congestion import RetryPolicy
from .encoding import EncodedEvent
from .exporter import Exporter, deliver
from .records import BadLine, json_object
from .spill import LedgerWriter, is_own_file, ledger_path, read_ledger, runs, try_lock
from .stats import Stats

#: Lines of a file sent per request (and per ledger entry).
BATCH_LINES = 100

#: The events one line stands for; None when it is malformed.
LineEvents = Callable[[str], "list[EncodedEvent] | None"]


@dataclass
class FileReport:
    """What was done with one file."""

    path: Path
    delivered: int = 0
    already_sent: int = 0
    malformed: int = 0
    torn: int = 0
    error: str | None = None
    skipped: str | None = None
    #: Ledger writes that failed (the path named); the lines were kept in memory.
    ledger_error: str | None = None

    def describe(self) -> str:
        status = self.error or self.skipped or "done"
        torn = ", a torn last line skipped" if self.torn else ""
        ledger = f"; {self.ledger_error}" if self.ledger_error else ""
        return (
            f"{self.path}: {self.delivered} sent, {self.already_sent} lines sent before, "
            f"{self.malformed} malformed lines skipped{torn} ({status}){ledger}"
        )


def own_line_events(line: str) -> list[EncodedEvent] | None:
    """A line of the library's own files: an encoded event, sent as it is."""
    try:
        parsed = json_object(line)
    except BadLine:
        return None
    if "event" in parsed and "properties" in parsed:
        return [line]
    return None


class FileSender:
    """Sends the unsettled lines of one file, batch by batch, recording each."""

    def __init__(
        self,
        exporter: Exporter,
        retry: RetryPolicy,
        stats: Stats,
        state_directory: Path,
        *,
        batch_lines: int = BATCH_LINES,
        sleep: Callable[[float], None] = time.sleep,
        events_per_second: float | None = None,
        stopping: Callable[[], bool] = lambda: False,
    ) -> None:
        self.exporter = exporter
        self.retry = retry
        self.stats = stats
        self.state_directory = state_directory
        self.batch_lines = batch_lines
        self.sleep = sleep
        #: At most this many events a second (the journal's resume); None: as fast as accepted.
        self.events_per_second = events_per_second
        self.stopping = stopping

    def send(self, path: Path, line_events: LineEvents) -> FileReport:
        """Send ``path`` once (see the module's docstring); never raises."""
        report = FileReport(path)
        try:
            with open(path, "rb") as handle:
                if not try_lock(handle.fileno()):
                    report.skipped = "in use by another process (a handler, send or replay)"
                    return report
                self._send_lines(handle, path, line_events, report)
        except FileNotFoundError:
            report.skipped = "gone (sent by another process)"
        except OSError as error:
            report.error = f"{path}: {error.strerror or error}"
        return report

    def _send_lines(
        self, handle: BinaryIO, path: Path, line_events: LineEvents, report: FileReport
    ) -> None:
        ledger_file = ledger_path(path, self.state_directory)
        settled = read_ledger(ledger_file)
        report.already_sent = len(settled)
        ledger = LedgerWriter(ledger_file)
        try:
            batch: list[EncodedEvent] = []
            lines: list[int] = []
            for number, line in _numbered_lines(handle, report):
                if number in settled:
                    continue
                events = line_events(line) if line else []  # blank lines separate
                if events is None:
                    report.malformed += 1
                else:
                    batch.extend(events)
                lines.append(number)  # settled with its batch: never read again
                if len(lines) >= self.batch_lines:
                    if not self._send_batch(batch, lines, ledger, report):
                        return
                    batch, lines = [], []
            if lines and not self._send_batch(batch, lines, ledger, report):
                return
        finally:
            ledger.close()
        if is_own_file(path):
            # Every line is out: the file and its ledger go.
            path.unlink()
            with contextlib.suppress(FileNotFoundError):
                ledger_file.unlink()

    def _send_batch(
        self,
        batch: list[EncodedEvent],
        lines: list[int],
        ledger: LedgerWriter,
        report: FileReport,
    ) -> bool:
        """Deliver one batch and record its lines; False when the file stops here."""
        if self.stopping():
            report.skipped = "stopped before the end (the rest is sent next time)"
            return False
        if batch:
            outcome = deliver(self.exporter, batch, self.retry, self.stats, self.sleep)
            report.delivered += outcome.delivered
            if outcome.failure is not None:
                report.error = outcome.failure.describe()
                return False
        for start, count in runs(lines):
            error = ledger.append(start, count)
            if error is not None and report.ledger_error is None:
                report.ledger_error = error
        if self.events_per_second and batch:
            self.sleep(len(batch) / self.events_per_second)
        return True


def _numbered_lines(handle: BinaryIO, report: FileReport) -> Iterator[tuple[int, str]]:
    """Each complete line with its number from 0; a last line without its newline is torn."""
    for number, raw in enumerate(handle):
        if not raw.endswith(b"\n"):
            report.torn += 1
            return
        yield number, raw.decode("utf-8", "replace").strip()
