"""The ``posthog-logging`` command: ``dev-server`` and ``replay``.

Each sub-command is one ``_add_<name>`` function that declares its arguments
and the function that runs it (``set_defaults(run=...)``); adding a command is
writing that function and listing it in ``COMMANDS``.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, TypeAlias

from .contract import SpanEvent
from .devserver import serve_forever
from .handler import resolve_api_key, resolve_host
from .mapping import EventMapper, MappingOptions, SpanRejected
from .spill import Replayer
from .transport import Transport
from .values import time_ms

Command = Callable[[argparse.Namespace], int]
if TYPE_CHECKING:
    # Not subscriptable at run time; the name is argparse's own.
    Commands: TypeAlias = argparse._SubParsersAction[argparse.ArgumentParser]


def _add_dev_server(commands: Commands) -> None:
    parser = commands.add_parser(
        "dev-server",
        help="local capture server that prints each trace as a tree",
        description="Accepts PostHog batch requests (gzip or not) and prints every trace "
        "it receives as an indented tree. Point the handler at it with "
        "POSTHOG_HOST=http://127.0.0.1:8765 and any POSTHOG_API_KEY.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8765, help="port to listen on (default 8765)")
    parser.add_argument("--verbose", action="store_true", help="also log every HTTP request")
    parser.set_defaults(run=_run_dev_server)


def _run_dev_server(args: argparse.Namespace) -> int:
    serve_forever(args.host, args.port, sys.stdout, verbose=args.verbose)
    return 0


def _add_replay(commands: Commands) -> None:
    parser = commands.add_parser(
        "replay",
        help="send spilled events to PostHog, each exactly once",
        description="Sends the events in spill files (and SpanJsonFormatter JSON-lines "
        "files) to PostHog's AI batch endpoint. Progress is recorded beside each file, "
        "so an interrupted replay resumes and a repeated one sends nothing twice; a "
        "file is deleted once everything in it was delivered.",
    )
    parser.add_argument("paths", nargs="+", metavar="PATH", help="spill files or directories")
    parser.add_argument("--api-key", help="project API key (default: $POSTHOG_API_KEY)")
    parser.add_argument("--host", help="PostHog host (default: $POSTHOG_HOST, else US cloud)")
    parser.add_argument(
        "--mastra-compat",
        action="store_true",
        help="map span records exactly as @mastra/posthog 1.3.11 does",
    )
    parser.add_argument(
        "--privacy-mode",
        action="store_true",
        help="strip prompt and response content from span records",
    )
    parser.add_argument("--default-distinct-id", help="distinct id when no userId is known")
    parser.set_defaults(run=_run_replay)


def _run_replay(args: argparse.Namespace) -> int:
    api_key = resolve_api_key(args.api_key)
    if api_key is None:
        print(
            "posthog-logging replay: no API key (use --api-key or POSTHOG_API_KEY)", file=sys.stderr
        )
        return 2
    options = MappingOptions(
        mastra_compat=args.mastra_compat,
        privacy_mode=args.privacy_mode,
        default_distinct_id=args.default_distinct_id,
    )
    replayer = Replayer(Transport(api_key, resolve_host(args.host)), RecordReader(options))
    report = replayer.replay(args.paths)
    for file in report.files:
        status = file.error or file.skipped or "done"
        print(
            f"{file.path}: {file.delivered} sent, {file.already_sent} lines sent before, "
            f"{file.malformed} malformed lines skipped ({status})"
        )
    print(f"replayed {report.delivered} events from {len(report.files)} files")
    return 1 if report.failed else 0


class RecordReader:
    """Maps ``SpanJsonFormatter`` lines (span, feedback, PostHog-event records) being replayed."""

    def __init__(self, options: MappingOptions) -> None:
        self.mapper = EventMapper(options, on_reject=self._reject)
        self.rejected = 0

    def _reject(self, rejected: SpanRejected) -> None:
        self.rejected += 1

    def __call__(self, line: dict[str, Any]) -> list[dict[str, Any]] | None:
        now_ms = time_ms(line.get("created")) or time_ms(line.get("time")) or 0
        try:
            if "span" in line:
                span_event = SpanEvent(line.get("span_event") or SpanEvent.ENDED.value)
                return self.mapper.map_span(line["span"], span_event, now_ms)
            if "feedback" in line:
                return [self.mapper.map_feedback(line["feedback"], now_ms)]
            if "posthog_event" in line:
                return [self.mapper.map_posthog_event(line["posthog_event"], now_ms)]
        except (SpanRejected, ValueError):
            self.rejected += 1
        return None


#: One entry per sub-command, in the order ``--help`` lists them.
COMMANDS: tuple[Callable[[Commands], None], ...] = (_add_dev_server, _add_replay)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="posthog-logging",
        description="PostHog LLM analytics through Python logging: tools.",
    )
    # No metavar: before Python 3.13, argparse would then align help text as if
    # command names were as short as the metavar, and wrap every long one.
    commands = parser.add_subparsers(title="commands", required=True)
    for add in COMMANDS:
        add(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; return its exit code (also for ``--help`` and usage errors)."""
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as stop:  # argparse exits after --help (0) and on usage errors (2)
        return stop.code if isinstance(stop.code, int) else 0
    run: Command = args.run
    try:
        return run(args)
    except KeyboardInterrupt:
        return 130
    except (OSError, ValueError, TypeError) as error:
        message = str(error)
        key = os.environ.get("POSTHOG_API_KEY")
        if key:
            message = message.replace(key, "[redacted]")
        print(f"posthog-logging: {message}", file=sys.stderr)
        return 2
