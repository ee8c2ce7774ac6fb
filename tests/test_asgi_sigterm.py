"""ASGI servers stopped by SIGTERM (Docker's and Kubernetes' stop) deliver every span.

Each server runs for real in a subprocess with a tiny FastAPI app whose handler
buffers everything (``flush_at`` and ``flush_interval`` far away): every request logs
one span, then the server gets SIGTERM.  uvicorn (and gunicorn's uvicorn workers)
shut down gracefully and then re-raise the signal, so the process dies by it and no
atexit hook runs; the spans reach the capture server only through what
:mod:`posthog_logging.servers` does on that signal path.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from posthog_logging.devserver import CaptureServer

from .helpers import delivered_span_ids, program_env

pytestmark = pytest.mark.slow

REQUESTS = 5

APP = """
import itertools, logging, os

from fastapi import FastAPI
from posthog_logging import PosthogLogHandler

handler = PosthogLogHandler(host=os.environ["TEST_HOST"], flush_at=100_000, flush_interval=600.0)
log = logging.getLogger("app.ai")
log.addHandler(handler)
log.setLevel(logging.INFO)
ids = itertools.count()
app = FastAPI()


def span(i):
    return {
        "id": f"{i:016x}", "traceId": f"{i:032x}", "parentSpanId": "f" * 16,
        "name": f"tool {i}", "type": "tool_call",
        "startTime": 1735689600.0, "endTime": 1735689601.5,
    }


@app.get("/async")
async def on_the_event_loop():
    log.info("tool", extra={"span": span(next(ids))})
    return {"ok": True}


@app.get("/sync")
def in_a_worker_thread():
    log.info("tool", extra={"span": span(next(ids))})
    return {"ok": True}
"""

GUNICORN = ["-m", "gunicorn", "app:app", "--bind", "unix:{socket}", "--workers", "1"]
SERVERS = {
    "uvicorn": ["-m", "uvicorn", "app:app", "--uds", "{socket}"],
    # The application (and its handler) made before the server starts; log_config=None
    # keeps uvicorn's dictConfig from closing every handler made before it.
    "uvicorn.run": [
        "-c",
        "import sys, uvicorn, app; uvicorn.run(app.app, uds=sys.argv[1], log_config=None)",
        "{socket}",
    ],
    "hypercorn": ["-m", "hypercorn", "app:app", "--bind", "unix:{socket}"],
    "gunicorn-uvicorn.workers": [*GUNICORN, "--worker-class", "uvicorn.workers.UvicornWorker"],
    "gunicorn-uvicorn_worker": [*GUNICORN, "--worker-class", "uvicorn_worker.UvicornWorker"],
}


@pytest.fixture
def app_dir(tmp_path: Path) -> Path:
    (tmp_path / "app.py").write_text(APP)
    return tmp_path


def started(server: CaptureServer, app_dir: Path, arguments: list[str]) -> subprocess.Popen[str]:
    """The server, once it answers on its socket (polled; a server that never does fails)."""
    socket = app_dir / "server.sock"
    command = [sys.executable, *(part.format(socket=socket) for part in arguments)]
    process = subprocess.Popen(
        command,
        cwd=app_dir,
        env=program_env(server, app_dir),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and process.poll() is None:
        try:
            with client(socket) as http:
                http.get("/missing")
            return process
        except httpx.TransportError:
            time.sleep(0.05)
    process.kill()
    pytest.fail(f"{arguments[1]} did not start: {process.communicate()[0]}")


def client(socket: Path) -> httpx.Client:
    return httpx.Client(transport=httpx.HTTPTransport(uds=str(socket)), base_url="http://app")


@pytest.fixture(params=sorted(SERVERS))
def running(
    request: pytest.FixtureRequest, capture_server: CaptureServer, app_dir: Path
) -> Iterator[tuple[str, subprocess.Popen[str], Path]]:
    process = started(capture_server, app_dir, SERVERS[request.param])
    yield request.param, process, app_dir / "server.sock"
    if process.poll() is None:
        process.kill()
        process.communicate()


def test_sigterm_delivers_every_span(
    running: tuple[str, subprocess.Popen[str], Path], capture_server: CaptureServer
) -> None:
    name, process, socket = running
    with client(socket) as http:
        for i in range(REQUESTS):
            assert http.get("/async" if i % 2 else "/sync").status_code == 200
    assert capture_server.events == []  # all still buffered
    process.send_signal(signal.SIGTERM)
    output = process.communicate(timeout=60)[0]
    assert delivered_span_ids(capture_server, REQUESTS) == list(range(REQUESTS)), output
    if name.startswith("uvicorn"):
        assert process.returncode == -signal.SIGTERM  # still ended by the signal, as uvicorn does
    assert "Traceback" not in output, output
