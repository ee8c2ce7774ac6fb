"""Every process model delivers, checked in real subprocesses against a real capture server.

multiprocessing ends its children with ``os._exit()``: no atexit hook and no
``logging.shutdown()`` run there, only multiprocessing's own exit step.  Celery's
prefork pool (billiard) ends its workers with ``os._exit()`` too.  Each program
here configures the handler at module level with ``dictConfig`` (as a new user
does), with a batch size and interval that nothing reaches, so every event the
server gets was delivered by the handler's close when the worker process ended.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from posthog_logging.devserver import CaptureServer, ScriptedResponse

from .helpers import (
    PATIENCE,
    delivered_span_ids,
    free_port,
    get,
    program_env,
    run_program,
    write_program,
)

pytestmark = pytest.mark.slow

START_METHODS = ["fork", "forkserver", "spawn"]
CHILDREN = 4
PER_CHILD = 500
TOTAL = CHILDREN * PER_CHILD


def run_ok(server: CaptureServer, path: Path) -> str:
    """Run the program; it must exit 0 with nothing on stderr.  Returns its stdout."""
    result = run_program(server, path)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    return result.stdout


#: How each program makes a child process (billiard is Celery's fork of multiprocessing).
PROCESSES = {
    **{method: f"multiprocessing.get_context({method!r}).Process" for method in START_METHODS},
    "billiard": "billiard.Process",
}


@pytest.mark.parametrize("process", PROCESSES.values(), ids=PROCESSES.keys())
def test_process_children_deliver_everything_once(
    capture_server: CaptureServer, tmp_path: Path, process: str
) -> None:
    # The parent logs too, before and after starting the children: with fork they
    # inherit its queued records, which stay the parent's to send (once).
    program = write_program(
        tmp_path,
        f"""
import billiard, multiprocessing

if __name__ == "__main__":
    work({TOTAL}, 50)
    tasks = [(n * {PER_CHILD}, {PER_CHILD}) for n in range({CHILDREN})]
    children = [{process}(target=work, args=task) for task in tasks]
    for child in children:
        child.start()
    work({TOTAL} + 50, 50)
    for child in children:
        child.join(60)
    print([child.exitcode for child in children])
""",
    )
    assert run_ok(capture_server, program).split() == ["[0,", "0,", "0,", "0]"]
    assert delivered_span_ids(capture_server, TOTAL + 100) == list(range(TOTAL + 100))


#: How each program makes its pool.
POOLS = {
    **{
        method: f"multiprocessing.get_context({method!r}).Pool({CHILDREN})"
        for method in START_METHODS
    },
    # Each worker exits after one task and a new one takes its place.
    "fork-maxtasksperchild": 'multiprocessing.get_context("fork").Pool(2, maxtasksperchild=1)',
    # The initializer applies the configuration again, so the worker's handler is built
    # after multiprocessing started the child (and the inherited one is closed).
    **{
        f"{method}-handler-built-in-worker": f"multiprocessing.get_context({method!r}).Pool("
        "2, initializer=logging.config.dictConfig, initargs=(CONFIG,))"
        for method in ("fork", "spawn")
    },
    # billiard's Pool (outside Celery) ends its workers with os._exit() and no exit
    # step; its on_process_exit hook runs in each worker just before (the README's pattern).
    "billiard-on_process_exit": f"billiard.pool.Pool({CHILDREN}, on_process_exit=close_handler)",
}


@pytest.mark.parametrize("pool", POOLS.values(), ids=POOLS.keys())
def test_pool_close_and_join_delivers_everything_once(
    capture_server: CaptureServer, tmp_path: Path, pool: str
) -> None:
    program = write_program(
        tmp_path,
        f"""
import billiard.pool, multiprocessing

def close_handler(pid, exitcode):
    posthog_handler().close()

