"""What the handler reports about itself: counters from the start, and losses that stay visible."""

from __future__ import annotations

import json
import logging
import threading
import time
from pathlib import Path

import pytest

from posthog_logging import PosthogLogHandler
from posthog_logging.devserver import CaptureServer, ScriptedResponse

from .conftest import DUMMY_KEY
from .helpers import (
    PATIENCE,
    delivered_span_ids,
    handler_for,
    run_program,
    tool_span,
    wait_until,
    waiting_inside,
    write_program,
)


def test_stats_lists_every_counter_from_the_start(capture_server: CaptureServer) -> None:
    handler = PosthogLogHandler(api_key=DUMMY_KEY, host=capture_server.url)
    try:
        stats = handler.stats()
        counters = ["sent", "mapped", "requests", "bytes", "retried", "spilled", "shrunk_events"]
        counters += ["truncated_properties", "sampled_out", "filtered_out", "dropped_properties"]
        assert {name: stats[name] for name in counters} == dict.fromkeys(counters, 0)
        assert stats["dropped"] == {}
    finally:
        handler.close()


#: A handler on the root logger, then a second configuration, as an app that applies its
#: settings again does: dictConfig closes the handler but leaves it on the root logger,
#: and (``disable_existing_loggers`` being on by default) disables every existing logger
#: it does not configure, the library's diagnostics logger among them.
STALE_HANDLER_PROGRAM = """
handler = logging.getLogger("app").handlers[0]
logging.getLogger("app").removeHandler(handler)
logging.getLogger().addHandler(handler)
logging.getLogger().setLevel(logging.INFO)
logging.config.dictConfig({"version": 1, "loggers": {"other": {"level": "INFO"}}})
for i in range(3):
    logging.getLogger("late").info("tool", extra={"span": span(i)})
print(json.dumps(handler.stats()["dropped"]))
"""


@pytest.mark.slow  # a subprocess
def test_records_reaching_a_handler_closed_by_a_new_config_are_reported_once(
    capture_server: CaptureServer, tmp_path: Path
) -> None:
    program = write_program(tmp_path, "import json\n" + STALE_HANDLER_PROGRAM)
    result = run_program(capture_server, program)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {"closed": 3}
    assert result.stderr.splitlines() == [
        "posthog-logging: records logged after close() are dropped "
        "(counted in stats()['dropped']['closed'])"
    ]
    assert capture_server.events == []


@pytest.mark.slow  # a subprocess
def test_loss_reports_stay_visible_after_a_config_that_disables_existing_loggers(
    capture_server: CaptureServer, tmp_path: Path
) -> None:
    # The handler is built by a dictConfig with the default disable_existing_loggers;
    # its batches are refused (400, not retried): the drop must be reported.
    capture_server.script(*[ScriptedResponse(400)] * 3)
    program = write_program(
        tmp_path,
        """
logging.config.dictConfig({**CONFIG, "disable_existing_loggers": True})
work(0, 5)
logging.shutdown()
""",
        configure=False,
    )
    result = run_program(capture_server, program)
    assert result.returncode == 0, result.stderr
    assert "dropped 5 events" in result.stderr


@pytest.mark.slow  # a subprocess
def test_a_worker_framework_whose_exit_hook_fails_costs_no_record(
    capture_server: CaptureServer, tmp_path: Path
) -> None:
    # A celery.signals without the signal the handler connects to (fault injection):
    # hooking the worker's end fails on the first record, which is still delivered.
    program = write_program(
        tmp_path,
        """
import types
sys.modules["celery.signals"] = types.ModuleType("celery.signals")
work(0, 5)
logging.shutdown()
""",
    )
    result = run_program(capture_server, program)
    assert result.returncode == 0, result.stderr
    assert result.stderr.startswith(
        "posthog-logging: could not hook the end of this worker process (AttributeError: "
    )
    assert len(result.stderr.splitlines()) == 1
    assert delivered_span_ids(capture_server, 5) == list(range(5))


