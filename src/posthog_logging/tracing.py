"""A small tracing API that emits Mastra-shaped span records through ``logging``.

Plain Python code has no Mastra to build span mappings, so this module does
it: ``span()`` / ``generation()`` / ``embedding()`` context managers (sync and
async), ``traced`` for functions and generators, and ``current_span()``.
Parent and trace ids flow through a ``ContextVar``, so nesting, ``asyncio``
tasks, threads started with a copied context and :class:`ContextThreadPoolExecutor`
workers all link up; ``traceparent()`` and ``span(traceparent=...)`` carry a
trace across processes as a W3C ``traceparent`` header.

Each span logs one record when it ends (``span_ended``), and one more when
it starts if ``emit_start=True``; the record's ``span`` is a fresh dict
built for that record, so nothing the caller does later can change it.
Serialising is the handler's job, on its own thread.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import datetime as dt
import functools
import inspect
import logging
import random
import re
import traceback
import uuid
from collections.abc import AsyncGenerator, Callable, Generator, Mapping
from typing import Any, ParamSpec, TypeVar, overload

from .contract import (
    CURRENT_SPAN,
    DEFAULT_SPAN_LOGGER,
    FEEDBACK_ATTR,
    POSTHOG_EVENT_ATTR,
    SPAN_ATTR,
    SPAN_EVENT_ATTR,
    SpanEvent,
    SpanType,
)
from .usage import normalize_usage
from .values import is_number, plain

#: Yielded items kept as a generator span's output before it only counts them.
MAX_RECORDED_ITEMS = 100


class _Unset:
    """Marks an argument not given (``None`` is a legitimate input or output)."""

    def __repr__(self) -> str:
        return "UNSET"


UNSET: Any = _Unset()

F = TypeVar("F", bound=Callable[..., Any])
SpanT = TypeVar("SpanT", bound="Span")
P = ParamSpec("P")
R = TypeVar("R")

_TRACE_ID = re.compile(r"[0-9a-f]{32}")
_SPAN_ID = re.compile(r"[0-9a-f]{16}")
_TRACEPARENT = re.compile(
    r"(?P<version>[0-9a-f]{2})-(?P<trace>[0-9a-f]{32})-(?P<span>[0-9a-f]{16})-[0-9a-f]{2}(-.*)?"
)


def new_id(bits: int) -> str:
    """A random lowercase hex id, as Mastra makes them (64-bit spans, 128-bit traces).

    ``random`` rather than ``secrets``: ids need to be unique, not unguessable,
    and the global generator is re-seeded in forked children.
    """
    return f"{random.getrandbits(bits):0{bits // 4}x}"


def new_event_uuid() -> str:
    """A random (version 4) event uuid, from ``random`` rather than ``os.urandom``.

    It has to be unique, not unguessable, and ``uuid.uuid4()``'s system call is
    most of what a capture costs the caller; ``random`` is re-seeded in forked
    children.
    """
    return str(uuid.UUID(int=random.getrandbits(128), version=4))


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def resolve_span_type(span_type: SpanType | str) -> SpanType:
    """A ``SpanType`` from a member, Mastra's value (``agent_run``) or name (``AGENT_RUN``)."""
    if isinstance(span_type, SpanType):
        return span_type
    if isinstance(span_type, str):
        try:
            return SpanType(span_type.lower())
        except ValueError:
            pass
    known = ", ".join(member.value for member in SpanType)
    raise ValueError(f"unknown span type {span_type!r}; use one of: {known}")


def _checked_id(kind: str, value: Any, pattern: re.Pattern[str], digits: int) -> str:
    """A W3C trace or span id (lowercase hex, not all zeros), else a clear ``ValueError``."""
    if not isinstance(value, str):
        raise TypeError(f"{kind} must be a str, not {type(value).__name__}")
    text = value.strip().lower()
    if not pattern.fullmatch(text) or text == "0" * digits:
        raise ValueError(
            f"{kind} must be {digits} hex digits, not all zero (W3C trace context), not {value!r}"
        )
    return text


