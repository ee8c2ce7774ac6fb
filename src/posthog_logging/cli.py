"""The ``posthog-logging`` command: ``dev-server``, ``replay`` and ``send``.

Each sub-command is one ``_add_<name>`` function that declares its arguments
and the function that runs it (``set_defaults(run=...)``); adding a command is
writing that function and listing it in ``COMMANDS``.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, TypeAlias

from .config import (
    PRIVACY_MODE_ENV,
    flag_setting,
    hook_setting,
    resolve_api_key,
    resolve_host,
    sample_rate_setting,
)
from .devserver import check_latency, serve_forever
from .handler import PosthogLogHandler
from .mapping import MappingOptions
from .replay import Replayer
from .sampling import sampler_for
from .send import SEND_BLOCK_TIMEOUT, run_send
from .transport import Transport

Command = Callable[[argparse.Namespace], int]
if TYPE_CHECKING:
    # Not subscriptable at run time; the name is argparse's own.
    Commands: TypeAlias = argparse._SubParsersAction[argparse.ArgumentParser]


def _add_dev_server(commands: Commands) -> None:
    parser = commands.add_parser(
        "dev-server",
        help="local capture server that prints each trace as a tree and shows it in a browser",
        description="Accepts PostHog batch requests (gzip or not), prints every trace "
        "it receives as an indented tree and serves a trace viewer at its own address "
        "(http://127.0.0.1:8765/). Point the handler at it with "
        "POSTHOG_HOST=http://127.0.0.1:8765 and any POSTHOG_API_KEY.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8765, help="port to listen on (default 8765)")
    parser.add_argument("--verbose", action="store_true", help="also log every HTTP request")
    parser.add_argument(
        "--latency",
        type=_latency,
        default=0.0,
        metavar="SECONDS",
        help="answer each POST this long after its body arrived, as a network round trip "
        "would; requests in flight at once overlap (default 0)",
    )
    parser.add_argument(
        "--no-web",
        dest="web",
        action="store_false",
        help="no trace viewer: only the trees in the terminal",
    )
    parser.add_argument(
        "--store",
        metavar="PATH",
        help="also keep the events in this JSON-lines file, and show them again after a restart",
    )
    parser.set_defaults(run=_run_dev_server)


def _latency(text: str) -> float:
    try:
        return check_latency(float(text))
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def _run_dev_server(args: argparse.Namespace) -> int:
    serve_forever(
        args.host,
        args.port,
        sys.stdout,
        verbose=args.verbose,
        latency=args.latency,
        web=args.web,
        store_path=args.store,
    )
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
    _add_delivery_options(parser)
    parser.set_defaults(run=_run_replay)


def _add_delivery_options(parser: argparse.ArgumentParser) -> None:
    """Where to send and how to map: the handler's options, for the commands that send."""
    parser.add_argument("--api-key", help="project API key (default: $POSTHOG_API_KEY)")
    parser.add_argument("--host", help="PostHog host (default: $POSTHOG_HOST, else US cloud)")
    parser.add_argument(
        "--mastra-compat",
        action="store_true",
        help="map span records exactly as @mastra/posthog 1.3.11 does",
    )
    parser.add_argument(
        "--privacy-mode",
        action=argparse.BooleanOptionalAction,
        help="strip prompt and response content from span records (default: $POSTHOG_PRIVACY_MODE)",
    )
    parser.add_argument("--default-distinct-id", help="distinct id when no userId is known")
    parser.add_argument(
        "--sample-rate",
        type=float,
        help="keep this fraction of span records' traces (default: $POSTHOG_AI_TRACE_SAMPLE_RATE)",
    )
    parser.add_argument("--mask", help="mask for span records' content, as package.module:function")
    parser.add_argument("--before-send", help="before_send for span records' events, likewise")