def test_a_second_concurrent_close_waits_for_the_first() -> None:
    with CaptureServer(latency=0.5) as server:
        handler, log = handler_for(server.url, "close_twice", flush_at=20)
        for n in range(100):
            log.info("x", extra={"span": tool_span(n)})
        first = threading.Thread(target=handler.close)
        first.start()
        wait_until(lambda: waiting_inside(first, PosthogLogHandler.close), "the first close()")
        handler.close()  # e.g. logging.shutdown() at exit while another thread closes
        sent_when_returned = handler.stats()["sent"]
        first.join()
        assert sent_when_returned == 100


@pytest.mark.slow
def test_exit_while_a_daemon_thread_closes_delivers_everything(tmp_path: Path) -> None:
    # logging.shutdown()'s close() at exit must wait for the daemon thread's close(),
    # which needs three round trips of 0.5 s (one request at a time, 1,000 events each).
    with CaptureServer(latency=0.5) as server:
        program = write_program(
            tmp_path,
            """
import threading, time
from posthog_logging import PosthogLogHandler
handler = PosthogLogHandler(host=os.environ["TEST_HOST"], max_in_flight=1)
logging.getLogger("app").addHandler(handler)
logging.getLogger("app").setLevel(logging.INFO)
work(0, 2500)
threading.Thread(target=handler.close, daemon=True).start()
time.sleep(0.05)
""",
            configure=False,
        )
        result = run_program(server, program)
        assert result.returncode == 0, result.stderr
        assert delivered_span_ids(server, 2500) == list(range(2500))
        assert result.stderr == ""


def test_close_from_a_senders_log_record_neither_hangs_nor_loses(
    capture_server: CaptureServer,
) -> None:
    # A 413 halves the batch; the first half is refused (400), the second is not
    # tried yet when the drop is reported, and a user's handler closes on it.  A
    # close() that waited for something there would wait out its shutdown_timeout,
    # past PATIENCE.
    capture_server.script(ScriptedResponse(status=413), ScriptedResponse(status=400, body="{}"))
    handler, log = handler_for(capture_server.url, "close_in_sender", shutdown_timeout=2 * PATIENCE)
    took: list[float] = []

    class CloseOnDrop(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if "dropped" in record.getMessage() and not took:
                started = time.monotonic()
                handler.close()
                took.append(time.monotonic() - started)

    closer = CloseOnDrop()
    logging.getLogger("posthog_logging").addHandler(closer)
    try:
        for n in range(20):
            log.info("x", extra={"span": tool_span(n)})
        wait_until(lambda: took, "close() on the sender's thread to return")
    finally:
        logging.getLogger("posthog_logging").removeHandler(closer)
    # (nothing to wait for: 10 refused, 10 to send)
    stats = handler.stats()
    assert stats["mapped"] == 20
    assert (stats["sent"], stats["dropped"]) == (10, {"undeliverable": 10}), stats


def test_close_from_the_listener_thread_stops_the_listener(
    capture_server: CaptureServer,
) -> None:
    handler, log = handler_for(capture_server.url, "close_in_listener")
    closed = threading.Event()

    class CloseOnError(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if "exporter error" in record.getMessage() and not closed.is_set():
                closed.set()
                handler.close()  # on the listener thread, which reported the bad span

    closer = CloseOnError()
    logging.getLogger("posthog_logging").addHandler(closer)
    try:
        log.info("x", extra={"span": tool_span(0)})
        log.info("x", extra={"span": {"bad": 1}})
        assert closed.wait(PATIENCE)
        wait_until(lambda: not handler.stats()["listener_alive"], "the listener to stop")
    finally:
        logging.getLogger("posthog_logging").removeHandler(closer)
    stats = handler.stats()
    assert stats["sent"] == 1
    assert not stats["listener_alive"]
