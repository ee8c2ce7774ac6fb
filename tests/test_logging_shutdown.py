"""``logging.shutdown()`` called by the application (a Lambda handler, a ``finally:``
block): every handler of ours begins its shutdown at one instant, and flush() and
close() share one ``shutdown_timeout`` per handler, so the call takes at most the
largest, not the sum of every handler's flush and close budgets.

The child runs against a capture server that hangs every request, the case in
which each handler waits out its whole budget.  The assertions read the structure
(when each shutdown began, and the deadline it got), not the wall clock.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

import pytest

from posthog_logging.devserver import CaptureServer, ScriptedResponse

from .conftest import DUMMY_KEY
from .helpers import handler_for, tool_span

CHILD = """
import json, logging, sys, time
from posthog_logging import PosthogLogHandler

host, timeouts = sys.argv[1], json.loads(sys.argv[2])
handlers = []
for n, timeout in enumerate(timeouts):
    handler = PosthogLogHandler(host=host, shutdown_timeout=timeout, max_attempts=1)
    log = logging.getLogger(f"app.{n}")
    log.propagate = False
    log.setLevel(logging.INFO)
    log.addHandler(handler)
    handlers.append(handler)
    log.info("tool", extra={"span": json.loads(sys.argv[3])})
called = time.monotonic()
logging.shutdown()
returned = time.monotonic()
print(json.dumps({
    "called": called,
    "returned": returned,
    "began": [h._lifecycle.shutdown_began for h in handlers],
    "deadlines": [h._lifecycle.shutdown_deadline for h in handlers],
    "dropped": [h.stats()["dropped"] for h in handlers],
}))
"""


def shut_down_against_a_hanging_server(
    server: CaptureServer, timeouts: list[float]
) -> dict[str, Any]:
    server.answer_by_default(ScriptedResponse(hang=True))
    span = tool_span(1)
    done = subprocess.run(
        [sys.executable, "-c", CHILD, server.url, json.dumps(timeouts), json.dumps(span)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env=dict(os.environ, POSTHOG_API_KEY=DUMMY_KEY),
    )
    assert done.returncode == 0, done.stderr
    result: dict[str, Any] = json.loads(done.stdout.splitlines()[-1])
    return result


@pytest.mark.slow  # a subprocess
def test_logging_shutdown_begins_every_handler_at_one_instant_with_its_own_budget(
    capture_server: CaptureServer,
) -> None:
    timeouts = [1.0, 2.0]
    result = shut_down_against_a_hanging_server(capture_server, timeouts)
    began = result["began"]
    # One instant for both, within the call: the second handler's budget did not wait
    # for the first handler's flush() and close() (before: it began after them).
    assert began[0] is not None and began[0] == began[1]
    assert result["called"] <= began[0] <= result["returned"]
    # flush() took none of the budget: each deadline is its whole shutdown_timeout
    # from that instant (before: close() got a budget of its own after flush()'s).
    assert result["deadlines"] == [began[0] + timeout for timeout in timeouts]
    # The server hung: each handler gave its event up at its deadline.
    assert result["dropped"] == [{"shutdown_deadline": 1}, {"shutdown_deadline": 1}]


def test_closing_one_handler_leaves_the_others_open(capture_server: CaptureServer) -> None:
    # Only logging.shutdown() begins every handler's shutdown: a handler's own
    # flush() and close() concern that handler alone.
    first, _ = handler_for(capture_server.url, "shutdown.first")
    second, log = handler_for(capture_server.url, "shutdown.second")
    try:
        first.flush()
        first.close()
        log.info("tool", extra={"span": tool_span(7)})
        second.flush()
        assert [e["properties"]["$ai_span_id"] for e in capture_server.events] == [f"{7:016x}"]
    finally:
        second.close()


@pytest.mark.slow  # a subprocess
def test_flush_with_no_python_caller_is_not_taken_for_logging_shutdown(
    capture_server: CaptureServer,
) -> None:
    # atexit calls a registered flush() from C: no Python frame above it to read.
    program = (
        "import atexit, json, logging, sys\n"
        "from posthog_logging import PosthogLogHandler\n"
        "handler = PosthogLogHandler(host=sys.argv[1])\n"
        "atexit.register(handler.flush)\n"
        "log = logging.getLogger('app')\n"
        "log.addHandler(handler)\n"
        "log.warning('tool', extra={'span': json.loads(sys.argv[2])})\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", program, capture_server.url, json.dumps(tool_span(3))],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env=dict(os.environ, POSTHOG_API_KEY=DUMMY_KEY),
    )
    assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr
    assert [e["properties"]["$ai_span_id"] for e in capture_server.events] == [f"{3:016x}"]
