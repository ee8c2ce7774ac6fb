"""What the shutdown deadline costs is counted by what it is: records never mapped
apart from events never delivered."""

from __future__ import annotations

import threading
from typing import Any

from posthog_logging.devserver import CaptureServer, ScriptedResponse

from .helpers import PATIENCE, handler_for, returns_in_time, tool_span


def test_records_unmapped_and_events_undelivered_at_the_deadline_are_counted_apart(
    capture_server: CaptureServer,
) -> None:
    capture_server.answer_by_default(ScriptedResponse(hang=True))
    entered, release = threading.Event(), threading.Event()

    def held_mask(value: Any) -> Any:
        entered.set()
        release.wait(2 * PATIENCE)  # the listener stays on span 1 past the deadline
        return value

    handler, log = handler_for(
        capture_server.url, "shutdown_counts", mask=held_mask, shutdown_timeout=0.5
    )
    try:
        log.info("a", extra={"span": tool_span(1, input="q")})
        assert entered.wait(PATIENCE)
        for n in range(2, 5):
            log.info("b", extra={"span": tool_span(n)})
        # Span 1 is still being mapped at the deadline: close() returns all the same
        # (it used to wait for the mask, past its shutdown_timeout).
        returns_in_time(handler.close)
    finally:
        release.set()
    stats = handler.stats()
    # Spans 2-4 were never mapped (records); span 1's event, mapped once the listener
    # went on, is dropped by the sender that was given up (events), or not at all.
    assert stats["dropped"]["unmapped_at_deadline"] == 3, stats
    assert set(stats["dropped"]) <= {"unmapped_at_deadline", "shutdown_deadline"}, stats
