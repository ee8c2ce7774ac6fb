"""``posthog-logging replay``: spill files (and ``SpanJsonFormatter`` files) to PostHog.

Replay takes the listener's own path: span, feedback and PostHog-event records go through
the same :class:`~.pipeline.EventEncoder` (``span_event`` checked the same
way, oversize events shrunk the same way) and already-mapped spill lines are
re-encoded by it too; batches go out through the
:class:`~.sender.Poster` the sender's threads post with (413 halving), retried
as the same :class:`~.transport.RetryPolicy` says (which failures, backoff,
``Retry-After``), one request at a time on this thread, so that progress can be
recorded after each delivered batch (the file format and its progress notes:
``spill``).

Spilled events were sampled, masked and passed to ``before_send`` before they
were spilled, so they are sent as they are; span and feedback records meet the
``outgoing`` step (:mod:`.redaction`) right after mapping, as on the listener.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from .contract import FEEDBACK_ATTR, POSTHOG_EVENT_ATTR, SPAN_ATTR
from .mapping import MappingOptions
from .pipeline import FEEDBACK_ITEM, POSTHOG_EVENT_ITEM, SPAN_ITEM, EventEncoder, RecordItem
from .records import BadLine, RecordLine, json_object, record_line
from .redaction import BeforeSend, Mask, OutgoingEvents
from .sampling import TraceSampler
from .sender import Poster
from .spill import PROGRESS_SUFFIX, read_progress, spill_files, try_lock, write_progress
from .stats import Stats
from .transport import MAX_EVENT_BYTES, EncodedEvent, RetryPolicy, Transport

#: Lines of a file sent per request (and per progress note).
REPLAY_BATCH_LINES = 100


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


class Replayer:
    """Sends spill (and ``SpanJsonFormatter``) files once each, resumably."""

    def __init__(
        self,
        transport: Transport,
        options: MappingOptions,
        *,
        batch_lines: int = REPLAY_BATCH_LINES,
        retry: RetryPolicy | None = None,
        max_event_bytes: int = MAX_EVENT_BYTES,
        sleep: Callable[[float], None] = time.sleep,
        privacy_mode: bool = False,
        sampler: TraceSampler | None = None,
        mask: Mask | None = None,
        before_send: BeforeSend | None = None,
    ) -> None:
        self.stats = Stats()
        self.encoder = EventEncoder(options, self.stats, max_event_bytes=max_event_bytes)
        #: What leaves the process, for mapped records: the listener's chain.
        self.outgoing = OutgoingEvents(
            self.stats,
            privacy_mode=privacy_mode,
            sampler=sampler,
            mask=mask,
            before_send=before_send,
        )
        self.poster = Poster(transport, self.stats, retry or RetryPolicy())
        self.batch_lines = batch_lines
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
                if not try_lock(handle):
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
        done = read_progress(progress)
        report.already_sent = done
        lines = iter(handle)
        for _ in range(done):
            next(lines, None)
        batch: list[EncodedEvent] = []
        batch_lines = 0
        for line in lines:
            batch_lines += 1
            batch.extend(self._events(line, report))
            if batch_lines >= self.batch_lines:
                if not self._deliver(batch, report):
                    return
                done += batch_lines
                write_progress(progress, done)
                batch, batch_lines = [], 0
        if batch and not self._deliver(batch, report):
            return
        # Everything is out: the file and its progress note go.
        path.unlink()
        with contextlib.suppress(FileNotFoundError):
            progress.unlink()

    def _events(self, line: str, report: FileReport) -> list[EncodedEvent]:
        """The encoded events of one line: a spilled event, or a record the formatter wrote."""
        line = line.strip()
        if not line:
            return []
        try:
            parsed = json_object(line)
        except BadLine:
            report.malformed += 1
            return []
        if "event" in parsed and "properties" in parsed:
            return [self.encoder.encode(parsed)]
        found = record_line(parsed)
        events = None if found is None else self.encoder.map(_record_item(found))
        if events is None:
            report.malformed += 1
            return []
        events = self.outgoing.filter(events)
        return [self.encoder.encode(event) for event in events]

    def _deliver(self, batch: list[EncodedEvent], report: FileReport) -> bool:
        if not batch:
            return True
        outcome = self.poster.deliver(batch, self.sleep)
        report.delivered += outcome.delivered
        if outcome.failure is not None:
            report.error = outcome.failure.describe()
            return False
        return True


#: The pipeline's item kind of each record kind a line can carry.
_ITEM_KINDS = {
    SPAN_ATTR: SPAN_ITEM,
    FEEDBACK_ATTR: FEEDBACK_ITEM,
    POSTHOG_EVENT_ATTR: POSTHOG_EVENT_ITEM,
}


def _record_item(line: RecordLine) -> RecordItem:
    """A ``SpanJsonFormatter`` line as the handler would have queued its record."""
    created = (line.created_ms or 0) / 1000
    return (_ITEM_KINDS[line.attr], line.payload, line.span_event, created)
