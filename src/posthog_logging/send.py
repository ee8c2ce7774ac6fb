"""``posthog-logging send``: JSON lines from a log pipeline, delivered by the handler.

Many application hosts write span records as JSON lines (``SpanJsonFormatter``),
the shipper they already run (Vector, Fluent Bit, Kafka) carries them, and
``send`` consumers deliver them.  Each line becomes the ``logging`` record it
was and goes to a :class:`~.handler.PosthogLogHandler`, so it takes the
handler's path exactly: mapping with per-trace state, batching, concurrent
senders, spill, stats.

Lines ``send`` understands:

* ``SpanJsonFormatter`` lines: ``{"span": {...}, "span_event": ...}`` and
  ``{"feedback": {...}}``, with ``time`` (the record's creation time, "now"
  for the mapping's time fallbacks);
* already-mapped events, as spill files hold them (``{"event", "distinct_id",
  "properties", "timestamp", "uuid"}``), and ``{"posthog_event": {...}}`` lines.

Anything else is a *bad line*: counted by reason, the first few reported on
stderr with their line number, never fatal.  Reading keeps pace with
delivery: while the handler's queue or buffer is more than half full (in
records, events or bytes), ``send`` stops reading (the pipe, or the shipper's
buffer, holds the rest) instead of letting the handler drop.
"""

from __future__ import annotations

import json
import logging
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from .contract import POSTHOG_EVENT_ATTR, SPAN_ATTR, SPAN_EVENT_ATTR
from .handler import PosthogLogHandler
from .lines import FilePosition, StopSignals, TooLong, follow_lines, pipe_lines
from .records import BadLine, RecordLine, json_object, record_line
from .spill import write_private_atomically
from .values import time_ms

#: Logger name the records of ``send`` carry (they are handed to the handler directly).
SEND_LOGGER = "posthog_logging.send"
#: Bad lines reported one by one on stderr before they are only counted.
REPORTED_BAD_LINES = 10
#: How long reading pauses, each time, while the handler's backlog is high.
BACKLOG_PAUSE_SECONDS = 0.01
#: The handler runs with ``overflow="block"``: a record waits this long for room in
#: its queue before the oldest is dropped.  Reading pauses long before (the backlog
#: check), so this only guards against a listener that stopped making progress.
SEND_BLOCK_TIMEOUT = 60.0
#: With ``--state``, the read position is saved this often (after a flush()).
CHECKPOINT_SECONDS = 5.0


def run_send(
    source: str,
    handler: PosthogLogHandler,
    stdin: int,
    errors: TextIO,
    state: Path | None = None,
) -> int:
    """Deliver the lines of ``source`` ("-": ``stdin``, else a file to follow) until EOF
    or SIGTERM/SIGINT; returns the exit status (1 when events were not delivered).

    1. Read and hand each line's record to the handler (pausing while it is behind).
       At a stop signal, what is already in the pipe is read too (``pipe_lines``).
    2. At EOF or a stop signal, close the handler: it delivers everything handed to it
       within its ``shutdown_timeout`` and keeps in its journal (or drops, counted) the
       rest.  A second signal during this changes nothing: the signals stay caught.
    3. With ``state``, record where reading stopped, so a restart resumes there.
    4. Print what was read, sent, spilled and dropped, and how many events handed
       over were not delivered.
    """
    position = read_position(state, errors) if state is not None else FilePosition()
    with StopSignals() as stop:
        if source == "-":
            lines = pipe_lines(stdin, stop)
        else:
            lines = follow_lines(source, stop, position=position)
        checkpoint = None if state is None else Checkpoint(state, position, handler, errors)
        try:
            report = LineSender(handler, stop, errors, checkpoint).send(lines)
        finally:
            handler.close()
    if checkpoint is not None:
        checkpoint.save()  # every line read was delivered, kept or counted
    stats = handler.stats()
    print(report.summary(stats), file=errors)
    # Records the mapping rejected are bad input (reported above); anything else is a loss.
    dropped = sum(n for reason, n in stats["dropped"].items() if not reason.startswith("invalid_"))
    if not (dropped or stats["spilled"]):
        return 0
    kept = stats["spilled"]
    where = f"{kept} kept in {handler.spill_dir} for the next send or replay, " if kept else ""
    print(
        f"posthog-logging send: {dropped + kept} events handed to it were not delivered"
        f" ({where}{dropped} dropped)",
        file=errors,
    )
    return 1


def read_position(state: Path, errors: TextIO) -> FilePosition:
    """Where an earlier ``send --state`` stopped; the start when it never ran."""
    try:
        saved = json.loads(state.read_text())
        return FilePosition(int(saved["device"]), int(saved["inode"]), int(saved["offset"]))
    except FileNotFoundError:
        return FilePosition()
    except (OSError, ValueError, KeyError, TypeError) as error:
        print(
            f"posthog-logging send: ignoring {state} ({error}); reading from the start", file=errors
        )
        return FilePosition()


