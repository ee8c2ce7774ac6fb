"""``posthog_client()``: the ``posthog.ai`` wrappers, delivered through ``logging``.

posthog's own wrappers (OpenAI and Azure OpenAI, Anthropic incl. Bedrock and
Vertex, Gemini, LangChain's ``CallbackHandler``, the OpenAI Agents SDK ...)
measure each model call and hand a ready ``$ai_*`` event to their
``posthog_client`` with ``capture(event, distinct_id=..., properties=...)``
(``capture_ai`` when full AI capture is on).  :class:`LoggingPosthogClient`
is a stand-in for ``posthog.Client`` with exactly what those wrappers read,
from posthog 6.7 on, and logs each event as one record on the spans logger::

    extra={"posthog_event": {"event": ..., "distinct_id": ..., "properties": ...,
                             "timestamp": ..., "uuid": ..., "groups": ...}}

so the handler delivers it like a span: batching, retries, spill, replay,
stats, privacy mode, ``default_distinct_id``.

Inside a ``pl.span`` the call joins that trace.  This is decided here, on the
caller's thread at capture time, because that is where the current span is
known (a ``ContextVar``); the record then carries the final ids, so JSON-lines
output and replay see the same tree PostHog does.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
import uuid
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, cast

from posthog import contexts

from .contract import POSTHOG_EVENT_ATTR
from .tracing import Span, _resolve_logger, current_span, new_event_uuid
from .values import is_truthy, js_string

if TYPE_CHECKING:
    from posthog.client import Client

#: Events that hang in a trace's tree; a trace of the wrapper's own becomes a span.
_TREE_EVENTS = frozenset({"$ai_generation", "$ai_span", "$ai_embedding", "$ai_trace"})
#: Trace ids the wrappers make up when the caller passes none: a random UUID
#: (``posthog_trace_id``), a LangChain run id, an OpenAI Agents SDK trace id.
_AGENTS_TRACE_ID = re.compile(r"trace_[0-9a-f]{32}")


def _made_up_by_wrapper(trace_id: Any) -> bool:
    """True when ``trace_id`` is what a wrapper generates, not an id the caller chose."""
    if trace_id is None or isinstance(trace_id, uuid.UUID):
        return True
    if not isinstance(trace_id, str):
        return False
    if _AGENTS_TRACE_ID.fullmatch(trace_id):
        return True
    try:
        return str(uuid.UUID(trace_id)) == trace_id
    except ValueError:
        return False


class LoggingPosthogClient:
    """What the ``posthog.ai`` wrappers use of ``posthog.Client``, logging each event.

    Attributes they read (checked against posthog 6.7 and 7.x): ``capture``,
    ``capture_ai``, ``privacy_mode`` (6.7 reads it without a default),
    ``enable_full_ai_capture``, ``enable_exception_autocapture`` (False: LangChain
    then never calls ``capture_exception``), ``sync_mode`` (LangChain middleware)
    and ``flush`` (the agent SDK processors call it at shutdown).
    """

    #: Full AI capture (no truncation, media passed through) stays off: the handler
    #: shrinks oversize events itself, and wrappers then always call ``capture``.
    enable_full_ai_capture = False
    #: The handler reports errors as ``$ai_error``; no separate ``$exception`` events.
    enable_exception_autocapture = False
    #: Capturing only queues a record; nothing waits for the network.
    sync_mode = False

    def __init__(
        self,
        logger: logging.Logger | str | None = None,
        *,
        privacy_mode: bool = False,
    ) -> None:
        if not isinstance(privacy_mode, bool):
            raise TypeError(f"privacy_mode must be True or False, not {privacy_mode!r}")
        self.logger = _resolve_logger(logger)
        #: Read by the wrappers: True makes them leave prompts and outputs out
        #: before the event is even logged (the handler's privacy_mode strips them
        #: on the way out in any case).
        self.privacy_mode = privacy_mode

    def __repr__(self) -> str:
        return f"<{type(self).__name__} logger={self.logger.name!r}>"

    def capture(self, event: Any = None, **kwargs: Any) -> str | None:
        """Log one wrapper event; returns its uuid (None when the logger is off).

        Never raises: the event is logged as given when it cannot be read, and
        the handler drops it, counted, if it is not a PostHog AI event.
        """
        logger = self.logger
        if not logger.isEnabledFor(logging.INFO):
            return None
        try:
            payload = _payload(event, kwargs)
            _join_current_span(payload)
        except Exception:  # odd arguments must not break the model call: the handler
            payload = {"event": event, **kwargs}  # checks them, and counts the drop
        # makeRecord + handle, as the tracing API does: no findCaller() cost.
        record = logger.makeRecord(
            logger.name,
            logging.INFO,
            __file__,
            0,
            "posthog event %s",
            (event,),
            None,
            extra={POSTHOG_EVENT_ATTR: payload},
        )
        logger.handle(record)
        uuid_text = payload.get("uuid")
        return uuid_text if isinstance(uuid_text, str) else None

    #: posthog 7 routes AI events to ``capture_ai`` under full AI capture; same thing here.
    capture_ai = capture

    def flush(self) -> None:
        """Flush the handlers this client's records reach (as ``logging`` walks them)."""
        logger: logging.Logger | None = self.logger
        while logger is not None:
            for handler in logger.handlers:
                handler.flush()
            logger = logger.parent if logger.propagate else None


