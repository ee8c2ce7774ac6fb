"""A signal handler that logs spans never deadlocks the handler (real subprocess).

Python runs a signal handler on the main thread between two bytecodes, also
while that thread holds one of the handler's locks.  A 0.1 ms timer makes that
happen at every point of the caller's path: the first record (which starts the
listener), queue overflow (which counts drops), ``stats()``, and records that
reach a closed handler.  A hang fails the test (and ``faulthandler`` prints
where it hung); every record must be delivered once or counted as dropped.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from posthog_logging.devserver import CaptureServer

from .helpers import delivered_span_ids, run_program, write_program

pytestmark = pytest.mark.slow

ROUNDS = 300

SIGNAL_PROGRAM = f"""
import faulthandler, itertools, json, signal, threading
from posthog_logging import PosthogLogHandler

faulthandler.dump_traceback_later(45, exit=True)  # a deadlock prints its stacks and fails
ids = itertools.count()  # next() is one C call: a signal cannot split it
logged = {{}}  # round -> records logged to that round's handler (by main and by signal)
target = None  # (round, logger) the signal handler logs to


busy = False  # an alarm during the alarm handler returns: the handler interrupts main only


def on_alarm(signum, frame):
    global busy
    if target is not None and not busy:
        busy = True
        n, logger = target
        logger.info("tick", extra={{"span": span(next(ids))}})
        logged[n] += 1
        busy = False


signal.signal(signal.SIGALRM, on_alarm)
signal.setitimer(signal.ITIMER_REAL, 0.0001, 0.0001)
results = []


def listener_threads():
    return {{t for t in threading.enumerate() if t.name == "posthog-logging-listener"}}


for n in range({ROUNDS}):
    # Odd rounds overflow a tiny queue (drops are counted on the caller's thread).
    handler = PosthogLogHandler(
        host=os.environ["TEST_HOST"], flush_at=100_000, flush_interval=600.0,
        max_queue_size=2 if n % 2 else 32_768,
    )
    logger = logging.getLogger(f"round.{{n}}")
    logger.propagate = False
    logger.setLevel(logging.INFO)
    logger.addHandler(handler)
    logged[n] = 0
    before = listener_threads()  # the last round's listener may still be finishing
    target = (n, logger)
    for _ in range(20):  # the first of these starts the listener while alarms fire
        logger.info("work", extra={{"span": span(next(ids))}})
        logged[n] += 1
        handler.stats()
    listeners = len(listener_threads() - before)
    if n % 3 == 0:
        handler.close()  # while alarms still log to it: those records are counted as dropped
        target = None
    else:
        target = None
        handler.close()
    logger.info("late", extra={{"span": span(next(ids))}})  # after close: dropped, counted
    logged[n] += 1
    stats = handler.stats()
    results.append([logged[n], stats["sent"], stats["dropped"], listeners])
signal.setitimer(signal.ITIMER_REAL, 0, 0)
print(json.dumps(results))
"""


def test_signal_handler_logging_while_the_main_thread_logs_never_hangs(
    capture_server: CaptureServer, tmp_path: Path
) -> None:
    program = write_program(tmp_path, SIGNAL_PROGRAM)
    result = run_program(capture_server, program, timeout=60)
    assert result.returncode == 0, result.stderr[-4000:]
    rounds = json.loads(result.stdout)
    assert len(rounds) == ROUNDS
    for logged, sent, dropped, listeners in rounds:
        assert listeners == 1  # a re-entrant first record never starts a second listener
        assert sent + sum(dropped.values()) == logged, (logged, sent, dropped)
        assert set(dropped) <= {"queue_full", "closed"}
        assert dropped.get("closed", 0) >= 1  # the record logged after close()
    total_sent = sum(sent for _, sent, _, _ in rounds)
    assert sum(logged for logged, _, _, _ in rounds) > ROUNDS * 21  # the alarms logged too
    delivered = delivered_span_ids(capture_server, total_sent)
    assert len(delivered) == total_sent
    assert len(set(delivered)) == total_sent  # each once
