"""Shared fixtures: a real capture server on 127.0.0.1 and handler plumbing.

The ``slow`` marker.  ``python -m pytest`` (the README's command) runs every test
that needs no more than the machine's speed: it must finish in about a minute on
two cores, busy or not.  A test that takes seconds because it waits on real time
(a deadline, a Retry-After, an outage, a server's latency) or starts a subprocess
(exit, fork, signals, the examples, the CLI) is marked ``@pytest.mark.slow``
(``pytestmark = pytest.mark.slow`` for a whole module) and runs in CI's second
step, ``python -m pytest -m slow``; ``-m "slow or not slow"`` runs everything
(tox does).  The end of a default run says how many slow tests it left out.

Whatever the marker, no test has a wall-clock bound: a test waits for a condition
with a generous deadline (``helpers.PATIENCE``) and asserts orders and counts.
Durations are measured in ``bench/`` only.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from posthog_logging.devserver import CaptureServer
from posthog_logging.values import time_ms

#: pytester runs the posthog_events fixture's sample projects (test_pytest_plugin.py).
pytest_plugins = ["pytester"]

#: The conformance scenarios: $POSTHOG_LOGGING_FIXTURES, else the team's shared copy
#: beside the repository (it may hold newer scenarios), else the copy kept in tests/.
_SHARED_FIXTURES = Path(__file__).resolve().parents[2] / "shared" / "conformance" / "fixtures.json"
_LOCAL_FIXTURES = Path(__file__).resolve().parent / "conformance" / "fixtures.json"
CONFORMANCE_FIXTURES = Path(
    os.environ.get("POSTHOG_LOGGING_FIXTURES")
    or (_SHARED_FIXTURES if _SHARED_FIXTURES.exists() else _LOCAL_FIXTURES)
)
DUMMY_KEY = "phc_test_dummy_key_0123456789"
#: Settings the handler takes from the environment when no argument is given: a
#: developer's shell must not change what the tests see (tests set them themselves).
BEHAVIOUR_VARIABLES = ("POSTHOG_PRIVACY_MODE", "POSTHOG_AI_TRACE_SAMPLE_RATE", "POSTHOG_SERVERLESS")


#: Tests the ``-m`` expression of this run left out for their ``slow`` marker.
_deselected_slow: list[pytest.Item] = []


def pytest_deselected(items: list[pytest.Item]) -> None:
    _deselected_slow.extend(item for item in items if item.get_closest_marker("slow"))


@pytest.hookimpl(trylast=True)  # after the durations and the short summary
def pytest_terminal_summary(
    terminalreporter: pytest.TerminalReporter, config: pytest.Config
) -> None:
    """The default run (``-m 'not slow'`` from pyproject) says what it left out."""
    if config.getoption("markexpr") == "not slow" and _deselected_slow:
        terminalreporter.write_line(
            f"slow tests not run: {len(_deselected_slow)} (real time, subprocesses); "
            "run them with: python -m pytest -m slow  (everything: -m 'slow or not slow')",
            yellow=True,
            bold=True,
        )


@pytest.fixture(autouse=True)
def _no_behaviour_from_the_shell(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in BEHAVIOUR_VARIABLES:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def capture_server() -> Iterator[CaptureServer]:
    with CaptureServer() as server:
        yield server


class RecordCollector(logging.Handler):
    """Keeps every record it sees (to check the library's own log output)."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def messages(self, min_level: int = logging.DEBUG) -> list[str]:
        return [r.getMessage() for r in self.records if r.levelno >= min_level]


@pytest.fixture
def library_logs() -> Iterator[RecordCollector]:
    """Records of the library's own diagnostics logger and the posthog transport's."""
    collector = RecordCollector()
    loggers = [logging.getLogger(name) for name in ("posthog_logging", "posthog")]
    saved = [(lg.level, lg.propagate) for lg in loggers]
    for lg in loggers:
        lg.addHandler(collector)
        lg.setLevel(logging.DEBUG)
    yield collector
    for lg, (level, _propagate) in zip(loggers, saved, strict=True):
        lg.removeHandler(collector)
        lg.setLevel(level)


def at(iso: str) -> dt.datetime:
    """An aware datetime from an ISO-8601 string with ``Z`` (3.10's fromisoformat can't)."""
    millis = time_ms(iso)
    assert millis is not None, iso
    return dt.datetime.fromtimestamp(millis / 1000, tz=dt.timezone.utc)


def span_logger(name: str, handler: logging.Handler) -> logging.Logger:
    """A dedicated logger that sends everything to ``handler`` only."""
    logger = logging.getLogger(name)
    logger.handlers[:] = [handler]
    logger.propagate = False
    logger.setLevel(logging.DEBUG)
    return logger