def parse_traceparent(header: str) -> tuple[str, str]:
    """(trace id, parent span id) of a W3C ``traceparent`` header; ``ValueError`` if malformed."""
    if not isinstance(header, str):
        raise TypeError(f"traceparent must be a str, not {type(header).__name__}")
    match = _TRACEPARENT.fullmatch(header.strip().lower())
    version = match.group("version") if match else ""
    if match is None or version == "ff" or (version == "00" and match.group(4)):
        raise ValueError(
            "traceparent must look like 00-<32 hex trace id>-<16 hex span id>-<2 hex flags>, "
            f"not {header!r}"
        )
    return (
        _checked_id("traceparent trace id", match.group("trace"), _TRACE_ID, 32),
        _checked_id("traceparent parent id", match.group("span"), _SPAN_ID, 16),
    )


def _optional_mapping(name: str, value: Any) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise TypeError(f"{name} must be a mapping, not {type(value).__name__}")
    return dict(value)


def _resolve_logger(logger: logging.Logger | str | None) -> logging.Logger:
    if logger is None:
        return logging.getLogger(DEFAULT_SPAN_LOGGER)
    if isinstance(logger, logging.Logger):
        return logger
    if isinstance(logger, str):
        return logging.getLogger(logger)
    raise TypeError(f"logger must be a Logger or a logger name, not {type(logger).__name__}")


def error_info(error: BaseException | str, *, with_stack: bool = False) -> dict[str, Any]:
    """Mastra's ``errorInfo`` for an exception (or a message)."""
    if isinstance(error, str):
        return {"message": error, "category": "USER"}
    message = str(error) or ("cancelled" if isinstance(error, asyncio.CancelledError) else "")
    info: dict[str, Any] = {
        "message": message,
        "name": type(error).__name__,
        "category": "USER",
    }
    if with_stack:
        info["stack"] = "".join(traceback.format_exception(error))
    return info


