"""Helpers for tests that run a program in a real subprocess against a capture server.

Programs are written to files (not ``python -c``) because ``spawn`` and
``forkserver`` children import the main module again by its path.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from posthog_logging.devserver import CaptureServer

from .conftest import DUMMY_KEY

#: The logging configuration of every program.  The batch size and interval are larger
#: than anything a test logs, so every event arrives only through the handler's flush
#: at exit: nothing reaches the server by luck.
CONFIG_CODE = """
import logging, logging.config, os, sys

CONFIG = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {
        "posthog": {
            "()": "posthog_logging.PosthogLogHandler",
            "host": os.environ["TEST_HOST"],
            "flush_at": 100_000,
            "flush_interval": 600.0,
        },
    },
    "loggers": {"app": {"handlers": ["posthog"], "level": "INFO"}},
}
"""

#: What the programs log, through whatever handler the configuration put on ``app``.
SPAN_CODE = '''
log = logging.getLogger("app.ai")


def span(i):
    return {
        "id": f"{i:016x}", "traceId": f"{i // 100:032x}", "parentSpanId": "f" * 16,
        "name": f"tool {i}", "type": "tool_call",
        "startTime": 1735689600.0, "endTime": 1735689601.5,
        "input": {"i": i}, "metadata": {"userId": "u1"},
    }


def work(first, count):
    """Log spans first .. first + count - 1; returns how many."""
    for i in range(first, first + count):
        log.info("tool", extra={"span": span(i)})
    return count


def posthog_handler():
    return logging.getLogger("app").handlers[0]
'''


def write_program(
    directory: Path, body: str, name: str = "program.py", *, configure: bool = True
) -> Path:
    """A module in ``directory``: the configuration (applied at import, as a new user
    writes it, unless ``configure`` is false), the span helpers, then ``body``."""
    path = directory / name
    apply = "logging.config.dictConfig(CONFIG)\n" if configure else ""
    path.write_text(CONFIG_CODE + apply + SPAN_CODE + body)
    return path


def program_env(server: CaptureServer, directory: Path | None = None) -> dict[str, str]:
    """The environment for a program: the key, the capture server, ``directory`` importable."""
    env = dict(os.environ, POSTHOG_API_KEY=DUMMY_KEY, TEST_HOST=server.url)
    if directory is not None:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(directory), env.get("PYTHONPATH")]))
    return env


def run_program(
    server: CaptureServer, path: Path, *, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """Run ``path`` with this interpreter; a hang fails the test after ``timeout`` seconds."""
    return subprocess.run(
        [sys.executable, str(path)],
        env=program_env(server, path.parent),
        cwd=path.parent,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def delivered_span_ids(server: CaptureServer, expected: int, timeout: float = 10) -> list[int]:
    """The span ids the server received (sorted, duplicates kept) once ``expected`` arrived."""
    events = server.wait_for_events(expected, timeout=timeout)
    return sorted(int(event["properties"]["$ai_span_id"], 16) for event in events)
