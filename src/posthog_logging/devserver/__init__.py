"""A local PostHog-compatible capture endpoint, for development and tests.

``posthog-logging dev-server`` runs it: it prints each trace as a tree as its
events arrive and serves a web viewer on the same address, so a machine with
no PostHog account still shows what the handler sends.  The test suite uses
the same server over real HTTP, and its scripted faults are how the
reliability tests reach the failure paths without mocking the transport.

One module per part: :mod:`.capture` (the HTTP server), :mod:`.faults`
(scripted answers), :mod:`.store` (the traces held, each ``uuid`` once),
:mod:`.tree` (trace trees and the terminal printer), :mod:`.viewer` (the web
page and its JSON API) and :mod:`.serve` (the command putting them together).
"""

from __future__ import annotations

from .capture import CaptureServer, Page, PageSource, ReceivedRequest, check_latency
from .events import group_by_trace
from .faults import ACCEPTED_BODY, DROPPED, ScriptedResponse
from .serve import dev_server, serve_forever
from .store import TraceStore
from .tree import TracePrinter, render_trace_tree, trace_rows
from .viewer import TraceViewer

__all__ = [
    "ACCEPTED_BODY",
    "DROPPED",
    "CaptureServer",
    "Page",
    "PageSource",
    "ReceivedRequest",
    "ScriptedResponse",
    "TracePrinter",
    "TraceStore",
    "TraceViewer",
    "check_latency",
    "dev_server",
    "group_by_trace",
    "render_trace_tree",
    "serve_forever",
    "trace_rows",
]
