"""LogThrottle: the one rule for how often a repeated problem is logged."""

from __future__ import annotations

import threading

from posthog_logging.diagnostics import LogThrottle


def test_the_first_occurrences_are_logged_then_one_line_then_nothing() -> None:
    throttle = LogThrottle(limit=2)
    verdicts = [throttle.verdict("mask_error") for _ in range(5)]
    assert verdicts == [LogThrottle.FULL, LogThrottle.FULL, LogThrottle.LAST, None, None]
    # Each kind has its own count.
    assert throttle.allows("before_send_error")


def test_counts_from_many_threads_log_exactly_limit_occurrences() -> None:
    throttle = LogThrottle(limit=3)
    allowed: list[bool] = []

    def count() -> None:
        for _ in range(1000):
            if throttle.allows("queue_full"):
                allowed.append(True)

    threads = [threading.Thread(target=count) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(allowed) == 3
