"""The journal's batched path: a run of events added with one call is on disk,
each event once, before the call returns, and settles by its numbers."""

from __future__ import annotations

from pathlib import Path

from posthog_logging.journal import Journal
from posthog_logging.sender import EventBuffer, Sender
from posthog_logging.stats import Stats

from .fake_exporter import InMemoryExporter
from .test_sender_units import close, events, sender_for


def journaled(directory: Path) -> list[str]:
    return [line.strip() for path in directory.glob("journal-*.jsonl") for line in path.open()]


def test_a_run_added_at_once_is_journaled_once_each_before_the_call_returns(
    tmp_path: Path,
) -> None:
    """Against a server that never answers, with a buffer smaller than the run: the
    events pushed out (or refused) are kept, the others written, none twice."""
    exporter = InMemoryExporter(hang=True)
    sender = Sender(
        exporter,
        Stats(),
        EventBuffer(max_events=20, max_bytes=1_000_000),
        flush_at=10,
        max_in_flight=2,
        journal=Journal(tmp_path),
        spill_on_overflow=True,
    )
    sender.add_many(events(25))
    assert sorted(journaled(tmp_path)) == sorted(events(25))  # before anything is sent
    exporter.release.set()
    sender.abandon()
    assert sorted(journaled(tmp_path)) == sorted(events(25))


def test_a_run_added_at_once_is_released_once_delivered(tmp_path: Path) -> None:
    """The run's events are numbered as the buffer numbers them: once every one is
    accepted, the journal holds nothing and close() leaves nothing behind."""
    exporter = InMemoryExporter()
    sender = sender_for(exporter, journal=Journal(tmp_path))
    sender.add_many(events(7))
    sender.add_many(events(30, start=7))
    close(sender)
    assert exporter.accepted == events(30)
    assert sender.stats.snapshot()["dropped"] == {}
    assert list(tmp_path.iterdir()) == []