if __name__ == "__main__":
    pool = {pool}
    tasks = [(n * {PER_CHILD // 2}, {PER_CHILD // 2}) for n in range({CHILDREN * 2})]
    print(sum(pool.starmap(work, tasks)))
    pool.close()
    pool.join()
""",
    )
    assert run_ok(capture_server, program).strip() == str(TOTAL)
    assert delivered_span_ids(capture_server, TOTAL) == list(range(TOTAL))


def test_process_pool_executor_delivers_everything_once(
    capture_server: CaptureServer, tmp_path: Path
) -> None:
    # With the platform's default start method; leaving the block shuts the pool down.
    program = write_program(
        tmp_path,
        f"""
from concurrent.futures import ProcessPoolExecutor

if __name__ == "__main__":
    firsts = range(0, {TOTAL}, {PER_CHILD // 2})
    with ProcessPoolExecutor({CHILDREN}) as executor:
        print(sum(executor.map(work, firsts, [{PER_CHILD // 2}] * len(firsts))))
""",
    )
    assert run_ok(capture_server, program).strip() == str(TOTAL)
    assert delivered_span_ids(capture_server, TOTAL) == list(range(TOTAL))


def test_children_that_fail_or_call_sys_exit_still_deliver(
    capture_server: CaptureServer, tmp_path: Path
) -> None:
    program = write_program(
        tmp_path,
        """
import multiprocessing

def fails(first):
    work(first, 100)
    raise RuntimeError("task failed")

def exits(first):
    work(first, 100)
    sys.exit(3)

if __name__ == "__main__":
    sys.stderr = open(os.devnull, "w")  # the failing child's traceback
    context = multiprocessing.get_context("fork")
    targets = [fails, exits]
    children = [context.Process(target=target, args=(n * 100,)) for n, target in enumerate(targets)]
    for child in children:
        child.start()
    for child in children:
        child.join(60)
    print([child.exitcode for child in children])
""",
    )
    assert run_ok(capture_server, program).strip() == "[1, 3]"
    assert delivered_span_ids(capture_server, 200) == list(range(200))


# ------------------------------------------------------- when a task must flush
#: The README's two patterns for a ``with Pool(...)`` block, whose end terminates the
#: workers (SIGTERM): nothing runs at their exit, so they must deliver before it.
WITH_POOL_PATTERNS = {
    "flush-in-each-task": ("posthog_handler().flush()", ""),
    "close-and-join-in-the-block": ("", "pool.close(); pool.join()"),
}


@pytest.mark.parametrize("pattern", WITH_POOL_PATTERNS.values(), ids=WITH_POOL_PATTERNS.keys())
def test_with_pool_block_delivers_with_the_readme_patterns(
    capture_server: CaptureServer, tmp_path: Path, pattern: tuple[str, str]
) -> None:
    at_task_end, at_block_end = pattern
    program = write_program(
        tmp_path,
        f"""
import multiprocessing

def task(first, count):
    try:
        return work(first, count)
    finally:
        {at_task_end or "pass"}

if __name__ == "__main__":
    with multiprocessing.get_context("fork").Pool({CHILDREN}) as pool:
        tasks = [(n * {PER_CHILD // 2}, {PER_CHILD // 2}) for n in range({CHILDREN * 2})]
        print(sum(pool.starmap(task, tasks)))
        {at_block_end}
""",
    )
    assert run_ok(capture_server, program).strip() == str(TOTAL)
    assert delivered_span_ids(capture_server, TOTAL) == list(range(TOTAL))


def test_os_exit_after_flush_delivers(capture_server: CaptureServer, tmp_path: Path) -> None:
    program = write_program(
        tmp_path,
        """
pid = os.fork()
if pid == 0:
    work(0, 300)
    posthog_handler().flush()
    os._exit(0)
_, status = os.waitpid(pid, 0)
print(os.waitstatus_to_exitcode(status))
""",
    )
    assert run_ok(capture_server, program).strip() == "0"
    assert delivered_span_ids(capture_server, 300) == list(range(300))


# ------------------------------------------------------------------ Celery, gunicorn
def wait_for_exit(process: subprocess.Popen[str], timeout: float) -> tuple[str, str]:
    """Wait for ``process`` to end (killing it after ``timeout``); its stdout and stderr."""
    try:
        return process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        out, err = process.communicate()
        pytest.fail(f"still running after {timeout} s\nstdout:\n{out}\nstderr:\n{err}")


CELERY_TASKS = """
from celery import Celery
from celery.signals import setup_logging

BROKER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "broker")
app = Celery("tasks", broker="filesystem://", backend="file://" + os.path.join(BROKER, "results"))
app.conf.broker_transport_options = {"data_folder_in": BROKER, "data_folder_out": BROKER}
app.conf.broker_connection_retry_on_startup = True


@setup_logging.connect
def configure_logging(**kwargs):
    logging.config.dictConfig(CONFIG)


@app.task
def log_spans(first, count):
    return work(first, count)
"""

CELERY_CLIENT = """
from tasks import log_spans

results = [log_spans.delay(n * 250, 250) for n in range(8)]
print(sum(result.get(timeout=60) for result in results))
"""


def test_celery_prefork_workers_deliver_on_warm_shutdown(
    capture_server: CaptureServer, tmp_path: Path
) -> None:
    with celery_worker(capture_server, tmp_path):
        assert capture_server.events == []  # nothing sent while the workers run
    assert delivered_span_ids(capture_server, 2000) == list(range(2000))


def test_celery_prefork_workers_replaced_after_max_tasks_deliver(
    capture_server: CaptureServer, tmp_path: Path
) -> None:
    with celery_worker(capture_server, tmp_path, "--max-tasks-per-child=1"):
        # Each pool process exits after its task, before any shutdown: all arrive.
        assert delivered_span_ids(capture_server, 2000) == list(range(2000))


@contextmanager
def celery_worker(
    server: CaptureServer, directory: Path, *options: str
) -> Iterator[subprocess.Popen[str]]:
    """A real ``celery worker`` (prefork, 2 processes) that has run the client's 8 tasks.

    Leaving the block stops it with a warm shutdown (SIGTERM: the pool is closed and
    joined) and waits for it to end.
    """
    (directory / "broker" / "results").mkdir(parents=True)
    write_program(directory, CELERY_TASKS, name="tasks.py", configure=False)
    env = program_env(server, directory)
    worker = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "tasks", "worker", "--pool=prefork",
         "--concurrency=2", "--without-gossip", "--without-mingle", "--without-heartbeat",
         *options],
        cwd=directory, env=env, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        client = subprocess.run(
            [sys.executable, "-c", CELERY_CLIENT],
            cwd=directory, env=env, capture_output=True, text=True, timeout=90, check=False,
        )  # fmt: skip
        assert client.stdout.strip() == "2000", client.stderr
        yield worker
    finally:
        worker.send_signal(signal.SIGTERM)
        _, stderr = wait_for_exit(worker, 60)
        assert worker.returncode == 0, stderr


GUNICORN_APP = """
def app(environ, start_response):
    first, count = (int(n) for n in environ["QUERY_STRING"].split(","))
    work(first, count)
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"ok"]
"""


def test_gunicorn_sync_workers_deliver_on_graceful_stop(
    capture_server: CaptureServer, tmp_path: Path
) -> None:
    # gunicorn applies ``logconfig_dict`` in the arbiter, which forks the workers.
    write_program(tmp_path, GUNICORN_APP, name="wsgi.py", configure=False)
    (tmp_path / "gunicorn.conf.py").write_text(
        textwrap.dedent("""
        from wsgi import CONFIG
        logconfig_dict = {**CONFIG, "root": {"level": "WARNING", "handlers": []}}
        workers = 2
        worker_class = "sync"
        """)
    )
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "--bind", f"127.0.0.1:{port}", "wsgi:app"],
        cwd=tmp_path, env=program_env(capture_server, tmp_path), text=True,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        for n in range(100):
            assert get(f"http://127.0.0.1:{port}/?{n * 20},20", deadline) == b"ok"
        assert capture_server.events == []  # nothing sent while the workers run
    finally:
        server.send_signal(signal.SIGTERM)  # graceful stop: workers finish and exit
        _, stderr = wait_for_exit(server, 60)
    assert server.returncode == 0, stderr
    assert delivered_span_ids(capture_server, 2000) == list(range(2000))


def test_a_worker_ended_by_os_exit_keeps_its_shutdown_timeout_against_a_hanging_server(
    capture_server: CaptureServer, tmp_path: Path
) -> None:
    # No atexit hook runs in a fork child: its close() (from multiprocessing's exit
    # step) alone takes the handler's shutdown_timeout, and no more: the requests
    # would hang for 600 s, so a child that ends within the join's PATIENCE kept it.
    capture_server.answer_by_default(ScriptedResponse(hang=True))
    program = write_program(
        tmp_path,
        f"""
import multiprocessing, time
CONFIG["handlers"]["posthog"].update(shutdown_timeout=1.0, request_timeout=600.0)
logging.config.dictConfig(CONFIG)

if __name__ == "__main__":
    child = multiprocessing.get_context("fork").Process(target=work, args=(0, 50))
    started = time.monotonic()
    child.start()
    child.join({PATIENCE})
    print(child.exitcode, time.monotonic() - started)
    if child.exitcode is None:
        child.kill()
""",
        configure=False,
    )
    result = run_program(capture_server, program, timeout=2 * PATIENCE)
    assert result.returncode == 0, result.stderr
    exitcode, took = result.stdout.split()
    assert exitcode == "0"  # it ended (None: still running after PATIENCE)
    assert float(took) >= 1.0  # and used its shutdown_timeout
    assert "closed with dropped events {'shutdown_deadline': 50}" in result.stderr
