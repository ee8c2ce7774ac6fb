"""What leaves the process: sampling, ``mask=`` and ``before_send=`` on built events.

:class:`OutgoingEvents` is the last step between mapping and encoding, on the
listener thread (or the closing thread, when it finishes the listener's work at
shutdown; never a logging caller's), in this order:

1. trace sampling (:mod:`.sampling`): sampled-out events are counted in
   ``stats()["sampled_out"]``, so the hooks below see only kept events;
2. ``mask(value) -> value``: called with the value of each content property an
   event carries (:data:`CONTENT_PROPERTIES`) and returning its replacement
   (``None`` removes the property).  Privacy mode strips content during mapping,
   before this, so ``mask`` never sees what privacy mode removed;
3. ``before_send(event) -> event | None``: called with the event as it goes into
   the batch (``event``, ``distinct_id``, ``properties``, ``timestamp``, ``uuid``);
   ``None`` drops it, counted in ``stats()["filtered_out"]``.

Both hooks are user code: an exception in either (or a ``before_send`` result
that is not an event) drops that one event, counted in
``stats()["dropped"]["mask_error"]`` / ``["before_send_error"]``, and the first
of each kind is logged as an ERROR with its traceback.  The listener goes on.
Whatever the hooks return is made JSON-safe again, so they cannot break encoding.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, Protocol

from .contract import DIAGNOSTICS_LOGGER
from .mapping import Event
from .sampling import TraceSampler
from .values import json_safe, safe_str

#: Properties that carry user content: prompts and responses, span input/output
#: (tool arguments and results among them), error messages (they often quote the
#: input), and feedback comments.  ``mask`` is called with each of these.
CONTENT_PROPERTIES = (
    "$ai_input",
    "$ai_output_choices",
    "$ai_input_state",
    "$ai_output_state",
    "$ai_error",
    "error_message",
    "$ai_feedback_text",
)
#: Keys a ``before_send`` result must keep, with the type each must have.
_REQUIRED_KEYS: tuple[tuple[str, type], ...] = (
    ("event", str),
    ("distinct_id", str),
    ("properties", dict),
)

Mask = Callable[[Any], Any]
BeforeSend = Callable[[Event], "Event | None"]

_log = logging.getLogger(DIAGNOSTICS_LOGGER)


class Counters(Protocol):
    """Where outcomes are counted (the pipeline's ``Stats``)."""

    def add(self, name: str, amount: int = 1) -> object: ...

    def drop(self, reason: str, amount: int = 1) -> int: ...


class HookFailed(Exception):
    """A hook raised or returned something unusable; the event is dropped."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


class OutgoingEvents:
    """Sampling, then ``mask``, then ``before_send``, for each built event."""

    def __init__(
        self,
        stats: Counters,
        *,
        sampler: TraceSampler | None = None,
        mask: Mask | None = None,
        before_send: BeforeSend | None = None,
    ) -> None:
        self.stats = stats
        self.sampler = sampler
        self.mask = mask
        self.before_send = before_send

    @property
    def active(self) -> bool:
        """False when there is nothing to do: :meth:`filter` then returns at once."""
        return self.sampler is not None or self.mask is not None or self.before_send is not None

    def filter(self, events: list[Event]) -> list[Event]:
        """The events to send, each masked and passed through ``before_send``."""
        if not self.active:
            return events
        kept: list[Event] = []
        for event in events:
            if self.sampler is not None and not self.sampler.keep(event):
                self.stats.add("sampled_out")
                continue
            try:
                outgoing = self._hooks(event)
            except HookFailed as failure:
                self._report(failure)
                continue
            if outgoing is None:
                self.stats.add("filtered_out")
                continue
            kept.append(outgoing)
        return kept

    def _hooks(self, event: Event) -> Event | None:
        if self.mask is not None:
            self._mask(event)
        if self.before_send is None:
            return event
        try:
            result = self.before_send(event)
        except Exception as error:
            raise HookFailed("before_send_error", _raised("before_send", error)) from error
        if result is None:
            return None
        return _checked_event(result)

    def _mask(self, event: Event) -> None:
        properties = event.get("properties")
        if not isinstance(properties, dict):
            return
        mask = self.mask
        assert mask is not None
        for key in CONTENT_PROPERTIES:
            if key not in properties:
                continue
            try:
                replacement = mask(properties[key])
            except Exception as error:
                raise HookFailed("mask_error", _raised(f"mask (on {key})", error)) from error
            if replacement is None:
                del properties[key]
            else:
                properties[key] = json_safe(replacement)

    def _report(self, failure: HookFailed) -> None:
        """Count the dropped event; log the first failure of each kind in full."""
        if self.stats.drop(failure.reason) == 1:
            _log.error(
                "posthog-logging: %s; the event was dropped (every such drop is counted "
                "in stats()['dropped'][%r], only this first one is logged)",
                failure,
                failure.reason,
                exc_info=failure.__cause__,
            )


def _raised(hook: str, error: BaseException) -> str:
    return f"{hook} raised {type(error).__name__}: {safe_str(error)[:200]}"


def _checked_event(result: Any) -> Event:
    """``before_send``'s result as a JSON-safe event, or :class:`HookFailed`."""
    if not isinstance(result, dict):
        raise HookFailed(
            "before_send_error",
            f"before_send returned a {type(result).__name__}, not an event dict or None",
        )
    for key, kind in _REQUIRED_KEYS:
        value = result.get(key)
        if not isinstance(value, kind) or (not value and kind is str):
            raise HookFailed(
                "before_send_error",
                f"before_send returned an event whose {key!r} is not a "
                f"{'non-empty ' if kind is str else ''}{kind.__name__}",
            )
    event: Event = json_safe(result)
    return event