def _payload(event: Any, kwargs: Mapping[str, Any]) -> dict[str, Any]:
    """The record's ``posthog_event``: ``capture``'s arguments, completed as posthog does.

    Like ``posthog.Client.capture``, tags and identity set with ``posthog.contexts``
    (``new_context``, ``tag``, ``identify_context``) on the calling thread apply.
    """
    properties: Any = kwargs.get("properties")
    if properties is None or isinstance(properties, Mapping):
        merged = dict(contexts.get_tags())
        merged.update(properties or {})
        session_id = contexts.get_context_session_id()
        if session_id and "$session_id" not in merged:
            merged["$session_id"] = session_id
        properties = merged
    distinct_id = kwargs.get("distinct_id")
    if not is_truthy(distinct_id):
        distinct_id = contexts.get_context_distinct_id()
    timestamp = kwargs.get("timestamp")
    given_uuid = kwargs.get("uuid")
    payload: dict[str, Any] = {
        "event": event,
        "distinct_id": distinct_id,
        "properties": properties,
        "timestamp": timestamp if timestamp is not None else dt.datetime.now(dt.timezone.utc),
        "uuid": str(given_uuid) if given_uuid is not None else new_event_uuid(),
    }
    groups = kwargs.get("groups")
    if groups:
        payload["groups"] = groups
    return payload


def _join_current_span(payload: dict[str, Any]) -> None:
    """Inside a ``pl.span``, move a wrapper's event into the span's trace.

    The event's trace id becomes the span's, unless the caller chose it (any id
    the wrappers do not make up themselves).  A top-level event (no parent)
    hangs under the current span; a wrapper's own ``$ai_trace`` becomes an
    ``$ai_span`` with the wrapper's trace id as its span id, so the events that
    pointed at that trace now point at it, one level down.  A personless event
    takes the span's ``userId``, and its ``sessionId`` when it has none.
    """
    span = current_span()
    name, properties = payload["event"], payload["properties"]
    if span is None or name not in _TREE_EVENTS or not isinstance(properties, dict):
        return
    own_trace = properties.get("$ai_trace_id")
    if not _made_up_by_wrapper(own_trace):
        return
    parent = span.trace_id if span.is_root else span.span_id
    properties["$ai_trace_id"] = span.trace_id
    if name == "$ai_trace":
        payload["event"] = "$ai_span"
        if own_trace is not None:
            properties["$ai_span_id"] = js_string(own_trace)
        properties["$ai_parent_id"] = parent
        if "$ai_span_name" not in properties and "$ai_trace_name" in properties:
            properties["$ai_span_name"] = properties["$ai_trace_name"]
    elif properties.get("$ai_parent_id") is None:
        properties["$ai_parent_id"] = parent
    _take_span_identity(payload, properties, span)


def _take_span_identity(payload: dict[str, Any], properties: dict[str, Any], span: Span) -> None:
    """The span's user and session for an event the wrapper had no user for."""
    metadata = span.metadata
    session_id = metadata.get("sessionId")
    if is_truthy(session_id) and "$ai_session_id" not in properties:
        properties["$ai_session_id"] = js_string(session_id)
    if properties.get("$process_person_profile") is not False and is_truthy(payload["distinct_id"]):
        return
    user_id = metadata.get("userId")
    if is_truthy(user_id):
        payload["distinct_id"] = js_string(user_id)
        properties.pop("$process_person_profile", None)
    else:
        payload["distinct_id"] = span.trace_id
        properties["$process_person_profile"] = False


def posthog_client(
    logger: logging.Logger | str | None = None,
    *,
    privacy_mode: bool = False,
) -> Client:
    """A ``posthog_client`` for the ``posthog.ai`` wrappers that logs each event.

    ``client = OpenAI(posthog_client=pl.posthog_client())``: every call's
    ``$ai_generation`` goes to ``logger`` (default ``"posthog_logging.spans"``),
    where a :class:`~posthog_logging.PosthogLogHandler` delivers it.
    ``privacy_mode=True`` makes the wrappers leave prompts and outputs out.

    The object is a :class:`LoggingPosthogClient`; it is typed as the
    ``posthog.Client`` the wrappers' signatures ask for, so the one line above
    type-checks.  Only what the wrappers use is there (see the class).
    """
    return cast("Client", LoggingPosthogClient(logger, privacy_mode=privacy_mode))