def _api_key(command: str, args: argparse.Namespace) -> str | None:
    """The API key for a command that sends; None (and a message) when there is none."""
    api_key = resolve_api_key(args.api_key)
    if api_key is None:
        print(
            f"posthog-logging {command}: no API key (use --api-key or POSTHOG_API_KEY)",
            file=sys.stderr,
        )
    return api_key


def _run_replay(args: argparse.Namespace) -> int:
    api_key = _api_key("replay", args)
    if api_key is None:
        return 2
    try:  # the handler's settings, read the handler's way
        privacy_mode = flag_setting(args.privacy_mode, "--privacy-mode", PRIVACY_MODE_ENV)
        sampler = sampler_for(sample_rate_setting(args.sample_rate))
        mask = hook_setting(args.mask, "--mask")
        before_send = hook_setting(args.before_send, "--before-send")
    except (TypeError, ValueError) as error:
        print(f"posthog-logging replay: {error}", file=sys.stderr)
        return 2
    options = MappingOptions(
        mastra_compat=args.mastra_compat,
        privacy_mode=privacy_mode,
        default_distinct_id=args.default_distinct_id,
    )
    replayer = Replayer(
        Transport(api_key, resolve_host(args.host)),
        options,
        sampler=sampler,
        mask=mask,
        before_send=before_send,
    )
    report = replayer.replay(args.paths)
    for file in report.files:
        print(file.describe())
    print(f"replayed {report.delivered} events from {len(report.files)} files")
    return 1 if report.failed else 0


def _add_send(commands: Commands) -> None:
    parser = commands.add_parser(
        "send",
        help="deliver JSON lines from stdin or a growing file, as the handler would",
        description="Reads SpanJsonFormatter lines (span, feedback and posthog_event "
        "records) and already-mapped events, continuously, from stdin (-) or from a file "
        "it follows like tail -F, and delivers them through the handler's pipeline: "
        "mapping, batching, concurrent requests, spill. Stops at EOF or on SIGTERM/SIGINT "
        "after delivering everything it read; bad lines are counted and reported. Spans "
        "of one trace must reach the same consumer: partition by traceId.",
    )
    parser.add_argument(
        "source", nargs="?", default="-", metavar="-|PATH", help="stdin (default) or a file"
    )
    _add_delivery_options(parser)
    parser.add_argument("--spill-dir", help="where undeliverable events go (replay them later)")
    parser.add_argument(
        "--flush-interval",
        type=float,
        default=None,
        metavar="SECONDS",
        help="send what is buffered at least this often (default: the handler's, 10)",
    )
    parser.add_argument(
        "--shutdown-timeout",
        type=float,
        default=10.0,
        metavar="SECONDS",
        help="at EOF or SIGTERM, how long to keep delivering before spilling (default 10)",
    )
    parser.add_argument(
        "--state",
        type=Path,
        metavar="FILE",
        help="with a file source: keep the read offset in FILE, so a restart resumes there",
    )
    parser.set_defaults(run=_run_send)


def _run_send(args: argparse.Namespace) -> int:
    api_key = _api_key("send", args)
    if api_key is None:
        return 2
    if args.state is not None and args.source == "-":
        print("posthog-logging send: --state needs a file to follow, not stdin", file=sys.stderr)
        return 2
    handler = PosthogLogHandler(
        api_key=api_key,
        host=args.host,
        default_distinct_id=args.default_distinct_id,
        privacy_mode=args.privacy_mode,
        mastra_compat=args.mastra_compat,
        spill_dir=args.spill_dir,
        sample_rate=args.sample_rate,
        mask=args.mask,
        before_send=args.before_send,
        flush_interval=args.flush_interval,
        shutdown_timeout=args.shutdown_timeout,
        overflow="block",
        block_timeout=SEND_BLOCK_TIMEOUT,
    )
    return run_send(args.source, handler, sys.stdin.fileno(), sys.stderr, args.state)


#: One entry per sub-command, in the order ``--help`` lists them.
COMMANDS: tuple[Callable[[Commands], None], ...] = (_add_dev_server, _add_replay, _add_send)


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
