"""posthog-logging's pytest plugin: the ``posthog_events`` fixture.

Registered through the ``pytest11`` entry point, so pytest loads it in every
session of a project where posthog-logging is installed.  That is why it is a
package of its own, outside ``posthog_logging``: importing it imports nothing
of the library (no HTTP client, no exit or fork hook), so a test session that
never asks for the fixture runs exactly as it would without the package.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from posthog_logging.testing import CapturedEvents


@pytest.fixture
def posthog_events() -> Iterator[CapturedEvents]:
    """The events every ``PosthogLogHandler`` built during the test, captured in memory.

    See :func:`posthog_logging.testing.capture`: records are mapped on the
    thread that logs them, nothing is sent, no thread is started.
    """
    from posthog_logging.testing import capture  # noqa: PLC0415 (only when a test asks)

    with capture() as events:
        yield events
