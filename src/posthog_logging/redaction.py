"""What leaves the process: one ordered chain of steps over every built event.

A step is a small callable ``event -> event | None`` (``None`` drops the
event), as structlog's processors are; :class:`OutgoingEvents` runs the chain
with one loop, on the listener thread (or the closing thread, when it finishes
the listener's work at shutdown; never a logging caller's), and ``replay`` runs
the same chain for the records it maps.  The order is the list's:

1. privacy mode (:class:`StripPrivateContent`): removes the content properties
   (:data:`~.contract.PRIVATE_CONTENT_PROPERTIES`), whatever set them, so no
   later step ever sees them;
2. trace sampling (:class:`SampleTraces`, :mod:`.sampling`): sampled-out events
   are counted in ``stats()["sampled_out"]``, so the hooks below see only kept
   events;
3. ``mask(value) -> value`` (:class:`MaskContent`): called with the value of
   each content property an event carries (:data:`~.contract.CONTENT_PROPERTIES`)
   and returning its replacement (``None`` removes the property);
4. ``before_send(event) -> event | None`` (:class:`CallBeforeSend`): called with
   the event as it goes into the batch (``event``, ``distinct_id``,
   ``properties``, ``timestamp``, ``uuid``); ``None`` drops it, counted in
   ``stats()["filtered_out"]``.

Both hooks are user code: an exception in either (or a ``before_send`` result
that is not an event) drops that one event, counted in
``stats()["dropped"]["mask_error"]`` / ``["before_send_error"]``, and the first
of each kind is logged as an ERROR with its traceback.  The listener goes on.
Whatever the hooks return is made JSON-safe again, so they cannot break encoding.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Protocol

from .contract import CONTENT_PROPERTIES, PRIVATE_CONTENT_PROPERTIES
from .diagnostics import LogThrottle, log
from .mapping import Event
from .sampling import TraceSampler
from .values import json_safe, safe_str

#: Keys a ``before_send`` result must keep, with the type each must have.
_REQUIRED_KEYS: tuple[tuple[str, type], ...] = (
    ("event", str),
    ("distinct_id", str),
    ("properties", dict),
)

Mask = Callable[[Any], Any]
BeforeSend = Callable[[Event], "Event | None"]


class Counters(Protocol):
    """Where outcomes are counted (the pipeline's ``Stats``)."""

    def add(self, name: str, amount: int = 1) -> object: ...

    def drop(self, reason: str, amount: int = 1) -> int: ...


class Step(Protocol):
    """One link of the chain: the event to send (changed or not), or None to drop it.

    ``dropped_as`` names the ``stats()`` counter of the events it drops.
    """

    dropped_as: str

    def __call__(self, event: Event) -> Event | None: ...


class HookFailed(Exception):
    """A hook raised or returned something unusable; the event is dropped."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


class StripPrivateContent:
    """Privacy mode: prompts, responses and span content never leave the process."""

    dropped_as = "filtered_out"  # never drops

    def __call__(self, event: Event) -> Event:
        properties = event.get("properties")
        if isinstance(properties, dict):
            for key in PRIVATE_CONTENT_PROPERTIES:
                properties.pop(key, None)
        return event


class SampleTraces:
    """Keeps the events of the sampled traces (:class:`~.sampling.TraceSampler`)."""

    dropped_as = "sampled_out"

    def __init__(self, sampler: TraceSampler) -> None:
        self.sampler = sampler

    def __call__(self, event: Event) -> Event | None:
        return event if self.sampler.keep(event) else None


class MaskContent:
    """Replaces each content property with ``mask(value)`` (None removes it)."""

    dropped_as = "filtered_out"  # never drops: a failing mask raises HookFailed

    def __init__(self, mask: Mask) -> None:
        self.mask = mask

    def __call__(self, event: Event) -> Event:
        properties = event.get("properties")
        if not isinstance(properties, dict):
            return event
        for key in CONTENT_PROPERTIES:
            if key not in properties:
                continue
            try:
                replacement = self.mask(properties[key])
            except Exception as error:
                raise HookFailed("mask_error", _raised(f"mask (on {key})", error)) from error
            if replacement is None:
                del properties[key]
            else:
                properties[key] = json_safe(replacement)
        return event


class CallBeforeSend:
    """The user's last word: the event to send, or None to drop it."""

    dropped_as = "filtered_out"

    def __init__(self, before_send: BeforeSend) -> None:
        self.before_send = before_send

    def __call__(self, event: Event) -> Event | None:
        try:
            result = self.before_send(event)
        except Exception as error:
            raise HookFailed("before_send_error", _raised("before_send", error)) from error
        if result is None:
            return None
        return _checked_event(result)


def outgoing_steps(
    *,
    privacy_mode: bool = False,
    sampler: TraceSampler | None = None,
    mask: Mask | None = None,
    before_send: BeforeSend | None = None,
) -> list[Step]:
    """The chain for these settings, in the module docstring's order."""
    steps: list[Step] = []
    if privacy_mode:
        steps.append(StripPrivateContent())
    if sampler is not None:
        steps.append(SampleTraces(sampler))
    if mask is not None:
        steps.append(MaskContent(mask))
    if before_send is not None:
        steps.append(CallBeforeSend(before_send))
    return steps


class OutgoingEvents:
    """Runs the chain over each built event; counts what it drops."""

    def __init__(
        self,
        stats: Counters,
        *,
        privacy_mode: bool = False,
        sampler: TraceSampler | None = None,
        mask: Mask | None = None,
        before_send: BeforeSend | None = None,
    ) -> None:
        self.stats = stats
        self.steps: Sequence[Step] = outgoing_steps(
            privacy_mode=privacy_mode, sampler=sampler, mask=mask, before_send=before_send
        )
        self._failure_logs = LogThrottle()

    @property
    def active(self) -> bool:
        """False when there is nothing to do: :meth:`filter` then returns at once."""
        return bool(self.steps)

    def filter(self, events: list[Event]) -> list[Event]:
        """The events to send, each passed through every step in order."""
        if not self.steps:
            return events
        kept: list[Event] = []
        for event in events:
            try:
                outgoing = self._through_chain(event)
            except HookFailed as failure:
                self._report(failure)
                continue
            if outgoing is not None:
                kept.append(outgoing)
        return kept

    def _through_chain(self, event: Event) -> Event | None:
        for step in self.steps:
            result = step(event)
            if result is None:
                self.stats.add(step.dropped_as)
                return None
            event = result
        return event

    def _report(self, failure: HookFailed) -> None:
        """Count the dropped event; log the first failure of each kind in full."""
        self.stats.drop(failure.reason)
        if self._failure_logs.allows(failure.reason):
            log.error(
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