class Checkpoint:
    """Keeps the read position in ``state``: every :data:`CHECKPOINT_SECONDS`, after a
    ``flush()`` (so a restart never skips a line the handler had not sent), and at exit."""

    def __init__(
        self, state: Path, position: FilePosition, handler: PosthogLogHandler, errors: TextIO
    ) -> None:
        self.state = state
        self.position = position
        self.handler = handler
        self.errors = errors
        self._next = time.monotonic() + CHECKPOINT_SECONDS
        self._reported = False

    def now_and_then(self) -> None:
        if time.monotonic() < self._next:
            return
        position = FilePosition(**vars(self.position))
        self.handler.flush()
        self.save(position)
        self._next = time.monotonic() + CHECKPOINT_SECONDS

    def save(self, position: FilePosition | None = None) -> None:
        try:
            write_private_atomically(self.state, json.dumps(vars(position or self.position)))
        except OSError as error:
            if not self._reported:  # reading goes on; a restart re-sends (same uuids)
                self._reported = True
                print(f"posthog-logging send: cannot save {self.state}: {error}", file=self.errors)


@dataclass
class SendReport:
    """What ``send`` read and what became of it."""

    lines: int = 0
    records: int = 0
    bad: Counter[str] = field(default_factory=Counter)

    def summary(self, stats: dict[str, Any]) -> str:
        dropped = stats.get("dropped") or {}
        bad = ", ".join(f"{reason} {count}" for reason, count in sorted(self.bad.items()))
        return (
            f"posthog-logging send: read {self.lines} lines, {self.records} records"
            f" ({sum(self.bad.values())} bad lines{': ' + bad if bad else ''});"
            f" {stats.get('mapped', 0)} events mapped, {stats.get('sent', 0)} sent"
            f" in {stats.get('requests', 0)} requests, {stats.get('spilled', 0)} spilled,"
            f" dropped {dropped or 'none'}"
        )


def record_from_line(line: bytes) -> logging.LogRecord:
    """The ``logging`` record a JSON line stands for; raises :class:`BadLine`."""
    parsed = json_object(line)
    found = record_line(parsed)
    if found is None:
        if not ("event" in parsed and "properties" in parsed):
            raise BadLine("no_span_feedback_or_event")
        found = RecordLine(POSTHOG_EVENT_ATTR, parsed, None, time_ms(parsed.get("time")))
    payload: dict[str, Any] = {found.attr: found.payload}
    if found.attr == SPAN_ATTR:
        payload[SPAN_EVENT_ATTR] = found.span_event
    record = logging.LogRecord(SEND_LOGGER, logging.INFO, "", 0, "send", None, None)
    record.__dict__.update(payload)
    if found.created_ms is not None:
        record.created = found.created_ms / 1000
    return record


class LineSender:
    """Feeds lines to a handler, counting what it reads."""

    def __init__(
        self,
        handler: PosthogLogHandler,
        stop: StopSignals,
        errors: TextIO,
        checkpoint: Checkpoint | None = None,
    ) -> None:
        self.handler = handler
        self.stop = stop
        self.errors = errors
        self.checkpoint = checkpoint
        self.report = SendReport()

    def send(self, lines: Iterable[bytes | TooLong]) -> SendReport:
        for line in lines:
            self.report.lines += 1
            if isinstance(line, TooLong):
                self._bad("too_long", "longer than the line limit")
                continue
            if not line.strip():
                continue  # blank lines are separators, not data
            try:
                record = record_from_line(line)
            except BadLine as bad:
                self._bad(str(bad), line[:120].decode("utf-8", "replace"))
                continue
            self._wait_for_room()
            self.report.records += 1
            self.handler.handle(record)
            if self.checkpoint is not None:
                self.checkpoint.now_and_then()
        return self.report

    def _bad(self, reason: str, excerpt: str) -> None:
        self.report.bad[reason] += 1
        if sum(self.report.bad.values()) <= REPORTED_BAD_LINES:
            print(
                f"posthog-logging send: line {self.report.lines}: {reason}: {excerpt}",
                file=self.errors,
            )
        elif sum(self.report.bad.values()) == REPORTED_BAD_LINES + 1:
            print("posthog-logging send: more bad lines; counting only", file=self.errors)

    def _wait_for_room(self) -> None:
        """Pause reading while the handler is over half full (queue or buffer).

        A stop signal ends the pause: the line already read still goes to the handler.
        """
        while self._over_high_water() and not self.stop.stopped:
            time.sleep(BACKLOG_PAUSE_SECONDS)

    def _over_high_water(self) -> bool:
        """Queued records will be buffered events (mostly one each), so they count
        against the buffer's bounds too, at the buffer's average event size."""
        handler, stats = self.handler, self.handler.stats()
        queued, events, size = stats["queued"], stats["buffered_events"], stats["buffered_bytes"]
        expected_bytes = size + (queued * size // events if events else 0)
        return bool(
            queued * 2 > handler.max_queue_size
            or (events + queued) * 2 > handler.max_buffer_events
            or expected_bytes * 2 > handler.max_buffer_bytes
        )
