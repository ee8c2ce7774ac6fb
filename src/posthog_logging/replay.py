"""``posthog-logging replay``: journal, spill and ``SpanJsonFormatter`` files to PostHog.

Replay takes the listener's own path: span, feedback and PostHog-event records go through
the same :class:`~.pipeline.EventEncoder` (``span_event`` checked the same
way, oversize events shrunk the same way) and already-mapped lines are
re-encoded by it too; batches go out one at a time through the
:class:`~.exporter.HttpExporter` the sender's threads export with (413
halving), retried as the same :class:`~.congestion.RetryPolicy` says, and each
file is read, locked, recorded and (when it is the library's own) deleted by
the :class:`~.backlog.FileSender` the journal's resume uses too.  A file that
is not the library's own is never changed: its progress is kept in the state
directory.

Spilled events were sampled, masked and passed to ``before_send`` before they
were spilled, so they are sent as they are; span and feedback records meet the
``outgoing`` step (:mod:`.redaction`) right after mapping, as on the listener.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from .backlog import BATCH_LINES, FileReport, FileSender
from .congestion import RetryPolicy
from .contract import FEEDBACK_ATTR, POSTHOG_EVENT_ATTR, SPAN_ATTR
from .encoding import MAX_EVENT_BYTES, EncodedEvent
from .exporter import HttpExporter
from .mapping import MappingOptions
from .pipeline import FEEDBACK_ITEM, POSTHOG_EVENT_ITEM, SPAN_ITEM, EventEncoder, RecordItem
from .records import BadLine, RecordLine, json_object, record_line
from .redaction import BeforeSend, Mask, OutgoingEvents
from .sampling import TraceSampler
from .spill import COMPLETE_SUFFIX, default_state_directory, is_own_file, own_files
from .stats import Stats
from .transport import Transport


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
    """Sends journal, spill and ``SpanJsonFormatter`` files once each, resumably."""

    def __init__(
        self,
        transport: Transport,
        options: MappingOptions,
        *,
        batch_lines: int = BATCH_LINES,
        retry: RetryPolicy | None = None,
        max_event_bytes: int = MAX_EVENT_BYTES,
        sleep: Callable[[float], None] = time.sleep,
        sampler: TraceSampler | None = None,
        mask: Mask | None = None,
        before_send: BeforeSend | None = None,
        state_directory: Path | None = None,
    ) -> None:
        self.stats = Stats()
        self.encoder = EventEncoder(options, self.stats, max_event_bytes=max_event_bytes)
        #: Sampling, mask and before_send for mapped records, as on the listener.
        self.outgoing = OutgoingEvents(
            self.stats, sampler=sampler, mask=mask, before_send=before_send
        )
        self.files = FileSender(
            HttpExporter(transport, self.stats),
            retry or RetryPolicy(),
            self.stats,
            state_directory or default_state_directory(),
            batch_lines=batch_lines,
            sleep=sleep,
        )

    def replay(self, paths: Iterable[str | os.PathLike[str]]) -> ReplayReport:
        report = ReplayReport()
        for raw in paths:
            path = Path(raw)
            if path.is_dir():
                for found in _files_in(path):
                    report.files.append(self.files.send(found, self._events))
            elif path.exists():
                report.files.append(self.files.send(path, self._events))
            else:
                report.files.append(FileReport(path, error="no such file or directory"))
        return report

    def _events(self, line: str) -> list[EncodedEvent] | None:
        """The encoded events of one line: a mapped event, or a record the formatter
        wrote; None when it is neither."""
        try:
            parsed = json_object(line)
        except BadLine:
            return None
        if "event" in parsed and "properties" in parsed:
            return [self.encoder.encode(parsed)]
        found = record_line(parsed)
        events = None if found is None else self.encoder.map(_record_item(found))
        if events is None:
            return None
        events = self.outgoing.filter(events)
        return [self.encoder.encode(event) for event in events]


def _files_in(directory: Path) -> list[Path]:
    """A directory's journal segments and spill files, then its other JSON-lines files."""
    others = sorted(path for path in directory.glob("*" + COMPLETE_SUFFIX) if not is_own_file(path))
    return own_files(directory) + others


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