class Span:
    """One span being recorded.  Use it as a context manager (``with``/``async with``)
    or call :meth:`start` and :meth:`end` yourself; ending twice logs once."""

    span_type: SpanType

    def __init__(
        self,
        name: str,
        type: SpanType | str = SpanType.GENERIC,
        *,
        input: Any = UNSET,
        metadata: Mapping[str, Any] | None = None,
        attributes: Mapping[str, Any] | None = None,
        tags: list[str] | None = None,
        logger: logging.Logger | str | None = None,
        emit_start: bool = False,
        capture_traceback: bool = False,
        parent: Span | _Unset | None = UNSET,
        is_event: bool = False,
        trace_id: str | None = None,
        parent_span_id: str | None = None,
        traceparent: str | None = None,
    ) -> None:
        if not isinstance(name, str):
            raise TypeError(f"span name must be a str, not {name.__class__.__name__}")
        self.name = name
        self.span_type = resolve_span_type(type)
        #: The parent's id when the parent lives elsewhere (another process or service).
        self.remote_parent_id: str | None = None
        remote_trace = self._remote_trace(trace_id, parent_span_id, traceparent, parent)
        if remote_trace is not None:
            parent = None
        self.parent: Span | None = current_span() if isinstance(parent, _Unset) else parent
        self.span_id = new_id(64)
        if remote_trace is not None:
            self.trace_id: str = remote_trace
        else:
            self.trace_id = self.parent.trace_id if self.parent is not None else new_id(128)
        inherited = self.parent.metadata if self.parent is not None else {}
        self.metadata: dict[str, Any] = {**inherited, **_optional_mapping("metadata", metadata)}
        self.attributes = _optional_mapping("attributes", attributes)
        if tags is not None and not isinstance(tags, (list, tuple)):
            raise TypeError(f"tags must be a list of str, not {tags.__class__.__name__}")
        self.tags = list(tags or ()) if self.is_root else []
        self.input = input
        self.output: Any = UNSET
        self.error: dict[str, Any] | None = None
        #: The exception that ended the span, for ``capture_exceptions`` (``$exception``);
        #: kept until the span is logged.
        self.exception: BaseException | None = None
        self.is_event = is_event
        self.emit_start = emit_start
        self.capture_traceback = capture_traceback
        self.logger = _resolve_logger(logger)
        self.start_time: dt.datetime | None = None
        self.end_time: dt.datetime | None = None
        self._tokens: list[Any] = []

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r} {self.span_type.value} {self.span_id}>"

    def _remote_trace(
        self,
        trace_id: str | None,
        parent_span_id: str | None,
        traceparent: str | None,
        parent: Span | _Unset | None,
    ) -> str | None:
        """The trace id to continue, from ``trace_id=``/``parent_span_id=`` or ``traceparent=``.

        Sets :attr:`remote_parent_id`.  ``None`` means: take the trace from the
        current (or given) parent span as usual.
        """
        if traceparent is not None:
            if trace_id is not None or parent_span_id is not None:
                raise ValueError("give traceparent= or trace_id=/parent_span_id=, not both")
            trace_id, parent_span_id = parse_traceparent(traceparent)
        if trace_id is None:
            if parent_span_id is not None:
                raise ValueError("parent_span_id= needs the trace_id= it belongs to")
            return None
        if not isinstance(parent, _Unset):
            raise ValueError("parent= and a trace to continue cannot be given together")
        if parent_span_id is not None:
            self.remote_parent_id = _checked_id("parent_span_id", parent_span_id, _SPAN_ID, 16)
        return _checked_id("trace_id", trace_id, _TRACE_ID, 32)

    @property
    def is_root(self) -> bool:
        """A root starts its trace here: no parent span, local or remote."""
        return self.parent is None and self.remote_parent_id is None

    # ------------------------------------------------------------ lifecycle
    def start(self: SpanT) -> SpanT:
        """Start the clock, and log ``span_started`` for a root span or with ``emit_start``.

        A root always announces its start, as Mastra's spans do: the handler then
        knows the root when its children end first, so their ``$ai_parent_id`` is
        the trace (PostHog's tree) and the root's ``userId`` covers the trace.
        """
        if self.start_time is None:
            self.start_time = _now()
            if (self.emit_start or self.is_root) and not self.is_event:
                self._emit(SpanEvent.STARTED)
        return self

    def end(self) -> None:
        """Stop the clock and log the span; later calls do nothing."""
        if self.end_time is not None:
            return
        self.start()
        self._before_end()
        self.end_time = _now()
        self._emit(SpanEvent.ENDED)
        # The record carries the exception now.  The span lets go of it: its traceback
        # holds the frame that holds this span, a cycle only the garbage collector breaks.
        self.exception = None

    def _before_end(self) -> None:
        """Hook for subclasses to settle defaults (e.g. streamed output)."""

    def __enter__(self: SpanT) -> SpanT:
        self.start()
        self._tokens.append(CURRENT_SPAN.set(self))
        return self

    def __exit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> None:
        CURRENT_SPAN.reset(self._tokens.pop())
        if exc is not None:
            self.record_exception(exc)
        self.end()

    async def __aenter__(self: SpanT) -> SpanT:
        return self.__enter__()

    async def __aexit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> None:
        self.__exit__(exc_type, exc, tb)

    # -------------------------------------------------------------- content
    def update(
        self,
        *,
        output: Any = UNSET,
        input: Any = UNSET,
        usage: Any = None,
        attributes: Mapping[str, Any] | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> Span:
        """Merge new content into the span (before it ends)."""
        if not isinstance(output, _Unset):
            self.output = output
        if not isinstance(input, _Unset):
            self.input = input
        self.attributes.update(_optional_mapping("attributes", attributes))
        self.metadata.update(_optional_mapping("metadata", metadata))
        if usage is not None:
            raw = plain(usage)
            self.attributes["usage"] = normalize_usage(raw)
            if self.span_type in _MODEL_TYPES:
                self.attributes["rawUsage"] = raw  # sent as $ai_usage (mapping-spec Part 2 (q))
        return self

    def set_error(self, error: BaseException | str) -> Span:
        """Mark the span as failed (``errorInfo``); an exception is kept for
        ``capture_exceptions``."""
        self.error = error_info(error, with_stack=self.capture_traceback)
        if isinstance(error, BaseException):
            self.exception = error
        return self

    def record_exception(self, error: BaseException) -> None:
        """Record an exception leaving the span; a generator's close is not an error."""
        if isinstance(error, GeneratorExit):
            return
        if isinstance(error, SystemExit) and error.code in (None, 0):
            return
        self.set_error(error)

    def event(
        self,
        name: str,
        *,
        type: SpanType | str | None = None,
        output: Any = UNSET,
        attributes: Mapping[str, Any] | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> Span:
        """Log a zero-duration event span under this span, at once."""
        event = Span(
            name,
            type or SpanType.GENERIC,
            attributes=attributes,
            metadata=metadata,
            logger=self.logger,
            parent=self,
            is_event=True,
        )
        event.output = output
        event.start_time = event.end_time = _now()
        event._emit(SpanEvent.ENDED)
        return event

    # ------------------------------------------------------------- records
    def to_span_dict(self) -> dict[str, Any]:
        """This span as a Mastra exported-span mapping (a fresh dict each call)."""
        span: dict[str, Any] = {
            "id": self.span_id,
            "traceId": self.trace_id,
            "name": self.name,
            "type": self.span_type.value,
            "startTime": self.start_time,
            "attributes": dict(self.attributes),
            "metadata": dict(self.metadata),
            "isEvent": self.is_event,
            "isRootSpan": self.is_root,
        }
        if self.parent is not None:
            span["parentSpanId"] = self.parent.span_id
        elif self.remote_parent_id is not None:
            span["parentSpanId"] = self.remote_parent_id
        if self.end_time is not None:
            span["endTime"] = self.end_time
        if not isinstance(self.input, _Unset):
            span["input"] = self.input
        if not isinstance(self.output, _Unset):
            span["output"] = self.output
        if self.error is not None:
            span["errorInfo"] = dict(self.error)
        if self.exception is not None:
            span["exception"] = self.exception
        if self.tags:
            span["tags"] = list(self.tags)
        return span

    def event_span_dict(
        self, name: str, output: Any, attributes: Mapping[str, Any]
    ) -> dict[str, Any]:
        """An event span under this one, as a mapping (for records made by the handler)."""
        event = Span(name, SpanType.GENERIC, attributes=attributes, parent=self, is_event=True)
        event.output = output
        event.start_time = event.end_time = _now()
        return event.to_span_dict()

    def _emit(self, span_event: SpanEvent) -> None:
        logger = self.logger
        if not logger.isEnabledFor(logging.INFO):
            return
        # makeRecord + handle is logger.info without findCaller(): the caller's file
        # and line would only ever point in here, and finding them costs a third.
        record = logger.makeRecord(
            logger.name,
            logging.INFO,
            __file__,
            0,
            "%s %s",
            (span_event.value, self.name),
            None,
            extra={SPAN_ATTR: self.to_span_dict(), SPAN_EVENT_ATTR: span_event.value},
        )
        logger.handle(record)


class Generation(Span):
    """A ``model_generation`` span, with streaming support through :meth:`chunk`.

    ``model``, ``provider``, ``parameters`` (Mastra's keys: ``temperature``,
    ``maxOutputTokens``...), ``streaming`` and ``tools`` (a list in any provider's
    shape, or Mastra's name -> tool map) go to its attributes, and so do
    ``prompt_name`` / ``prompt_version`` (``promptName`` / ``promptVersion``:
    ``$ai_prompt_name`` / ``$ai_prompt_version``, PostHog's Prompts page).
    """

    def __init__(
        self,
        name: str,
        *,
        model: str | None = None,
        provider: str | None = None,
        parameters: Mapping[str, Any] | None = None,
        streaming: bool | None = None,
        tools: list[Any] | Mapping[str, Any] | None = None,
        emit_chunks: bool = False,
        attributes: Mapping[str, Any] | None = None,
        prompt_name: str | None = None,
        prompt_version: str | int | None = None,
        **options: Any,
    ) -> None:
        merged = _model_attributes(
            attributes,
            model=model,
            provider=provider,
            parameters=None if parameters is None else dict(parameters),
            streaming=streaming,
            tools=_copied_tools(tools),
            **_prompt_attributes(prompt_name, prompt_version),
        )
        super().__init__(name, SpanType.MODEL_GENERATION, attributes=merged, **options)
        self.emit_chunks = emit_chunks
        self.chunk_count = 0
        self._text: list[str] = []

    def update(
        self,
        *,
        output: Any = UNSET,
        input: Any = UNSET,
        usage: Any = None,
        attributes: Mapping[str, Any] | None = None,
        metadata: Mapping[str, Any] | None = None,
        stop_reason: str | None = None,
    ) -> Generation:
        """:meth:`Span.update`, plus the model's ``stop_reason`` (``stop``, ``end_turn``...)."""
        super().update(
            output=output, input=input, usage=usage, attributes=attributes, metadata=metadata
        )
        if stop_reason is not None:
            if not isinstance(stop_reason, str):
                raise TypeError(f"stop_reason must be a str, not {type(stop_reason).__name__}")
            self.attributes["finishReason"] = stop_reason
        return self

    def chunk(self, chunk: Any = None, *, chunk_type: str = "text-delta") -> None:
        """Record one streamed chunk; the first sets the time to first token."""
        self.start()
        if self.chunk_count == 0:
            self.attributes["completionStartTime"] = _now()
        if isinstance(chunk, str):
            self._text.append(chunk)
        if self.emit_chunks:
            self.event(
                f"chunk: '{chunk_type}'",
                type=SpanType.MODEL_CHUNK,
                output=chunk,
                attributes={"chunkType": chunk_type, "sequenceNumber": self.chunk_count},
            )
        self.chunk_count += 1

    def _before_end(self) -> None:
        if isinstance(self.output, _Unset) and self._text:
            self.output = {"text": "".join(self._text)}
        if self.chunk_count:
            self.attributes.setdefault("streaming", True)


class Embedding(Span):
    """A ``model_embedding`` span: sent as ``$ai_embedding`` (model, input, input tokens).

    Record the token count with ``update(usage=response.usage)``; an embedding
    has no output worth sending, so none is.
    """

    def __init__(
        self,
        name: str,
        *,
        model: str | None = None,
        provider: str | None = None,
        attributes: Mapping[str, Any] | None = None,
        **options: Any,
    ) -> None:
        merged = _model_attributes(attributes, model=model, provider=provider)
        super().__init__(name, SpanType.MODEL_EMBEDDING, attributes=merged, **options)


#: Span types whose usage the provider reported (its raw object is kept as ``rawUsage``).
_MODEL_TYPES = frozenset({SpanType.MODEL_GENERATION, SpanType.MODEL_EMBEDDING})


def _prompt_attributes(name: Any, version: Any) -> dict[str, Any]:
    """``promptName`` / ``promptVersion`` attributes, checked (``TypeError`` when odd)."""
    if name is not None and not isinstance(name, str):
        raise TypeError(f"prompt_name must be a str, not {type(name).__name__}")
    if version is not None and not (isinstance(version, str) or is_number(version)):
        raise TypeError(f"prompt_version must be a str or a number, not {type(version).__name__}")
    return {"promptName": name, "promptVersion": version}


def _model_attributes(attributes: Mapping[str, Any] | None, **fields: Any) -> dict[str, Any]:
    """``attributes`` with the given model fields set (those that are not ``None``)."""
    merged = _optional_mapping("attributes", attributes)
    merged.update((key, value) for key, value in fields.items() if value is not None)
    return merged


def _copied_tools(tools: Any) -> Any:
    """A shallow copy of a tool list, or of Mastra's tool map (name -> tool)."""
    if tools is None:
        return None
    return dict(tools) if isinstance(tools, Mapping) else list(tools)


#: ``span(name, type=..., input=..., metadata=..., attributes=..., tags=...)``: a span under
#: the current one (or a new trace's root), for ``with`` / ``async with``.  ``trace_id=`` and
#: ``parent_span_id=``, or ``traceparent=``, continue a trace begun elsewhere.
span = Span
#: ``generation(name, model=..., provider=..., input=..., parameters=...)``: a model generation.
generation = Generation
#: ``embedding(name, model=..., provider=..., input=...)``: an embedding request.
embedding = Embedding


def current_span() -> Span | None:
    """The span the calling code runs in, if any."""
    current = CURRENT_SPAN.get()
    return current if isinstance(current, Span) else None


def traceparent() -> str | None:
    """The W3C ``traceparent`` header of the current span, or ``None`` outside any span.

    Send it with a request or a task; the receiving side continues the trace
    with ``span(..., traceparent=header)``.
    """
    current = current_span()
    if current is None:
        return None
    return f"00-{current.trace_id}-{current.span_id}-01"


def carry_context(function: Callable[P, R]) -> Callable[P, R]:
    """``function`` bound to a copy of the caller's context (current span included).

    For threads and executors that start with an empty context:
    ``pool.submit(pl.carry_context(work), item)`` or
    ``threading.Thread(target=pl.carry_context(work))``.  Each call of the
    returned function runs in its own copy, so calls do not see each other's spans.
    """
    context = contextvars.copy_context()

    @functools.wraps(function)
    def run_in_context(*args: P.args, **kwargs: P.kwargs) -> R:
        return context.copy().run(function, *args, **kwargs)

    return run_in_context


class ContextThreadPoolExecutor(concurrent.futures.ThreadPoolExecutor):
    """A ``ThreadPoolExecutor`` whose tasks run in the context they were submitted from.

    Spans opened in a task (``submit`` or ``map``) nest under the span that was
    current at submit time, as they would in the submitting thread.
    """

    def submit(
        self, fn: Callable[P, R], /, *args: P.args, **kwargs: P.kwargs
    ) -> concurrent.futures.Future[R]:
        return super().submit(carry_context(fn), *args, **kwargs)


def feedback(
    trace_id: str, value: Any, *, logger: logging.Logger | str | None = None, **fields: Any
) -> None:
    """Log Mastra feedback for a trace (``feedbackType``, ``comment``, ``spanId``,
    ``userId``... as keyword arguments with Mastra's names).

    Called inside a span of that trace, it names the span's user (unless ``userId``
    is given): feedback without one would be a personless event.
    """
    record = {"traceId": trace_id, "value": value, "timestamp": _now(), **fields}
    current = current_span()
    if current is not None and current.trace_id == trace_id and "userId" in current.metadata:
        record.setdefault("userId", current.metadata["userId"])
    _resolve_logger(logger).info("feedback %s", trace_id, extra={FEEDBACK_ATTR: record})


def metric(
    name: str,
    value: Any,
    *,
    trace_id: str | None = None,
    parent_id: str | None = None,
    logger: logging.Logger | str | None = None,
) -> None:
    """Log an ``$ai_metric`` (a score of a trace: ``helpfulness`` 0.8, ``passed`` 1 ...).

    By default it belongs to the current span's trace, under the current span;
    ``trace_id=`` (and ``parent_id=``, a span id) name another, e.g. from a
    feedback endpoint.  Its distinct id is the trace's user (the current span's
    ``userId``, else the user the handler knows for the trace), else the
    handler's ``default_distinct_id``, else the trace id without a person profile.
    It travels as a ``posthog_event`` record, so a span record producer can log
    the same dict itself (see ``docs/posthog-screens.md``).
    """
    if not isinstance(name, str) or not name:
        raise ValueError(f"metric name must be a non-empty str, not {name!r}")
    current = current_span()
    user = current.metadata.get("userId") if current is not None else None
    if trace_id is None:
        if current is None:
            raise ValueError("pl.metric() outside a span needs trace_id=")
        trace_id = current.trace_id
        if parent_id is None and not current.is_root:
            parent_id = current.span_id
    elif current is None or current.trace_id != trace_id:
        user = None
    properties: dict[str, Any] = {
        "$ai_metric_name": name,
        "$ai_metric_value": value,
        "$ai_trace_id": trace_id,
    }
    if parent_id is not None:
        properties["$ai_parent_id"] = parent_id
    event = {
        "event": "$ai_metric",
        "distinct_id": user,
        "properties": properties,
        "timestamp": _now(),
        "uuid": new_event_uuid(),
    }
    _resolve_logger(logger).info("metric %s", name, extra={POSTHOG_EVENT_ATTR: event})


# ------------------------------------------------------------------ traced


class _Yielded:
    """What a traced generator yielded: the items (up to a limit) and a count."""

    def __init__(self) -> None:
        self.items: list[Any] = []
        self.count = 0

    def add(self, item: Any) -> None:
        if self.count < MAX_RECORDED_ITEMS:
            self.items.append(item)
        self.count += 1

    def settle(self, span: Span, capture_output: bool) -> None:
        span.attributes["yieldedCount"] = self.count
        if capture_output:
            complete = self.count <= MAX_RECORDED_ITEMS
            span.output = self.items if complete else {"items": self.items, "count": self.count}


@overload
def traced(func: F, /) -> F: ...


@overload
def traced(
    func: None = None,
    /,
    *,
    type: SpanType | str = ...,
    name: str | None = ...,
    capture_input: bool = ...,
    capture_output: bool = ...,
    logger: logging.Logger | str | None = ...,
    prompt_name: str | None = ...,
    prompt_version: str | int | None = ...,
) -> Callable[[F], F]: ...


def traced(
    func: F | None = None,
    /,
    *,
    type: SpanType | str = SpanType.GENERIC,
    name: str | None = None,
    capture_input: bool = True,
    capture_output: bool = True,
    logger: logging.Logger | str | None = None,
    prompt_name: str | None = None,
    prompt_version: str | int | None = None,
) -> F | Callable[[F], F]:
    """Trace every call of a function, coroutine function, generator or async generator.

    ``prompt_name`` / ``prompt_version`` name the prompt of a
    ``type="model_generation"`` function, as for :class:`Generation`.
    """
    span_type = resolve_span_type(type)
    attributes: dict[str, Any] | None = None
    if prompt_name is not None or prompt_version is not None:
        if span_type is not SpanType.MODEL_GENERATION:
            raise ValueError("prompt_name= and prompt_version= need type='model_generation'")
        attributes = _prompt_attributes(prompt_name, prompt_version)

    def decorate(function: F) -> F:
        if not callable(function):
            raise TypeError(f"traced() decorates callables, not {function!r}")
        span_name = name or str(getattr(function, "__qualname__", repr(function)))
        signature = inspect.signature(function)

        def open_span(args: tuple[Any, ...], kwargs: dict[str, Any]) -> Span:
            call_input = _bound_arguments(signature, args, kwargs) if capture_input else UNSET
            return Span(
                span_name, span_type, input=call_input, attributes=attributes, logger=logger
            )

        def async_generator_call(*args: Any, **kwargs: Any) -> Any:
            span = open_span(args, kwargs)
            return _trace_async_generator(span, function(*args, **kwargs), capture_output)

        def generator_call(*args: Any, **kwargs: Any) -> Any:
            span = open_span(args, kwargs)
            return _trace_generator(span, function(*args, **kwargs), capture_output)

        async def coroutine_call(*args: Any, **kwargs: Any) -> Any:
            with open_span(args, kwargs) as current:
                result = await function(*args, **kwargs)
                if capture_output:
                    current.output = result
                return result

        def plain_call(*args: Any, **kwargs: Any) -> Any:
            with open_span(args, kwargs) as current:
                result = function(*args, **kwargs)
                if capture_output:
                    current.output = result
                return result

        wrapper: Callable[..., Any]
        if inspect.isasyncgenfunction(function):
            wrapper = async_generator_call
        elif inspect.isgeneratorfunction(function):
            wrapper = generator_call
        elif inspect.iscoroutinefunction(function):
            wrapper = coroutine_call
        else:
            wrapper = plain_call
        return functools.wraps(function)(wrapper)  # type: ignore[return-value]

    return decorate(func) if func is not None else decorate


def _bound_arguments(
    signature: inspect.Signature, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> dict[str, Any]:
    try:
        bound = signature.bind(*args, **kwargs)
    except TypeError:
        return {"args": list(args), "kwargs": dict(kwargs)}
    arguments = dict(bound.arguments)
    first = next(iter(signature.parameters), None)
    if first in ("self", "cls"):
        arguments.pop(first, None)
    return arguments


def _trace_generator(span: Span, generator: Generator[Any, Any, Any], capture_output: bool) -> Any:
    """Run ``generator`` inside ``span``; the span is current only while it runs."""
    yielded = _Yielded()
    span.start()
    to_send: Any = None
    thrown: BaseException | None = None
    try:
        while True:
            token = CURRENT_SPAN.set(span)
            try:
                item = generator.throw(thrown) if thrown is not None else generator.send(to_send)
            except StopIteration as stop:
                return stop.value
            finally:
                CURRENT_SPAN.reset(token)
            yielded.add(item)
            thrown = None
            try:
                to_send = yield item
            except GeneratorExit:
                generator.close()
                raise
            except BaseException as error:  # delivered into the generator next turn
                thrown = error
    except BaseException as error:
        span.record_exception(error)
        raise
    finally:
        yielded.settle(span, capture_output)
        span.end()


async def _trace_async_generator(
    span: Span, generator: AsyncGenerator[Any, Any], capture_output: bool
) -> Any:
    """The async twin of :func:`_trace_generator`."""
    yielded = _Yielded()
    span.start()
    to_send: Any = None
    thrown: BaseException | None = None
    try:
        while True:
            token = CURRENT_SPAN.set(span)
            try:
                if thrown is not None:
                    item = await generator.athrow(thrown)
                else:
                    item = await generator.asend(to_send)
            except StopAsyncIteration:
                return
            finally:
                CURRENT_SPAN.reset(token)
            yielded.add(item)
            thrown = None
            try:
                to_send = yield item
            except GeneratorExit:
                await generator.aclose()
                raise
            except BaseException as error:
                thrown = error
    except BaseException as error:
        span.record_exception(error)
        raise
    finally:
        yielded.settle(span, capture_output)
        span.end()
