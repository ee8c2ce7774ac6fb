"""A handler's settings, resolved once: the argument, else its environment variable,
else the default, each checked (``docs/api.md``, "The handler").

:meth:`Settings.resolve` is the one place that turns keyword arguments (the
handler's, ``dictConfig``'s strings, the command line's) into a frozen
:class:`Settings`, in the OpenTelemetry SDK's style: a ``_default_*`` step
for each value that has one, then the checks of :mod:`.config`, which raise at
configuration time with the argument's name and never the API key.  The
handler, ``send`` and ``replay`` all read their settings from here, so they
agree on the environment and refuse the same values.  Frozen: a forked child
reads the very settings its parent was built with.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field

from .config import (
    PRIVACY_MODE_ENV,
    SERVERLESS_ENV,
    flag_setting,
    hook_setting,
    optional_str,
    positive_int,
    positive_seconds,
    require_bool,
    resolve_api_key,
    resolve_host,
    sample_rate_setting,
)
from .congestion import RetryPolicy
from .encoding import MAX_EVENT_BYTES
from .journal import DEFAULT_FSYNC_INTERVAL
from .mapping import MappingOptions
from .redaction import BeforeSend, Mask
from .sender import DEFAULT_MAX_IN_FLIGHT

#: Records waiting for the listener before the oldest are dropped (counted).  Big
#: enough for a burst of 20,000 spans logged as fast as one thread can (the listener
#: drains meanwhile); small enough that the queue, whose records can't be measured
#: in bytes on the caller's thread, stays a fraction of the memory the bytes-bounded
#: buffer allows.
DEFAULT_MAX_QUEUE_SIZE = 32_768
#: Encoded events the sender holds (queued, in flight, or waiting out an outage).
DEFAULT_MAX_BUFFER_EVENTS = 100_000
DEFAULT_MAX_BUFFER_BYTES = 64 * 1024 * 1024
#: What happens when the caller's queue or the listener's buffer is full:
#: drop the oldest (counted), spill the oldest buffered events, or make the
#: caller wait up to ``block_timeout`` for room (then drop the oldest).
OVERFLOW_POLICIES = ("drop_oldest", "spill", "block")
DEFAULT_BLOCK_TIMEOUT = 1.0
DEFAULT_FLUSH_TIMEOUT = 5.0
DEFAULT_SHUTDOWN_TIMEOUT = 10.0
DEFAULT_REQUEST_TIMEOUT = 10.0
#: Batching: (flush_at, flush_interval) by default and with ``serverless=True``.
DEFAULT_BATCHING = (20, 10.0)
SERVERLESS_BATCHING = (10, 2.0)


@dataclass(frozen=True)
class Settings:
    """Every setting of a handler, checked; built by :meth:`resolve`."""

    api_key: str | None = field(repr=False)  # never in a repr (docs/mapping-rules.md §1.15)
    host: str
    flush_at: int
    flush_interval: float
    serverless: bool
    default_distinct_id: str | None
    privacy_mode: bool
    mastra_compat: bool
    spill_dir: str | None
    fsync_interval: float
    max_queue_size: int
    max_buffer_events: int
    max_buffer_bytes: int
    overflow: str
    block_timeout: float
    max_event_bytes: int
    retry: RetryPolicy
    flush_timeout: float
    shutdown_timeout: float
    request_timeout: float
    max_in_flight: int
    gzip: bool
    capture_logs: bool
    sample_rate: float | None
    mask: Mask | None
    before_send: BeforeSend | None
    capture_exceptions: bool
    redact_media: bool

    @property
    def disabled(self) -> bool:
        """No API key: every record is a cheap no-op (docs/mapping-rules.md §1.15)."""
        return self.api_key is None

    @property
    def mapping_options(self) -> MappingOptions:
        """The settings that change what the mapping produces."""
        return MappingOptions(
            mastra_compat=self.mastra_compat,
            default_distinct_id=self.default_distinct_id,
            capture_exceptions=self.capture_exceptions,
            redact_media=self.redact_media,
        )

    @classmethod
    def resolve(
        cls,
        api_key: str | None = None,
        host: str | None = None,
        flush_at: int | None = None,
        flush_interval: float | None = None,
        serverless: bool | None = None,
        default_distinct_id: str | None = None,
        privacy_mode: bool | None = None,
        mastra_compat: bool = False,
        spill_dir: str | os.PathLike[str] | None = None,
        *,
        max_queue_size: int = DEFAULT_MAX_QUEUE_SIZE,
        max_buffer_events: int = DEFAULT_MAX_BUFFER_EVENTS,
        max_buffer_bytes: int = DEFAULT_MAX_BUFFER_BYTES,
        overflow: str = "drop_oldest",
        block_timeout: float = DEFAULT_BLOCK_TIMEOUT,
        max_event_bytes: int = MAX_EVENT_BYTES,
        max_attempts: int = RetryPolicy.max_attempts,
        retry_base_delay: float = RetryPolicy.base_delay,
        retry_max_delay: float = RetryPolicy.max_delay,
        flush_timeout: float = DEFAULT_FLUSH_TIMEOUT,
        shutdown_timeout: float = DEFAULT_SHUTDOWN_TIMEOUT,
        request_timeout: float = DEFAULT_REQUEST_TIMEOUT,
        max_in_flight: int = DEFAULT_MAX_IN_FLIGHT,
        gzip: bool = True,
        capture_logs: bool = False,
        sample_rate: float | None = None,
        mask: Mask | str | None = None,
        before_send: BeforeSend | str | None = None,
        capture_exceptions: bool = False,
        redact_media: bool = True,
        fsync_interval: float = DEFAULT_FSYNC_INTERVAL,
        labels: Mapping[str, str] | None = None,
    ) -> Settings:
        """Check every argument and fill in what was left unset.

        ``labels`` names arguments the way the caller's user spelled them (the
        command line's ``--mask``), for the error messages.
        """
        label = (labels or {}).get
        serverless = flag_setting(serverless, label("serverless", "serverless"), SERVERLESS_ENV)
        privacy_mode = flag_setting(
            privacy_mode, label("privacy_mode", "privacy_mode"), PRIVACY_MODE_ENV
        )
        checked_sample_rate = sample_rate_setting(sample_rate)
        checked_mask: Mask | None = hook_setting(mask, label("mask", "mask"))
        checked_before_send: BeforeSend | None = hook_setting(
            before_send, label("before_send", "before_send")
        )
        for name, flag in (
            ("mastra_compat", mastra_compat),
            ("gzip", gzip),
            ("capture_logs", capture_logs),
            ("capture_exceptions", capture_exceptions),
            ("redact_media", redact_media),
        ):
            require_bool(name, flag)
        default_flush_at, default_flush_interval = _default_batching(serverless)
        optional_str("default_distinct_id", default_distinct_id)
        if overflow not in OVERFLOW_POLICIES:
            raise ValueError(f"overflow must be one of {OVERFLOW_POLICIES}, got {overflow!r}")
        if overflow == "spill" and spill_dir is None:
            raise ValueError("overflow='spill' needs spill_dir")
        return cls(
            flush_at=positive_int("flush_at", flush_at, default_flush_at),
            flush_interval=positive_seconds(
                "flush_interval", flush_interval, default_flush_interval
            ),
            max_queue_size=positive_int("max_queue_size", max_queue_size),
            max_buffer_events=positive_int("max_buffer_events", max_buffer_events),
            max_buffer_bytes=positive_int("max_buffer_bytes", max_buffer_bytes),
            flush_timeout=positive_seconds("flush_timeout", flush_timeout),
            shutdown_timeout=positive_seconds("shutdown_timeout", shutdown_timeout),
            request_timeout=positive_seconds("request_timeout", request_timeout),
            max_in_flight=positive_int("max_in_flight", max_in_flight),
            serverless=serverless,
            privacy_mode=privacy_mode,
            mastra_compat=mastra_compat,
            default_distinct_id=default_distinct_id,
            spill_dir=None if spill_dir is None else os.fspath(spill_dir),
            fsync_interval=positive_seconds("fsync_interval", fsync_interval),
            overflow=overflow,
            block_timeout=positive_seconds("block_timeout", block_timeout),
            max_event_bytes=positive_int("max_event_bytes", max_event_bytes),
            retry=RetryPolicy(
                max_attempts=positive_int("max_attempts", max_attempts),
                base_delay=positive_seconds("retry_base_delay", retry_base_delay),
                max_delay=positive_seconds("retry_max_delay", retry_max_delay),
            ),
            gzip=gzip,
            capture_logs=capture_logs,
            sample_rate=checked_sample_rate,
            mask=checked_mask,
            before_send=checked_before_send,
            capture_exceptions=capture_exceptions,
            redact_media=redact_media,
            # Last, once every other value is valid: a missing host logs a note.
            host=resolve_host(host),
            api_key=resolve_api_key(api_key),
        )


def _default_batching(serverless: bool) -> tuple[int, float]:
    """``(flush_at, flush_interval)`` when not given: smaller and sooner when serverless."""
    return SERVERLESS_BATCHING if serverless else DEFAULT_BATCHING
