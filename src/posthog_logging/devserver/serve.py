"""``posthog-logging dev-server``: capture server, terminal trees and viewer, together."""

from __future__ import annotations

import contextlib
import os
import sys
import time
from typing import TextIO

from .capture import CaptureServer
from .store import TraceStore
from .tree import TracePrinter
from .viewer import TraceViewer


def dev_server(
    out: TextIO,
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    web: bool = True,
    store: TraceStore | None = None,
    verbose: bool = False,
    latency: float = 0.0,
) -> tuple[CaptureServer, TracePrinter]:
    """The command's server, not started: every accepted event goes into ``store``
    (each ``uuid`` once), its trees to ``out``, and with ``web`` the viewer answers GETs."""
    store = store if store is not None else TraceStore()
    printer = TracePrinter(out, store=store)
    server = CaptureServer(
        host,
        port,
        on_request=printer.on_request,
        verbose=verbose,
        latency=latency,
        pages=TraceViewer(store) if web else None,
    )
    return server, printer


def serve_forever(
    host: str,
    port: int,
    out: TextIO,
    *,
    verbose: bool = False,
    latency: float = 0.0,
    web: bool = True,
    store_path: str | os.PathLike[str] | None = None,
) -> None:
    """Run the dev server until interrupted: trace trees to ``out``, and with ``web``
    the viewer on the same address; with ``store_path`` the events are kept there."""
    store = TraceStore(path=store_path, report=lambda message: print(message, file=sys.stderr))
    server, printer = dev_server(
        out, host, port, web=web, store=store, verbose=verbose, latency=latency
    )
    with server:
        answers = f", answering after {latency * 1000:g} ms" if latency else ""
        out.write(
            f"posthog-logging dev server listening on {server.url}{answers}"
            "  (set POSTHOG_HOST to this)\n"
        )
        if web:
            out.write(f"open {server.url}/ in a browser to read the traces\n")
        if store_path is not None:
            out.write(f"{len(store)} traces read back from {os.fspath(store_path)}\n")
        out.flush()
        with contextlib.suppress(KeyboardInterrupt):
            while True:
                time.sleep(0.5)
                printer.print_ready()
